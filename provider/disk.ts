/**
 * DiskAttachment: a volume of a GlusterPool attached to a libvirt domain as a disk,
 * in its persistent definition and (when it runs) live.
 *  - gfapi: `<disk type='network'>`, QEMU opens the image through libgfapi, every
 *    Gluster server of the pool a `<host>`.
 *  - fuse: `<disk type='file'>` on the netfs pool's FUSE mount.
 *  - auto: gfapi where the host's QEMU has a gluster block driver, otherwise fuse;
 *    resolved once at create (recorded in `resolvedAccess`), never re-resolved, so a
 *    package change on the host does not flip an existing disk.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { CommandError, GlusterLibvirtError, InputError, isNotFound, withHints } from "./errors";
import { libvirtName } from "./fields";
import { getHost, type Host } from "./host";
import { findDomain, inspectDomain, locateDomain, withDomainLock, type DomainView, type LocatedDomain } from "./libvirt/domains";
import { qemuHasGlusterDriver } from "./libvirt/facts";
import { gfapiAttachHints } from "./libvirt/hints";
import { requireRunningPool } from "./libvirt/pools";
import { qemuIdentity, qemuMayOpen } from "./libvirt/qemu";
import { createdBy, diskStampObject, forgetCreation, recordCreation } from "./libvirt/stamps";
import { requireVolume } from "./libvirt/volumes";
import { createdByThisRun, deletedByThisRun, predictCreate, predictReplacement } from "./preview";
import { changedFields, checkInputs, containsUnknown, diffByTable, parseArgs, plainOutputs, stampOf, stateOf, type ReplacementTable, type ResourceCrud } from "./resource";
import { connectionSchema } from "./ssh/settings";
import { buildDiskXml, type DiskBus, type DiskSource, type DomainDisk, type DomainSummary } from "./xml/disk";
import { isImageFormat, type ImageFormat, type Permissions } from "./xml/markup";
import type { PoolInfo } from "./xml/pool";

export type Access = "gfapi" | "fuse";
export type HotplugBus = Extract<DiskBus, "virtio" | "scsi" | "sata" | "ide">;

/** Guest device name prefixes and the bus each implies. */
const PREFIX_BUSES: Record<string, readonly HotplugBus[]> = { vd: ["virtio"], sd: ["scsi", "sata"], hd: ["ide"] };

/** The bus a target name implies: vdX → virtio, sdX → scsi, hdX → ide. */
export function defaultBus(target: string): HotplugBus | undefined {
  return PREFIX_BUSES[target.slice(0, 2)]?.[0];
}

const TARGET_RE = /^(vd|sd|hd)[a-z]{1,3}$/;

