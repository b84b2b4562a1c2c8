/**
 * Is an image in use? libvirt does not stop anyone from deleting storage a VM uses (or
 * the base image of an overlay); these scans are how our deletes refuse to. They fail
 * closed: whatever cannot be read — a listing, a definition, a backing chain — stops
 * the delete with a SafetyCheckError naming it, never reads as "not in use".
 */
import { GlusterLibvirtError, SafetyCheckError } from "../errors";
import type { Host } from "../host";
import { diskSources, sourceOfBackingPath, type DiskSourceInfo, type DomainDisk } from "../xml/disk";
import { inspectDomain, listDomains, type DomainView } from "./domains";
import { createdByStack, diskStampObject } from "./stamps";
import { listPools, type DefinedPool } from "./pools";
import { backingIndexOf, type BackingEntry } from "./backingIndex";
import { sharedScan } from "./scans";
import { FILE_POOL_TYPES, inspectVolume } from "./volumes";

export interface DiskUse {
  domain: string;
  /** the domain's uuid: what later virsh commands name it by */
  uuid: string;
  target: string;
  /** where the disk was found: the running domain, its persistent definition, or both */
  in: ("live" | "persistent")[];
  /** the running domain's disk, when `in` has "live" (its source may be the image, or an image above it) */
  liveDisk?: DomainDisk;
}

/** "vm1 (vdb, live+persistent), vm2 (sda, persistent)" */
export function describeUses(uses: readonly DiskUse[]): string {
  return uses.map((u) => `${u.domain} (${u.target}, ${u.in.join("+")})`).join(", ");
}

/**
 * The uses that no DiskAttachment of `stack` (a `stackOf` prefix) made; all of them
 * without a stack. A preview of a replacement leaves out its own stack's disks: the
 * engine detaches those first when they depend on what is replaced.
 */
export async function foreignUses(host: Host, uses: DiskUse[], stack: string | undefined): Promise<DiskUse[]> {
  if (stack === undefined) return uses;
  const ours = await Promise.all(uses.map((u) => createdByStack(host, diskStampObject(u.uuid, u.target), stack)));
  return uses.filter((_, i) => !ours[i]);
}

type SourceTest = (source: DiskSourceInfo) => boolean;

/** Backing chains deeper than this are treated as unreadable (a loop, or something odd). */
const MAX_CHAIN = 16;

/**
 * Every disk of every domain — running and persistent definitions alike, enumerated by
 * uuid — whose image or any image below it satisfies `matches`. Live definitions carry
 * their backing chain; for persistent ones (and shut-off domains) the chain is read from
 * the storage. Throws SafetyCheckError listing what could not be checked.
 * `liveOnly`: the running domains' live definitions alone (what QEMU has open now); they
 * need no storage reads, so any failure is a listing or definition that could not be read,
 * and is thrown as it is.
 */
export async function findDiskUses(host: Host, matches: SourceTest, what: string, opts: { liveOnly?: boolean } = {}): Promise<DiskUse[]> {
  const uses = new Map<string, DiskUse>();
  const unchecked: string[] = [];
  const pools = opts.liveOnly ? [] : await sharedScan(host.scope, "pools", () => listPools(host));
  for (const dom of await domainViews(host)) {
    const views: ["live" | "persistent", DomainDisk[]][] = [["live", dom.liveDisks]];
    if (!opts.liveOnly) views.push(["persistent", dom.persistentDisks]);
    for (const [view, disks] of views) {
      for (const disk of disks) {
        // A running domain's live definition carries the whole chain (libvirt reads it at
        // start; `<backingStore/>` ends it); a persistent one carries none.
        let sources = diskSources(disk);
        const live = dom.liveDisks.find((d) => d.target === disk.target && sameSource(d.source, disk.source));
        if (view === "persistent" && live) sources = diskSources(live);
        // Without a driver type libvirt opens the image as raw (it never probes formats), and raw has no backing file.
        else if (view === "persistent" && disk.source && (disk.driver?.type ?? "raw") !== "raw") {
          try {
            sources = [disk.source, ...(await backingChain(host, pools, disk.source))];
          } catch (err) {
            unchecked.push(`the backing chain of domain '${dom.name}' disk ${disk.target ?? "?"} (${(err as Error).message})`);
            continue;
          }
        }
        if (!sources.some(matches)) continue;
        const key = `${dom.name}\0${disk.target ?? "?"}`;
        const use: DiskUse = uses.get(key) ?? { domain: dom.name, uuid: dom.uuid, target: disk.target ?? "?", in: [] };
        if (!use.in.includes(view)) use.in.push(view);
        if (view === "live") use.liveDisk = disk;
        uses.set(key, use);
      }
    }
  }
  if (uses.size === 0 && unchecked.length) {
    throw new SafetyCheckError(`cannot tell whether ${what} on ${host.label} is in use, so it was left alone: could not read ${unchecked.join("; ")}`);
  }
  return [...uses.values()];
}

