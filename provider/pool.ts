/**
 * GlusterPool: a Gluster volume as a libvirt storage pool.
 *  - netfs (default): libvirt mounts the volume through FUSE at `targetPath`.
 *  - gluster: libvirt's native libgfapi pool (lists and deletes volumes only).
 */
import { z } from "zod";
import { describeProblems } from "./checks";
import { CommandError, GlusterLibvirtError, InputError, SafetyCheckError, isCommandError, isNotFound, withHints } from "./errors";
import { glusterVolumeName, libvirtName, mountPoint, permissions, redirectingMountOption, serverAddress } from "./fields";
import { getHost, type Host } from "./host";
import { checkInputs, connectionRule, diffByTable, parseArgs, plainOutputs, stampOf, stateOf, type ReplacementTable, type ResourceCrud } from "./resource";
import { connectionSchema } from "./ssh/settings";
import { glusterUrl } from "./libvirt/gluster";
import { poolPrerequisites, poolStartHints, type GlusterSource } from "./libvirt/hints";
import { inspectPool, type PoolView } from "./libvirt/pools";
import { qemuHasGlusterDriver } from "./libvirt/facts";
import { permissionsWithDefaults, qemuIdentity, qemuMayOpen, type Ownership } from "./libvirt/qemu";
import { createdBy, forgetCreation, recordCreation, stackOf } from "./libvirt/stamps";
import { describeUses, findDiskUses, foreignUses } from "./libvirt/usage";
import { addPreviewCheck, deletedByThisRun, predictCreate, predictReplacement } from "./preview";
import { GLUSTER_DEFAULT_PORT, sourceInPool } from "./xml/disk";
import type { Permissions } from "./xml/markup";
import { backupServerProblem, buildPoolXml, NETFS_ONLY_FIELDS, SERVER_MOUNT_OPTION_PREFIXES, type PoolInfo, type PoolSpec } from "./xml/pool";

/** Where netfs pools are mounted unless `targetPath` says otherwise. */
export const DEFAULT_MOUNT_ROOT = "/var/lib/libvirt/gluster";

const mountOption = z
  .string()
  .regex(/^[A-Za-z0-9_.:=/@-]+$/, "one FUSE mount option such as \"log-level=WARNING\" (no commas or spaces)")
  .refine((o) => !SERVER_MOUNT_OPTION_PREFIXES.some((prefix) => o.startsWith(prefix)), "list extra Gluster servers in `servers`, not as a mount option")
  .superRefine((o, ctx) => {
    const key = redirectingMountOption(o);
    if (key && !SERVER_MOUNT_OPTION_PREFIXES.some((prefix) => o.startsWith(prefix))) {
      ctx.addIssue({ code: "custom", message: `\`${key}\` would point the Gluster client at other files, servers or parts of the volume and is refused` });
    }
  });

export const poolSchema = z
  .strictObject({
    connection: connectionSchema,
    name: libvirtName,
    volume: glusterVolumeName,
    servers: z.array(serverAddress).min(1, "name at least one Gluster server"),
    type: z.enum(["netfs", "gluster"]).default("netfs"),
    targetPath: mountPoint.optional(),
    permissions: permissions.optional(),
    mountOptions: z.array(mountOption).optional(),
    autostart: z.boolean().default(true),
    adopt: z.boolean().default(false),
    forceDestroy: z.boolean().default(false),
    /**
     * The hypervisors that share this pool so that VMs migrate between them (GlusterStorage
     * sets it: all of its hypervisors, this one among them), and how those VMs' disks reach
     * the images. A layout between which a VM could not migrate is refused: at preview what
     * the inputs show, at create (and update) what only the hosts can tell.
     */
    migration: z
      .strictObject({
        hypervisors: z.array(connectionSchema).min(1, "name at least one hypervisor"),
        access: z.enum(["auto", "gfapi", "fuse"]).default("auto"),
      })
      .optional(),
  })
  .superRefine((p, ctx) => {
    for (const issue of migrationInputProblems(p)) ctx.addIssue({ code: "custom", ...issue });
    if (p.type === "netfs") {
      p.servers.forEach((server, i) => {
        const problem = i > 0 ? backupServerProblem(server) : undefined;
        if (problem) ctx.addIssue({ code: "custom", path: ["servers", i], message: problem });
      });
    }
    if (p.type !== "gluster") return;
    for (const field of NETFS_ONLY_FIELDS) {
      if (p[field] !== undefined) ctx.addIssue({ code: "custom", path: [field], message: "applies to netfs pools only (a native gluster pool has no mount)" });
    }
  })
  // Normalized so that what the host reports back compares equal: the default mount
  // point is spelled out, and "no mount options" is one value, not two.
  .transform(({ mountOptions, ...p }) => ({
    ...p,
    ...(mountOptions?.length ? { mountOptions } : {}),
    ...(p.type === "netfs" ? { targetPath: p.targetPath ?? `${DEFAULT_MOUNT_ROOT}/${p.name}` } : {}),
  }));

