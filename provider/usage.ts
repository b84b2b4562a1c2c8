import type { Host } from "./host";
import { isNotFound } from "./errors";
import { parseNames } from "./virshOutput";
import { parseDomainDisks, type DomainDisk } from "./xml/disk";

export interface DiskUse {
  domain: string;
  target: string;
  /** where the disk was found: the running domain, its persistent definition, or both */
  in: ("live" | "persistent")[];
}

/**
 * Every disk of every domain on the host — running and persistent definitions alike —
 * that `matches` accepts. libvirt does not stop anyone from deleting storage a VM
 * uses; this scan is how our deletes refuse to.
 */
export async function findDiskUses(host: Host, matches: (disk: DomainDisk) => boolean): Promise<DiskUse[]> {
  const uses = new Map<string, DiskUse>();
  const domains = parseNames(await host.virsh(["list", "--all", "--name"]));
  const running = new Set(parseNames(await host.virsh(["list", "--name"])));
  for (const domain of domains) {
    // A shut-off domain's plain dumpxml is its persistent definition: only running
    // domains have a live one.
    const views = [["persistent", ["dumpxml", "--inactive", domain]]] as [DiskUse["in"][number], string[]][];
    if (running.has(domain)) views.unshift(["live", ["dumpxml", domain]]);
    for (const [flavour, args] of views) {
      let xml: string;
      try {
        xml = await host.virsh(args);
      } catch (err) {
        if (isNotFound(err)) continue; // the domain vanished meanwhile: it uses nothing
        throw err;
      }
      for (const disk of parseDomainDisks(xml).filter(matches)) {
        const key = `${domain}\0${disk.target ?? "?"}`;
        const use = uses.get(key) ?? { domain, target: disk.target ?? "?", in: [] };
        if (!use.in.includes(flavour)) use.in.push(flavour);
        uses.set(key, use);
      }
    }
  }
  return [...uses.values()];
}

/** "vm1 (vdb, live+persistent), vm2 (sda, persistent)" */
export function describeUses(uses: readonly DiskUse[]): string {
  return uses.map((u) => `${u.domain} (${u.target}, ${u.in.join("+")})`).join(", ");
}
