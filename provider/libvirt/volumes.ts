/** Storage volumes as the host has them. */
import { GlusterLibvirtError, InputError, isNotFound } from "../errors";
import type { Host } from "../host";
import type { PoolSummary } from "../xml/pool";
import { parseVolumeXml, type VolumeInfo } from "../xml/volume";
import { listing } from "./output";

/** Pool types whose volumes are files (or device nodes) named after the volume in the target directory. */
export const FILE_POOL_TYPES: ReadonlySet<string> = new Set(["dir", "fs", "netfs", "logical"]);

/** How long a refresh waits out a pool that is busy with a job of libvirt's own (an upload, a create). */
const BUSY_POOL_WAIT_MS = 30_000;

/**
 * `pool-refresh` (pool by name or uuid); libvirt refuses it while the pool runs a job of its own ("has
 * asynchronous jobs running"): retried for up to BUSY_POOL_WAIT_MS, then the error stands.
 */
/** libvirt refuses to refresh a pool while it runs a job of its own (an upload, a create). */
export function isPoolBusy(err: unknown): boolean {
  return /asynchronous jobs running/.test((err as Error)?.message ?? "");
}

export async function refreshPool(host: Host, pool: string): Promise<void> {
  for (const deadline = Date.now() + BUSY_POOL_WAIT_MS; ; ) {
    try {
      return void (await host.virsh(["pool-refresh", pool]));
    } catch (err) {
      if (!isPoolBusy(err) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * The volume as libvirt reports it (vol-dumpxml refreshes sizes), or undefined when it
 * does not exist. libvirt lists a pool's files as of its last refresh, and on shared
 * storage another hypervisor may have made this one since: a miss refreshes the pool
 * once and looks again. A refresh that fails is an error, never "absent".
 */
export async function inspectVolume(host: Host, pool: string, name: string): Promise<VolumeInfo | undefined> {
  const found = await lookUpVolume(host, pool, name);
  if (found) return found;
  await refreshPool(host, pool);
  return lookUpVolume(host, pool, name);
}

/** The volume as libvirt lists it now (no refresh), or undefined. */
export async function lookUpVolume(host: Host, pool: string, name: string): Promise<VolumeInfo | undefined> {
  try {
    return parseVolumeXml(await host.virsh(["vol-dumpxml", "--pool", pool, name]));
  } catch (err) {
    if (isNotFound(err, "volume")) return undefined;
    throw err;
  }
}

/** The volume, or undefined when it or its whole pool is gone (as far as libvirt can tell). */
export async function findVolume(host: Host, pool: string, name: string): Promise<VolumeInfo | undefined> {
  try {
    return await inspectVolume(host, pool, name);
  } catch (err) {
    if (isNotFound(err, "pool")) return undefined;
    throw err;
  }
}

export async function requireVolume(host: Host, pool: string, name: string, field: string): Promise<VolumeInfo> {
  const vol = await inspectVolume(host, pool, name);
  if (!vol) throw new InputError(field, `no volume '${name}' in pool '${pool}' on ${host.label}`);
  return vol;
}

/**
 * The volume paths (also their keys) in a `vol-list` listing. Each line is
 * ` NAME<padding> PATH`, and `isPathOf` tells whether PATH is where this pool keeps a
 * volume named NAME: a line is split only where that holds, so names with spaces or
 * unicode survive. A line that splits no way, or more than one, is an error (a name
 * with a newline splits its line).
 */
export function parseVolumeList(text: string, isPathOf: (path: string, name: string) => boolean): string[] {
  const paths: string[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const candidates = new Set<string>();
    for (let end = 2; end < line.length; end++) {
      const path = /^ +(\S.*)$/.exec(line.slice(end))?.[1];
      const name = line.slice(1, end);
      if (line[0] === " " && path !== undefined && isPathOf(path, name)) candidates.add(path);
    }
    if (candidates.size !== 1) throw new GlusterLibvirtError(`cannot read the volume listing line ${JSON.stringify(line)}`);
    paths.push(...candidates);
  }
  return paths;
}

/** How often a listing is read again while it shows a volume that vanished as it was listed. */
const VANISHED_RETRIES = 5;

/**
 * The paths of every volume in a pool (by uuid), as libvirt lists them now. virsh lists
 * the names first and asks each one's path after: a volume deleted in between (another
 * resource of the same run, another hypervisor) is printed with the path `unknown`. That
 * line proves nothing either way, so the listing is read again, a bounded number of times;
 * a line that still cannot be read is an error.
 */
export async function listVolumePaths(host: Host, pool: PoolSummary & { uuid: string }): Promise<string[]> {
  const matcher = volumePathMatcher(pool);
  for (let attempt = 1; ; attempt++) {
    const text = await listing(host, ["vol-list", "--pool", pool.uuid]);
    try {
      return parseVolumeList(text, matcher);
    } catch (err) {
      if (attempt >= VANISHED_RETRIES || !/ unknown$/m.test(text)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

/**
 * How a pool names its volumes' paths: the file under its target directory, a gluster://
 * URL (percent-encoded), or — pools whose paths do not derive from names (iscsi, rbd,
 * …) — any path without blanks.
 */
export function volumePathMatcher(pool: PoolSummary): (path: string, name: string) => boolean {
  if (FILE_POOL_TYPES.has(pool.type)) return (path, name) => path === `${pool.targetPath}/${name}`;
  if (pool.type !== "gluster") return (path) => !/\s/.test(path);
  const wanted = (name: string) => `/${pool.gluster?.volume}${pool.gluster?.directory ?? ""}/${name}`;
  return (path, name) => {
    try {
      const url = new URL(path);
      return /^gluster(\+tcp)?:$/.test(url.protocol) && decodeURIComponent(url.pathname) === wanted(name);
    } catch {
      return false;
    }
  };
}
