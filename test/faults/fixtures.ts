/**
 * What the fault scenarios share: a stack of one GlusterPool on a Gluster volume of the
 * test's own plus ImageVolumes (some with content, made before the fault; `count` empty ones
 * made by the run the fault hits), and hypervisor 2's daemons (killed and restarted by pid
 * file, the way scripts/lab.sh starts them).
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as net from "node:net";
import type { ConfigMap } from "@pulumi/pulumi/automation";
import { GlusterPool, ImageVolume } from "../../sdk";
import type { Connection } from "../../sdk/connection";
import { pristineDomainXml } from "../helpers/domain";
import { runOnHypervisor } from "../helpers/hypervisors";
import { cliPath, type LabHypervisor, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { newStack, type TestStack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";
import { domainDisks, killPid, pidAlive, randomFile } from "./harness";

export interface VolumesStack {
  t: TestStack;
  gluster: ReturnType<typeof createGlusterVolume>;
  brick: string;
  poolName: string;
  /** volumes with content that exist before the fault (names) */
  keep: string[];
  /** how many empty volumes the program declares next to `keep` */
  count: number;
  /** name prefix of the empty volumes */
  prefix: string;
  /** a 1 MiB random file each `keep` volume is uploaded from */
  seedFile: string;
  /** more resources for the program, declared after the others */
  extra?: (pool: GlusterPool, connection: Connection, volumes: Record<string, ImageVolume>) => void;
  /** `pulumi destroy`, then drop the pool and the Gluster volume whatever is left. */
  remove(): Promise<void>;
  /**
   * Drop the pool, the Gluster volume (its files with it) and the stack's files without a
   * `pulumi destroy` — for big stacks whose destroy is not under test (it costs minutes:
   * every volume delete scans every domain of the host). Drop the VMs that use it first.
   */
  removeWithoutDestroy(): Promise<void>;
}