export type PoolInputs = z.input<typeof poolSchema>;
export type PoolArgs = z.output<typeof poolSchema>;

/** What each input change does. Everything libvirt can only change by redefining and remounting replaces. */
export const poolChanges: ReplacementTable<PoolArgs> = {
  connection: connectionRule,
  name: "replace",
  volume: "replace",
  servers: "replace",
  type: "replace",
  targetPath: "replace",
  mountOptions: "replace",
  permissions: "update",
  autostart: "update",
  adopt: "update",
  forceDestroy: "update",
  // checked again by update: another set of hosts may not fit together
  migration: "update",
};

export interface PoolOutputs extends PoolArgs {
  uuid: string;
  /** running | inactive | building | degraded | inaccessible */
  state: string;
  capacity: number;
  allocation: number;
  available: number;
  /** ownership/mode applied to the mount point (the default one when `permissions` is unset) */
  effectivePermissions?: Permissions;
  /** gluster://SERVER/VOLUME: append a volume name for a QEMU/qemu-img URL */
  glusterUrl: string;
}

function specOf(args: PoolArgs, effectivePermissions?: Permissions, uuid?: string): PoolSpec {
  return {
    name: args.name,
    type: args.type,
    volume: args.volume,
    servers: args.servers,
    ...(args.type === "netfs" ? { targetPath: args.targetPath, permissions: effectivePermissions, mountOptions: args.mountOptions } : {}),
    ...(uuid ? { uuid } : {}),
  };
}

async function effectivePermissionsFor(host: Host, args: PoolArgs): Promise<Permissions | undefined> {
  return args.type === "netfs" ? permissionsWithDefaults(host, args.permissions, { mode: "0755" }) : undefined;
}

function outputsOf(args: PoolArgs, live: PoolView): PoolOutputs {
  return plainOutputs({
    ...args,
    autostart: live.autostart,
    uuid: live.info.uuid ?? "",
    state: live.state,
    capacity: live.info.capacity ?? 0,
    allocation: live.info.allocation ?? 0,
    available: live.info.available ?? 0,
    effectivePermissions: live.info.permissions,
    glusterUrl: glusterUrl(args.servers[0], args.volume),
  });
}

/** Differences between a pool on the host and the one wanted, for adopt and drift messages. */
export function definitionDifferences(live: PoolInfo, wanted: PoolSpec): string[] {
  // An explicit default port names the same glusterd as no port.
  const comparable = (spec: PoolSpec) => ({ ...spec, port: spec.port === GLUSTER_DEFAULT_PORT ? undefined : spec.port });
  const [has, want] = [comparable(live), comparable(wanted)];
  const diffs: string[] = [];
  const show = (v: unknown) => JSON.stringify(v ?? null);
  for (const key of ["type", "volume", "servers", "port", "directory", "targetPath", "mountOptions"] as const) {
    if (show(has[key]) !== show(want[key])) diffs.push(`${key}: host has ${show(has[key])}, wanted ${show(want[key])}`);
  }
  return diffs;
}

// ---------------------------------------------------------------------------------------
// Migration readiness

type MigrationArgs = NonNullable<PoolArgs["migration"]>;

