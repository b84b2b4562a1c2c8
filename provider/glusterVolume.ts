/**
 * GlusterVolume: a Gluster volume of a trusted storage pool, managed through the
 * `gluster` CLI on one of its servers. Its bricks and layout never change in place and
 * never by replacement unless `forceDestroy` says so: a replacement would delete the
 * volume that holds the VM images.
 */
import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { GlusterLibvirtError, InputError, isCommandError, isNotFound } from "./errors";
import { glusterBrick, glusterVolumeName, numericId } from "./fields";
import { gluster } from "./gluster/cli";
import { CLUSTER_WIDE_OPTIONS, SHARD_OPTION, SHARED_POOL_OPTIONS, VIRT_GROUP, isOff, sameOptionValue } from "./gluster/options";
import { inspectVolume, volumeUsers } from "./gluster/volumes";
import { getHost, type Host } from "./host";
import { createdBy, forgetCreation, recordCreation } from "./libvirt/stamps";
import { deletedByThisRun, predictCreate, predictReplacement } from "./preview";
import { checkInputs, containsUnknown, diffByTable, parseArgs, plainOutputs, propertyPath, stampOf, stateOf, type Compared, type ReplacementTable, type ResourceCrud } from "./resource";
import { connectionSchema } from "./ssh/settings";
import type { GlusterVolumeInfo } from "./xml/gluster";

const optionKey = z
  .string()
  .regex(/^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$/i, "use an option's full name, such as \"performance.quick-read\"")
  .refine((k) => !(CLUSTER_WIDE_OPTIONS as readonly string[]).includes(k), "is set for every volume of the trusted storage pool at once (`gluster volume set all`), not per volume");

const optionValue = z
  .string()
  .min(1, "an option's value must not be empty (leave the option out to reset it)")
  .max(4096)
  .refine((v) => !/[\x00-\x1f\x7f]/.test(v), "must not contain control characters or newlines");

interface ConvenienceOption {
  /** the input that stands for it */
  field: string;
  key: string;
  value: string;
}

/** The options `qemuOwner`, `allowInsecure` and `sharedPools` stand for (`virtProfile`'s are VIRT_GROUP). */
function convenienceOptions(p: { allowInsecure?: boolean; qemuOwner?: { uid: number; gid: number }; sharedPools?: boolean }): ConvenienceOption[] {
  const out: ConvenienceOption[] = [];
  if (p.sharedPools) out.push(...Object.entries(SHARED_POOL_OPTIONS).map(([key, value]) => ({ field: "sharedPools", key, value })));
  if (p.qemuOwner) {
    out.push({ field: "qemuOwner.uid", key: "storage.owner-uid", value: String(p.qemuOwner.uid) });
    out.push({ field: "qemuOwner.gid", key: "storage.owner-gid", value: String(p.qemuOwner.gid) });
  }
  if (p.allowInsecure !== undefined) out.push({ field: "allowInsecure", key: "server.allow-insecure", value: p.allowInsecure ? "on" : "off" });
  return out;
}

