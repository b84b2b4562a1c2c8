/** Storage volumes as the host has them. */
import { GlusterLibvirtError, InputError, isNotFound } from "../errors";
import { mayStopPool, type Host } from "../host";
import type { PoolSummary } from "../xml/pool";
import { parseVolumeXml, type VolumeInfo } from "../xml/volume";
import { listing, parseInfo } from "./output";

/** Pool types whose volumes are files (or device nodes) named after the volume in the target directory. */
export const FILE_POOL_TYPES: ReadonlySet<string> = new Set(["dir", "fs", "netfs", "logical"]);

/** How long a refresh waits out a pool that is busy with a job of libvirt's own (an upload, a create). */
const BUSY_POOL_WAIT_MS = 30_000;
/** Refreshes (and starts) tried in all when files keep vanishing under them (each refresh restarts the pool libvirt stopped). */
const VANISHED_FILE_ATTEMPTS = 3;

/** libvirt refuses to refresh a pool while it runs a job of its own (an upload, a create). */
export function isPoolBusy(err: unknown): boolean {
  return /asynchronous jobs running/.test((err as Error)?.message ?? "");
}

/** What the OS says of a file that is not there (any more); Gluster's FUSE client says the second of one another hypervisor just deleted. */
export const GONE_ERRORS = ["No such file or directory", "Stale file handle"] as const;

/** Quote pairs around a path in error messages (coreutils uses typographic ones in UTF-8 locales). */
const QUOTES = [["'", "'"], ["\u2018", "\u2019"]] as const;

/** Whether `text` says of exactly `path` that it is gone (`'path': why`, in ASCII or typographic quotes). */
export function saysGone(text: string, path: string): boolean {
  return GONE_ERRORS.some((why) => QUOTES.some(([open, close]) => text.includes(`${open}${path}${close}: ${why}`)));
}

/** `'path': why` for any path of one line. */
const VANISHED_FILE = new RegExp(`'[^'\\n]*': (${GONE_ERRORS.join("|")})`);

/**
 * A refresh that failed on one file of the pool that was gone by the time libvirt opened it:
 * on shared storage, another hypervisor deleted it between libvirt's readdir and its open
 * (seen with 10 hosts deleting at once).
 */
export function isVanishedFile(err: unknown): boolean {
  const message = (err as Error)?.message ?? "";
  // (the pool's own directory gone is no vanished file: a start would fail the same way)
  return VANISHED_FILE.test(message) && !/cannot open directory '/.test(message);
}

/**
 * `pool-refresh` (pool by name or uuid). libvirt refuses it while the pool runs a job of its
 * own ("has asynchronous jobs running"): retried for up to BUSY_POOL_WAIT_MS (`skipIfBusy`: not
 * refreshed at all, for a caller that only looks for files made elsewhere). A refresh that
 * fails makes libvirt stop the pool (storagePoolRefresh: the backend's stopPool, then
 * inactive); when the failure was a file that vanished during the scan, the pool was running
 * a moment ago and only our refresh stopped it, so it is started again and the refresh
 * retried, VANISHED_FILE_ATTEMPTS in all (after the last one the pool is started again too,
 * and that refresh's error stands). Any other failure stands as it is.
 */
export function refreshPool(host: Host, pool: string, opts: { skipIfBusy?: boolean } = {}): Promise<void> {
  // libvirt stops the pool when the refresh fails: the other resources' commands on this libvirt wait that out (host.ts, PoolStops)
  return mayStopPool(host, () => refreshOnce(host, pool, opts));
}

async function refreshOnce(host: Host, pool: string, opts: { skipIfBusy?: boolean }): Promise<void> {
  for (let attempt = 1, deadline = Date.now() + BUSY_POOL_WAIT_MS; ; attempt++) {
    try {
      return void (await host.virsh(["pool-refresh", pool]));
    } catch (err) {
      if (isPoolBusy(err) && opts.skipIfBusy) return;
      if (isPoolBusy(err) && Date.now() <= deadline) {
        await new Promise((r) => setTimeout(r, 1000));
      } else if (isVanishedFile(err)) {
        // started again even after the last attempt: the host is left as we found it
        await restartStoppedPool(host, pool, err as Error);
        if (attempt >= VANISHED_FILE_ATTEMPTS) throw err;
      } else {
        throw err;
      }
    }
  }
}

/** Starts `pool` again if libvirt stopped it after `cause`, the refresh that failed. */
async function restartStoppedPool(host: Host, pool: string, cause: Error): Promise<void> {
  const failed = (what: string) => (err: unknown) => {
    throw new GlusterLibvirtError(`pool '${pool}' on ${host.label}: its refresh failed on a file that vanished meanwhile (${cause.message}), ${what}: ${(err as Error).message}`);
  };
  const state = parseInfo(await host.virsh(["pool-info", pool]).catch(failed("and reading whether libvirt stopped the pool failed")))["State"];
  if (state === "running") return;
  // A start refreshes the pool too (and stops it again when that fails), so it fails the same way while files keep vanishing.
  for (let attempt = 1; ; attempt++) {
    try {
      return void (await host.virsh(["pool-start", pool]));
    } catch (err) {
      if (!isVanishedFile(err) || attempt >= VANISHED_FILE_ATTEMPTS) failed("libvirt stopped the pool, and starting it again failed")(err);
      await new Promise((r) => setTimeout(r, 200 * attempt));
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