/**
 * Every domain's live and persistent definitions, read after this call (shared with the
 * checks that asked meanwhile: scans.ts). Read in parallel over the host's virsh sessions.
 */
function domainViews(host: Host): Promise<DomainView[]> {
  return sharedScan(host.scope, "domains", async () => {
    const views = await Promise.all([...(await listDomains(host)).keys()].map((uuid) => inspectDomain(host, uuid)));
    return views.filter((d): d is DomainView => d !== undefined); // undefined meanwhile: it uses nothing
  });
}

function sameSource(a: DiskSourceInfo | undefined, b: DiskSourceInfo | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * The images below `top`, top-most first, as the storage records them: through libvirt
 * (`vol-dumpxml` of the image in whichever active pool holds it), else `qemu-img info`
 * on the host. Throws when neither can read it.
 */
async function backingChain(host: Host, pools: readonly DefinedPool[], top: DiskSourceInfo): Promise<DiskSourceInfo[]> {
  const chain: DiskSourceInfo[] = [];
  for (let source = top; chain.length < MAX_CHAIN; ) {
    const backing = await backingOf(host, pools, source);
    if (backing === undefined) return chain;
    source = sourceOfBackingPath(backing);
    chain.push(source);
  }
  throw new GlusterLibvirtError(`more than ${MAX_CHAIN} backing images`);
}

/** The backing file one image names, or undefined for none. */
async function backingOf(host: Host, pools: readonly DefinedPool[], source: DiskSourceInfo): Promise<string | undefined> {
  for (const [pool, name] of volumeCandidates(pools, source)) {
    const vol = await inspectVolume(host, pool, name);
    if (vol) return vol.backingStore?.path;
  }
  if (source.file !== undefined) {
    const r = await host.exec(["qemu-img", "info", "-U", "--output=json", "--", source.file], { check: false });
    if (r.code === 0) return (JSON.parse(r.stdout) as { "full-backing-filename"?: string })["full-backing-filename"];
    // An image that is not there names no backing file.
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw new GlusterLibvirtError(`${source.file} is in no active pool and \`qemu-img info\` failed: ${r.stderr.trim().split("\n").pop()}`);
  }
  throw new GlusterLibvirtError(`${describeSource(source)} is in no active pool`);
}

/** (pool uuid, volume name) pairs under which an active pool on this host may list the image. */
function volumeCandidates(pools: readonly DefinedPool[], source: DiskSourceInfo): [string, string][] {
  const found: [string, string][] = [];
  for (const pool of pools.filter((p) => p.active)) {
    if (source.pool !== undefined && source.volume !== undefined) {
      if (pool.name === source.pool) found.push([pool.uuid, source.volume]);
    } else if (source.file !== undefined && FILE_POOL_TYPES.has(pool.type) && pool.targetPath) {
      const name = childName(pool.targetPath, source.file);
      if (name) found.push([pool.uuid, name]);
    } else if (source.protocol === "gluster" && source.name && pool.gluster) {
      const dir = `${pool.gluster.volume}${pool.gluster.directory ?? ""}`;
      const name = childName(dir, source.name.replace(/^\/+/, ""));
      if (name) found.push([pool.uuid, name]);
    }
  }
  return found;
}

/** `name` when `path` is `dir/name` (one level, lexically), else undefined. */
function childName(dir: string, path: string): string | undefined {
  const prefix = `${dir.replace(/\/+$/, "")}/`;
  if (!path.startsWith(prefix)) return undefined;
  const name = path.slice(prefix.length);
  return name && !name.includes("/") ? name : undefined;
}

function describeSource(s: DiskSourceInfo): string {
  return s.file ?? (s.protocol ? `${s.protocol}:${s.name ?? ""}` : s.pool ? `volume ${s.pool}/${s.volume}` : s.dev ?? JSON.stringify(s));
}

/**
 * Volumes, in every pool on the host, that have an image satisfying `matches` as their
 * backing file, as the storage has them after this call (backingIndex.ts: files on the
 * storage itself, each one's backing file as libvirt reads it, re-read whenever the file
 * changed); an inactive pool cannot be listed, so it counts as unchecked unless an active
 * Gluster pool serves the same files. Throws SafetyCheckError listing what could not be
 * checked. `skip` is the volume itself.
 */
export async function findOverlays(host: Host, matches: SourceTest, what: string, skip: string | undefined): Promise<string[]> {
  const index = await sharedScan(host.scope, "backing", () => backingIndexOf(host));
  const overlays = index.entries
    .filter((e: BackingEntry) => e.path !== skip && e.backing !== undefined && matches(sourceOfBackingPath(e.backing)))
    .map((e) => `${e.pool}/${e.volume}`);
  if (overlays.length === 0 && index.unchecked.length) {
    throw new SafetyCheckError(`cannot tell whether ${what} on ${host.label} is the backing file of another volume, so it was left alone: could not check ${index.unchecked.join("; ")}`);
  }
  return overlays;
}