export const glusterVolumeSchema = z
  .strictObject({
    connection: connectionSchema,
    name: glusterVolumeName,
    bricks: z.array(glusterBrick).min(1, "name at least one brick (SERVER:/DIRECTORY)"),
    replica: z.number().int().min(2, "replica is at least 2 (leave it out for a volume without replication)").max(16).optional(),
    arbiter: z.literal(1, "arbiter is 1 (one arbiter brick per replica set)").optional(),
    disperse: z.number().int().min(3, "disperse is at least 3 bricks per set").optional(),
    redundancy: z.number().int().min(1).optional(),
    force: z.boolean().default(false),
    options: z.record(optionKey, optionValue).default({}),
    virtProfile: z.boolean().default(false),
    qemuOwner: z.strictObject({ uid: numericId, gid: numericId }).optional(),
    allowInsecure: z.boolean().optional(),
    sharedPools: z.boolean().default(false),
    started: z.boolean().default(true),
    adopt: z.boolean().default(false),
    forceDestroy: z.boolean().default(false),
  })
  .superRefine((p, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
    const seen = new Set<string>();
    p.bricks.forEach((b, i) => {
      if (seen.has(b)) issue(["bricks", i], `${b} is listed twice`);
      seen.add(b);
    });
    if (p.replica !== undefined && p.disperse !== undefined) issue(["disperse"], "a volume is either replicated (replica) or dispersed (disperse), not both");
    if (p.replica !== undefined && p.bricks.length % p.replica !== 0) issue(["bricks"], `${p.bricks.length} bricks do not make whole replica sets of ${p.replica}`);
    if (p.arbiter !== undefined && p.replica !== 3) issue(["arbiter"], "an arbiter needs replica: 3 (two data bricks and the arbiter per set)");
    if (p.disperse !== undefined && p.bricks.length % p.disperse !== 0) issue(["bricks"], `${p.bricks.length} bricks do not make whole disperse sets of ${p.disperse}`);
    if (p.redundancy !== undefined && p.disperse === undefined) issue(["redundancy"], "redundancy applies to dispersed volumes only (set disperse)");
    if (p.redundancy !== undefined && p.disperse !== undefined && 2 * p.redundancy >= p.disperse) issue(["redundancy"], `must be less than half of disperse (${p.disperse})`);
    // glusterd refuses the group's self-heal options (cluster.shd-*) on volumes without replication.
    if (p.virtProfile && p.replica === undefined) issue(["virtProfile"], "Gluster's virt profile tunes replication (self-heal, quorum); glusterd refuses it on a volume without replica");
    for (const { field, key, value } of convenienceOptions(p)) {
      const given = p.options[key];
      if (given !== undefined && !sameOptionValue(given, value)) issue(["options", key], `conflicts with ${field} (which sets ${key} to ${value})`);
    }
  })
  // The convenience inputs are spelled out as the options they set, so a preview shows
  // each one; an option given in `options` wins over the virt profile's value.
  .transform((p) => ({
    ...p,
    options: {
      ...(p.virtProfile ? VIRT_GROUP : {}),
      ...p.options,
      ...Object.fromEntries(convenienceOptions(p).map(({ key, value }) => [key, p.options[key] ?? value])),
    },
  }));

export type GlusterVolumeInputs = z.input<typeof glusterVolumeSchema>;
export type GlusterVolumeArgs = z.output<typeof glusterVolumeSchema>;

/** The fields that make a volume what it is: never changed in place (refusedChanges). */
export const LAYOUT_FIELDS = ["name", "bricks", "replica", "arbiter", "disperse", "redundancy"] as const;

/**
 * What each input change does. The layout replaces, but only once `forceDestroy` allows
 * it (refusedChanges stops it before); the connection may point at any server of the
 * trusted storage pool, which manages the same volume, so it only updates.
 */
export const glusterVolumeChanges: ReplacementTable<GlusterVolumeArgs> = {
  connection: "update",
  name: "replace",
  bricks: "replace",
  replica: "replace",
  arbiter: "replace",
  disperse: "replace",
  redundancy: "replace",
  force: "update",
  options: "update",
  virtProfile: "update",
  qemuOwner: "update",
  allowInsecure: "update",
  sharedPools: "update",
  started: "update",
  adopt: "update",
  forceDestroy: "update",
};

export interface GlusterVolumeOutputs extends GlusterVolumeArgs {
  /** the volume's uuid (also the resource id) */
  volumeId: string;
  /** `Created` (never started), `Started` or `Stopped` */
  status: string;
  /** `Replicate`, `Distribute`, `Distributed-Replicate`, `Disperse`, … */
  volumeType: string;
  /** The servers of the bricks, each once, in brick order: GlusterPool's `servers`. */
  servers: string[];
}

export interface RefusedChange {
  field: string;
  reason: string;
}

/**
 * Changes that are never applied: the layout (name, bricks, counts) unless `forceDestroy`
 * allows deleting and recreating the volume, and sharding turned off (files written
 * sharded would lose every byte past their first shard). Pure; unknown values pass.
 */