export const diskSchema = z
  .strictObject({
    /** the one hypervisor; or `hypervisors` */
    connection: connectionSchema.optional(),
    /** the hypervisors that share the pool, between which the domain may migrate: the disk is acted on wherever the domain is */
    hypervisors: z.array(connectionSchema).min(1, "name at least one hypervisor").optional(),
    domain: libvirtName,
    pool: libvirtName,
    volume: libvirtName,
    target: z.string().regex(TARGET_RE, "a guest device name such as \"vdb\" (virtio), \"sdb\" (scsi, sata) or \"hdb\" (ide)"),
    bus: z.enum(["virtio", "scsi", "sata", "ide"]).optional(),
    access: z.enum(["auto", "gfapi", "fuse"]).default("auto"),
    driver: z
      .strictObject({
        cache: z.enum(["none", "writeback", "writethrough", "directsync", "unsafe", "default"]).default("none"),
        io: z.enum(["threads", "native", "io_uring"]).optional(),
        discard: z.enum(["unmap", "ignore"]).optional(),
      })
      .prefault({}),
    readonly: z.boolean().default(false),
    shareable: z.boolean().default(false),
    serial: z.string().regex(/^[A-Za-z0-9_.+-]{1,36}$/, "1-36 letters, digits, '_', '.', '+' or '-'").optional(),
    live: z.boolean().default(true),
    /** seconds to wait for the guest to release the disk on a live detach */
    detachTimeout: z.number().int().min(1).max(3600).default(30),
  })
  .superRefine((d, ctx) => {
    if (d.connection === undefined && d.hypervisors === undefined) ctx.addIssue({ code: "custom", path: ["connection"], message: "give the hypervisor's connection, or hypervisors" });
    if (d.connection !== undefined && d.hypervisors !== undefined) ctx.addIssue({ code: "custom", path: ["hypervisors"], message: "give either connection or hypervisors, not both" });
    const hosts = (d.hypervisors ?? []).map((h) => h.host);
    hosts.forEach((h, i) => {
      if (hosts.indexOf(h) !== i) ctx.addIssue({ code: "custom", path: ["hypervisors", i, "host"], message: `${h} is listed twice` });
    });
    if (d.bus === undefined || !TARGET_RE.test(d.target)) return;
    if (!PREFIX_BUSES[d.target.slice(0, 2)].includes(d.bus)) {
      ctx.addIssue({ code: "custom", path: ["target"], message: `target '${d.target}' does not name a ${d.bus} disk (virtio: vdX, scsi/sata: sdX, ide: hdX)` });
    }
  })
  .transform((d) => ({ ...d, bus: d.bus ?? (defaultBus(d.target) as HotplugBus) }));

export type DiskInputs = z.input<typeof diskSchema>;
export type DiskArgs = z.output<typeof diskSchema>;

/**
 * What each input change does. libvirt 9.0 refuses to change cache, io, discard,
 * readonly, shareable or serial of an attached disk (`update-device --live`: "cannot
 * modify field … of the disk"; checked on the lab). Changing only the persistent
 * definition would leave a running VM with other settings than the state says until
 * its next cold boot, so those fields replace (detach + attach), as preview shows.
 */
export const diskChanges: ReplacementTable<DiskArgs> = {
  // Where the domain is looked for: replaced only when no hypervisor stays (hostsRule).
  connection: "update",
  hypervisors: "update",
  domain: "replace",
  pool: "replace",
  volume: "replace",
  target: "replace",
  bus: "replace",
  access: "replace",
  driver: "replace",
  readonly: "replace",
  shareable: "replace",
  serial: "replace",
  // `live: true` on a running domain hot-plugs the disk if it is not yet live; turning it
  // off changes nothing on the host (the disk stays until the domain stops).
  live: "update",
  detachTimeout: "update",
};

export interface DiskOutputs extends DiskArgs {
  /** the access actually used */
  resolvedAccess: Access;
  /** the `<disk>` element as we defined it */
  diskXml: string;
  /** fuse: the image file on the mount; gfapi: "VOLUME/path" inside the Gluster volume */
  sourcePath: string;
  /** the volume's format, given to QEMU */
  format: ImageFormat;
  attachedLive: boolean;
  attachedPersistent: boolean;
  domainRunning: boolean;
  domainUuid: string;
}

// ---------------------------------------------------------------------------------------
// Pure decisions

/** The hosts an attachment's inputs name: every one of `hypervisors`, or the one `connection`. */
function hostNamesOf(inputs: { connection?: unknown; hypervisors?: unknown }): unknown[] {
  const named = (c: unknown) => (c && typeof c === "object" ? (c as { host?: unknown }).host : c);
  return Array.isArray(inputs.hypervisors) ? inputs.hypervisors.map(named) : [named(inputs.hypervisors ?? inputs.connection)];
}

/**
 * `connection` and `hypervisors` together say where the domain is looked for. Another set
 * of hosts that still shares one with the old is an update (update() finds the domain
 * among the new ones, or fails with nothing changed); no host in common, or hosts not
 * known yet, is another attachment: replace.
 */