/** What the inputs alone show would break migration between the pool's hypervisors (each with the path of the field). */
export function migrationInputProblems(p: Pick<PoolArgs, "connection" | "type" | "migration">): { path: (string | number)[]; message: string }[] {
  const m = p.migration;
  if (!m) return [];
  const problems: { path: (string | number)[]; message: string }[] = [];
  if (!m.hypervisors.some((h) => h.host === p.connection.host)) {
    problems.push({ path: ["migration", "hypervisors"], message: `must include this pool's own host ${p.connection.host}` });
  }
  const hosts = m.hypervisors.map((h) => h.host);
  hosts.forEach((h, i) => {
    if (hosts.indexOf(h) !== i) problems.push({ path: ["migration", "hypervisors", i, "host"], message: `${h} is listed twice` });
  });
  const uri = (h: { libvirtUri?: string }) => h.libvirtUri ?? "(the default)";
  m.hypervisors.forEach((h, i) => {
    if (uri(h) !== uri(m.hypervisors[0])) {
      problems.push({ path: ["migration", "hypervisors", i, "libvirtUri"], message: `${uri(h)} on ${h.host}, ${uri(m.hypervisors[0])} on ${m.hypervisors[0].host}: a VM migrates between libvirts of one kind` });
    }
  });
  if (p.type === "gluster" && m.access === "fuse") {
    problems.push({ path: ["migration", "access"], message: "a native gluster pool has no FUSE mount, so no hypervisor could open a fuse disk; use type netfs, or access gfapi" });
  }
  return problems;
}

/** What create learns from each hypervisor of `migration`. */
export interface HypervisorFacts {
  label: string;
  /** QEMU's user and group; undefined when the host has neither libvirt-qemu nor qemu */
  qemu?: Ownership;
  /** QEMU has the gluster block driver (asked unless access is fuse) */
  glusterDriver?: boolean;
}

/**
 * Why VMs could not migrate between these hypervisors, from what each host told: QEMU
 * must run as the same user everywhere (DiskAttachment leaves an image QEMU can open to it,
 * `relabel='no'`, so a destination whose QEMU is another user could not open it), or the
 * pool's permissions name the owner/group, which for gfapi disks (opened by QEMU as
 * itself) every host's QEMU must have with ImageVolume's default mode 0660; and every host
 * must be able to open a disk the way any of them would attach it.
 */
export function migrationProblems(facts: readonly HypervisorFacts[], pool: Pick<PoolArgs, "type" | "permissions"> & { access: MigrationArgs["access"] }): string[] {
  const problems: string[] = [];
  const id = (q: Ownership) => `${q.owner}:${q.group}`;
  const unknown = facts.filter((f) => !f.qemu).map((f) => f.label);
  if (unknown.length) problems.push(`cannot tell which user QEMU runs as on ${unknown.join(", ")} (neither libvirt-qemu nor qemu exists)`);
  const known = facts.filter((f): f is HypervisorFacts & { qemu: Ownership } => f.qemu !== undefined);
  const withDriver = facts.filter((f) => f.glusterDriver === true).map((f) => f.label);
  // libvirt gives a fuse disk's image to QEMU at attach; a gfapi disk QEMU opens as itself
  const gfapiDisks = pool.access === "gfapi" || pool.type === "gluster" || (pool.access === "auto" && withDriver.length > 0);
  const { owner, group } = pool.permissions ?? {};
  if (owner !== undefined && group !== undefined) {
    const shut = gfapiDisks ? known.filter((f) => qemuMayOpen({ owner, group, mode: "0660" }, f.qemu, false) !== true) : [];
    if (shut.length) problems.push(`QEMU on ${shut.map((f) => `${f.label} (${id(f.qemu)})`).join(", ")} could not open images owned ${owner}:${group} mode 0660 (the pool's permissions)`);
  } else if (new Set(known.map((f) => id(f.qemu))).size > 1) {
    problems.push(
      `QEMU runs as ${known.map((f) => `${id(f.qemu)} on ${f.label}`).join(", ")}: an image owned for one could not be opened by another; ` +
        "give the pool permissions with an owner or group that QEMU has on every host",
    );
  }
  const without = facts.filter((f) => f.glusterDriver === false).map((f) => f.label);
  const noDriver = `QEMU has no gluster block driver on ${without.join(", ")} (qemu-block-extra on Debian)`;
  if (without.length && (pool.access === "gfapi" || pool.type === "gluster")) {
    problems.push(`${noDriver}, and ${pool.access === "gfapi" ? "gfapi disks" : "a native gluster pool's disks"} need it`);
  } else if (without.length && withDriver.length && pool.access === "auto") {
    problems.push(`${noDriver}, but on ${withDriver.join(", ")} it has: access auto would attach gfapi disks there, which could not be opened after a migration; set access fuse, or install the driver everywhere`);
  }
  return problems;
}

