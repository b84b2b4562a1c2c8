/**
 * The local lab (`npx gluster-libvirt lab up`), as integration and e2e tests see it.
 * A missing lab is an error, never a reason to skip: tests that need it must fail loudly.
 */
import { execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/**
 * The lab's test domains. `pristineXml`: a file holding their definition as `lab up` made
 * it, without any disk; tests clone their own VMs from it (test/helpers/domain.ts), never
 * from the domains themselves, which may carry whatever a demo or a user attached.
 */
export interface LabDomains {
  running: string;
  stopped: string;
  pristineXml: string;
}

/** One hypervisor of the lab: how to log in to it and its test domains. */
export interface LabHypervisor {
  ssh: LabInfo["ssh"];
  domains: LabDomains;
}

/**
 * The lab's guest image (docs/lab.md "The guest"): Debian's kernel and an initramfs of
 * busybox with the agent tests talk to (test/helpers/guest.ts).
 */
export interface LabGuest {
  kernel: string;
  initrd: string;
  /** a domain definition booting them; `namePlaceholder` stands for the guest's name in it */
  domainXml: string;
  namePlaceholder: string;
  /** where a guest's agent socket (`<name>.agent.sock`) and console log (`<name>.console.log`) are */
  runDir: string;
  kernelVersion: string;
  /**
   * lab-running boots this guest and its agent started in the current boot (lab-stopped's
   * definition boots it too); absent while it does not (`status` says why on stderr).
   * One client at a time on the socket.
   */
  running?: { domain: string; agentSocket: string; consoleLog: string };
}

/** What `gluster-libvirt lab up` / `lab status` print (docs/architecture.md). */
export interface LabInfo {
  ssh: {
    host: string;
    port: number;
    user: string;
    privateKeyPath: string;
    knownHostsFile: string;
    /** `SHA256:…` of the lab sshd's ed25519 host key */
    hostKeyFingerprint: string;
    /** file holding the login user's password (mode 0600) */
    passwordFile: string;
  };
  gluster: { servers: string[]; volume: string };
  domains: LabDomains;
  libvirtUri: string;
  stateDir: string;
  qemu: { user: string; uid: number; gid: number };
  /**
   * Every hypervisor of the lab, host 1 (the top-level `ssh`/`domains`) first; a second one
   * when the lab was brought up with `GLUSTER_LIBVIRT_LAB_HOSTS=2` (docs/lab.md).
   */
  hypervisors: LabHypervisor[];
  /**
   * The guest image, when built from today's kernel and /init: `up` always builds it;
   * `status` leaves it out for a lab brought up by an older lab.sh (test/helpers/guest.ts
   * then runs `up`).
   */
  guest?: LabGuest;
}

/** The repository root: this file is dist/test/helpers/lab.js once compiled. */
export const repoRoot = path.resolve(__dirname, "..", "..", "..");

/** The compiled CLI that tests run, as a user would through `npx gluster-libvirt`. */
export const cliPath = path.join(repoRoot, "dist", "sdk", "cli.js");

/** Runs `gluster-libvirt lab <command>`; never throws, whatever the exit code. */
export async function runLabCommand(command: "up" | "down" | "status", env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [cliPath, "lab", command], {
      encoding: "utf8",
      env,
      maxBuffer: 16 << 20,
      timeout: 15 * 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof err.code === "number" ? err.code : -1, stdout: err.stdout ?? "", stderr: err.stderr ?? String(e) };
  }
}

