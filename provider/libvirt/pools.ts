/** Storage pools as the host has them. */
import { InputError, isNotFound } from "../errors";
import type { Host } from "../host";
import { listing, parseInfo, parseNames } from "./output";
import { parsePoolSummary, parsePoolXml, type PoolInfo, type PoolSummary } from "../xml/pool";

export interface PoolView {
  info: PoolInfo;
  /** running | inactive | building | degraded | inaccessible */
  state: string;
  autostart: boolean;
}

/** The Gluster pool named `name` (definition, state, autostart), or undefined when it is not defined. */
export async function inspectPool(host: Host, name: string): Promise<PoolView | undefined> {
  let infoText: string;
  try {
    infoText = await host.virsh(["pool-info", name]);
  } catch (err) {
    if (isNotFound(err, "pool")) return undefined;
    throw err;
  }
  const fields = parseInfo(infoText);
  const info = parsePoolXml(await host.virsh(["pool-dumpxml", name]));
  return { info, state: fields["State"] ?? "unknown", autostart: fields["Autostart"] === "yes" };
}

export async function requireRunningPool(host: Host, name: string, field = "pool"): Promise<PoolInfo> {
  const pool = await inspectPool(host, name);
  if (!pool) throw new InputError(field, `no storage pool named '${name}' on ${host.label}`);
  if (pool.state !== "running") throw new InputError(field, `storage pool '${name}' on ${host.label} is ${pool.state}, not running`);
  return pool.info;
}

export interface DefinedPool extends PoolSummary {
  uuid: string;
  active: boolean;
}

/**
 * Every pool defined on the host, of any type, active or not. Enumerated and read by
 * uuid, so no name (spaces, unicode, one that looks like another's uuid) is misread.
 * A pool undefined meanwhile is left out; any other failure throws.
 */
export async function listPools(host: Host): Promise<DefinedPool[]> {
  const pools: DefinedPool[] = [];
  for (const uuid of parseNames(await listing(host, ["pool-list", "--all", "--uuid"]))) {
    try {
      const fields = parseInfo(await host.virsh(["pool-info", uuid]));
      const summary = parsePoolSummary(await host.virsh(["pool-dumpxml", uuid]));
      pools.push({ ...summary, uuid, active: fields["State"] === "running" });
    } catch (err) {
      if (!isNotFound(err, "pool")) throw err;
    }
  }
  return pools;
}