/** Refuses, before anything changes, a pool whose hypervisors VMs could not migrate between; fails closed when a host cannot be asked. */
async function checkMigrationReadiness(args: PoolArgs): Promise<void> {
  const m = args.migration;
  if (!m) return;
  const hosts = m.hypervisors.map(getHost);
  const answers = await Promise.allSettled(
    hosts.map(async (h): Promise<HypervisorFacts> => ({
      label: h.label,
      qemu: await qemuIdentity(h),
      ...(m.access === "fuse" ? {} : { glusterDriver: await qemuHasGlusterDriver(h) }),
    })),
  );
  const unasked = answers.flatMap((a, i) => (a.status === "rejected" ? [`${hosts[i].label} (${String((a.reason as Error)?.message ?? a.reason).split("\n")[0]})`] : []));
  if (unasked.length) throw new SafetyCheckError(`cannot check that VMs can migrate between the hypervisors of pool '${args.name}': could not ask ${unasked.join(", ")}; nothing was changed`);
  const problems = migrationProblems(answers.map((a) => (a as PromiseFulfilledResult<HypervisorFacts>).value), { type: args.type, permissions: args.permissions, access: m.access });
  if (problems.length) throw new InputError("migration", `VMs could not migrate between these hypervisors (nothing was changed): ${problems.join("; ")}`);
}

/**
 * Defined → built → started → autostart; any failure undoes what this call did. The
 * error carries the host's own message (virsh's, mount's) and says what is left.
 */
export async function createPool(host: Host, args: PoolArgs): Promise<void> {
  const spec = specOf(args, await effectivePermissionsFor(host, args));
  const failed = (err: unknown, left: string) =>
    new GlusterLibvirtError(`creating pool '${args.name}' on ${host.label} failed: ${(err as Error).message}; ${left}`, {
      cause: err,
      details: err instanceof GlusterLibvirtError ? err.details : String(err),
    });
  try {
    await host.virsh(["pool-define", "/dev/stdin"], { stdin: buildPoolXml(spec) });
  } catch (err) {
    // "already exists" is someone else's pool, left alone. Any other failure may have come
    // after libvirt defined it (libvirtd crashed, the connection dropped): looked at again.
    if (isCommandError(err, "already-exists")) throw failed(err, "nothing was defined");
    throw failed(err, await undoCutDefine(host, spec));
  }
  let built = false;
  let starting = false;
  try {
    if (args.type === "netfs") {
      await host.virsh(["pool-build", args.name]);
      built = true;
    }
    starting = true;
    await host.virsh(["pool-start", args.name]);
    starting = false;
    await host.virsh(args.autostart ? ["pool-autostart", args.name] : ["pool-autostart", "--disable", args.name]);
  } catch (err) {
    const left = await undo(host, args.name, built);
    const error = failed(err, left.length ? `undoing it failed, so this is left on the host: ${left.join("; ")}` : "nothing was left defined");
    // a pool the host refused to start (not a lost connection): which doctor checks fail there say why
    throw starting && err instanceof CommandError ? withHints(error, await poolStartHints(host, args)) : error;
  }
}

/**
 * After a pool-define that failed other than "already exists": what is left, said truthfully.
 * A pool of that name now defined with exactly the definition sent is this call's (undefined
 * again); one with another definition is someone else's, left alone.
 */
async function undoCutDefine(host: Host, spec: PoolSpec): Promise<string> {
  let live: PoolView | undefined;
  try {
    live = await inspectPool(host, spec.name);
  } catch (err) {
    return `whether it was defined could not be checked (${(err as Error).message}): check with \`virsh pool-info ${spec.name}\``;
  }
  if (!live) return "nothing was defined";
  if (definitionDifferences(live.info, spec).length) return `a pool '${spec.name}' with another definition exists now, and was left alone`;
  const left = await undo(host, spec.name, false);
  return left.length ? `it had been defined, and undoing it failed, so this is left on the host: ${left.join("; ")}` : "it had been defined, and was undefined again";
}