export function hostsRule(olds: { connection?: unknown; hypervisors?: unknown }, news: { connection?: unknown; hypervisors?: unknown }): "replace" | "update" {
  const before = hostNamesOf(olds);
  const after = hostNamesOf(news);
  if (containsUnknown(after)) return "replace";
  return after.some((h) => h !== undefined && before.includes(h)) ? "update" : "replace";
}

/** Why the disk cannot be hot-plugged into this running domain, or undefined if it can. */
export function hotplugProblem(bus: HotplugBus, domain: DomainSummary): string | undefined {
  const has = (type: string, model: string) => domain.controllers.some((c) => c.type === type && c.model === model);
  switch (bus) {
    case "sata":
    case "ide":
      return `${bus} disks cannot be hot-plugged; set live: false (attached from the next start) or use bus scsi`;
    case "scsi":
      return has("scsi", "virtio-scsi") ? undefined : "the domain has no virtio-scsi controller to hot-plug a scsi disk into; add one, or set live: false";
    case "virtio":
      if (domain.machine?.includes("q35")) {
        return has("pci", "pcie-root-port") ? undefined : "the q35 domain has no pcie-root-port for a hot-plugged virtio disk; add one, use bus scsi, or set live: false";
      }
      return domain.features.acpi ? undefined : "the domain has no ACPI, which PCI hot-plug of a virtio disk needs; use bus scsi, or set live: false";
  }
}

/** The access mode to use, or why the requested one is impossible. */
export function resolveAccess(
  requested: DiskArgs["access"],
  poolType: PoolInfo["type"],
  qemuHasGluster: boolean,
): { access: Access } | { problem: string } {
  const noDriver = "the host's QEMU has no gluster block driver (qemu-block-extra on Debian)";
  if (requested === "fuse") {
    return poolType === "gluster" ? { problem: "a native gluster pool has no FUSE mount; use access gfapi or a netfs pool" } : { access: "fuse" };
  }
  if (qemuHasGluster) return { access: "gfapi" };
  if (requested === "gfapi") return { problem: `${noDriver}; use access fuse or auto` };
  return poolType === "gluster" ? { problem: `${noDriver}, and a native gluster pool has no FUSE mount to fall back to` } : { access: "fuse" };
}

/** Where QEMU opens the volume: the file on the mount, or its path inside the Gluster volume. */
export function diskSourceFor(access: Access, pool: PoolInfo, volumePath: string, keepOwner = false): DiskSource {
  const owner = keepOwner ? { keepOwner } : {};
  if (access === "fuse") return { type: "file", file: volumePath, ...owner };
  return { type: "gluster", volume: pool.volume, path: pathInGlusterVolumeOf(pool, volumePath), servers: pool.servers, ...(pool.port ? { port: pool.port } : {}), ...owner };
}

/** Where a volume libvirt reports at `volumePath` (a file on the mount, or a gluster:// URL) lies inside the Gluster volume. */
function pathInGlusterVolumeOf(pool: PoolInfo, volumePath: string): string {
  if (pool.type === "gluster") {
    // gluster://HOST[:PORT]/VOLUME/dir/file, as a native pool names its volumes
    const path = decodeURIComponent(new URL(volumePath).pathname);
    const prefix = `/${pool.volume}/`;
    if (!path.startsWith(prefix)) throw new GlusterLibvirtError(`volume path ${volumePath} is not inside Gluster volume '${pool.volume}'`);
    return path.slice(prefix.length);
  }
  const mount = `${pool.targetPath}/`;
  if (!volumePath.startsWith(mount)) throw new GlusterLibvirtError(`volume path ${volumePath} is not under the pool's mount ${pool.targetPath}`);
  const inMount = volumePath.slice(mount.length);
  return pool.directory ? `${pool.directory.replace(/^\/+|\/+$/g, "")}/${inMount}` : inMount;
}

