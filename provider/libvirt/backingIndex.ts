/**
 * Which file every volume on the host is an overlay of: what the delete of a volume must
 * know (is it the backing file of another?). Read for a delete is every volume's
 * definition in every active pool, so N deletes read N² definitions. Here a pool whose
 * volumes are files in a directory (dir, fs, netfs) is read from the storage itself in
 * one command — every file's inode, size and ctime — and a file's backing file is read
 * (through libvirt's `vol-dumpxml`; for a file libvirt does not list yet, from its header
 * on the storage with `qemu-img info`, no pool-refresh) only when that identity differs from the one it had when this process last read it, or
 * changed in the last RECENT_S seconds. Any write to a file changes its ctime (no call
 * sets it back), replacing it changes its inode: an unchanged identity is an unchanged
 * file, whose backing file libvirt would read as before. docs/scale.md has the argument
 * in full. Other pools (native gluster, logical, …) are refreshed and read in full, as
 * before.
 */
import { isCommandError, isNotFound } from "../errors";
import { readPastPoolStops, type Host } from "../host";
import { parseVolumeXml } from "../xml/volume";
import { listPools, type DefinedPool } from "./pools";
import { sharedScan } from "./scans";
import { GONE_ERRORS, listVolumePaths, refreshPool, saysGone } from "./volumes";

export interface BackingEntry {
  pool: string;
  volume: string;
  /** the volume's path (its key in file pools) */
  path: string;
  /** the path of its backing file, if it has one */
  backing?: string;
}

export interface BackingIndex {
  entries: BackingEntry[];
  /** what could not be read: pools, with why */
  unchecked: string[];
}

/** Pool types whose volumes are exactly the files in the target directory (logical volumes' content does not touch their nodes' ctime). */
const DIRECTORY_POOL_TYPES: ReadonlySet<string> = new Set(["dir", "fs", "netfs"]);

/** A file changed this recently (host clock) is read again whatever its identity: covers coarse timestamps and writes in progress. */
export const RECENT_S = 2;

/** One entry of a pool directory as the storage has it. */
export interface StoredFile {
  name: string;
  /** find's %y: f regular file, d directory, l symlink, … */
  type: string;
  /** inode, size, ctime with its fraction: what any change to the file changes */
  identity: string;
  ctime: number;
}

/** The script's output: the host's time, a newline, then `TYPE INODE SIZE CTIME NAME\0` per entry. */
export const LISTING_SCRIPT = `date +%s.%N && exec find "$1" -mindepth 1 -maxdepth 1 -printf '%y %i %s %C@ %P\\0'`;

/**
 * Whether find's complaints (it exits 1) are only about entries of `dir` that vanished
 * between its readdir and its stat of them — another host deleted them — so the listing
 * is whole but for files that are gone (find prints nothing for them). Anything else,
 * `dir` itself among it, is not.
 */
export function onlyVanishedEntries(stderr: string, dir: string): boolean {
  const lines = stderr.split("\n").filter((l) => l !== "");
  return lines.length > 0 && lines.every((line) => {
    const m = /^find: ['\u2018](.+)['\u2019]: [^:]+$/.exec(line);
    return m !== null && m[1]!.startsWith(`${dir}/`) && !m[1]!.slice(dir.length + 1).includes("/") && saysGone(line, m[1]!);
  });
}

export function parseStoredFiles(text: string): { now: number; files: StoredFile[] } {
  const nl = text.indexOf("\n");
  const now = Number(text.slice(0, nl));
  if (nl < 0 || !Number.isFinite(now)) throw new Error(`unexpected directory listing ${JSON.stringify(text.slice(0, 100))}`);
  const files: StoredFile[] = [];
  for (const record of text.slice(nl + 1).split("\0")) {
    if (record === "") continue;
    const m = /^(\S) (\d+) (\d+) (\d+(?:\.\d+)?) (.+)$/s.exec(record);
    if (!m) throw new Error(`unexpected directory listing entry ${JSON.stringify(record.slice(0, 100))}`);
    files.push({ type: m[1], identity: `${m[2]} ${m[3]} ${m[4]}`, ctime: Number(m[4]), name: m[5] });
  }
  return { now, files };
}

/** What this process last read of a file: its identity then, and its backing file. */
export interface CachedBacking {
  identity: string;
  backing?: string;
}

/** Whether the backing file read before still holds for the file as the storage has it now. */
export function canReuse(cached: CachedBacking | undefined, file: StoredFile, now: number): cached is CachedBacking {
  return cached !== undefined && file.type === "f" && cached.identity === file.identity && file.ctime < now - RECENT_S;
}

/** Per host scope: path → what was read. */
const caches = new WeakMap<object, Map<string, CachedBacking>>();

