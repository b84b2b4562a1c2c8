/**
 * ImageVolume: a disk image (file) in a Gluster-backed pool — empty, uploaded from a
 * local file, downloaded by the host from a URL, a full clone of another volume, or a
 * qcow2 overlay on a backing volume.
 *
 * Decisions:
 *  - Volumes are defined from XML (`vol-create`, `vol-create-from`) so the file gets
 *    `<permissions>`: the `permissions` input, else the pool's owner/group, else the
 *    host's QEMU user; mode 0660 unless given (owner and group read/write, no others).
 *  - Content (upload, download) goes into a raw file created sparse at its final size,
 *    then libvirt's probe names its format; a mismatch with `format` is an error.
 *  - Every qcow2 file we create is padded to a multiple of 512 bytes (libgfapi).
 *  - Native `gluster` pools cannot create volumes: empty volumes and overlays are made
 *    with `qemu-img create gluster://…` and a pool refresh (checked on the lab). libgfapi
 *    creates the file as the calling uid, with mode 0600 (QEMU's gluster driver), so
 *    qemu-img runs as the volume's owner: directly when the login is that user, else
 *    through `setpriv` (root login or `sudo: true`); any other login is refused before
 *    anything is created. Content sources are refused there (use a netfs pool on the
 *    same Gluster volume). A FUSE mount was not chosen: it would need root to mount and
 *    leave a mount behind on failure; qemu-img needs neither.
 *  - Creation is all-or-nothing: any failure once the volume exists deletes it.
 *  - A local file is identified by its content digest (localImage.ts), computed while
 *    uploading and, in diff, by scanning the file again: a changed file replaces the
 *    volume. It hashes the data only, so a sparse image costs what its data costs. The
 *    whole file's sha256 (what `sha256sum` prints) costs a hash of every byte, holes
 *    included: it is computed only when `source.sha256` asks for it, and checked before
 *    anything is created.
 */
import { access, constants as fsConstants, stat } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { CommandError, displayUrl, GlusterLibvirtError, InputError, isCommandError, isNotFound, SafetyCheckError, SshError } from "./errors";
import { hasWhitespaceOrControl, libvirtName, permissions } from "./fields";
import { getHost, type Host } from "./host";
import { pathInGlusterVolume, volumeGlusterUrl } from "./libvirt/gluster";
import { blockDeviceCapacity, resizeBlockDevice, withDomainLock } from "./libvirt/domains";
import { inspectPool, requireRunningPool } from "./libvirt/pools";
import { permissionsWithDefaults } from "./libvirt/qemu";
import { describeUses, findDiskUses, findOverlays, foreignUses } from "./libvirt/usage";
import { createdBy, forgetCreation, recordCreation, stackOf } from "./libvirt/stamps";
import { createdByThisRun, deletedByThisRun, predictCreate, predictReplacement } from "./preview";
import { findVolume, lookUpVolume, refreshPool, requireVolume } from "./libvirt/volumes";
import { checkInputs, connectionRule, diffByTable, parseArgs, plainOutputs, stampOf, stateOf, type ReplacementTable, type ResourceCrud, UNKNOWN } from "./resource";
import { formatSize, parseSize } from "./size";
import { connectionSchema } from "./ssh/settings";
import { fileSha256, localContentDigest } from "./localImage";
import { appendZeros, directFile, downloadToVolume, hostSha256, type ProgressReporter, uploadAndVerify, type VolumeTarget } from "./volumeContent";
import { sourceReferencesVolume, type DiskSourceInfo, type VolumeReference } from "./xml/disk";
import type { PoolInfo } from "./xml/pool";
import { IMAGE_FORMATS, isImageFormat, type ImageFormat, type Permissions } from "./xml/markup";
import { buildVolumeXml, type VolumeInfo, type VolumeSpec } from "./xml/volume";

/** Mode of volume files unless `permissions.mode` says otherwise. */
export const DEFAULT_VOLUME_MODE = "0660";
/** libgfapi cannot open qcow2 files whose size is not a multiple of this (see LAB.md). */
const QCOW2_FILE_ALIGNMENT = 512;

/**
 * The largest `capacity` accepted: 64 TiB. More is a typo (`1PB`) rather than a plan: it
 * exceeds what an ext4 brick can hold in one file (16 TiB) fourfold, and what VMware
 * (62 TB) or Hyper-V (64 TB) allow for one virtual disk.
 */
export const MAX_CAPACITY = 64 * 2 ** 40;

const size = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const r = parseSize(v);
  if ("error" in r) {
    ctx.addIssue({ code: "custom", message: r.error });
    return z.NEVER;
  }
  if (r.bytes > MAX_CAPACITY) {
    ctx.addIssue({ code: "custom", message: `${formatSize(r.bytes)} is more than the largest image this package makes, ${formatSize(MAX_CAPACITY)}` });
    return z.NEVER;
  }
  return r.bytes;
});

const sha256 = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, "a sha256 is 64 hex digits")
  .transform((v) => v.toLowerCase());