/** "VOLUME/path" for gfapi, the file path for fuse: what the domain's `<source>` names. */
function sourcePathOf(source: DiskSource): string {
  return source.type === "file" ? source.file : `${source.volume}/${source.path}`;
}

/** Is this the disk we attached (same target, same image)? */
export function isOurDisk(disk: DomainDisk, target: string, sourcePath: string): boolean {
  if (disk.target !== target || !disk.source) return false;
  const trim = (p: string) => p.replace(/^\/+/, "");
  return disk.source.file === sourcePath || (disk.source.protocol === "gluster" && trim(disk.source.name ?? "") === trim(sourcePath));
}

// ---------------------------------------------------------------------------------------

export interface Placement {
  live?: DomainDisk;
  persistent?: DomainDisk;
}

function placementOf(dom: DomainView, target: string, sourcePath: string): Placement {
  const find = (disks: DomainDisk[]) => disks.find((d) => isOurDisk(d, target, sourcePath));
  return { live: find(dom.liveDisks), persistent: find(dom.persistentDisks) };
}

/** What will be attached, worked out (and every input checked) before anything changes. */
interface Plan {
  dom: DomainView;
  access: Access;
  source: DiskSource;
  format: ImageFormat;
  xml: string;
  hotplug: boolean;
  /** This very resource attached the disk in a run that was cut short: where it already is. */
  recovered?: Placement;
}

/** What a preview knows that create does not need to: the run makes the pool or volume first, or detaches the disk at the target first. */
interface AheadInPreview {
  storage: boolean;
  targetFreed: boolean;
}

/**
 * Create's pre-flight, with nothing changed (and a preview's prediction): the domain on
 * whichever of `hosts` has it, whether the disk can be hot-plugged into it, the pool and
 * volume and how QEMU opens it, and a free target. In a preview, what the run does first
 * is not looked for.
 */
async function planAttachment(hosts: readonly Host[], args: DiskArgs, stamp: string | undefined): Promise<Plan & LocatedDomain>;
async function planAttachment(hosts: readonly Host[], args: DiskArgs, stamp: string | undefined, ahead: AheadInPreview): Promise<(Plan & LocatedDomain) | undefined>;
async function planAttachment(hosts: readonly Host[], args: DiskArgs, stamp: string | undefined, ahead?: AheadInPreview): Promise<(Plan & LocatedDomain) | undefined> {
  const found = await locateDomain(hosts, (h) => findDomain(h, args.domain), `domain '${args.domain}'`);
  if (!found) throw new InputError("domain", `no domain named '${args.domain}' on ${hosts.map((h) => h.label).join(", ")}`);
  const { host, dom } = found;
  const hotplug = args.live && dom.running;
  if (hotplug) refuseUnpluggable(args, dom.summary);
  if (ahead?.storage) {
    if (!ahead.targetFreed) await targetTaken(host, args, dom, stamp);
    return undefined;
  }

  const poolInfo = await requireRunningPool(host, args.pool);
  const volume = await requireVolume(host, args.pool, args.volume, "volume");
  if (!isImageFormat(volume.format)) {
    throw new InputError("volume", `'${args.volume}' is ${volume.format ?? "of unknown format"}; only raw and qcow2 images can be attached`);
  }
  if (!volume.path) throw new GlusterLibvirtError(`libvirt reports no path for volume '${args.volume}'`);

  const resolved = resolveAccess(args.access, poolInfo.type, args.access === "fuse" ? false : await qemuHasGlusterDriver(host));
  if ("problem" in resolved) throw new InputError("access", `${resolved.problem} (host ${host.label})`);
  const qemuOpens = qemuMayOpen(volume.permissions, await qemuIdentity(host), args.readonly);
  if (resolved.access === "gfapi" && qemuOpens === false) {
    const p = volume.permissions!;
    throw new InputError(
      "volume",
      `'${args.volume}' is owned by ${p.owner}:${p.group} mode ${p.mode}: QEMU cannot open it through libgfapi; give it QEMU's owner/group (ImageVolume does by default: ` +
        "libvirt gives a gluster image back to root when a VM using it stops, and `pulumi up --refresh` with root or `sudo: true` restores it) or use access fuse",
    );
  }
  const source = diskSourceFor(resolved.access, poolInfo, volume.path, qemuOpens === true);
  const xml = buildDiskXml({
    source, target: args.target, bus: args.bus, format: volume.format, ...args.driver,
    readonly: args.readonly, shareable: args.shareable, serial: args.serial,
  });
  const plan = { host, dom, access: resolved.access, source, format: volume.format, xml, hotplug };
  const recovered = ahead?.targetFreed ? undefined : await targetTaken(host, args, dom, stamp, sourcePathOf(source));
  return recovered ? { ...plan, recovered } : plan;
}

