/**
 * The lab with several hypervisors (`GLUSTER_LIBVIRT_LAB_HOSTS=2 gluster-libvirt lab up`):
 * getting it, and reaching one hypervisor of it over SSH with the helpers of ./lab.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import type { ConfigMap } from "@pulumi/pulumi/automation";
import { cliPath, getLab, parseLabInfo, runOnLab, type LabHypervisor, type LabInfo, type LabRun } from "./lab";
import { labCredentials } from "./stack";

const execFileAsync = promisify(execFile);

/**
 * The lab with at least `count` hypervisors. When the running lab has fewer (or is down),
 * runs `GLUSTER_LIBVIRT_LAB_HOSTS=<count> gluster-libvirt lab up` and says so on stderr;
 * throws with `up`'s own error output when that does not work — never a reason to skip.
 */
export async function getMultiHostLab(count = 2): Promise<LabInfo> {
  const current = await getLab().catch(() => undefined);
  if (current && current.hypervisors.length >= count) return current;
  const why = current ? `the lab has ${current.hypervisors.length} hypervisor(s)` : "the lab is not up";
  process.stderr.write(`multihost: ${why}; running \`GLUSTER_LIBVIRT_LAB_HOSTS=${count} gluster-libvirt lab up\`\n`);
  const t0 = Date.now();
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(process.execPath, [cliPath, "lab", "up"], {
      encoding: "utf8",
      env: { ...process.env, GLUSTER_LIBVIRT_LAB_HOSTS: String(count) },
      maxBuffer: 16 << 20,
      timeout: 15 * 60_000,
    }));
  } catch (e) {
    const err = e as { code?: unknown; stderr?: string };
    throw new Error(
      `multihost: \`GLUSTER_LIBVIRT_LAB_HOSTS=${count} node ${cliPath} lab up\` failed (exit ${String(err.code)}); ` +
        `these tests need ${count} hypervisors:\n${(err.stderr ?? String(e)).trim()}`,
    );
  }
  const lab = parseLabInfo(stdout);
  if (lab.hypervisors.length < count) {
    throw new Error(`multihost: \`lab up\` with GLUSTER_LIBVIRT_LAB_HOSTS=${count} printed ${lab.hypervisors.length} hypervisor(s):\n${stdout}`);
  }
  process.stderr.write(`multihost: started the lab's hypervisor 2 (${lab.hypervisors.map((h) => h.ssh.host).join(", ")}) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  return lab;
}

/** `lab` as seen through hypervisor `h`: its ssh and domains, the rest shared. For sshArgs/runOnLab. */
export function onHypervisor(lab: LabInfo, h: LabHypervisor): LabInfo {
  return { ...lab, ssh: h.ssh, domains: h.domains };
}

/** Runs argv on hypervisor `h` of the lab over OpenSSH, as `runOnLab` does on host 1. */
export function runOnHypervisor(lab: LabInfo, h: LabHypervisor, argv: readonly string[], opts: { stdin?: string; check?: boolean; timeoutMs?: number } = {}): Promise<LabRun> {
  return runOnLab(onHypervisor(lab, h), argv, opts);
}

/** `virsh -c <lab uri> …` on hypervisor `h`, as the lab user over SSH; throws on failure. */
export async function virshOn(lab: LabInfo, h: LabHypervisor, ...args: string[]): Promise<string> {
  return (await runOnHypervisor(lab, h, ["virsh", "-q", "-c", lab.libvirtUri, ...args])).stdout;
}

/**
 * A known_hosts file with the host key of every hypervisor of the lab (host 1's own file
 * holds only host 1's), for a stack whose one `gluster-libvirt:knownHostsFile` serves them all.
 */
export function knownHostsOfAll(lab: LabInfo): string {
  const lines = new Set<string>();
  for (const h of lab.hypervisors) {
    for (const line of fs.readFileSync(h.ssh.knownHostsFile, "utf8").split("\n")) if (line.trim()) lines.add(line);
  }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lab-known-hosts-")), "known_hosts");
  fs.writeFileSync(file, [...lines].join("\n") + "\n");
  return file;
}

/** `labCredentials` for a stack that logs in to every hypervisor of the lab. */
export function multiHostCredentials(lab: LabInfo): ConfigMap {
  return { ...labCredentials(lab), "gluster-libvirt:knownHostsFile": { value: knownHostsOfAll(lab) } };
}
