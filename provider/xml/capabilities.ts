/**
 * What a hypervisor's libvirt says it can do: `virsh pool-capabilities` (which storage pool
 * backends this libvirtd has) and the DAC label of `virsh capabilities` (the uid:gid QEMU
 * runs as). Pure: no I/O. Fixtures in test/unit/fixtures/virsh-*.
 */
import { attr, child, children, parseRoot, text } from "./markup";

export interface PoolBackends {
  /** a `netfs` pool backend (mount/umount) */
  netfs: boolean;
  /** `glusterfs` among netfs's source formats: a netfs pool can mount a Gluster volume through FUSE */
  netfsGlusterfs: boolean;
  /** the native `gluster` pool backend (libvirt-daemon-driver-storage-gluster) */
  gluster: boolean;
}

/** `virsh pool-capabilities` (libvirt ≥ 5.2). */
export function parsePoolCapabilities(xml: string): PoolBackends {
  const pools = children(parseRoot(xml, "storagepoolCapabilities"), "pool");
  const supported = (type: string) => pools.find((p) => attr(p, "type") === type && attr(p, "supported") === "yes");
  const netfs = supported("netfs");
  const formats = children(child(netfs, "poolOptions"), "enum")
    .filter((e) => attr(e, "name") === "sourceFormatType")
    .flatMap((e) => children(e, "value").map((v) => (text(v) ?? "").trim()));
  return { netfs: netfs !== undefined, netfsGlusterfs: formats.includes("glusterfs"), gluster: supported("gluster") !== undefined };
}

/**
 * The uid and gid QEMU processes run as: the DAC security model's base label of
 * `virsh capabilities` (`+64055:+64055`), which is qemu.conf's user/group as libvirtd
 * resolved them. `id -g libvirt-qemu` can differ (Debian: the user's primary group is
 * `kvm`, but QEMU runs with group `libvirt-qemu`). Undefined when there is no such label.
 */
export function parseQemuDacLabel(xml: string): { uid: number; gid: number } | undefined {
  const host = child(parseRoot(xml, "capabilities"), "host");
  const dac = children(host, "secmodel").find((m) => (text(child(m, "model")) ?? "").trim() === "dac");
  const labels = children(dac, "baselabel");
  const label = labels.find((l) => attr(l, "type") === "kvm") ?? labels.find((l) => attr(l, "type") === "qemu") ?? labels[0];
  const m = /^\+?(\d+):\+?(\d+)$/.exec((text(label) ?? "").trim());
  return m ? { uid: Number(m[1]), gid: Number(m[2]) } : undefined;
}