/**
 * Refuses a target another disk has. This very resource's disk there (a cut run attached
 * it: its stamp, and `sourcePath` if known) is not refused: returns where it is.
 */
async function targetTaken(host: Host, args: DiskArgs, dom: DomainView, stamp: string | undefined, sourcePath?: string): Promise<Placement | undefined> {
  const taken = [...dom.persistentDisks, ...dom.liveDisks].find((d) => d.target === args.target);
  if (!taken) return undefined;
  const at: Placement = sourcePath === undefined ? { persistent: taken } : placementOf(dom, args.target, sourcePath);
  if ((at.live || at.persistent) && (await createdBy(host, stampObject(dom.uuid, args.target), stamp))) return at;
  const what = taken.source?.file ?? taken.source?.name ?? `an empty ${taken.device}`;
  throw new InputError("target", `domain '${args.domain}' already has a disk at ${args.target} (${what})`);
}

/**
 * QEMU runs in its own mount namespace. A FUSE mount made after the domain started
 * reaches it only if `/` is a shared mount (systemd makes it so; a host without systemd
 * may not): QEMU then reports the image as missing. Say why instead.
 */
function explainAttachFailure(err: unknown, args: DiskArgs, plan: Plan): unknown {
  if (plan.access !== "fuse" || !plan.hotplug || !/no such file or directory/i.test(String((err as Error)?.message))) return err;
  return new GlusterLibvirtError(
    `QEMU of running domain '${args.domain}' cannot see ${sourcePathOf(plan.source)}: the pool's FUSE mount is not visible in the domain's mount namespace`,
    {
      cause: err,
      details: "This happens when the pool was mounted after the domain started and / is not a shared mount (`findmnt -o PROPAGATION /`). Restart the domain, set live: false (attached from the next start), or use access gfapi.",
    },
  );
}

/**
 * A failed attach as the user should read it: the domain by name (virsh was given its
 * uuid), the host, libvirt's own words, and what the domain holds of the disk now — read
 * back, not assumed (libvirt saves the definition only after a live attach worked, but a
 * QEMU that died or a libvirtd that crashed mid-way may leave either).
 */
async function attachFailure(host: Host, args: Pick<DiskArgs, "domain" | "target">, uuid: string, sourcePath: string, err: unknown): Promise<unknown> {
  if (err instanceof InputError) return err;
  let left: string;
  try {
    const dom = await inspectDomain(host, uuid);
    const at = dom && placementOf(dom, args.target, sourcePath);
    const where = !at ? "" : at.live && at.persistent ? "attached live and in the definition" : at.live ? "attached live only (not in the definition)" : at.persistent ? "in the definition only (not attached live)" : "";
    left = !dom ? "the domain is no longer defined" : where ? `disk ${args.target} is now ${where}` : `disk ${args.target} is neither attached live nor in the definition`;
  } catch (e) {
    left = `what the domain holds now could not be read (${(e as Error).message})`;
  }
  return new GlusterLibvirtError(`attaching disk ${args.target} to domain '${args.domain}' (${uuid}) on ${host.label} failed: ${(err as Error).message}; ${left}`, {
    cause: err,
    details: err instanceof GlusterLibvirtError ? err.details : String(err),
  });
}

