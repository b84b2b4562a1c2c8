/**
 * Facts about a hypervisor that the doctor's checks (provider/checks.ts) judge and that
 * resources ask for themselves: its libvirt and QEMU, its pool backends, the FUSE client,
 * QEMU's gluster driver and user, and which Gluster endpoints it can reach. Each is a
 * read-only command (constant scripts; arguments quoted by `Host.exec`); parsing is pure.
 */
import type { Host } from "../host";
import { parseFuseProbe, parseReachability, parseVirshVersion, type FuseClient, type GlusterEndpoint, type VirshVersion } from "../checks";
import { parsePoolCapabilities, parseQemuDacLabel, type PoolBackends } from "../xml/capabilities";

export async function readVirshVersion(host: Host): Promise<{ text: string; version: VirshVersion }> {
  const text = await host.virsh(["version"]);
  return { text, version: parseVirshVersion(text) };
}

export async function readPoolBackends(host: Host): Promise<PoolBackends> {
  return parsePoolCapabilities(await host.virsh(["pool-capabilities"]));
}

/** uid:gid QEMU runs as (libvirt's DAC label), undefined when libvirt names none. */
export async function readQemuDacLabel(host: Host): Promise<{ uid: number; gid: number } | undefined> {
  return parseQemuDacLabel(await host.virsh(["capabilities"]));
}

/** mount.glusterfs may live in sbin directories a non-root login's PATH lacks. Constant script. */
const FUSE_PROBE = [
  'PATH="$PATH:/sbin:/usr/sbin"',
  'echo "mount.glusterfs=$(command -v mount.glusterfs)"',
  "if [ -c /dev/fuse ]; then echo dev-fuse=yes; else echo dev-fuse=no; fi",
].join("\n");

export async function probeFuseClient(host: Host): Promise<FuseClient> {
  return parseFuseProbe((await host.exec(["sh", "-c", FUSE_PROBE])).stdout);
}

/** Seconds each TCP connect from the hypervisor may take. */
export const REACH_TIMEOUT_SECONDS = 3;

/**
 * TCP connects from the hypervisor, all at once, each bounded by `timeout`: arguments are
 * HOST PORT pairs, never part of the script. Prints `ok|fail HOST PORT` per pair.
 */
const REACH_PROBE = [
  'while [ "$#" -ge 2 ]; do',
  `  ( if timeout ${REACH_TIMEOUT_SECONDS} bash -c 'exec 3<>"/dev/tcp/$1/$2"' probe "$1" "$2" 2>/dev/null; then echo "ok $1 $2"; else echo "fail $1 $2"; fi ) &`,
  "  shift 2",
  "done",
  "wait",
].join("\n");

/** Which endpoints the hypervisor itself can open a TCP connection to (keys `HOST PORT`). */
export async function probeReachability(host: Host, endpoints: readonly GlusterEndpoint[]): Promise<Map<string, boolean>> {
  if (!endpoints.length) return new Map();
  const pairs = endpoints.flatMap((e) => [e.host, String(e.port)]);
  return parseReachability((await host.exec(["bash", "-c", REACH_PROBE, "probe", ...pairs])).stdout);
}

/** Per host: does QEMU have the gluster block driver? Asked once per provider process. */
const glusterDriverByHost = new Map<string, Promise<boolean>>();

/**
 * QEMU builds the gluster driver as a module (Debian: qemu-block-extra, Fedora:
 * qemu-block-gluster) or links libgfapi in. `qemu-img --help` / `-drive format=help`
 * list module drivers whether or not the module is installed, so we look for the
 * module file, then for an emulator linked against libgfapi. Constant script, no input.
 */
const GLUSTER_DRIVER_PROBE = [
  "for f in /usr/lib/*/qemu/block-gluster.so /usr/lib64/qemu/block-gluster.so /usr/lib64/qemu-kvm/block-gluster.so /usr/lib/qemu/block-gluster.so; do",
  '  [ -e "$f" ] && exit 0',
  "done",
  "for q in /usr/bin/qemu-system-* /usr/libexec/qemu-kvm; do",
  '  [ -x "$q" ] && ldd "$q" 2>/dev/null | grep -q libgfapi && exit 0',
  "done",
  "exit 1",
].join("\n");

export function qemuHasGlusterDriver(host: Host): Promise<boolean> {
  let known = glusterDriverByHost.get(host.label);
  if (!known) {
    known = host.exec(["sh", "-c", GLUSTER_DRIVER_PROBE], { check: false }).then((r) => r.code === 0);
    known.catch(() => glusterDriverByHost.delete(host.label));
    glusterDriverByHost.set(host.label, known);
  }
  return known;
}