export function refusedChanges(olds: Compared<GlusterVolumeArgs>, news: Compared<GlusterVolumeArgs>): RefusedChange[] {
  if (olds.name === undefined) return [];
  const refused: RefusedChange[] = [];
  if (news.forceDestroy !== true) {
    for (const field of LAYOUT_FIELDS) {
      const [before, after] = [olds[field], news[field]];
      if (isDeepStrictEqual(before, after) || containsUnknown(after)) continue;
      refused.push({
        field,
        reason:
          `changing a Gluster volume's ${field} (${describeChange(before, after)}) needs a new volume, and replacing it would delete ` +
          `the volume and whatever uses it; refused, nothing was changed. Put ${field} back; to delete and recreate the volume, set forceDestroy: true ` +
          `(the old bricks keep their data and Gluster's mark: glusterd takes them for the new volume only with force, files and all)`,
      });
    }
  }
  const [oldOptions, newOptions] = [olds.options, news.options] as [Record<string, unknown> | undefined, Record<string, unknown> | undefined];
  const wasOn = typeof oldOptions?.[SHARD_OPTION] === "string" && !isOff(oldOptions[SHARD_OPTION] as string);
  if (wasOn && newOptions && !containsUnknown(newOptions) && (newOptions[SHARD_OPTION] === undefined || isOff(newOptions[SHARD_OPTION] as string))) {
    refused.push({
      field: propertyPath(["options", SHARD_OPTION]),
      reason: `sharding cannot be turned off on a volume that may hold sharded files (their data past the first shard would no longer be read); keep options["${SHARD_OPTION}"]: "on" (virtProfile sets it)`,
    });
  }
  return refused;
}

/** A change of one value in a few words: for lists what was added and removed (or that the order changed). */
export function describeChange(before: unknown, after: unknown): string {
  if (Array.isArray(before) && Array.isArray(after)) {
    const added = after.filter((x) => !before.includes(x));
    const removed = before.filter((x) => !after.includes(x));
    const parts = [...(added.length ? [`adds ${added.join(", ")}`] : []), ...(removed.length ? [`removes ${removed.join(", ")}`] : [])];
    return parts.length ? parts.join("; ") : "the same entries in another order";
  }
  return `${JSON.stringify(before ?? null)} → ${JSON.stringify(after ?? null)}`;
}

/** How the live volume's layout differs from the declared one (adopt), as readable lines. */
export function layoutDifferences(live: GlusterVolumeInfo, args: GlusterVolumeArgs): string[] {
  const diffs: string[] = [];
  const compare = (what: string, has: unknown, want: unknown) => {
    if (!isDeepStrictEqual(has, want)) diffs.push(`${what}: the server has ${JSON.stringify(has)}, wanted ${JSON.stringify(want)}`);
  };
  compare("bricks", live.bricks.map((b) => b.name), args.bricks);
  compare("replica", live.replicaCount, args.replica ?? 1);
  compare("arbiter", live.arbiterCount, args.arbiter ?? 0);
  compare("disperse", live.disperseCount, args.disperse ?? 0);
  if (args.redundancy !== undefined) compare("redundancy", live.redundancyCount, args.redundancy);
  return diffs;
}

/** `volume create` arguments for the declared layout. */
export function createArgv(args: GlusterVolumeArgs): string[] {
  return [
    "volume", "create", args.name,
    ...(args.replica !== undefined ? ["replica", String(args.replica)] : []),
    ...(args.arbiter !== undefined ? ["arbiter", String(args.arbiter)] : []),
    ...(args.disperse !== undefined ? ["disperse", String(args.disperse)] : []),
    ...(args.redundancy !== undefined ? ["redundancy", String(args.redundancy)] : []),
    ...args.bricks,
    ...(args.force ? ["force"] : []),
  ];
}

/**
 * The declared options with the values set on the volume: the declared spelling where both
 * mean the same, absent where the option is not set (reset to glusterd's default by hand
 * counts as drift: a declared option is one set on the volume, whatever its default).
 */
export function observedOptions(declared: Record<string, string>, set: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, want] of Object.entries(declared)) {
    const has = set[key];
    if (has !== undefined) out[key] = sameOptionValue(has, want) ? want : has;
  }
  return out;
}

function outputsOf(args: GlusterVolumeArgs, live: GlusterVolumeInfo): GlusterVolumeOutputs {
  return plainOutputs({
    ...args,
    bricks: live.bricks.map((b) => b.name),
    replica: live.replicaCount > 1 ? live.replicaCount : undefined,
    arbiter: live.arbiterCount > 0 ? (live.arbiterCount as 1) : undefined,
    disperse: live.disperseCount > 0 ? live.disperseCount : undefined,
    redundancy: args.redundancy !== undefined ? live.redundancyCount : undefined,
    options: observedOptions(args.options, live.options),
    started: live.status === "Started",
    volumeId: live.id,
    status: live.status,
    volumeType: live.type,
    servers: [...new Set(live.bricks.map((b) => b.host))],
  });
}