/** An InputError of `bus` when the disk cannot be hot-plugged into this running domain. */
function refuseUnpluggable(args: Pick<DiskArgs, "bus" | "domain">, domain: DomainSummary): void {
  const problem = hotplugProblem(args.bus, domain);
  if (problem) throw new InputError("bus", `cannot hot-plug into running domain '${args.domain}': ${problem}`);
}

/** Where a disk goes: the persistent definition (`config`), the running domain (`live`), or both. */
export type AttachTo = { live: boolean; config: boolean };

/**
 * Attaches only what is missing of a disk that is partly there (`at`): the persistent
 * definition, then, when `hotplug`, the running domain (refused with an InputError when
 * the disk cannot be hot-plugged, after the definition has it).
 */
export async function attachMissing(
  args: Pick<DiskArgs, "bus" | "domain">,
  domain: DomainSummary,
  at: Placement,
  hotplug: boolean,
  attach: (where: AttachTo) => Promise<void>,
): Promise<void> {
  if (!at.persistent) await attach({ live: false, config: true });
  if (hotplug && !at.live) {
    refuseUnpluggable(args, domain);
    await attach({ live: true, config: false });
  }
}

/** Every virsh command names the domain by uuid: a name could be read as another domain's id. */
async function attachDevice(host: Host, uuid: string, xml: string, where: AttachTo): Promise<void> {
  const flags = [...(where.config ? ["--config"] : []), ...(where.live ? ["--live"] : [])];
  await host.virsh(["attach-device", uuid, "/dev/stdin", ...flags], { stdin: xml });
}

/**
 * Live detach is a request the guest must honour (PCI unplug needs its ACPI
 * cooperation): ask, then watch the live definition until the target is gone.
 */
async function detachLive(host: Host, uuid: string, old: DiskOutputs): Promise<void> {
  const { domain, target } = old;
  try {
    await host.virsh(["detach-disk", uuid, target, "--live"]);
  } catch (err) {
    // gone meanwhile, or an earlier request is still pending: the polling below decides
    if (!isNotFound(err, "domain") && !/already in the process of unplug|not running|no disk found/i.test(String((err as Error).message))) {
      throw new GlusterLibvirtError(`detaching disk ${target} from running domain '${domain}' (${uuid}) on ${host.label} failed: ${(err as Error).message}; its definition still has the disk`, {
        cause: err,
        details: err instanceof GlusterLibvirtError ? err.details : String(err),
      });
    }
  }
  const deadline = Date.now() + old.detachTimeout * 1000;
  for (;;) {
    const dom = await inspectDomain(host, uuid);
    if (!dom || !placementOf(dom, target, old.sourcePath).live) return;
    if (Date.now() > deadline) {
      throw new GlusterLibvirtError(
        `the guest of domain '${domain}' did not release disk ${target} within ${old.detachTimeout} s; it is still attached live and in the persistent definition (nothing else was changed)`,
        { details: "Retry later, raise detachTimeout, or shut the domain down: a shut-off domain only needs its definition changed." },
      );
    }
    await sleep(250);
  }
}

async function detachPersistent(host: Host, uuid: string, target: string): Promise<void> {
  try {
    await host.virsh(["detach-disk", uuid, target, "--config"]);
  } catch (err) {
    if (!isNotFound(err, "domain")) throw err;
  }
}

/** What create decided once and every later step keeps. */
type Recorded = Pick<DiskOutputs, "resolvedAccess" | "diskXml" | "sourcePath" | "format">;

async function readOutputs(host: Host, args: DiskArgs, uuid: string, recorded: Recorded): Promise<DiskOutputs> {
  const dom = await inspectDomain(host, uuid);
  if (!dom) throw new GlusterLibvirtError(`domain '${args.domain}' vanished from ${host.label} while its disk was being attached`);
  return outputsOf(args, recorded, dom);
}