/** Pool + volumes on `connection`; nothing is run yet. The pool is removed on the host by `onHost` in remove(). */
export async function volumesStack(
  lab: LabInfo,
  name: string,
  connection: () => Connection,
  config: ConfigMap,
  opts: { keep?: number; dropPool: () => Promise<void> },
): Promise<VolumesStack> {
  const gluster = createGlusterVolume(lab, uniqueName(`flt-${name}`));
  const poolName = uniqueName(`flt-${name}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flt-seed-"));
  const seedFile = randomFile(path.join(dir, "seed.img"), 1 << 20);
  const s: VolumesStack = {
    t: undefined as unknown as TestStack,
    gluster,
    brick: `${lab.stateDir}/bricks/${gluster.name}`,
    poolName,
    keep: Array.from({ length: opts.keep ?? 2 }, (_, i) => `flt-keep-${i}.img`),
    count: 0,
    prefix: "flt-v",
    seedFile,
    async remove() {
      try {
        await s.t?.cleanup();
      } catch (e) {
        process.stderr.write(`faults: cleanup of ${name}: destroy failed: ${String(e).slice(0, 500)}\n`);
      }
      await opts.dropPool().catch(() => undefined);
      gluster.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async removeWithoutDestroy() {
      await opts.dropPool().catch(() => undefined);
      gluster.remove();
      fs.rmSync(dir, { recursive: true, force: true });
      if (s.t) fs.rmSync(s.t.workDir, { recursive: true, force: true });
    },
  };
  s.t = await newStack(`flt-${name}`, async () => {
    const c = connection();
    const pool = new GlusterPool("pool", { connection: c, name: poolName, volume: gluster.name, servers: lab.gluster.servers });
    const volumes: Record<string, ImageVolume> = {};
    for (const v of s.keep) volumes[v] = new ImageVolume(v, { connection: c, pool: pool.name, name: v, source: { path: seedFile } });
    for (let i = 0; i < s.count; i++) {
      const v = `${s.prefix}${String(i).padStart(2, "0")}.img`;
      volumes[v] = new ImageVolume(v, { connection: c, pool: pool.name, name: v, capacity: "1MiB" });
    }
    s.extra?.(pool, c, volumes);
    return {};
  }, config);
  return s;
}

/** Volume files the fault run made (by prefix) on the brick. */
export function madeVolumes(s: VolumesStack): string[] {
  if (!fs.existsSync(s.brick)) return [];
  return fs.readdirSync(s.brick).filter((f) => f.startsWith(s.prefix));
}

// ---------------------------------------------------------------------------------------
// hypervisor 2's daemons (docs/lab.md "Two hypervisors")

export interface Hv2Daemons {
  nsPid(): number;
  sshdPid(): number | undefined;
  libvirtdPid(): number | undefined;
  /** SIGKILL the sshd listener and every session it serves. */
  killSshd(): void;
  killLibvirtd(): void;
  startSshd(): Promise<void>;
  startLibvirtd(): Promise<void>;
  /** Restarts whatever is down, the way lab.sh does; falls back to `lab up` with 2 hosts. */
  repair(): Promise<void>;
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, "utf8").trim());
    return pid > 0 && pidAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port, timeout: 1000 });
    sock.once("connect", () => (sock.destroy(), resolve(true)));
    sock.once("error", () => resolve(false));
    sock.once("timeout", () => (sock.destroy(), resolve(false)));
  });
}

export function hv2Daemons(lab: LabInfo, hv2: LabHypervisor): Hv2Daemons {
  const dir = `${lab.stateDir}/host2`;
  const hs = `${dir}/ssh`;
  const lv = `${dir}/libvirt`;
  const d: Hv2Daemons = {
    nsPid: () => {
      const p = readPid(`${dir}/ns.pid`);
      if (!p) throw new Error(`hypervisor 2's namespace holder is not running (${dir}/ns.pid)`);
      return p;
    },
    sshdPid: () => readPid(`${hs}/sshd.pid`),
    libvirtdPid: () => readPid(`${lv}/libvirtd.pid`),
    killSshd() {
      const pid = d.sshdPid();
      if (!pid) throw new Error("hypervisor 2's sshd is not running");
      const sessions = spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
      killPid(pid, "SIGKILL");
      for (const s of sessions) killPid(s, "SIGKILL");
    },
    killLibvirtd() {
      const pid = d.libvirtdPid();
      if (!pid) throw new Error("hypervisor 2's libvirtd is not running");
      killPid(pid, "SIGKILL");
    },
    async startSshd() {
      if (d.sshdPid()) return;
      execFileSync("nsenter", ["-t", String(d.nsPid()), "-m", "--", "/usr/sbin/sshd", "-f", `${hs}/sshd_config`, "-E", `${hs}/sshd.log`]);
      await waitFor("hypervisor 2's sshd to listen", () => portOpen(hv2.ssh.host, hv2.ssh.port), 15_000);
    },
    async startLibvirtd() {
      if (d.libvirtdPid()) return;
      execFileSync("nsenter", ["-t", String(d.nsPid()), "-m", "--", "/usr/sbin/libvirtd", "-d", "-f", `${lv}/libvirtd.conf`, "-p", `${lv}/libvirtd.pid`]);
      await waitFor(
        "hypervisor 2's libvirtd to answer",
        async () => (await runOnHypervisor(lab, hv2, ["virsh", "-q", "-c", lab.libvirtUri, "list", "--all", "--name"], { check: false, timeoutMs: 10_000 })).code === 0,
        60_000,
        250,
      );
    },
    async repair() {
      try {
        await d.startLibvirtd();
        await d.startSshd();
      } catch (e) {
        process.stderr.write(`faults: restarting hypervisor 2's daemons by hand failed (${String(e)}); running lab up\n`);
        execFileSync(process.execPath, [cliPath, "lab", "up"], { env: { ...process.env, GLUSTER_LIBVIRT_LAB_HOSTS: "2" }, stdio: ["ignore", "ignore", "inherit"], timeout: 10 * 60_000 });
      }
    },
  };
  return d;
}

/**
 * A copy of the lab's running or stopped domain on host 1 (ACPI + virtio-scsi, no disks),
 * named flt-…; started like the original. Made from the lab's pristine definition, not from
 * the shared domain's current one: other sessions change that (disks left on it; a guest's
 * console log file, which a second domain cannot open: "Device or resource busy").
 */
export function cloneDomain(lab: LabInfo, from: "running" | "stopped", prefix = "flt-dom"): string {
  const name = uniqueName(prefix);
  const xml = pristineDomainXml(lab, name);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flt-domain-"));
  try {
    fs.writeFileSync(path.join(dir, "domain.xml"), xml);
    virsh("define", path.join(dir, "domain.xml"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (from === "running") {
    try {
      virsh("start", name);
    } catch (e) {
      // all or nothing: the caller never learns the name, so nobody else would remove it
      tryVirsh("undefine", name);
      throw e;
    }
  }
  return name;
}

/** Disks of host 1's domains, read with the local virsh (independent of the transport under test). */
export function host1Disks(domains: readonly string[]) {
  return domainDisks(async (d, inactive) => {
    const r = tryVirsh("dumpxml", ...(inactive ? ["--inactive"] : []), d);
    return r.code === 0 ? r.stdout : undefined;
  }, domains);
}

/**
 * Removes a pool of the test's own from host 1 whatever state it is in: stop (unmount),
 * `pool-delete` (for netfs: rmdir of the mount point — never touches the Gluster volume),
 * undefine. Without the delete, every failed run would leave an empty mount point behind.
 */
export function dropHost1Pool(name: string): void {
  tryVirsh("pool-destroy", name);
  tryVirsh("pool-delete", name);
  tryVirsh("pool-undefine", name);
}