/** Rollback: stop, remove the (empty) mount point we made, undefine. Returns what could not be undone. */
async function undo(host: Host, name: string, built: boolean): Promise<string[]> {
  const left: string[] = [];
  const step = async (args: string[], what: string, gone: (err: unknown) => boolean) => {
    await host.virsh(args).catch((err: unknown) => {
      if (!gone(err)) left.push(`${what} (${(err as Error).message})`);
    });
  };
  await step(["pool-destroy", name], "the pool may still be started", (err) => isCommandError(err, "not-running") || isNotFound(err, "pool"));
  if (built) await step(["pool-delete", name], "its mount point directory", (err) => isNotFound(err, "pool"));
  await step(["pool-undefine", name], `pool '${name}' is still defined`, (err) => isNotFound(err, "pool"));
  return left;
}

async function adoptPool(host: Host, args: PoolArgs, live: PoolInfo): Promise<void> {
  const diffs = definitionDifferences(live, specOf(args));
  if (diffs.length) {
    throw new GlusterLibvirtError(`pool '${args.name}' exists on ${host.label} with another definition; not adopted`, {
      details: diffs.join("\n"),
    });
  }
}

/**
 * Create's pre-flight, before it changes anything (and a preview's prediction): a pool of
 * that name is taken over only when `adopt` says so or this very resource's interrupted
 * create left it, and only with the declared definition. Returns the pool found.
 */
async function preflightPool(host: Host, args: PoolArgs, stamp: string | undefined): Promise<PoolView | undefined> {
  const existing = await inspectPool(host, args.name);
  if (!existing) return undefined;
  // Left by an interrupted create of this very resource: taken over like an adopted one.
  const ours = await createdBy(host, stampObject(args.name), stamp);
  if (!args.adopt && !ours) {
    throw new InputError("name", `a pool named '${args.name}' already exists on ${host.label}; set adopt: true to take it over (its definition must match)`);
  }
  await adoptPool(host, args, existing.info);
  return existing;
}

/**
 * Delete's refusal: the domains' disks in the pool (unless `forceDestroy`). `ownStack`
 * (a preview of a replacement) leaves out the disks this stack attached: the engine
 * detaches those first when they depend on the pool.
 */
async function refuseWhileUsed(host: Host, old: PoolOutputs, live: PoolView, ownStack?: string): Promise<void> {
  if (old.forceDestroy) return;
  const ref = { targetPath: live.info.targetPath, glusterVolume: live.info.volume, pool: old.name };
  const uses = await foreignUses(host, await findDiskUses(host, (source) => sourceInPool(source, ref), `pool '${old.name}'`), ownStack);
  if (uses.length) {
    throw new GlusterLibvirtError(`pool '${old.name}' on ${host.label} is in use by ${describeUses(uses)}; detach those disks first, or set forceDestroy: true`);
  }
}

async function converge(host: Host, args: PoolArgs): Promise<void> {
  const live = await inspectPool(host, args.name);
  if (!live) throw new GlusterLibvirtError(`pool '${args.name}' is no longer defined on ${host.label}`);
  if (live.state !== "running") {
    // A pool defined by hand may never have been built: its mount point is missing.
    if (live.info.type === "netfs") await host.virsh(["pool-build", args.name]);
    await host.virsh(["pool-start", args.name]).catch(async (err: unknown) => {
      throw err instanceof CommandError ? withHints(err, await poolStartHints(host, args)) : err;
    });
  }
  if (live.autostart !== args.autostart) {
    await host.virsh(args.autostart ? ["pool-autostart", args.name] : ["pool-autostart", "--disable", args.name]);
  }
}

async function readOutputs(host: Host, args: PoolArgs): Promise<PoolOutputs> {
  const live = await inspectPool(host, args.name);
  if (!live) throw new GlusterLibvirtError(`pool '${args.name}' vanished from ${host.label} right after it was set up`);
  return outputsOf(args, live);
}

/**
 * A preview of a new pool (issue 15 §3) also runs the doctor's checks of what mounting it
 * needs of the hypervisor: the backend for its type, the FUSE client, glusterd reachable
 * from there. One that fails fails the preview with the doctor's message and fix. A fact
 * that could not be read is a warning, not a failure: this predicts, it guards no data,
 * and `up` tries the pool itself, its error carrying the same checks as hints.
 */