/** What an attachment is called in libvirt/stamps.ts. */
function stampObject(domainUuid: string, target: string): string {
  return diskStampObject(domainUuid, target);
}

/** The hypervisors an attachment names: its `hypervisors`, or its one `connection`. */
function hostsOf(args: Pick<DiskArgs, "connection" | "hypervisors">): Host[] {
  return (args.hypervisors ?? [args.connection]).map(getHost);
}

/**
 * The domain a recorded attachment is on, and which of `hosts` has it (after a migration,
 * another than before): by the uuid it was attached to (a domain recreated under the name
 * is another one).
 */
function recordedDomain(hosts: readonly Host[], old: DiskOutputs): Promise<LocatedDomain | undefined> {
  const lookup = (h: Host) => (old.domainUuid ? inspectDomain(h, old.domainUuid) : findDomain(h, old.domain));
  return locateDomain(hosts, lookup, `domain '${old.domain}'${old.domainUuid ? ` (${old.domainUuid})` : ""}`);
}

function outputsOf(args: DiskArgs, recorded: Recorded, dom: DomainView): DiskOutputs {
  const at = placementOf(dom, args.target, recorded.sourcePath);
  return plainOutputs({
    ...args,
    resolvedAccess: recorded.resolvedAccess,
    diskXml: recorded.diskXml,
    sourcePath: recorded.sourcePath,
    format: recorded.format,
    attachedLive: at.live !== undefined,
    attachedPersistent: at.persistent !== undefined,
    domainRunning: dom.running,
    domainUuid: dom.summary.uuid,
  });
}

/** The inputs as the host has them, for drift: what a disk's XML says about each. */
function argsFromDisk(old: DiskArgs, disk: DomainDisk): DiskArgs {
  const driver: DiskArgs["driver"] = { cache: (disk.driver?.cache ?? "default") as DiskArgs["driver"]["cache"] };
  if (disk.driver?.io) driver.io = disk.driver.io as DiskArgs["driver"]["io"];
  if (disk.driver?.discard) driver.discard = disk.driver.discard as DiskArgs["driver"]["discard"];
  const args: DiskArgs = { ...old, bus: (disk.bus ?? old.bus) as DiskArgs["bus"], driver, readonly: disk.readonly, shareable: disk.shareable };
  if (disk.serial !== undefined) args.serial = disk.serial;
  else delete args.serial;
  return args;
}

