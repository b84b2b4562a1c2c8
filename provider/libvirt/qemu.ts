/**
 * The QEMU user of a hypervisor: libvirt-qemu (Debian) or qemu (RHEL). Files QEMU opens
 * must be theirs. Asked once per host and provider process (a run): the answer cannot
 * change while libvirtd runs. A failed lookup is not remembered.
 */
import type { Host } from "../host";

export interface Ownership {
  owner: number;
  group: number;
}

const byHost = new Map<string, Promise<Ownership | undefined>>();

export function qemuIdentity(host: Host): Promise<Ownership | undefined> {
  let known = byHost.get(host.label);
  if (!known) {
    known = lookUp(host);
    known.catch(() => byHost.delete(host.label));
    byHost.set(host.label, known);
  }
  return known;
}

async function lookUp(host: Host): Promise<Ownership | undefined> {
  for (const user of ["libvirt-qemu", "qemu"]) {
    const r = await host.exec(["id", "-u", user], { check: false });
    if (r.code !== 0) continue;
    const g = await host.exec(["id", "-g", user]);
    return { owner: Number(r.stdout.trim()), group: Number(g.stdout.trim()) };
  }
  return undefined;
}