const downloadUrl = z
  .string()
  .refine((v) => {
    try {
      return ["http:", "https:", "ftp:", "ftps:"].includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, "expected an http, https, ftp or ftps URL the host can reach")
  // URL parsers drop tabs and newlines silently: what the host fetched would not be what was reviewed.
  .refine((v) => !hasWhitespaceOrControl(v), "must not contain whitespace or control characters (percent-encode them)");

/** A local path, made absolute against the working directory of the Pulumi program. */
const localPath = z
  .string()
  .min(1, "must not be empty")
  .transform((p) => (p === UNKNOWN || isAbsolute(p) ? p : resolve(p)));

/**
 * Why the local source file cannot be uploaded (missing, unreadable, not a regular
 * file), or undefined. Asked by check, so a missing file is a failure of `source.path`
 * at preview rather than an error deep in diff or create.
 */
export async function localSourceProblem(path: string): Promise<string | undefined> {
  try {
    const s = await stat(path);
    if (!s.isFile()) return `${path} is not a regular file`;
    await access(path, fsConstants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "there is no such file" : code === "EACCES" ? "permission denied" : (err as Error).message;
    return `cannot read ${path} on the machine running Pulumi: ${why}; the volume's content is this file, so it must stay readable here`;
  }
}

const volumeRef = z.strictObject({ volume: libvirtName, pool: libvirtName.optional() });

/** One object, so each mistake is reported on its own field (a zod union could only say "invalid"). */
const sourceSchema = z
  .strictObject({
    /** a file on the machine running Pulumi */
    path: localPath.optional(),
    /** downloaded by the hypervisor */
    url: downloadUrl.optional(),
    sha256: sha256.optional(),
    /** full clone of a volume (in `pool`, default the same pool) */
    volume: libvirtName.optional(),
    pool: libvirtName.optional(),
  })
  .superRefine((s, ctx) => {
    const kinds = (["path", "url", "volume"] as const).filter((k) => s[k] !== undefined);
    // Reported on the extra kind, not on `source`: the engine would print the whole
    // source (a URL with credentials) in plaintext next to a failure of `source` itself.
    if (kinds.length === 0) ctx.addIssue({ code: "custom", path: [], message: "give exactly one of `path`, `url` or `volume`" });
    for (const extra of kinds.slice(1)) ctx.addIssue({ code: "custom", path: [extra], message: `give exactly one of \`path\`, \`url\` or \`volume\`, not \`${kinds[0]}\` and \`${extra}\`` });
    if (s.sha256 !== undefined && s.volume !== undefined) ctx.addIssue({ code: "custom", path: ["sha256"], message: "applies to `path` and `url` sources only" });
    if (s.pool !== undefined && s.volume === undefined) ctx.addIssue({ code: "custom", path: ["pool"], message: "applies to `volume` sources only" });
  });

export const volumeSchema = z
  .strictObject({
    connection: connectionSchema,
    /** the libvirt pool (a GlusterPool's name) */
    pool: libvirtName,
    name: libvirtName,
    capacity: size.optional(),
    format: z.enum(IMAGE_FORMATS).optional(),
    preallocation: z.enum(["off", "metadata", "full"]).default("off"),
    permissions: permissions.optional(),
    source: sourceSchema.optional(),
    backingVolume: volumeRef.optional(),
    adopt: z.boolean().default(false),
  })
  .superRefine((v, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    const format = v.format ?? defaultFormat(v.name, v.backingVolume !== undefined);
    if (v.source && v.backingVolume) issue("backingVolume", "a volume has either a `source` or a `backingVolume`, not both");
    if (!v.source && !v.backingVolume && v.capacity === undefined) issue("capacity", "required for an empty volume");
    if (v.capacity === 0) issue("capacity", "must be more than 0 bytes");
    if (format === "qcow2" && typeof v.capacity === "number" && v.capacity % 512 !== 0) {
      issue("capacity", "a qcow2 image's size is a multiple of 512 bytes");
    }
    if (v.backingVolume && format !== "qcow2") issue("format", "a volume with a `backingVolume` is a qcow2 overlay");
    if (v.preallocation !== "off" && (v.source || v.backingVolume)) issue("preallocation", "applies to empty volumes only");
    if (v.preallocation === "metadata" && format !== "qcow2") issue("preallocation", "\"metadata\" applies to qcow2 volumes only");
  })
  .transform((v) => ({ ...v, format: v.format ?? defaultFormat(v.name, v.backingVolume !== undefined) }));

export type VolumeInputs = z.input<typeof volumeSchema>;
export type VolumeArgs = z.output<typeof volumeSchema>;

/** qcow2 for `*.qcow2` names and overlays, raw otherwise. */
export function defaultFormat(name: string, hasBacking: boolean): ImageFormat {
  return hasBacking || /\.qcow2$/i.test(name) ? "qcow2" : "raw";
}

/**
 * What each input change does. Growing `capacity` resizes in place; shrinking is
 * refused by diff (see capacityChange). Content and identity replace.
 */
export const volumeChanges: ReplacementTable<VolumeArgs> = {
  connection: connectionRule,
  pool: "replace",
  name: "replace",
  format: "replace",
  source: "replace",
  backingVolume: "replace",
  capacity: "update",
  preallocation: "update", // applies when the volume is grown
  permissions: "update",
  adopt: "update",
};

export interface VolumeOutputs extends VolumeArgs {
  /** libvirt's key (for netfs pools: the path) — also the resource id */
  key: string;
  /** file on the host (netfs) or gluster:// URL (native gluster pool) */
  path: string;
  /** gluster://SERVER/VOLUME/PATH, the name QEMU's gluster driver opens */
  glusterUrl: string;
  /** live: bytes */
  capacity: number;
  allocation: number;
  /** live, as libvirt probes the file */
  format: ImageFormat;
  /** path of the backing image, for overlays */
  backingStore?: string;
  /** ownership and mode of the file as the host reports it (read back on refresh) */
  effectivePermissions?: Permissions;
  /** ownership and mode this resource gave the file (the input with its defaults); drift from it is repaired by `up` */
  appliedPermissions?: Permissions;
  /** sha256 of the whole content: downloaded volumes, and uploads with `source.sha256` */
  sha256?: string;
  /** uploaded volumes: the source file's content digest (`sparse-v1:…`, see localImage.ts) */
  contentDigest?: string;
  /**
   * Seen on refresh: disks of running domains that open this image but whose QEMU still
   * gives them a smaller size (a growth it was not told of); `up` resizes them. Absent
   * when there are none.
   */
  staleDisks?: StaleDisk[];
}

/** A running domain's disk of this image, smaller than the image (bytes, as QEMU sees it). */
export interface StaleDisk {
  domain: string;
  target: string;
  capacity: number;
}

// ---------------------------------------------------------------------------------------
// Reading the host

function outputsOf(args: VolumeArgs, live: VolumeInfo, recorded: Recorded, stale: readonly LiveDisk[] = []): VolumeOutputs {
  return plainOutputs({
    ...args,
    key: live.key ?? live.path ?? "",
    path: live.path ?? "",
    glusterUrl: recorded.glusterUrl,
    effectivePermissions: live.permissions,
    appliedPermissions: recorded.appliedPermissions,
    capacity: live.capacity,
    allocation: live.allocation,
    format: (live.format ?? args.format) as ImageFormat,
    backingStore: live.backingStore?.path,
    sha256: recorded.sha256,
    contentDigest: recorded.contentDigest,
    staleDisks: stale.length ? stale.map(({ domain, target, capacity }) => ({ domain, target, capacity })) : undefined,
  });
}

// ---------------------------------------------------------------------------------------
// Creating

/** Ownership and mode for the file: input, else the pool's owner/group, else the QEMU user. */
function volumePermissions(host: Host, pool: PoolInfo, wanted: Permissions | undefined): Promise<Permissions> {
  return permissionsWithDefaults(host, wanted, { mode: DEFAULT_VOLUME_MODE, inherit: pool.permissions });
}

/** What create learned on the way that the host cannot tell later. */
type Created = Pick<VolumeOutputs, "sha256" | "contentDigest">;
/** What create and update decided, kept in state as it was. */
type Recorded = Created & Pick<VolumeOutputs, "glusterUrl" | "appliedPermissions">;

/** Runs `read` on the local source file; a failure to read it is an error of `source.path`. */
async function readingSource<T>(path: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError("source.path", `cannot read ${path}: ${(err as Error).message}`);
  }
}

function localFileSize(path: string): Promise<number> {
  return readingSource(path, async () => {
    const s = await stat(path);
    if (!s.isFile()) throw new InputError("source.path", `${path} is not a regular file`);
    return s.size;
  });
}

/** The local source file's content digest (diff: has it changed?). */
function sourceDigest(path: string): Promise<string> {
  return readingSource(path, () => localContentDigest(path));
}

/** `source.sha256` of a local file is checked before anything is created. */
async function checkSourceSha256(path: string, size: number, expected: string): Promise<void> {
  const actual = await readingSource(path, () => fileSha256(path, size));
  if (actual !== expected) throw new InputError("source.sha256", `checksum mismatch for ${path}: expected ${expected}, the file has ${actual}`);
}

/** Progress on stderr for uploads of 64 MiB or more: every 10 %, and not more often than every 5 s. */
function progressFor(what: string, size: number): ProgressReporter | undefined {
  if (size < 64 * 1024 * 1024) return undefined;
  let shown = 0;
  let last = Date.now();
  return (done, total) => {
    const pct = Math.floor((done / total) * 100);
    if (pct < shown + 10 || Date.now() - last < 5000) return;
    shown = pct;
    last = Date.now();
    console.error(`gluster-libvirt: uploading ${what}: ${pct}% (${Math.round(done / 2 ** 20)} of ${Math.round(total / 2 ** 20)} MiB)`);
  };
}

/** Step 1: the volume, empty or cloned, with its ownership. */
async function defineVolume(host: Host, pool: PoolInfo, args: VolumeArgs, contentSize: number | undefined): Promise<void> {
  const perms = await volumePermissions(host, pool, args.permissions);
  const spec: VolumeSpec = { name: args.name, capacity: args.capacity ?? 0, format: args.format, permissions: perms };
  const src = args.source;
  if (src?.volume !== undefined) {
    const srcPool = src.pool ?? args.pool;
    const original = await requireVolume(host, srcPool, src.volume, "source.volume");
    spec.capacity = Math.max(args.capacity ?? 0, original.capacity);
    await host.virsh(["vol-create-from", args.pool, "/dev/stdin", src.volume, "--inputpool", srcPool], { stdin: buildVolumeXml(spec) });
    return;
  }
  if (args.backingVolume) {
    const backingPool = args.backingVolume.pool ?? args.pool;
    const base = await requireVolume(host, backingPool, args.backingVolume.volume, "backingVolume.volume");
    if (!isImageFormat(base.format)) {
      throw new InputError("backingVolume.volume", `'${base.name}' is a ${base.format ?? "unknown"} image; a backing volume must be raw or qcow2`);
    }
    spec.capacity = args.capacity ?? base.capacity;
    spec.backingStore = { path: base.path ?? "", format: base.format };
    await host.virsh(["vol-create", args.pool, "/dev/stdin"], { stdin: buildVolumeXml(spec) });
    return;
  }
  if (contentSize !== undefined) {
    // Content arrives later: a sparse raw file of its size; libvirt probes the format afterwards.
    await host.virsh(["vol-create", args.pool, "/dev/stdin"], { stdin: buildVolumeXml({ ...spec, format: "raw", capacity: contentSize }) });
    return;
  }
  if (args.preallocation === "full") spec.allocation = spec.capacity;
  const flags = args.preallocation === "metadata" ? ["--prealloc-metadata"] : [];
  await host.virsh(["vol-create", args.pool, "/dev/stdin", ...flags], { stdin: buildVolumeXml(spec) });
}

/** Step 2: content, verified. Returns what is known of it. */
async function fillVolume(volume: VolumeTarget, args: VolumeArgs, localSize: number | undefined): Promise<Created> {
  const src = args.source;
  if (src?.path === undefined && src?.url === undefined) return {};
  // Straight into the file on the FUSE mount when this login may write it; else through libvirt.
  const target = { ...volume, file: await directFile(volume.host, (await requireVolume(volume.host, args.pool, args.name, "name")).path) };
  if (src?.path !== undefined) {
    const r = await uploadAndVerify(target, src.path, localSize!, progressFor(`${src.path} to ${args.pool}/${args.name}`, localSize!));
    return { sha256: src.sha256, contentDigest: r.digest };
  }
  if (src?.url !== undefined) {
    await downloadToVolume(target, src.url);
    const live = await requireVolume(target.host, args.pool, args.name, "name");
    const { sha256: actual } = await hostSha256(target, [{ offset: 0, length: live.physical ?? live.capacity }]);
    if (src.sha256 !== undefined && actual !== src.sha256) {
      throw new InputError("source.sha256", `checksum mismatch for ${displayUrl(src.url)}: expected ${src.sha256}, downloaded ${actual}`);
    }
    return { sha256: actual };
  }
  return {};
}

/** Step 3: the format is what was asked for, qcow2 is 512-aligned, capacity is reached. */
async function finishVolume(target: VolumeTarget, args: VolumeArgs): Promise<void> {
  const live = await requireVolume(target.host, args.pool, args.name, "name");
  if (live.format !== args.format) {
    throw new InputError("format", `the volume's content is a ${live.format ?? "unrecognized"} image, not ${args.format}`);
  }
  await padQcow2(target, live);
  if (args.capacity !== undefined && args.capacity < live.capacity) {
    throw new InputError("capacity", `${formatSize(args.capacity)} is less than the content's own size, ${formatSize(live.capacity)}`);
  }
  if (args.capacity !== undefined && args.capacity > live.capacity) await growVolume(target, args);
}

async function padQcow2(target: VolumeTarget, live: VolumeInfo): Promise<void> {
  const size = live.physical;
  if (live.format !== "qcow2" || size === undefined || size % QCOW2_FILE_ALIGNMENT === 0) return;
  await appendZeros(target, size, QCOW2_FILE_ALIGNMENT - (size % QCOW2_FILE_ALIGNMENT));
}

async function growVolume(target: VolumeTarget, args: VolumeArgs): Promise<void> {
  const flags = args.preallocation === "full" ? ["--allocate"] : [];
  await target.host.virsh(["vol-resize", "--pool", args.pool, target.volume, String(args.capacity), ...flags]);
  const live = await requireVolume(target.host, args.pool, args.name, "name");
  await padQcow2(target, live);
}

// ---------------------------------------------------------------------------------------
// Growing a volume that running domains have open

/** A running domain's disk whose own image (not a backing file) is the volume. */
export interface LiveDisk {
  domain: string;
  uuid: string;
  target: string;
  readonly: boolean;
  /** bytes, the size QEMU gives the disk (domblkinfo) */
  capacity: number;
}

/** Who grows the image. */
export type GrowthPlan =
  /** libvirt grows the file (vol-resize); then every live disk's QEMU is told the new size */
  | { by: "libvirt" }
  /** the one QEMU that has the qcow2 image open grows it (blockresize); nothing else writes the file */
  | { by: "qemu"; through: LiveDisk };

/** "vm1 (sdb), vm2 (vdc)" */
function describeDisks(disks: readonly Pick<LiveDisk, "domain" | "target">[]): string {
  return disks.map((d) => `${d.domain} (${d.target})`).join(", ");
}

/**
 * Who grows an image of this format from `from` bytes (its size now) to `to`, when these
 * running domains' disks open it (checked on the lab: libvirt 9.0, QEMU 7.2, glusterfs 10).
 *  - raw: libvirt grows the file (an ftruncate, or fallocate for `preallocation: full`),
 *    then each QEMU is told (`blockresize`, which for a file already that long changes
 *    nothing but QEMU's idea of it), file and network disks alike.
 *  - qcow2: the virtual size lives in the image's header, which the QEMU that has it open
 *    keeps in memory with the rest of its metadata. libvirt's vol-resize runs `qemu-img
 *    resize`, which QEMU's lock refuses on a FUSE file ("Failed to get "write" lock"); a
 *    libgfapi disk has no lock, and there it succeeds behind QEMU's back: a later
 *    blockresize made that QEMU fail ("Failed to grow the L1 table"), mark the image
 *    corrupt ("Preventing invalid write on metadata (overlaps with active L1 table)") and
 *    eject the disk from the guest. So the one QEMU that has it open grows it itself
 *    (`blockresize`: it writes the new header and L1 table; libvirt reads the new size
 *    from the file at once, and the file stays a multiple of 512 bytes), and nothing else
 *    writes the file. Two QEMUs with one qcow2 image open cannot both keep its metadata,
 *    and an image already grown behind its QEMU (`from` above what QEMU gives the disk)
 *    is left alone.
 *  - A read-only disk cannot be resized (libvirt: "can't resize empty or readonly disk").
 * Growth without preallocation: QEMU's block_resize has none.
 */
export function planGrowth(format: ImageFormat, disks: readonly LiveDisk[], { from, to }: { from: number; to: number }): GrowthPlan | { problem: string } {
  const readonly = staleDisksOf(disks, to).filter((d) => d.readonly);
  if (readonly.length) {
    const where = `running domain${readonly.length > 1 ? "s" : ""} ${describeDisks(readonly)}`;
    return { problem: `the image is open read-only in ${where}, and libvirt cannot resize a read-only disk, which would keep its old size: stop the domain or detach the disk first` };
  }
  if (format !== "qcow2" || disks.length === 0) return { by: "libvirt" };
  if (disks.length > 1) {
    return { problem: `the qcow2 image is open in more than one running domain (${describeDisks(disks)}); only the QEMU that has a qcow2 image open can grow it, and the others would keep its old metadata: stop or detach all but one` };
  }
  const [disk] = disks;
  if (disk.capacity < from) {
    return {
      problem: `the qcow2 image was grown to ${formatSize(from)} behind the QEMU of running domain ${describeDisks(disks)}, which still gives the disk ${formatSize(disk.capacity)} ` +
        "and holds the old metadata: telling it now can make it mark the image corrupt and eject the disk; stop the domain (it opens the grown image at its next start) or detach and attach the disk again",
    };
  }
  return { by: "qemu", through: disk };
}

/** The disks QEMU gives fewer than `capacity` bytes. */
export function staleDisksOf(disks: readonly LiveDisk[], capacity: number): LiveDisk[] {
  return disks.filter((d) => d.capacity < capacity);
}

/**
 * The error once some running domains may have been told a new size and others not:
 * which see it, which do not and why. The next `up` finishes the job (refresh records the
 * stale disks, or the state still holds the old capacity).
 */
export function partialGrowthError(what: string, size: number, seeing: readonly LiveDisk[], failed: readonly { disk: LiveDisk; error: Error }[]): GlusterLibvirtError {
  const good = seeing.length === 0 ? "" : seeing.length === 1 ? `running domain ${describeDisks(seeing)} sees the new size; ` : `running domains ${describeDisks(seeing)} see the new size; `;
  const behind = failed.map((f) => `${describeDisks([f.disk])} still sees ${formatSize(f.disk.capacity)}`).join(", ");
  return new GlusterLibvirtError(
    `capacity: ${what} is ${formatSize(size)}, but not every running domain that has it open could be told: ${good}${behind}; \`pulumi up\` tries again`,
    { details: failed.map((f) => `${f.disk.domain} (${f.disk.target}): ${f.error instanceof GlusterLibvirtError ? f.error.details : f.error.message}`).join("\n") },
  );
}

/** Every name a domain's disk source may give the volume (its file, its path inside the Gluster volume). */
function volumeReference(v: Pick<VolumeArgs, "pool" | "name">, live: VolumeInfo, pool: PoolInfo | undefined): VolumeReference {
  const ref: VolumeReference = { pool: v.pool, volume: v.name };
  if (live.path?.startsWith("/")) ref.filePath = live.path;
  if (pool) Object.assign(ref, { glusterVolume: pool.volume, glusterPath: pathInGlusterVolume(pool, v.name) });
  return ref;
}

/**
 * The running domains' disks whose own image is the volume, with their QEMU's size,
 * from the live definitions (the fail-closed scan of libvirt/usage.ts). A disk the volume
 * is only a backing file of is left out: its size is its overlay's. A domain that stopped
 * meanwhile opens the file as it is at its next start.
 */
async function liveDisksOf(host: Host, ref: VolumeReference, what: string): Promise<LiveDisk[]> {
  const matches = (s: DiskSourceInfo) => sourceReferencesVolume(s, ref);
  const disks: LiveDisk[] = [];
  for (const use of await findDiskUses(host, matches, what, { liveOnly: true })) {
    if (!use.liveDisk?.source || !matches(use.liveDisk.source)) continue;
    let capacity: number;
    try {
      capacity = await blockDeviceCapacity(host, use.uuid, use.target);
    } catch (err) {
      if (isNotFound(err, "domain") || isCommandError(err, "not-running")) continue;
      throw err;
    }
    disks.push({ domain: use.domain, uuid: use.uuid, target: use.target, readonly: use.liveDisk.readonly, capacity });
  }
  return disks;
}

/**
 * Grows the volume to `capacity` (when it is smaller) and makes every running domain that
 * has it open see its whole size, in that order: first the scan of who has it open (a
 * scan that cannot tell changes nothing), then the growth (planGrowth), then a
 * `blockresize` for each disk still smaller, each domain in its turn. A failed blockresize
 * does not stop the others; the error names who sees the new size and who does not.
 * Returns the volume as libvirt then reports it.
 */
async function growAttached(host: Host, pool: PoolInfo | undefined, args: VolumeArgs, live: VolumeInfo, capacity: number): Promise<VolumeInfo> {
  const what = `volume '${args.name}' in pool '${args.pool}'`;
  const disks = await liveDisksOf(host, volumeReference(args, live, pool), what).catch((err: unknown) => {
    throw new SafetyCheckError(`capacity: cannot tell which running domains on ${host.label} have ${what} open, so nothing was changed: ${(err as Error).message}`, { cause: err });
  });
  const grow = capacity > live.capacity;
  if (!grow && staleDisksOf(disks, live.capacity).length === 0) return live;
  let size = Math.max(capacity, live.capacity);
  const plan = planGrowth((live.format ?? args.format) as ImageFormat, disks, { from: live.capacity, to: size });
  if ("problem" in plan) throw new InputError("capacity", `cannot grow ${what} on ${host.label} to ${formatSize(size)}: ${plan.problem}`);
  if (grow && plan.by === "libvirt") {
    await growVolume({ host, pool: args.pool, volume: args.name }, { ...args, capacity });
    size = (await requireVolume(host, args.pool, args.name, "name")).capacity;
  }
  const failed: { disk: LiveDisk; error: Error }[] = [];
  for (const disk of staleDisksOf(disks, size)) {
    try {
      await withDomainLock(host, disk.domain, () => resizeBlockDevice(host, disk.uuid, disk.target, size));
    } catch (err) {
      // stopped meanwhile: it opens the grown image at its next start
      if (!isNotFound(err, "domain") && !isCommandError(err, "not-running")) failed.push({ disk, error: err as Error });
    }
  }
  if (failed.length) throw partialGrowthError(what, size, disks.filter((d) => !failed.some((f) => f.disk === d)), failed);
  return requireVolume(host, args.pool, args.name, "name");
}

/**
 * netfs pool: define, fill, finish. libvirt refuses to define over a file that exists on
 * the storage (listed or not), so a failed define left nothing of anyone else's; any
 * failure from the define on removes what this call made.
 */
async function createInNetfsPool(host: Host, pool: PoolInfo, args: VolumeArgs): Promise<Created> {
  const target = { host, pool: args.pool, volume: args.name };
  const localSize = args.source?.path !== undefined ? await localFileSize(args.source.path) : undefined;
  if (args.source?.path !== undefined && args.source.sha256 !== undefined) await checkSourceSha256(args.source.path, localSize!, args.source.sha256);
  const contentSize = args.source?.url !== undefined ? 0 : localSize;
  try {
    await defineVolume(host, pool, args, contentSize);
    const created = await fillVolume(target, args, localSize);
    await finishVolume(target, args);
    return created;
  } catch (err) {
    if (isCommandError(err, "already-exists")) throw err; // not ours: left alone
    throw await afterFailedCreation(host, args, err, () => removePartialVolume(host, args.pool, args.name));
  }
}

/**
 * The error to report once the volume may exist: the original one, saying so, if `remove`
 * made sure nothing is left; else a PartialVolumeError naming what is left and why.
 */
async function afterFailedCreation(host: Host, args: VolumeArgs, err: unknown, remove: () => Promise<string | undefined>): Promise<Error> {
  const leftover = await remove();
  const cause = (err as Error).message;
  if (!leftover) {
    if (err instanceof InputError) return err;
    return new GlusterLibvirtError(`creating volume '${args.name}' in pool '${args.pool}' on ${host.label} failed: ${cause}; nothing was left behind`, {
      cause: err,
      details: err instanceof GlusterLibvirtError ? err.details : String(err),
    });
  }
  return new PartialVolumeError(
    `creating volume '${args.name}' in pool '${args.pool}' on ${host.label} failed (${cause}), and what it made may still be there: removing it failed (${leftover}); ` +
      `check and remove it with \`virsh pool-refresh ${args.pool}; virsh vol-delete --pool ${args.pool} ${args.name}\``,
    { cause: err, details: err instanceof GlusterLibvirtError ? err.details : String(err) },
  );
}

/** A failed creation that may have left a volume behind (its message says how to remove it). */
class PartialVolumeError extends GlusterLibvirtError {}

/**
 * Deletes what a failed creation left. An upload cut off mid-stream keeps the volume
 * busy in libvirtd ("still in use") until the remote virsh notices, and a connection
 * that just dropped must reconnect: both are retried for a while. "Not found" is
 * believed only after a pool refresh (libvirt lists files as of its last refresh).
 * Returns why the volume could not be removed, or undefined when it is gone.
 */
async function removePartialVolume(host: Host, pool: string, name: string): Promise<string | undefined> {
  const deadline = Date.now() + 30_000;
  for (let refreshed = false; ; ) {
    try {
      await host.virsh(["vol-delete", "--pool", pool, name]);
      return undefined;
    } catch (err) {
      if (isNotFound(err, "volume")) {
        if (refreshed) return undefined;
        refreshed = true;
        const failed = await refreshPool(host, pool).then(() => undefined, (e: Error) => e.message);
        if (failed) return `pool-refresh failed: ${failed}`;
        continue;
      }
      const transient = isCommandError(err, "in-use") || (err instanceof SshError && err.kind === "connection-lost");
      if (!transient || Date.now() > deadline) return (err as Error).message;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * Native gluster pool: libvirt cannot create volumes there, qemu-img can (through
 * libgfapi, which pads qcow2 files itself). Content sources need a netfs pool.
 * Each libgfapi client (qemu-img, and libvirt's pool-refresh and vol-delete) takes
 * ~10 s on glfs_fini, so this costs ~20 s.
 */
async function createInGlusterPool(host: Host, pool: PoolInfo, args: VolumeArgs): Promise<Created> {
  if (args.source) {
    throw new InputError("source", `pool '${args.pool}' is a native gluster pool, which cannot take uploads or clones; use a netfs GlusterPool on the same Gluster volume`);
  }
  if (args.permissions?.mode !== undefined && args.permissions.mode !== GLUSTER_POOL_FILE_MODE) {
    throw new InputError("permissions", `files in native gluster pool '${args.pool}' are created with mode ${GLUSTER_POOL_FILE_MODE} by QEMU's gluster driver and cannot be changed; use a netfs pool for another mode`);
  }
  const argv = ["qemu-img", "create", "-q", "-f", args.format];
  if (args.backingVolume) {
    const backingPool = args.backingVolume.pool ?? args.pool;
    const base = await requireVolume(host, backingPool, args.backingVolume.volume, "backingVolume.volume");
    argv.push("-b", base.path ?? "", "-F", base.format ?? "raw");
  }
  if (args.preallocation !== "off") argv.push("-o", `preallocation=${args.preallocation}`);
  const url = volumeGlusterUrl(pool, args.name);
  argv.push(url);
  if (args.capacity !== undefined) argv.push(String(args.capacity));
  const asOwner = await runAsOwner(host, args.pool, await volumePermissions(host, pool, args.permissions));
  try {
    await host.exec([...asOwner, ...argv]);
    await refreshPool(host, args.pool);
    await requireVolume(host, args.pool, args.name, "name");
  } catch (err) {
    // qemu-img may have made the file before failing: libvirt sees it only after a refresh.
    throw await afterFailedCreation(host, args, err, () =>
      refreshPool(host, args.pool).then(
        () => removePartialVolume(host, args.pool, args.name),
        (e: Error) => `pool-refresh failed: ${e.message}`,
      ),
    );
  }
  return {};
}

/**
 * The volume if it exists. libvirt lists a pool's files as of its last refresh, and on
 * shared storage another hypervisor may have made this one since:
 *  - netfs: a miss asks the storage itself (`stat` of the file on the mount): "No such
 *    file or directory" proves it absent; anything else (it is there, or the login cannot
 *    tell) refreshes the pool (a readdir of the whole mount) and looks again. libvirt then also refuses
 *    to define a volume over a file it finds on the storage;
 *  - native gluster: `qemu-img create` would truncate whatever is at the URL, so absence
 *    is proven on the storage itself — `qemu-img info` through libgfapi, as the user that
 *    will create the file, must say "No such file or directory"; an image that opens is
 *    there (the pool is refreshed to list it, and a refresh that fails stops the create);
 *    anything else means absence cannot be proven, and nothing is written. This is the
 *    last look before qemu-img runs (a refresh first would cost another ~10 s of libgfapi
 *    and prove nothing more). libgfapi offers no exclusive create on the host's tools, so
 *    a file made elsewhere between this look and qemu-img create (a window of qemu-img
 *    info's ~10 s libgfapi teardown) is not seen: the one race left.
 */
async function existingVolume(host: Host, pool: PoolInfo, args: VolumeArgs, proveAbsence = true): Promise<VolumeInfo | undefined> {
  if (pool.type !== "gluster") {
    const listed = await lookUpVolume(host, args.pool, args.name);
    if (listed) return listed;
    if (pool.targetPath && (await fileAbsent(host, `${pool.targetPath}/${args.name}`))) return undefined;
    // A pool busy with another create or upload refuses a refresh: not waited for, since the
    // refresh only finds files made elsewhere, and libvirt will not define over one anyway.
    await refreshPool(host, args.pool, { skipIfBusy: true });
    return lookUpVolume(host, args.pool, args.name);
  }
  const listed = await lookUpVolume(host, args.pool, args.name);
  if (listed || !proveAbsence) return listed;
  const url = volumeGlusterUrl(pool, args.name);
  const asOwner = await runAsOwner(host, args.pool, await volumePermissions(host, pool, args.permissions));
  const r = await host.exec([...asOwner, "qemu-img", "info", "-U", url], { check: false });
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return undefined;
    const why = r.stderr.trim().split("\n").filter((l) => !/^\[\d{4}-/.test(l)).pop() ?? `exit ${r.code}`;
    throw new SafetyCheckError(`cannot prove that ${url} does not exist yet (qemu-img info on ${host.label}: ${why}), so nothing was created; an existing file would have been truncated`);
  }
  // It exists. Only the listing is missing: a refresh that fails leaves it existing all the same.
  await refreshPool(host, args.pool).catch((err: unknown) => {
    throw new SafetyCheckError(
      `${url} already exists on the storage (qemu-img info on ${host.label} opened it), but pool '${args.pool}' cannot list it: pool-refresh failed (${(err as Error).message}); nothing was created`,
      { cause: err },
    );
  });
  return requireVolume(host, args.pool, args.name, "name");
}

/** Whether the storage says there is no such file (a `stat` on the host): false when it is there or the stat failed otherwise. */
async function fileAbsent(host: Host, path: string): Promise<boolean> {
  const r = await host.exec(["stat", "-c", "%i", "--", path], { check: false });
  return r.code !== 0 && /No such file or directory/.test(r.stderr);
}

/** The mode QEMU's gluster driver gives the files it creates (0600, seen on the lab). */
const GLUSTER_POOL_FILE_MODE = "0600";

/**
 * The argv prefix that runs a command as the volume's owner: nothing when the login
 * (after sudo) already is that user and group, `setpriv` when it is root. libgfapi
 * has no chown, so any other login would leave a file QEMU cannot open: refused.
 */
async function runAsOwner(host: Host, pool: string, perms: Permissions): Promise<string[]> {
  if (perms?.owner === undefined || perms.group === undefined) return [];
  const [uid, gid] = await Promise.all([host.exec(["id", "-u"]), host.exec(["id", "-g"])]).then((r) => r.map((x) => Number(x.stdout.trim())));
  if (uid === perms.owner && gid === perms.group) return [];
  if (uid === 0) return ["setpriv", `--reuid=${perms.owner}`, `--regid=${perms.group}`, "--clear-groups"];
  throw new InputError(
    "connection",
    `volumes in native gluster pool '${pool}' are created by qemu-img as their owner (uid ${perms.owner}, gid ${perms.group}), but ${host.label} runs commands as uid ${uid}, gid ${gid}; ` +
      "log in as root or set `connection.sudo: true` (or use a netfs pool)",
  );
}

function adoptionRefusal(host: Host, args: VolumeArgs, field: string, why: string): InputError {
  return new InputError(field, `volume '${args.name}' exists in pool '${args.pool}' on ${host.label}, but ${why}; not adopted`);
}

/** What adoption refuses from libvirt's own description of the volume, before reading it: another format, a shrink. */
function refuseAdoptionOutright(host: Host, args: VolumeArgs, live: VolumeInfo): void {
  if (live.format !== args.format) throw adoptionRefusal(host, args, "format", `as ${live.format ?? "unknown format"}, not ${args.format}`);
  if (args.capacity !== undefined && args.capacity < live.capacity) {
    throw new InputError("capacity", `volume '${args.name}' already holds ${formatSize(live.capacity)}; shrinking is refused (data loss)`);
  }
}

/**
 * Create's pre-flight, before it changes anything (and a preview's prediction): the pool
 * is running, and a volume of that name is taken over only when `adopt` says so (and it
 * is not refused outright) or this very resource's interrupted create left it.
 * `preview`: a native gluster pool's listing alone (proving absence through libgfapi
 * costs ~10 s a volume), and no look at the name when `nameFreed` (the volume this one
 * replaces goes first).
 */
async function preflightVolume(
  host: Host,
  args: VolumeArgs,
  stamp: string | undefined,
  preview?: { nameFreed: boolean },
): Promise<{ pool: PoolInfo; existing?: VolumeInfo; ours: boolean }> {
  const pool = await requireRunningPool(host, args.pool);
  if (preview?.nameFreed) return { pool, ours: false };
  const existing = await existingVolume(host, pool, args, !preview);
  // Left by an interrupted create of this very resource: taken over if it verifies as
  // adopt would have it, else (half-filled, say) made anew, unless something uses it.
  const ours = existing !== undefined && !args.adopt && (await createdBy(host, stampObject(args), stamp));
  if (existing && !args.adopt && !ours) {
    throw new InputError("name", `a volume named '${args.name}' already exists in pool '${args.pool}' on ${host.label}; set adopt: true to take it over`);
  }
  if (existing && args.adopt) refuseAdoptionOutright(host, args, existing);
  return { pool, existing, ours };
}

/**
 * Takes over an existing volume: only if it is what was declared. Format and size are
 * compared; declared content is verified on the host (a local file's bytes, a download's
 * `source.sha256`), and a declared backing volume must be the one it has. Anything that
 * cannot be verified is refused. Returns what create would have recorded.
 */
async function adoptVolume(host: Host, pool: PoolInfo, args: VolumeArgs, live: VolumeInfo): Promise<Created> {
  refuseAdoptionOutright(host, args, live);
  const target: VolumeTarget = { host, pool: args.pool, volume: args.name, file: await directFile(host, live.path) };
  let created: Created = {};
  const src = args.source;
  if (src?.path !== undefined) {
    const size = await localFileSize(src.path);
    const local = await readingSource(src.path, () => fileSha256(src.path!, size));
    if (src.sha256 !== undefined && local !== src.sha256) throw new InputError("source.sha256", `checksum mismatch for ${src.path}: expected ${src.sha256}, the file has ${local}`);
    const onHost = await hostSha256(target, [{ offset: 0, length: size }]);
    if (onHost.sha256 !== local || live.capacity < size) throw adoptionRefusal(host, args, "source.path", `its content is not that of ${src.path} (sha256 on the host ${onHost.sha256}, of the file ${local})`);
    created = { sha256: src.sha256, contentDigest: await sourceDigest(src.path) };
  } else if (src?.url !== undefined) {
    if (src.sha256 === undefined) throw adoptionRefusal(host, args, "source.sha256", "its content cannot be verified without `source.sha256`");
    const onHost = await hostSha256(target, [{ offset: 0, length: live.physical ?? live.capacity }]);
    if (onHost.sha256 !== src.sha256) throw adoptionRefusal(host, args, "source.sha256", `its sha256 is ${onHost.sha256}, not ${src.sha256}`);
    created = { sha256: onHost.sha256 };
  } else if (args.backingVolume) {
    const base = await requireVolume(host, args.backingVolume.pool ?? args.pool, args.backingVolume.volume, "backingVolume.volume");
    if (live.backingStore?.path !== base.path) throw adoptionRefusal(host, args, "backingVolume", `its backing file is ${live.backingStore?.path ?? "none"}, not ${base.path}`);
  }
  if (args.capacity !== undefined && args.capacity > live.capacity) await growAttached(host, pool, args, live, args.capacity);
  return created;
}

// ---------------------------------------------------------------------------------------
// Deleting

/**
 * Refuses while any domain uses the volume (also as an image below its disk) or another
 * volume has it as its backing file. Whatever the scans cannot read stops the delete.
 * `replacedBy` (a preview of a replacement, with the stack's stamp prefix): the disks
 * that stack attached and the overlays are left out, since the engine replaces those
 * first when they depend on the volume; the domains' other disks are what `up` would
 * trip over.
 */
async function refuseWhileUsed(
  host: Host,
  old: Pick<VolumeArgs, "pool" | "name">,
  live: VolumeInfo,
  pool: PoolInfo | undefined,
  replacedBy?: { stack: string | undefined },
): Promise<void> {
  const ref = volumeReference(old, live, pool);
  const what = `volume '${old.name}' in pool '${old.pool}'`;
  // Both scans at once (independent reads); judged in this order, as if one after the other.
  // A replacement's preview leaves the overlays out (the engine replaces those first).
  const overlaysRead = replacedBy ? undefined : settled(findOverlays(host, (s) => sourceReferencesVolume(s, ref), what, live.key ?? live.path));
  const uses = await foreignUses(host, await findDiskUses(host, (s) => sourceReferencesVolume(s, ref), what), replacedBy?.stack);
  if (uses.length) {
    throw new GlusterLibvirtError(`${what} on ${host.label} is in use by ${describeUses(uses)}; detach it first`);
  }
  if (!overlaysRead) return;
  const overlays = await overlaysRead();
  if (overlays.length) {
    throw new GlusterLibvirtError(`${what} on ${host.label} is the backing file of ${overlays.join(", ")}; delete those first`);
  }
}

// ---------------------------------------------------------------------------------------
// The resource

export const imageVolume: ResourceCrud<VolumeInputs, VolumeOutputs> = {
  async check(olds, news) {
    const result = checkInputs(volumeSchema, news);
    // Inputs that failed come back as given, whatever they hold: hence the typeof.
    const path = result.inputs?.source?.path;
    const sourceFailed = result.failures?.some((f) => f.property === "source" || f.property.startsWith("source."));
    const problem = typeof path === "string" && path !== UNKNOWN && !sourceFailed ? await localSourceProblem(path) : undefined;
    const checked = problem ? { ...result, failures: [...(result.failures ?? []), { property: "source.path", reason: problem }] } : result;
    return predictCreate(volumeSchema, olds, news, checked, {
      kind: "ImageVolume",
      makes: (inputs) => ({ kind: "volume", name: [inputs.pool, inputs.name] }),
      async preflight(args, stamp) {
        // A pool this run makes (or remakes) is not there to look at yet.
        if (createdByThisRun("pool", args.pool)) return;
        await preflightVolume(getHost(args.connection), args, stamp, { nameFreed: deletedByThisRun("volume", args.pool, args.name) });
      },
    });
  },

  async diff(_id, olds, news) {
    // Unset capacity means "whatever it has" (content sources): never a change.
    const capacity = news.capacity ?? olds.capacity;
    const wanted = { ...news, capacity };
    const result = diffByTable(volumeChanges, olds, wanted);
    const replaces = [...(result.replaces ?? [])];
    const path = news.source !== UNKNOWN ? news.source?.path : undefined;
    if (!replaces.includes("source") && typeof path === "string" && path !== UNKNOWN && olds.contentDigest !== undefined) {
      if ((await sourceDigest(path)) !== olds.contentDigest) replaces.push("source");
    }
    const shrinking = typeof capacity === "number" && typeof olds.capacity === "number" && capacity < olds.capacity;
    if (shrinking && replaces.length === 0) {
      throw new InputError(
        "capacity",
        `shrinking volume '${olds.name}' from ${formatSize(olds.capacity)} to ${formatSize(capacity)} would lose data and is refused; ` +
          "to recreate it empty at the smaller size, replace it explicitly (`pulumi up --replace <urn>`)",
      );
    }
    // Ownership or mode changed on the host (seen on refresh): update puts it back.
    const drifted = olds.appliedPermissions !== undefined && olds.effectivePermissions !== undefined && !samePermissions(olds.effectivePermissions, olds.appliedPermissions);
    // A running domain still sees a smaller disk (seen on refresh): update tells its QEMU.
    const stale = (olds.staleDisks?.length ?? 0) > 0;
    const changes = result.changes || replaces.length > 0 || drifted || stale;
    return predictReplacement({ changes, replaces, deleteBeforeReplace: replaces.length > 0 }, {
      removes: { kind: "volume", name: [olds.pool, olds.name] },
      async refusal() {
        const host = getHost(olds.connection);
        const live = await findVolume(host, olds.pool, olds.name);
        if (live) await refuseWhileUsed(host, olds, live, (await inspectPool(host, olds.pool))?.info, { stack: stackOf(stampOf(news)) });
      },
    });
  },

  async create(inputs) {
    const args = parseArgs(volumeSchema, inputs);
    const host = getHost(args.connection);
    const stamp = stampOf(inputs);
    const { pool, existing, ours } = await preflightVolume(host, args, stamp);
    const appliedPermissions = await volumePermissions(host, pool, args.permissions);
    let created: Created | undefined;
    if (existing) {
      created = await adoptVolume(host, pool, args, existing).catch(async (err: unknown) => {
        if (!ours || !(err instanceof InputError || err instanceof CommandError)) throw err;
        await deleteVolume(host, args, existing!, pool);
        return undefined;
      });
      if (created) await applyPermissionsIfDrifted(host, existing, appliedPermissions);
    }
    if (!created) {
      await recordCreation(host, stampObject(args), stamp);
      created = pool.type === "gluster" ? await createInGlusterPool(host, pool, args) : await createInNetfsPool(host, pool, args);
    }
    const live = await requireVolume(host, args.pool, args.name, "name").catch((err: unknown) => {
      // Made and verified: what is left is the whole volume, which the next run's create takes over (stamp) or adopt does.
      const next = stamp !== undefined ? "the next `pulumi up` takes it over" : "`adopt: true` takes it over";
      throw new GlusterLibvirtError(`volume '${args.name}' was created in pool '${args.pool}' on ${host.label}, but reading it back failed: ${(err as Error).message}; it is left there, and ${next}`, {
        cause: err,
        details: err instanceof GlusterLibvirtError ? err.details : String(err),
      });
    });
    const outs = outputsOf(args, live, { ...created, glusterUrl: volumeGlusterUrl(pool, args.name), appliedPermissions });
    return { id: outs.key, outs };
  },

  async read(id, props) {
    const old = stateOf(props);
    const host = getHost(old.connection);
    const pool = settled(inspectPool(host, old.pool)); // read alongside: one round trip less
    const live = await findVolume(host, old.pool, old.name);
    if (!live) return {};
    // A running domain's QEMU that was not told of a growth (by an older version, by hand,
    // or a blockresize that failed): recorded, so diff plans an update that tells it.
    const ref = volumeReference(old, live, (await pool())?.info);
    const stale = staleDisksOf(await liveDisksOf(host, ref, `volume '${old.name}' in pool '${old.pool}'`), live.capacity);
    return { id: live.key ?? id, props: outputsOf(old, live, old, stale) };
  },

  async update(_id, olds, news) {
    const old = stateOf(olds);
    const args = parseArgs(volumeSchema, news);
    const host = getHost(args.connection);
    const live = await requireVolume(host, args.pool, args.name, "name");
    const capacity = args.capacity ?? old.capacity;
    if (capacity < live.capacity) {
      throw new InputError("capacity", `volume '${args.name}' holds ${formatSize(live.capacity)}; shrinking is refused (data loss)`);
    }
    const pool = await requireRunningPool(host, args.pool);
    // Also when the capacity is reached: a running domain may not have been told yet.
    await growAttached(host, pool, args, live, capacity);
    // Recomputed every time: repairs ownership changed on the host (libvirt restores a
    // detached file disk to root) as well as applying a changed input.
    const appliedPermissions = await volumePermissions(host, pool, args.permissions);
    await applyPermissionsIfDrifted(host, live, appliedPermissions);
    const after = await requireVolume(host, args.pool, args.name, "name");
    return { outs: outputsOf(args, after, { ...old, appliedPermissions }) };
  },

  async delete(_id, props) {
    const old = stateOf(props);
    const host = getHost(old.connection);
    const pool = settled(inspectPool(host, old.pool));
    const live = await findVolume(host, old.pool, old.name);
    if (live) await deleteVolume(host, old, live, (await pool())?.info);
    await forgetCreation(host, stampObject(old));
  },
};

/**
 * Starts `p` now and hands back its result when asked: a failure is thrown then, not as an
 * unhandled rejection meanwhile (the caller may not need it at all).
 */
function settled<T>(p: Promise<T>): () => Promise<T> {
  const r = p.then((value) => ({ value }), (error: unknown) => ({ error }));
  return async () => {
    const x = await r;
    if ("error" in x) throw x.error;
    return x.value;
  };
}

/** Deletes the volume unless something uses it (already gone is success). */
async function deleteVolume(host: Host, v: Pick<VolumeArgs, "pool" | "name">, live: VolumeInfo, pool: PoolInfo | undefined): Promise<void> {
  await refuseWhileUsed(host, v, live, pool);
  await host.virsh(["vol-delete", "--pool", v.pool, v.name]).catch((err: unknown) => {
    if (!isNotFound(err, "volume")) throw err;
  });
}

/** What a volume is called in libvirt/stamps.ts. */
function stampObject(v: Pick<VolumeArgs, "pool" | "name">): string {
  return `volume/${v.pool}/${v.name}`;
}

/** $1 the file, $2 `owner:group` or empty, $3 a mode or empty (see applyPermissionsIfDrifted). */
const CHANGE_PERMISSIONS_NOFOLLOW =
  '[ -f "$1" ] && [ ! -h "$1" ] || { echo "$1 is not a regular file" >&2; exit 3; }; exec 3<>"$1" || exit 1; ' +
  '[ ! -h "$1" ] && [ "$(stat -c %d:%i -- "$1")" = "$(stat -L -c %d:%i /proc/self/fd/3)" ] || { echo "$1 was replaced while it was checked" >&2; exit 3; }; ' +
  'if [ -n "$2" ]; then chown -- "$2" /proc/self/fd/3 || exit 1; fi; if [ -n "$3" ]; then chmod -- "$3" /proc/self/fd/3 || exit 1; fi';

/** Equal where both say something: libvirt may omit what a native gluster pool cannot tell. */
function samePermissions(live: Permissions, wanted: Permissions): boolean {
  return (["owner", "group", "mode"] as const).every((k) => live[k] === undefined || wanted[k] === undefined || live[k] === wanted[k]);
}

/**
 * libvirt has no call to change a volume's ownership: chown/chmod the file (needs root or
 * `sudo: true`), only where it differs, and never through a symlink: the path must be a
 * regular file, is opened, and must still be that very file (same device and inode, not
 * a link) once open; then the open file is changed (through /proc/self/fd), so a link
 * planted at the path after the check changes nothing. chmod has no "do not follow".
 */
async function applyPermissionsIfDrifted(host: Host, live: VolumeInfo, perms: Permissions | undefined): Promise<void> {
  if (!perms || !live.permissions || samePermissions(live.permissions, perms)) return;
  if (!live.path?.startsWith("/")) {
    throw new InputError("permissions", `volume '${live.name}' is not a file on the host (native gluster pool); its ownership cannot be changed`);
  }
  const owner = perms.owner !== undefined || perms.group !== undefined ? `${perms.owner ?? ""}:${perms.group ?? ""}` : "";
  await host.exec(["sh", "-c", CHANGE_PERMISSIONS_NOFOLLOW, "sh", live.path, owner, perms.mode ?? ""]).catch((err: unknown) => {
    throw new InputError("permissions", `changing ownership of ${live.path} on ${host.label} failed (needs root, or \`connection.sudo: true\`): ${(err as Error).message}`);
  });
}