export const diskAttachment: ResourceCrud<DiskInputs, DiskOutputs> = {
  async check(olds, news) {
    return predictCreate(diskSchema, olds, news, checkInputs(diskSchema, news), {
      kind: "DiskAttachment",
      async preflight(args, stamp) {
        await planAttachment(hostsOf(args), args, stamp, {
          storage: createdByThisRun("pool", args.pool) || createdByThisRun("volume", args.pool, args.volume),
          // Replaced: the old disk at this target is detached first.
          targetFreed: deletedByThisRun("disk", args.domain, args.target),
        });
      },
    });
  },

  async diff(_id, olds, news) {
    const changed = changedFields(diskChanges, olds, news);
    const moved = changed.some((c) => c.field === "connection" || c.field === "hypervisors") && hostsRule(olds, news) === "replace";
    const replaces = [...changed.filter((c) => c.how === "replace").map((c) => c.field), ...(moved ? [news.hypervisors !== undefined ? "hypervisors" : "connection"] : [])];
    const result = { changes: changed.length > 0, replaces, deleteBeforeReplace: replaces.length > 0 };
    // Detached by hand (found on refresh): update attaches it again.
    const missing = olds.attachedPersistent === false || (news.live === true && olds.domainRunning === true && olds.attachedLive === false);
    if (!result.changes && missing) return { ...result, changes: true };
    return predictReplacement(result, { removes: { kind: "disk", name: [olds.domain, olds.target] } });
  },

  async create(inputs) {
    const args = parseArgs(diskSchema, inputs);
    const hosts = hostsOf(args);
    // One change per domain at a time: libvirt would make the others wait on its job lock, and give up after 30 s.
    const stamp = stampOf(inputs);
    const outs = await withDomainLock(hosts[0], args.domain, async () => {
      const plan = await planAttachment(hosts, args, stamp);
      const { host } = plan;
      const uuid = plan.dom.uuid;
      const attach = (where: AttachTo) =>
        attachDevice(host, uuid, plan.xml, where).catch(async (err: unknown) => {
          const explained = explainAttachFailure(err, args, plan);
          if (explained !== err) throw explained;
          const failure = await attachFailure(host, args, uuid, sourcePathOf(plan.source), err);
          const source = plan.source;
          // QEMU refused to open a libgfapi disk (not a lost connection): which doctor checks fail on the host say why
          throw where.live && source.type === "gluster" && err instanceof CommandError ? withHints(failure, await gfapiAttachHints(host, source)) : failure;
        });
      if (plan.recovered) {
        // Attached by an interrupted run of this resource: only what is missing.
        await attachMissing(args, plan.dom.summary, plan.recovered, plan.hotplug, attach);
      } else {
        await recordCreation(host, stampObject(uuid, args.target), stamp);
        // One call: libvirt applies the live attach first and saves the definition only if it worked.
        await attach({ live: plan.hotplug, config: true });
      }
      return readOutputs(host, args, uuid, { resolvedAccess: plan.access, diskXml: plan.xml, sourcePath: sourcePathOf(plan.source), format: plan.format });
    });
    return { id: `${outs.domainUuid}/${args.target}`, outs };
  },

  async read(id, props) {
    const old = stateOf(props);
    const found = await recordedDomain(hostsOf(old), old);
    if (!found) return {}; // the domain, and with it the disk, is gone
    const { dom } = found;
    const at = placementOf(dom, old.target, old.sourcePath);
    const disk = at.persistent ?? at.live;
    if (!disk) return {}; // detached by hand (or the target now holds another image)
    return { id, props: outputsOf(argsFromDisk(old, disk), old, dom) };
  },

  async update(_id, olds, news) {
    const old = stateOf(olds);
    const args = parseArgs(diskSchema, news);
    const hosts = hostsOf(args);
    const outs = await withDomainLock(hosts[0], args.domain, async () => {
      const found = await recordedDomain(hosts, old);
      if (!found) throw new GlusterLibvirtError(`domain '${args.domain}' is no longer defined on ${hosts.map((h) => h.label).join(", ")}`);
      const { host, dom } = found;
      // Detached by hand, or `live` turned on: only what is missing.
      const at = placementOf(dom, args.target, old.sourcePath);
      await attachMissing(args, dom.summary, at, args.live && dom.running, (where) =>
        attachDevice(host, dom.uuid, old.diskXml, where).catch(async (err: unknown) => {
          throw await attachFailure(host, args, dom.uuid, old.sourcePath, err);
        }),
      );
      return readOutputs(host, args, dom.uuid, old);
    });
    return { outs };
  },

  async delete(_id, props) {
    const old = stateOf(props);
    const hosts = hostsOf(old);
    await withDomainLock(hosts[0], old.domain, async () => {
      const found = await recordedDomain(hosts, old);
      if (found) {
        const { host, dom } = found;
        const at = placementOf(dom, old.target, old.sourcePath);
        // Live first: if the guest holds on, the definition is untouched and state stays true.
        if (at.live) await detachLive(host, dom.uuid, old);
        if (at.persistent) await detachPersistent(host, dom.uuid, old.target);
      } // else the domain is gone, and so is the disk
      // the record is where create ran, which after a migration is not where the domain is
      await Promise.all(hosts.map((h) => forgetCreation(h, stampObject(found?.dom.uuid ?? old.domainUuid, old.target))));
    });
  },
};