/** Parses the lab's JSON and checks its shape, so a broken lab fails here and not deep in a test. */
export function parseLabInfo(text: string): LabInfo {
  const v = JSON.parse(text) as LabInfo;
  const problems: string[] = [];
  const str = (x: unknown, name: string) => {
    if (typeof x !== "string" || x === "") problems.push(`${name} is not a non-empty string`);
  };
  const int = (x: unknown, name: string) => {
    if (!Number.isInteger(x)) problems.push(`${name} is not an integer`);
  };
  str(v?.ssh?.host, "ssh.host");
  int(v?.ssh?.port, "ssh.port");
  str(v?.ssh?.user, "ssh.user");
  str(v?.ssh?.privateKeyPath, "ssh.privateKeyPath");
  str(v?.ssh?.knownHostsFile, "ssh.knownHostsFile");
  if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(String(v?.ssh?.hostKeyFingerprint))) problems.push("ssh.hostKeyFingerprint is not SHA256:…");
  str(v?.ssh?.passwordFile, "ssh.passwordFile");
  if (!Array.isArray(v?.gluster?.servers) || v.gluster.servers.length === 0) problems.push("gluster.servers is empty");
  else v.gluster.servers.forEach((s, i) => str(s, `gluster.servers[${i}]`));
  str(v?.gluster?.volume, "gluster.volume");
  str(v?.domains?.running, "domains.running");
  str(v?.domains?.stopped, "domains.stopped");
  str(v?.domains?.pristineXml, "domains.pristineXml");
  if (typeof v?.domains?.pristineXml === "string" && !fs.existsSync(v.domains.pristineXml)) problems.push(`domains.pristineXml: no file ${v.domains.pristineXml}`);
  str(v?.libvirtUri, "libvirtUri");
  str(v?.stateDir, "stateDir");
  str(v?.qemu?.user, "qemu.user");
  int(v?.qemu?.uid, "qemu.uid");
  int(v?.qemu?.gid, "qemu.gid");
  if (!Array.isArray(v?.hypervisors) || v.hypervisors.length === 0) problems.push("hypervisors is empty");
  else
    v.hypervisors.forEach((h, i) => {
      str(h?.ssh?.host, `hypervisors[${i}].ssh.host`);
      int(h?.ssh?.port, `hypervisors[${i}].ssh.port`);
      str(h?.ssh?.knownHostsFile, `hypervisors[${i}].ssh.knownHostsFile`);
      str(h?.domains?.running, `hypervisors[${i}].domains.running`);
      str(h?.domains?.pristineXml, `hypervisors[${i}].domains.pristineXml`);
    });
  if (v?.guest !== undefined) {
    for (const key of ["kernel", "initrd", "domainXml", "namePlaceholder", "runDir", "kernelVersion"] as const) str(v.guest[key], `guest.${key}`);
    for (const key of ["kernel", "initrd", "domainXml", "runDir"] as const) {
      if (typeof v.guest[key] === "string" && !fs.existsSync(v.guest[key])) problems.push(`guest.${key}: no file ${v.guest[key]}`);
    }
    if (v.guest.running !== undefined) for (const key of ["domain", "agentSocket", "consoleLog"] as const) str(v.guest.running?.[key], `guest.running.${key}`);
  }
  if (problems.length > 0) throw new Error(`the lab's JSON is malformed: ${problems.join("; ")}\n${text}`);
  return v;
}

let cached: Promise<LabInfo> | undefined;

/**
 * The running lab, from `gluster-libvirt lab status` (run once per process).
 * Throws when the lab is not up, with what `status` said is down.
 */
export function getLab(): Promise<LabInfo> {
  cached ??= (async () => {
    const r = await runLabCommand("status");
    if (r.code !== 0) {
      throw new Error(
        `lab is not up: run \`npx gluster-libvirt lab up\` (as root, after \`npm run build\`) before the integration and e2e tests.\n` +
          `\`node ${cliPath} lab status\` exited ${r.code}:\n${r.stderr.trim()}`,
      );
    }
    return parseLabInfo(r.stdout);
  })();
  // a failed lookup is not cached: the next caller asks again (e.g. after `lab up`)
  cached.catch(() => {
    cached = undefined;
  });
  return cached;
}

/**
 * OpenSSH client arguments (before the remote command) that log in to the lab as its user:
 * the lab key only, host key checked strictly against the lab's known_hosts, no prompts,
 * and nothing from the caller's ~/.ssh.
 */
export function sshArgs(lab: LabInfo): string[] {
  return [
    "-F", "none",
    "-p", String(lab.ssh.port),
    "-i", lab.ssh.privateKeyPath,
    "-o", "IdentitiesOnly=yes",
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${lab.ssh.knownHostsFile}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
    `${lab.ssh.user}@${lab.ssh.host}`,
  ];
}

/** POSIX shell quoting of one word (the lab user's login shell runs the command line). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface LabRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs argv on the lab host through the OpenSSH client (each argument quoted) and returns
 * its exit code and output; `check` (default true) throws on a non-zero exit.
 */
export async function runOnLab(lab: LabInfo, argv: readonly string[], opts: { stdin?: string; check?: boolean; timeoutMs?: number } = {}): Promise<LabRun> {
  const remote = argv.map(shellQuote).join(" ");
  const child = spawn("ssh", [...sshArgs(lab), remote], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  child.stdin.end(opts.stdin ?? "");
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const code = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`runOnLab: \`${remote}\` timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve(status ?? (signal ? 128 : -1));
    });
  });
  if (code !== 0 && opts.check !== false) {
    throw new Error(`runOnLab: \`${remote}\` exited ${code}: ${stderr.trim()}`);
  }
  return { code, stdout, stderr };
}
