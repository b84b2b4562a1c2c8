/**
 * Domains as the host has them. virsh resolves a domain argument as an id first, then a
 * uuid, then a name, so a shut-off domain named `3` would be read as the domain whose id
 * is 3: every lookup here goes by uuid.
 */
import { GlusterLibvirtError, SafetyCheckError, isNotFound } from "../errors";
import type { Host } from "../host";
import { parseDomainDisks, parseDomainSummary, type DomainDisk, type DomainSummary } from "../xml/disk";
import { listing, parseInfo, parseNames } from "./output";

export interface DomainView {
  uuid: string;
  name: string;
  summary: DomainSummary;
  running: boolean;
  persistentDisks: DomainDisk[];
  /** empty while the domain is shut off */
  liveDisks: DomainDisk[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Every domain on the host, running or not: uuid → name. */
export async function listDomains(host: Host): Promise<Map<string, string>> {
  const domains = new Map<string, string>();
  for (const line of parseNames(await listing(host, ["list", "--all", "--uuid", "--name"]))) {
    const [uuid, ...name] = line.split(" ");
    if (!UUID.test(uuid)) throw new GlusterLibvirtError(`unexpected line in \`virsh list --all --uuid --name\`: ${JSON.stringify(line)}`);
    domains.set(uuid, name.join(" ").trim());
  }
  return domains;
}

/** The domain with this uuid (its live and persistent definitions), or undefined when it does not exist. */
export async function inspectDomain(host: Host, uuid: string): Promise<DomainView | undefined> {
  try {
    const persistentXml = await host.virsh(["dumpxml", "--inactive", uuid]);
    const liveXml = await host.virsh(["dumpxml", uuid]);
    const summary = parseDomainSummary(liveXml);
    const running = summary.id !== undefined;
    return { uuid, name: summary.name, summary, running, persistentDisks: parseDomainDisks(persistentXml), liveDisks: running ? parseDomainDisks(liveXml) : [] };
  } catch (err) {
    if (isNotFound(err, "domain")) return undefined;
    throw err;
  }
}

/** The domain named `name`, or undefined when there is none. */
export async function findDomain(host: Host, name: string): Promise<DomainView | undefined> {
  for (const [uuid, n] of await listDomains(host)) {
    if (n !== name) continue;
    const dom = await inspectDomain(host, uuid);
    // Renamed or redefined between the listing and the read: it is not this name any more.
    return dom?.name === name ? dom : undefined;
  }
  return undefined;
}

/** A domain and the hypervisor that has it. */
export interface LocatedDomain {
  host: Host;
  dom: DomainView;
}

/**
 * The one hypervisor of `hosts` (hypervisors sharing storage, between which the domain may
 * migrate) that has the domain `lookup` finds there, or undefined when none has it. Every
 * host is asked; fails closed: a host that cannot be asked could be the one (SafetyCheckError
 * naming it), and a domain on several hosts (a migration under way, or a definition left
 * behind by `virsh migrate` without `--undefinesource`) is an error naming them, since
 * acting on one would leave the disk on the other. One host: its answer, errors as they are.
 */
export async function locateDomain(hosts: readonly Host[], lookup: (host: Host) => Promise<DomainView | undefined>, what: string): Promise<LocatedDomain | undefined> {
  if (hosts.length === 1) {
    const dom = await lookup(hosts[0]);
    return dom && { host: hosts[0], dom };
  }
  const answers = await Promise.allSettled(hosts.map(lookup));
  const unasked = answers.flatMap((a, i) => (a.status === "rejected" ? [`${hosts[i].label} (${String((a.reason as Error)?.message ?? a.reason).split("\n")[0]})`] : []));
  if (unasked.length) {
    throw new SafetyCheckError(`cannot tell which hypervisor has ${what}: could not ask ${unasked.join(", ")}; nothing was changed`, {
      cause: answers.find((a) => a.status === "rejected")?.reason,
    });
  }
  const found = answers.flatMap((a, i) => (a.status === "fulfilled" && a.value ? [{ host: hosts[i], dom: a.value }] : []));
  if (found.length > 1) {
    const where = found.map((f) => `${f.host.label} (${f.dom.running ? "running" : "shut off"})`).join(", ");
    throw new GlusterLibvirtError(`${what} is defined on ${found.length} hypervisors: ${where}; nothing was changed`, {
      details: "A migration may be under way (retry when it has finished), or `virsh migrate` left the definition on the source: migrate with `--persistent --undefinesource`, or undefine the copy that does not run.",
    });
  }
  return found[0];
}

/**
 * The size in bytes QEMU gives a running domain's disk (`domblkinfo`'s Capacity: for a
 * running domain libvirt asks QEMU, so a file grown behind QEMU's back still shows the
 * old size). `target` is the guest device name, which virsh accepts for file and network
 * disks alike.
 */
export async function blockDeviceCapacity(host: Host, uuid: string, target: string): Promise<number> {
  const text = await host.virsh(["domblkinfo", uuid, target]);
  const capacity = parseInfo(text).Capacity;
  if (capacity === undefined || !/^\d+$/.test(capacity)) throw new GlusterLibvirtError(`unexpected \`virsh domblkinfo\` output for disk ${target}: ${JSON.stringify(text)}`);
  return Number(capacity);
}

/**
 * Tells the QEMU of a running domain that its disk `target` is now `bytes` long
 * (`blockresize`, size in bytes: virsh reads a `B` suffix as bytes). QEMU resizes the
 * image through its own block driver: a raw file already that long stays as it is, a
 * qcow2 image gets its new virtual size written by QEMU.
 */
export async function resizeBlockDevice(host: Host, uuid: string, target: string, bytes: number): Promise<void> {
  await host.virsh(["blockresize", uuid, target, `${bytes}B`]);
}

const domainQueues = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` after every earlier call for the same domain on the same host has settled:
 * changes to one domain are queued here, in the provider, instead of racing for
 * libvirt's per-domain job lock (which makes a waiter give up after 30 s). Keyed by
 * name: the uuid is what `fn` looks up.
 */
export function withDomainLock<T>(host: Host, domain: string, fn: () => Promise<T>): Promise<T> {
  const key = `${host.label}\0${domain}`;
  const run = (domainQueues.get(key) ?? Promise.resolve()).then(fn, fn);
  const settled = run.then(() => undefined, () => undefined);
  domainQueues.set(key, settled);
  void settled.then(() => {
    if (domainQueues.get(key) === settled) domainQueues.delete(key);
  });
  return run;
}