async function readOutputs(host: Host, args: GlusterVolumeArgs): Promise<GlusterVolumeOutputs> {
  const live = await inspectVolume(host, args.name);
  if (!live) throw new GlusterLibvirtError(`Gluster volume '${args.name}' vanished from ${host.label} right after it was set up`);
  return outputsOf(args, live);
}

async function setOptions(host: Host, name: string, options: Record<string, string>): Promise<void> {
  for (const [key, value] of Object.entries(options)) await gluster(host, ["volume", "set", name, key, value]);
}

async function refuseIfUsed(host: Host, name: string, what: string): Promise<void> {
  const users = await volumeUsers(host, name);
  if (users) throw new GlusterLibvirtError(`Gluster volume '${name}' on ${host.label} is in use by ${users}; ${what}`);
}

/**
 * Created → options set → started; any failure deletes the volume again. The error carries
 * glusterd's own message and says what is left.
 */
async function createVolume(host: Host, args: GlusterVolumeArgs): Promise<void> {
  const failed = (err: unknown, left: string) =>
    new GlusterLibvirtError(`creating Gluster volume '${args.name}' on ${host.label} failed: ${(err as Error).message}; ${left}`, {
      cause: err,
      details: err instanceof GlusterLibvirtError ? err.details : String(err),
    });
  try {
    await gluster(host, createArgv(args));
  } catch (err) {
    throw failed(err, "no volume was created");
  }
  try {
    await setOptions(host, args.name, args.options);
    if (args.started) await gluster(host, ["volume", "start", args.name]);
  } catch (err) {
    const left: string[] = [];
    await gluster(host, ["volume", "stop", args.name, "force"]).catch((e: unknown) => {
      if (!isCommandError(e, "not-running")) left.push(`it may still be started (${(e as Error).message})`);
    });
    await gluster(host, ["volume", "delete", args.name]).catch((e: unknown) => {
      if (!isNotFound(e, "gluster-volume")) left.push(`volume '${args.name}' still exists (${(e as Error).message})`);
    });
    throw failed(err, left.length ? `undoing it failed, so this is left: ${left.join("; ")}` : "the volume was deleted again (the brick directories stay, as glusterd left them)");
  }
}

/** Brings a volume that exists to the declared options (resetting `dropped` ones) and start state. */
async function converge(host: Host, args: GlusterVolumeArgs, live: GlusterVolumeInfo, dropped: readonly string[]): Promise<void> {
  for (const key of dropped) await gluster(host, ["volume", "reset", args.name, key]);
  await setOptions(host, args.name, Object.fromEntries(Object.entries(args.options).filter(([key, value]) => !sameOptionValue(live.options[key], value))));
  if (args.started && live.status !== "Started") await gluster(host, ["volume", "start", args.name]);
  if (!args.started && live.status === "Started") {
    if (!args.forceDestroy) await refuseIfUsed(host, args.name, "stopping it would cut them off; unmount it first, or set forceDestroy: true");
    await gluster(host, ["volume", "stop", args.name]);
  }
}

/**
 * Create's pre-flight, before it changes anything (and a preview's prediction): a volume of
 * that name is taken over only when `adopt` says so or this very resource's interrupted
 * create left it, and only with the declared layout. Returns the volume found.
 */
async function preflightGlusterVolume(host: Host, args: GlusterVolumeArgs, stamp: string | undefined): Promise<GlusterVolumeInfo | undefined> {
  const existing = await inspectVolume(host, args.name);
  if (!existing) return undefined;
  // Left by an interrupted create of this very resource: taken over like an adopted one.
  const ours = await createdBy(host, stampObject(args.name), stamp);
  if (!args.adopt && !ours) {
    throw new InputError("name", `a Gluster volume named '${args.name}' already exists on ${host.label}; set adopt: true to take it over (its bricks and layout must match)`);
  }
  const diffs = layoutDifferences(existing, args);
  if (diffs.length) {
    throw new GlusterLibvirtError(`Gluster volume '${args.name}' on ${host.label} has another layout; not adopted, nothing was changed`, { details: diffs.join("\n") });
  }
  return existing;
}

