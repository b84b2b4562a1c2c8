/**
 * Throwaway sshd instances for transport tests (jump hosts, MaxSessions, restarts,
 * extra keys), each with its own host key and config in a temp dir, logging in the
 * lab's unprivileged user. Processes are tracked by pid and stopped by pid.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exited, waitFor } from "./wait";

export const LOGIN_USER = "gllab";

export interface Sshd {
  address: string;
  port: number;
  /** `ssh-ed25519 AAAA…` */
  hostKey: string;
  /** `SHA256:…` */
  fingerprint: string;
  /** A known_hosts line for this server. */
  knownHostsLine: string;
  dir: string;
  /** Stop the listener and every connection it serves (its children), then start it again. */
  restart(): Promise<void>;
  stop(): void;
  /** Pids of processes named `command` running under this sshd (its sessions' programs). */
  descendants(command: string): number[];
}

/** A fresh ed25519 key pair; returns the private key path (public at `.pub`). */
export function makeKey(dir: string, name: string, passphrase = ""): string {
  const path = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", path]);
  return path;
}

function pidsOf(parent: number): number[] {
  const r = spawnSync("pgrep", ["-P", String(parent)], { encoding: "utf8" });
  return r.stdout.split("\n").filter(Boolean).map(Number);
}

function descendantsOf(root: number, command: string): number[] {
  const rows = execFileSync("ps", ["-e", "-o", "pid=,ppid=,comm="], { encoding: "utf8" })
    .split("\n").filter(Boolean).map((l) => l.trim().split(/\s+/)).map(([pid, ppid, comm]) => ({ pid: Number(pid), ppid: Number(ppid), comm }));
  const under = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows) if (under.has(r.ppid) && !under.has(r.pid)) (under.add(r.pid), (grew = true));
  }
  return rows.filter((r) => r.comm === command && under.has(r.pid) && r.pid !== root).map((r) => r.pid);
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    // already gone
  }
}

export interface SshdOptions {
  address: string;
  port: number;
  /** Public keys allowed to log in as LOGIN_USER. */
  authorizedKeys: string[];
  /** Extra sshd_config lines (e.g. `MaxSessions 3`). */
  config?: string[];
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
}

export async function startSshd(o: SshdOptions): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), "glv-sshd-"));
  chmodSync(dir, 0o755); // sshd reads authorized_keys as the login user
  const hostKeyPath = makeKey(dir, "host_key");
  writeFileSync(join(dir, "authorized_keys"), o.authorizedKeys.join("\n") + "\n");
  const pidFile = join(dir, "sshd.pid");
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `Port ${o.port}`,
      `ListenAddress ${o.address}`,
      `HostKey ${hostKeyPath}`,
      `PidFile ${pidFile}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "StrictModes no",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      `AllowUsers ${LOGIN_USER}`,
      "AllowTcpForwarding yes",
      "MaxStartups 100:30:200",
      "PrintMotd no",
      ...(o.config ?? []),
    ].join("\n") + "\n",
  );
  mkdirSync("/run/sshd", { recursive: true });
  const hostKey = readFileSync(`${hostKeyPath}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
  const fingerprint = execFileSync("ssh-keygen", ["-lf", `${hostKeyPath}.pub`], { encoding: "utf8" }).split(" ")[1];
  let pid = 0;

  const start = async () => {
    const argv = ["/usr/sbin/sshd", "-f", join(dir, "sshd_config"), "-E", join(dir, "sshd.log")];
    execFileSync(o.netns ? "ip" : argv[0], o.netns ? ["netns", "exec", o.netns, ...argv] : argv.slice(1));
    const readPid = () => {
      try {
        return Number(readFileSync(pidFile, "utf8").trim()) || undefined;
      } catch {
        return undefined;
      }
    };
    pid = await waitFor(`sshd on ${o.address}:${o.port} to write its pid file`, readPid, 2_000, 20).catch((e: Error) => {
      throw new Error(`${e.message}: ${readFileSync(join(dir, "sshd.log"), "utf8")}`);
    });
  };
  const stop = () => {
    if (!pid) return;
    // Per-connection sshd processes are the listener's children; they would outlive it.
    for (const child of pidsOf(pid)) {
      for (const grandchild of pidsOf(child)) kill(grandchild);
      kill(child);
    }
    kill(pid);
    pid = 0;
    spawnSync("rm", ["-f", pidFile]);
  };
  await start();
  const name = o.port === 22 ? o.address : `[${o.address}]:${o.port}`;
  return {
    address: o.address,
    port: o.port,
    hostKey,
    fingerprint,
    knownHostsLine: `${name} ${hostKey}`,
    dir,
    stop,
    descendants: (command) => (pid ? descendantsOf(pid, command) : []),
    async restart() {
      const listener = pid;
      stop();
      // the new listener binds the same address: the old one must have let go of it
      await waitFor(`the old sshd listener ${listener} on ${o.address}:${o.port} to exit`, () => exited(listener), 10_000, 20);
      await start();
    },
  };
}

/** A network namespace joined to `peer` (root namespace when undefined) by a veth pair. */
export function makeNetns(name: string, link: { peer?: string; localIp: string; peerIp: string }): () => void {
  const inPeer = (...args: string[]) => execFileSync("ip", link.peer ? ["-n", link.peer, ...args] : args);
  const vethHere = `${name}-in`.slice(0, 15);
  const vethPeer = `${name}-out`.slice(0, 15);
  execFileSync("ip", ["netns", "add", name]);
  execFileSync("ip", ["-n", name, "link", "set", "lo", "up"]);
  inPeer("link", "add", vethPeer, "type", "veth", "peer", "name", vethHere);
  inPeer("link", "set", vethHere, "netns", name);
  inPeer("addr", "add", `${link.peerIp}/24`, "dev", vethPeer);
  inPeer("link", "set", vethPeer, "up");
  execFileSync("ip", ["-n", name, "addr", "add", `${link.localIp}/24`, "dev", vethHere]);
  execFileSync("ip", ["-n", name, "link", "set", vethHere, "up"]);
  return () => {
    spawnSync("ip", ["netns", "del", name]);
  };
}
