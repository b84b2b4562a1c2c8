/** Gluster volumes as the trusted storage pool has them, read through one of its servers. */
import { GlusterError, SafetyCheckError, isNotFound } from "../errors";
import type { Host } from "../host";
import {
  parseHealSummary,
  parseVolumeClients,
  parseVolumeGet,
  parseVolumeInfo,
  parseVolumeStatusDetail,
  type BrickClients,
  type BrickHeal,
  type BrickStatus,
  type GlusterVolumeInfo,
} from "../xml/gluster";
import { gluster, glusterText } from "./cli";

/** The volume named `name`, or undefined when the pool has none of that name. */
export async function inspectVolume(host: Host, name: string): Promise<GlusterVolumeInfo | undefined> {
  let xml: string;
  try {
    xml = await gluster(host, ["volume", "info", name]);
  } catch (err) {
    if (isNotFound(err, "gluster-volume")) return undefined;
    throw err;
  }
  const found = parseVolumeInfo(xml).find((v) => v.name === name);
  return found;
}

/** One kind of client of a volume as `volume status VOL client-list` counts them: `fuse`, `gfapi.qemu-system-x86`, … */
export interface ClientKind {
  name: string;
  count: number;
}

/**
 * The plain-text `client-list` table (its `--xml` form carries no clients in glusterfs
 * 10.3). Undefined when the text is not that table or its rows do not add up to the total
 * it prints: then nobody can say who is connected.
 */
export function parseClientList(textOut: string): ClientKind[] | undefined {
  const lines = textOut.split("\n");
  const header = lines.findIndex((l) => /^-{3,}\s+-{3,}\s*$/.test(l.trim()));
  const total = /total clients for volume \S+ : (\d+)/.exec(textOut);
  if (header < 0 || !total) return undefined;
  const kinds: ClientKind[] = [];
  for (const line of lines.slice(header + 1)) {
    const m = /^(\S+)\s+(\d+)$/.exec(line.trim());
    if (!m) break;
    kinds.push({ name: m[1], count: Number(m[2]) });
  }
  return kinds.reduce((sum, k) => sum + k.count, 0) === Number(total[1]) ? kinds : undefined;
}

/**
 * Clients that are Gluster's own daemons, started by glusterd for the volume itself
 * (self-heal, quota, snapshots, bitrot, rebalance), not users of its data.
 */
export const INTERNAL_CLIENTS = ["glustershd", "quotad", "snapd", "bitd", "scrub", "rebalance", "gfproxyd", "tierd"] as const;

/**
 * Who uses the volume, in words, or undefined when nobody does: every client kind other
 * than Gluster's own daemons, and the connections the bricks see (which include those
 * daemons'). Pure; `kinds` undefined (an unreadable client-list) counts every connection.
 */
export function describeClients(kinds: readonly ClientKind[] | undefined, bricks: readonly BrickClients[]): string | undefined {
  const connections = [...new Set(bricks.flatMap((b) => b.clients))];
  if (kinds === undefined) return connections.length ? `${connections.length} client connection(s) (${connections.join(", ")})` : undefined;
  const users = kinds.filter((k) => !(INTERNAL_CLIENTS as readonly string[]).includes(k.name) && k.count > 0);
  if (!users.length) return undefined;
  const who = users.map((k) => `${k.name} ×${k.count}`).join(", ");
  return `${who} (connections the bricks see, Gluster's own daemons among them: ${connections.join(", ") || "none listed"})`;
}

/**
 * Who is connected to a started volume (see describeClients), or undefined. Fails closed:
 * a status that cannot be read is a SafetyCheckError, never "nobody".
 */
export async function volumeUsers(host: Host, name: string): Promise<string | undefined> {
  try {
    const bricks = parseVolumeClients(await gluster(host, ["volume", "status", name, "clients"]));
    const kinds = parseClientList(await glusterText(host, ["volume", "status", name, "client-list"]).catch(() => ""));
    return describeClients(kinds, bricks);
  } catch (err) {
    throw new SafetyCheckError(`could not tell who is connected to Gluster volume '${name}' on ${host.label}: ${(err as Error).message}`, { cause: err });
  }
}

/** Each brick's state, port and free space; the volume must be started. */
export async function volumeStatusDetail(host: Host, name: string): Promise<BrickStatus[]> {
  return parseVolumeStatusDetail(await gluster(host, ["volume", "status", name, "detail"]));
}

/** Pending heals per brick, or "not-replicated" (no self-heal for that volume type). */
export async function volumeHealSummary(host: Host, name: string): Promise<BrickHeal[] | "not-replicated"> {
  const argv = ["volume", "heal", name, "info", "summary"];
  try {
    return parseHealSummary(await gluster(host, argv));
  } catch (err) {
    // gluster() throws on opRet -1, which is also how a distribute volume is answered
    if (err instanceof GlusterError && /not of type replicate\/disperse/i.test(err.stderr)) return "not-replicated";
    throw err;
  }
}

/** An option's effective value (`volume get`): the one set, else glusterd's default. */
export async function volumeOption(host: Host, name: string, option: string): Promise<string | undefined> {
  return parseVolumeGet(await gluster(host, ["volume", "get", name, option]), option);
}

/** glusterd's own configuration on this server, undefined when it cannot be read. */
export async function readGlusterdVol(host: Host): Promise<string | undefined> {
  const r = await host.exec(["cat", "/etc/glusterfs/glusterd.vol"], { check: false });
  return r.code === 0 ? r.stdout : undefined;
}