export const glusterVolume: ResourceCrud<GlusterVolumeInputs, GlusterVolumeOutputs> = {
  async check(olds, news) {
    const checked = checkInputs(glusterVolumeSchema, news);
    const refused = checked.failures?.length ? [] : refusedChanges(olds as Compared<GlusterVolumeArgs>, checked.inputs as Compared<GlusterVolumeArgs>);
    const result = refused.length ? { ...checked, failures: refused.map((r) => ({ property: r.field, reason: r.reason })) } : checked;
    return predictCreate(glusterVolumeSchema, olds, news, result, {
      kind: "GlusterVolume",
      makes: (inputs) => ({ kind: "gluster-volume", name: [inputs.name] }),
      async preflight(args, stamp) {
        // Replaced (forceDestroy): the old volume is deleted first, and its name is free by then.
        if (!deletedByThisRun("gluster-volume", args.name)) await preflightGlusterVolume(getHost(args.connection), args, stamp);
      },
    });
  },

  async diff(_id, olds, news) {
    // After a refresh, `olds` is what the server has: bricks changed by hand are refused here too.
    const refused = refusedChanges(olds, news);
    if (refused.length) throw new InputError(refused[0].field, refused.map((r) => (r === refused[0] ? r.reason : `${r.field}: ${r.reason}`)).join("\n"));
    return predictReplacement(diffByTable(glusterVolumeChanges, olds, news), {
      removes: { kind: "gluster-volume", name: [olds.name] },
    });
  },

  async create(inputs) {
    const args = parseArgs(glusterVolumeSchema, inputs);
    const host = getHost(args.connection);
    const existing = await preflightGlusterVolume(host, args, stampOf(inputs));
    if (existing) {
      await converge(host, args, existing, []);
    } else {
      await recordCreation(host, stampObject(args.name), stampOf(inputs));
      await createVolume(host, args);
    }
    const outs = await readOutputs(host, args);
    return { id: outs.volumeId, outs };
  },

  async read(id, props) {
    const old = stateOf(props);
    const host = getHost(old.connection);
    const live = await inspectVolume(host, old.name);
    // Gone, or deleted and made anew by hand (another uuid): ours is gone, the engine drops it.
    if (!live || (id && live.id !== id)) return {};
    return { id: live.id, props: outputsOf(old, live) };
  },

  async update(_id, olds, news) {
    const args = parseArgs(glusterVolumeSchema, news);
    const host = getHost(args.connection);
    const live = await inspectVolume(host, args.name);
    if (!live) throw new GlusterLibvirtError(`Gluster volume '${args.name}' no longer exists on ${host.label}; run \`pulumi refresh\`, and the next up creates it`);
    // Options no longer declared go back to glusterd's defaults (never sharding: refusedChanges).
    const dropped = Object.keys(olds.options ?? {}).filter((key) => !(key in args.options) && key !== SHARD_OPTION);
    await converge(host, args, live, dropped);
    return { outs: await readOutputs(host, args) };
  },

  async delete(id, props) {
    const old = stateOf(props);
    const host = getHost(old.connection);
    const live = await inspectVolume(host, old.name);
    // Already gone, or another volume of that name (made by hand since): never ours to delete.
    if (!live || (id && live.id !== id)) return;
    if (live.status === "Started") {
      if (!old.forceDestroy) await refuseIfUsed(host, old.name, "unmount it first (delete the GlusterPools on it), or set forceDestroy: true");
      await gluster(host, ["volume", "stop", old.name, ...(old.forceDestroy ? ["force"] : [])]);
    }
    // Deletes the definition only: the bricks keep their files.
    await gluster(host, ["volume", "delete", old.name]).catch((err: unknown) => {
      if (!isNotFound(err, "gluster-volume")) throw err;
    });
    await forgetCreation(host, stampObject(old.name));
  },
};

/** What a Gluster volume is called in libvirt/stamps.ts. */
function stampObject(name: string): string {
  return `gluster-volume/${name}`;
}
