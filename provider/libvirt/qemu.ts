/**
 * The QEMU user of a hypervisor: libvirt-qemu (Debian) or qemu (RHEL). Files QEMU opens
 * must be theirs. Asked once per host and provider process (a run): the answer cannot
 * change while libvirtd runs. A failed lookup is not remembered.
 */
import type { Host } from "../host";
import type { Permissions } from "../xml/markup";

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

/**
 * The one rule for the ownership of what QEMU must open (a pool's mount point, a volume's
 * file): `wanted` as given; where it lacks the owner or the group, those of `inherit` when
 * it names both, else those of the host's QEMU user (asked only then); `mode` unless
 * `wanted` has one.
 */
export async function permissionsWithDefaults(
  host: Host,
  wanted: Permissions | undefined,
  defaults: { mode: string; inherit?: Permissions },
): Promise<Permissions> {
  const owner = ownershipOf(wanted) ? undefined : ownershipOf(defaults.inherit) ?? (await qemuIdentity(host));
  return { mode: defaults.mode, ...owner, ...wanted };
}

function ownershipOf(p: Permissions | undefined): Ownership | undefined {
  return p?.owner !== undefined && p.group !== undefined ? { owner: p.owner, group: p.group } : undefined;
}

/**
 * Can QEMU's user open the file with these permissions? `undefined` when that cannot be
 * told (permissions or QEMU's identity unknown). Two decisions rest on it: a gfapi disk
 * (Gluster checks QEMU as itself, libvirt relabels nothing) is refused only on a sure
 * `false`; a fuse disk keeps its file's owner (`relabel='no'`) only on a sure `true` —
 * otherwise libvirt chowns it to QEMU as usual, and ImageVolume sees the change on refresh.
 */
export function qemuMayOpen(perms: Permissions | undefined, qemu: { owner: number; group: number } | undefined, readonly: boolean): boolean | undefined {
  if (!perms?.mode || perms.owner === undefined || perms.group === undefined || !qemu) return undefined;
  if (qemu.owner === 0) return true;
  const mode = parseInt(perms.mode, 8);
  const shift = perms.owner === qemu.owner ? 6 : perms.group === qemu.group ? 3 : 0;
  const need = readonly ? 4 : 6;
  return ((mode >> shift) & need) === need;
}