/** Every volume's backing file, in every active pool of the host, as of now. */
export async function backingIndexOf(host: Host): Promise<BackingIndex> {
  const cache = host.scope ? (caches.get(host.scope) ?? caches.set(host.scope, new Map()).get(host.scope)!) : new Map<string, CachedBacking>();
  const index: BackingIndex = { entries: [], unchecked: [] };
  // Shared with the domain scans' pool listing: it too starts after this scan did.
  // A pool listed inactive while a refresh of ours had libvirt stop it is listed again once it runs (host.ts, PoolStops).
  const pools = await readPastPoolStops(host, () => sharedScan(host.scope, "pools", () => listPools(host)), (ps) => ps.some((p) => !p.active));
  for (const pool of pools) {
    if (!pool.active) {
      if (!coveredByActivePool(pool, pools)) index.unchecked.push(`pool '${pool.name}' (inactive: its volumes cannot be listed; start or undefine it)`);
      continue;
    }
    // A native pool reads every volume through libgfapi (~10 s each): the netfs pool of the same files reads them in milliseconds.
    if (pool.type === "gluster" && coveredByActivePool(pool, pools, "netfs")) continue;
    try {
      const fromStorage = DIRECTORY_POOL_TYPES.has(pool.type) && pool.targetPath ? await readFromStorage(host, pool, cache) : undefined;
      index.entries.push(...(fromStorage ?? (await readThroughLibvirt(host, pool))));
    } catch (err) {
      if (isNotFound(err, "pool")) continue; // undefined meanwhile: libvirt lists nothing there any more
      if (isCommandError(err, "not-running") && coveredByActivePool(pool, pools)) continue; // stopped meanwhile
      index.unchecked.push(`pool '${pool.name}' (${(err as Error).message})`);
    }
  }
  return index;
}

/** The volume's definition by pool uuid and name, or undefined when libvirt does not have it (deleted meanwhile, or not listed yet). */
async function readVolume(host: Host, pool: DefinedPool, name: string) {
  try {
    return parseVolumeXml(await host.virsh(["vol-dumpxml", "--pool", pool.uuid, name]));
  } catch (err) {
    // (libvirt could not read the header of the file itself because it is gone: deleted meanwhile, by another host)
    if (isNotFound(err, "volume") || saysGone((err as Error).message ?? "", `${pool.targetPath}/${name}`)) return undefined;
    throw err;
  }
}

/** Refresh, list and read every volume (pools that are not a directory of files). */
async function readThroughLibvirt(host: Host, pool: DefinedPool): Promise<BackingEntry[]> {
  await refreshPool(host, pool.uuid);
  const entries: BackingEntry[] = [];
  for (const path of await listVolumePaths(host, pool)) {
    let vol;
    try {
      vol = parseVolumeXml(await host.virsh(["vol-dumpxml", path]));
    } catch (err) {
      if (isNotFound(err, "volume") || saysGone((err as Error).message ?? "", path)) continue; // deleted meanwhile
      throw err;
    }
    entries.push({ pool: pool.name, volume: vol.name, path, backing: vol.backingStore?.path });
  }
  return entries;
}

/**
 * The directory as the storage has it now, unchanged files from the cache, the rest read
 * through libvirt. Undefined when the login cannot list the directory (then the pool is
 * read through libvirt alone).
 */
async function readFromStorage(host: Host, pool: DefinedPool, cache: Map<string, CachedBacking>): Promise<BackingEntry[] | undefined> {
  const dir = pool.targetPath!;
  const r = await host.exec(["sh", "-c", LISTING_SCRIPT, "sh", dir], { check: false });
  if (r.code !== 0 && !(r.code === 1 && onlyVanishedEntries(r.stderr, dir))) return undefined;
  const { now, files } = parseStoredFiles(r.stdout);
  const seen = new Set<string>();
  const entries: (BackingEntry | undefined)[] = [];
  const misses: { at: number; file: StoredFile; path: string }[] = [];
  for (const file of files) {
    // A directory is no image (libvirt lists it as a `dir` volume, without a backing file).
    if (file.type === "d") continue;
    const path = `${dir}/${file.name}`;
    seen.add(path);
    const cached = cache.get(path);
    if (canReuse(cached, file, now)) entries.push({ pool: pool.name, volume: file.name, path, backing: cached.backing });
    else misses.push({ at: entries.push(undefined) - 1, file, path });
  }
  for (const path of cache.keys()) if (path.startsWith(`${dir}/`) && !seen.has(path)) cache.delete(path);
  const read = async (m: (typeof misses)[number]) => {
    const vol = await readVolume(host, pool, m.file.name);
    if (!vol) return false;
    entries[m.at] = { pool: pool.name, volume: vol.name, path: m.path, backing: vol.backingStore?.path };
    if (m.file.type === "f") cache.set(m.path, { identity: m.file.identity, backing: vol.backingStore?.path });
    return true;
  };
  // What libvirt lists is read through it; a file it does not list (yet: made by another
  // host, or just now) or that it no longer finds has its header read on the storage,
  // without a pool-refresh: on storage other hosts share, a refresh fails whenever one of
  // them deletes a file mid-readdir, and libvirt then stops the pool (docs/scale.md §2, §4).
  const inLibvirt = misses.length ? new Set(await listVolumePaths(host, pool)) : new Set<string>();
  const found = await Promise.all(misses.map((m) => inLibvirt.has(m.path) && read(m)));
  const unlisted = misses.filter((_, i) => !found[i]);
  const headers = await readHeaders(host, unlisted.filter((m) => m.file.type === "f").map((m) => m.path));
  const viaLibvirt = unlisted.filter((m) => {
    const header = headers.get(m.path);
    if (header === undefined || header === "unreadable") return true;
    if (header === "gone") return false;
    entries[m.at] = { pool: pool.name, volume: m.file.name, path: m.path, backing: header.backing };
    cache.set(m.path, { identity: m.file.identity, backing: header.backing });
    return false;
  });
  if (viaLibvirt.length) {
    // What the login could not read (or is no regular file): libvirt reads it after a refresh. A file libvirt still does not list then is gone, or one libvirt does not take as a volume.
    await refreshPool(host, pool.uuid);
    await Promise.all(viaLibvirt.map(read));
  }
  return entries.filter((e): e is BackingEntry => e !== undefined);
}

