import * as pulumi from "@pulumi/pulumi";
import type { DiskInputs, DiskOutputs } from "../provider/disk";
import type { Connection } from "./connection";
import { GlusterLibvirtResource, keysOf, type SameKeys } from "./provider";

export interface DiskAttachmentArgs {
  /**
   * The hypervisor, reached over SSH (or `hypervisors`). Changing `host` replaces the
   * attachment; other connection settings update in place.
   */
  connection?: pulumi.Input<Connection>;
  /**
   * Instead of `connection`: the hypervisors that share the pool, between which the domain
   * may migrate (a `GlusterStorage`'s `hypervisors`). Every step finds the domain, by uuid,
   * on whichever of them has it, and acts there; a domain on none of them is gone, one on
   * several (a migration under way, a definition left behind) or a hypervisor that cannot
   * be asked is an error naming them. Another list updates in place while it keeps a host
   * of the old one; none in common replaces.
   */
  hypervisors?: pulumi.Input<pulumi.Input<Connection>[]>;
  /** libvirt domain (VM) name. Replaces on change. */
  domain: pulumi.Input<string>;
  /** The GlusterPool (libvirt pool name) holding the volume. Replaces on change. */
  pool: pulumi.Input<string>;
  /** The volume (image file) in that pool; its format (raw/qcow2) is taken from libvirt. Replaces on change. */
  volume: pulumi.Input<string>;
  /** Guest device name: `vdX` (virtio), `sdX` (scsi, sata), `hdX` (ide). Replaces on change. */
  target: pulumi.Input<string>;
  /** `virtio` | `scsi` | `sata` | `ide`. Default from the target: vd → virtio, sd → scsi, hd → ide. Replaces on change. */
  bus?: pulumi.Input<NonNullable<DiskInputs["bus"]>>;
  /**
   * How QEMU reaches the image. `"gfapi"`: a `<disk type='network'>` with every Gluster
   * server of the pool as a `<host>`, opened through libgfapi (needs QEMU's gluster block
   * driver, and a file QEMU's user may open). `"fuse"`: a `<disk type='file'>` on the netfs
   * pool's mount. `"auto"` (default): gfapi where the host's QEMU has the gluster driver,
   * else fuse; decided once at create (see `resolvedAccess`). Replaces on change.
   */
  access?: pulumi.Input<NonNullable<DiskInputs["access"]>>;
  /**
   * QEMU driver options: `cache` (default `"none"`, the safe choice on shared storage),
   * `io` (`threads` | `native` | `io_uring`), `discard` (`unmap` | `ignore`). The format
   * comes from the volume. libvirt cannot change these on an attached disk: replaces.
   */
  driver?: pulumi.Input<NonNullable<DiskInputs["driver"]>>;
  /** Attach read-only. Default false. Replaces on change. */
  readonly?: pulumi.Input<boolean>;
  /** Allow other domains to attach the same image (`<shareable/>`). Default false. Replaces on change. */
  shareable?: pulumi.Input<boolean>;
  /** Serial number the guest sees (1-36 of `A-Za-z0-9_.+-`; virtio guests see the first 20). Replaces on change. */
  serial?: pulumi.Input<string>;
  /**
   * Default true: on a running domain, hot-plug the disk as well as adding it to the
   * persistent definition. false: persistent definition only (the disk appears at the
   * next start). A shut-off domain always gets the persistent definition only. Updates in place.
   */
  live?: pulumi.Input<boolean>;
  /** Seconds to wait for the guest to release the disk on a live detach. Default 30. Updates in place. */
  detachTimeout?: pulumi.Input<number>;
}

// Every provider input has an Args field and vice versa.
const argsMatchSchema: SameKeys<DiskAttachmentArgs, DiskInputs> = true;

/** Every output, each once (compile-checked against DiskOutputs): each becomes an Output property even when unset. */
export const OUTPUT_KEYS = keysOf<DiskOutputs>({
  connection: true, hypervisors: true, domain: true, pool: true, volume: true, target: true, bus: true, access: true, driver: true,
  readonly: true, shareable: true, serial: true, live: true, detachTimeout: true,
  resolvedAccess: true, diskXml: true, sourcePath: true, format: true, attachedLive: true, attachedPersistent: true, domainRunning: true, domainUuid: true,
});
void argsMatchSchema;

/**
 * A Gluster-backed volume attached to a libvirt domain as a disk, over libgfapi
 * (`<disk type='network'>`) or the pool's FUSE mount (`<disk type='file'>`), in the
 * persistent definition and, on a running domain, live.
 */
export class DiskAttachment extends GlusterLibvirtResource {
  declare readonly connection: pulumi.Output<Connection | undefined>;
  declare readonly hypervisors: pulumi.Output<Connection[] | undefined>;
  declare readonly domain: pulumi.Output<string>;
  declare readonly pool: pulumi.Output<string>;
  declare readonly volume: pulumi.Output<string>;
  declare readonly target: pulumi.Output<string>;
  declare readonly bus: pulumi.Output<DiskOutputs["bus"]>;
  declare readonly access: pulumi.Output<DiskOutputs["access"]>;
  declare readonly driver: pulumi.Output<DiskOutputs["driver"]>;
  declare readonly readonly: pulumi.Output<boolean>;
  declare readonly shareable: pulumi.Output<boolean>;
  declare readonly serial: pulumi.Output<string | undefined>;
  declare readonly live: pulumi.Output<boolean>;
  declare readonly detachTimeout: pulumi.Output<number>;
  /** The access actually used: `gfapi` or `fuse`. */
  declare readonly resolvedAccess: pulumi.Output<DiskOutputs["resolvedAccess"]>;
  /** The `<disk>` element as defined. */
  declare readonly diskXml: pulumi.Output<string>;
  /** fuse: the image file on the mount; gfapi: `VOLUME/path` inside the Gluster volume. */
  declare readonly sourcePath: pulumi.Output<string>;
  /** The volume's format: `raw` or `qcow2`. */
  declare readonly format: pulumi.Output<DiskOutputs["format"]>;
  /** The disk is in the running domain (false while the domain is shut off). */
  declare readonly attachedLive: pulumi.Output<boolean>;
  /** The disk is in the domain's persistent definition. */
  declare readonly attachedPersistent: pulumi.Output<boolean>;
  declare readonly domainRunning: pulumi.Output<boolean>;
  /** libvirt's uuid of the domain. */
  declare readonly domainUuid: pulumi.Output<string>;

  static override isInstance(obj: unknown): obj is DiskAttachment {
    return obj instanceof DiskAttachment;
  }

  constructor(name: string, args: DiskAttachmentArgs, opts?: pulumi.CustomResourceOptions) {
    super("DiskAttachment", name, args, OUTPUT_KEYS, opts);
  }
}
