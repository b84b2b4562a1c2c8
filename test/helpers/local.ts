/**
 * The lab runs on this machine, so tests can look at it directly as root — an
 * observer independent of the SSH transport under test.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import type { LabInfo } from "./lab";

/** `virsh -c qemu:///system …` run locally; throws with stderr on failure. */
export function virsh(...args: string[]): string {
  return execFileSync("virsh", ["-c", "qemu:///system", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Like virsh() but returns the exit code and output instead of throwing. */
export function tryVirsh(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync("virsh", ["-c", "qemu:///system", ...args], { encoding: "utf8" });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The size in bytes QEMU of a running domain gives its disk `target` (`domblkinfo`: libvirt asks QEMU). */
export function qemuDiskCapacity(domain: string, target: string): number {
  const m = /^Capacity:\s+(\d+)$/m.exec(virsh("domblkinfo", domain, target));
  if (!m) throw new Error(`no Capacity in \`virsh domblkinfo ${domain} ${target}\``);
  return Number(m[1]);
}

export function gluster(...args: string[]): string {
  return execFileSync("gluster", ["--mode=script", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Every process's command line on this machine (argv joined by NULs, read as latin1), without those that exit meanwhile. */
export function commandLines(): { pid: number; cmdline: string }[] {
  return fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d)).flatMap((pid) => {
    try {
      return [{ pid: Number(pid), cmdline: fs.readFileSync(`/proc/${pid}/cmdline`, "latin1") }];
    } catch {
      return []; // exited meanwhile
    }
  });
}

/** Is something mounted at `path` right now? */
export function isMounted(path: string): boolean {
  return spawnSync("findmnt", ["--mountpoint", path], { encoding: "utf8" }).status === 0;
}

/** The `connection` input that reaches the lab host. */
export function labConnection(lab: LabInfo) {
  return {
    host: lab.ssh.host,
    port: lab.ssh.port,
    user: lab.ssh.user,
    privateKeyPath: lab.ssh.privateKeyPath,
    knownHostsFile: lab.ssh.knownHostsFile,
  };
}

/** A name unique to this test run, safe for libvirt and Gluster. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
}

/**
 * A started Gluster volume of the test's own on the lab's glusterd, with the options
 * QEMU needs. libvirt allows one netfs pool per Gluster source per host, so tests
 * that create pools use their own volume and never collide with other tests.
 */
export function createGlusterVolume(lab: LabInfo, name: string, opts: { start?: boolean; options?: Readonly<Record<string, string>> } = {}): { name: string; remove(): void } {
  const brick = `${lab.stateDir}/bricks/${name}`;
  fs.mkdirSync(brick, { recursive: true });
  gluster("volume", "create", name, `${lab.gluster.servers[0]}:${brick}`, "force");
  gluster("volume", "set", name, "server.allow-insecure", "on");
  gluster("volume", "set", name, "storage.owner-uid", String(lab.qemu.uid));
  gluster("volume", "set", name, "storage.owner-gid", String(lab.qemu.gid));
  for (const [key, value] of Object.entries(opts.options ?? {})) gluster("volume", "set", name, key, value);
  if (opts.start !== false) gluster("volume", "start", name);
  return {
    name,
    remove() {
      dropGlusterVolume(name);
      fs.rmSync(brick, { recursive: true, force: true });
    },
  };
}

/** Stops and deletes a Gluster volume; fine if it is not there. Its bricks stay. */
export function dropGlusterVolume(name: string): void {
  spawnSync("gluster", ["--mode=script", "volume", "stop", name, "force"]);
  spawnSync("gluster", ["--mode=script", "volume", "delete", name]);
}

/**
 * `count` brick directories for a test's own Gluster volume, under the lab's state dir
 * (where `lab down` looks for test volumes), as `SERVER:/DIR` on the lab's Gluster server.
 * `remove` deletes the volume if it is still there, then the directories.
 */
export function glusterBricks(lab: LabInfo, volume: string, count: number): { bricks: string[]; dirs: string[]; remove(): void } {
  const root = `${lab.stateDir}/bricks/${volume}`;
  const dirs = Array.from({ length: count }, (_, i) => `${root}/b${i + 1}`);
  for (const dir of dirs) fs.mkdirSync(dir, { recursive: true });
  return {
    bricks: dirs.map((dir) => `${lab.gluster.servers[0]}:${dir}`),
    dirs,
    remove() {
      dropGlusterVolume(volume);
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