/**
 * Per file (paths on stdin, NUL-separated): `qemu-img info` of it, JSON or its error, then
 * its exit status, each NUL-terminated. A symlink or anything but a regular file is not
 * opened (status `x`): libvirt judges those. A file that is no longer there at all (deleted
 * since the listing) gets `stat`'s error and status `n`. qemu-img opens no backing file for `info`.
 */
export const HEADER_SCRIPT =
  `for f; do if [ -h "$f" ] || [ ! -f "$f" ]; then if [ -h "$f" ] || [ -e "$f" ]; then printf '\\0x\\0'; else stat -c %i -- "$f" 2>&1; printf '\\0n\\0'; fi; continue; fi; ` +
  `qemu-img info -U --output=json -- "$f" 2>&1; printf '\\0%s\\0' $?; done`;

/** What the storage says of one file's header: its backing file (if any), that it is gone, or that the login cannot tell. */
export type StoredHeader = { backing?: string } | "gone" | "unreadable";

/** Parses HEADER_SCRIPT's output for `paths`, in order. */
export function parseHeaders(paths: readonly string[], text: string): Map<string, StoredHeader> {
  const fields = text.split("\0");
  if (fields.length !== 2 * paths.length + 1 || fields[fields.length - 1] !== "") {
    throw new Error(`unexpected output of qemu-img info for ${paths.length} files: ${JSON.stringify(text.slice(0, 200))}`);
  }
  return new Map(paths.map((path, i) => [path, headerOf(path, fields[2 * i], fields[2 * i + 1])]));
}

function headerOf(path: string, output: string, status: string): StoredHeader {
  // stat's word on a file that was no longer there: gone only when it says so of that very file
  if (status === "n") return saysGone(output, path) ? "gone" : "unreadable";
  if (status === "0") {
    try {
      const info = JSON.parse(output.slice(output.indexOf("{"))) as { "full-backing-filename"?: unknown };
      const backing = info["full-backing-filename"];
      if (backing === undefined || typeof backing === "string") return { backing };
    } catch {
      // not the JSON asked for: libvirt judges it
    }
    return "unreadable";
  }
  // Deleted since the listing: only when qemu-img says so of this very file. Its reason may
  // come after a step of its own ("Could not read image for determining its format: No such
  // file or directory"), so the line that opens with the path ends with why.
  const line = output.split("\n").find((l) => l.includes(`Could not open '${path}': `));
  return line !== undefined && GONE_ERRORS.some((why) => line.endsWith(`: ${why}`)) ? "gone" : "unreadable";
}

/** The headers of `paths` (regular files listed on the storage) in one command. */
async function readHeaders(host: Host, paths: readonly string[]): Promise<Map<string, StoredHeader>> {
  if (paths.length === 0) return new Map();
  const r = await host.exec(["sh", "-c", 'exec xargs -0 sh -c "$0" sh', HEADER_SCRIPT], { stdin: paths.map((p) => `${p}\0`).join(""), check: false });
  // xargs or sh could not run the script at all: libvirt judges every file
  if (r.code !== 0) return new Map(paths.map((p) => [p, "unreadable"]));
  return parseHeaders(paths, r.stdout);
}

/** A Gluster pool whose files another active Gluster pool (of `type`, if given) of the same volume and an enclosing directory lists. */
export function coveredByActivePool(pool: DefinedPool, pools: readonly DefinedPool[], type?: string): boolean {
  const g = pool.gluster;
  if (!g) return false;
  return pools.some(
    (p) => p !== pool && p.active && (type === undefined || p.type === type) && p.gluster?.volume === g.volume &&
      (`${g.directory ?? ""}/`).startsWith(`${p.gluster.directory ?? ""}/`),
  );
}