export async function predictPoolStart(host: Host, args: GlusterSource & { name: string }, warn: (message: string) => void = console.warn): Promise<void> {
  const { findings, unread } = await poolPrerequisites(host, args);
  const problems = describeProblems(findings);
  if (problems.length) {
    throw new GlusterLibvirtError(`pool '${args.name}' could not start on ${host.label}:\n  ${problems.join("\n  ")}`);
  }
  if (unread.length) warn(`gluster-libvirt: the preview of pool '${args.name}' could not check ${unread.join("; ")} (up tries the pool anyway)`);
}
addPreviewCheck<PoolArgs>("GlusterPool", (args) => predictPoolStart(getHost(args.connection), args));

export const glusterPool: ResourceCrud<PoolInputs, PoolOutputs> = {
  async check(olds, news) {
    return predictCreate(poolSchema, olds, news, checkInputs(poolSchema, news), {
      kind: "GlusterPool",
      makes: (inputs) => ({ kind: "pool", name: [inputs.name] }),
      async preflight(args, stamp) {
        // The pool this one replaces goes first: its name is free by then.
        if (!deletedByThisRun("pool", args.name)) await preflightPool(getHost(args.connection), args, stamp);
      },
    });
  },

  async diff(_id, olds, news) {
    const result = diffByTable(poolChanges, olds, news);
    // A pool found stopped (refresh) is brought back up by update.
    if (!result.changes && olds.state !== undefined && olds.state !== "running") return { ...result, changes: true };
    return predictReplacement(result, {
      removes: { kind: "pool", name: [olds.name] },
      async refusal() {
        const host = getHost(olds.connection);
        const live = await inspectPool(host, olds.name);
        if (live) await refuseWhileUsed(host, olds, live, stackOf(stampOf(news)));
      },
    });
  },

  async create(inputs) {
    const args = parseArgs(poolSchema, inputs);
    const host = getHost(args.connection);
    const stamp = stampOf(inputs);
    await checkMigrationReadiness(args);
    const existing = await preflightPool(host, args, stamp);
    if (existing) {
      await converge(host, args);
    } else {
      await recordCreation(host, stampObject(args.name), stamp);
      await createPool(host, args);
    }
    const outs = await readOutputs(host, args);
    return { id: outs.uuid, outs };
  },

  async read(id, props) {
    const old = stateOf(props);
    const host = getHost(old.connection);
    const live = await inspectPool(host, old.name);
    if (!live) return {}; // gone: the engine drops it from state
    const args: PoolArgs = {
      ...old,
      type: live.info.type,
      volume: live.info.volume,
      servers: live.info.servers,
      ...(live.info.type === "netfs" ? { targetPath: live.info.targetPath, mountOptions: live.info.mountOptions } : {}),
    };
    return { id: live.info.uuid ?? id, props: outputsOf(args, live) };
  },

  async update(_id, olds, news) {
    const args = parseArgs(poolSchema, news);
    const host = getHost(args.connection);
    if (JSON.stringify(olds.migration) !== JSON.stringify(args.migration)) await checkMigrationReadiness(args);
    if (JSON.stringify(olds.permissions) !== JSON.stringify(args.permissions)) {
      const live = await inspectPool(host, args.name);
      if (!live) throw new GlusterLibvirtError(`pool '${args.name}' is no longer defined on ${host.label}`);
      // Redefining with the same uuid changes the persistent definition in place.
      const spec = specOf(args, await effectivePermissionsFor(host, args), live.info.uuid);
      await host.virsh(["pool-define", "/dev/stdin"], { stdin: buildPoolXml(spec) });
    }
    await converge(host, args);
    return { outs: await readOutputs(host, args) };
  },

  async delete(_id, props) {
    const old = stateOf(props);
    const host = getHost(old.connection);
    const live = await inspectPool(host, old.name);
    if (!live) return; // already gone
    await refuseWhileUsed(host, old, live);
    if (live.state === "running") await host.virsh(["pool-destroy", old.name]);
    // netfs: pool-delete only removes the (now unmounted, empty) mount point, never data.
    if (live.info.type === "netfs") await host.virsh(["pool-delete", old.name]).catch(() => undefined);
    await host.virsh(["pool-undefine", old.name]).catch((err: unknown) => {
      if (!isNotFound(err, "pool")) throw err;
    });
    await forgetCreation(host, stampObject(old.name));
  },
};

/** What a pool is called in libvirt/stamps.ts. */
function stampObject(name: string): string {
  return `pool/${name}`;
}
