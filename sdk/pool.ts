import * as pulumi from "@pulumi/pulumi";
import type { PoolInputs, PoolOutputs } from "../provider/pool";
import { connectionsInput, type Connection } from "./connection";
import { GlusterLibvirtResource, keysOf, type SameKeys } from "./provider";

export interface GlusterPoolArgs {
  /** The hypervisor, reached over SSH. Changing `host` replaces the pool; other connection settings update in place. */
  connection: pulumi.Input<Connection>;
  /** libvirt pool name (1-128 of `A-Za-z0-9_.+-`). Changing it replaces the pool. */
  name: pulumi.Input<PoolInputs["name"]>;
  /** Gluster volume to use (must exist and be started). Replaces on change. */
  volume: pulumi.Input<PoolInputs["volume"]>;
  /**
   * Gluster servers, first one first. netfs: the first serves the volfile, the rest
   * become FUSE `backup-volfile-servers`. Replaces on change.
   */
  servers: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * `"netfs"` (default): libvirt mounts the volume through FUSE at `targetPath`; volumes
   * can be created, uploaded, cloned. `"gluster"`: libvirt's native libgfapi pool, which
   * can only list and delete volumes. Replaces on change.
   */
  type?: pulumi.Input<PoolInputs["type"]>;
  /** netfs mount point on the hypervisor. Default `/var/lib/libvirt/gluster/<name>`. Replaces on change. */
  targetPath?: pulumi.Input<string>;
  /**
   * netfs: ownership (numeric uid/gid) and mode of the mount point; ImageVolumes in the
   * pool default to this ownership. Default: the host's QEMU user (`libvirt-qemu` or
   * `qemu`), mode `0755`. Updates in place.
   */
  permissions?: pulumi.Input<PoolInputs["permissions"]>;
  /** netfs: extra FUSE mount options, e.g. `["log-level=WARNING"]`. Replaces on change. */
  mountOptions?: pulumi.Input<pulumi.Input<string>[]>;
  /** Start the pool when libvirtd starts. Default true. Updates in place. */
  autostart?: pulumi.Input<boolean>;
  /**
   * Take over a pool of this name that already exists on the host, provided its
   * definition matches; without it an existing pool is an error. Default false.
   */
  adopt?: pulumi.Input<boolean>;
  /** Delete the pool even while VMs use its volumes (their disks break). Default false. */
  forceDestroy?: pulumi.Input<boolean>;
  /**
   * The hypervisors sharing this pool so that VMs migrate between them (all of them, this
   * one among them; `GlusterStorage` sets it), and `access`, how those VMs' disks reach
   * the images (`auto` default, `gfapi`, `fuse`, as DiskAttachment's). A layout a VM could
   * not migrate in is refused, naming why: at preview mixed libvirt URIs and fuse on a
   * native pool; at create (and update) QEMU users that differ between hosts (unless
   * `permissions` give an owner/group every host's QEMU has) and a gluster driver some
   * hosts lack where gfapi disks (or `auto`, which would attach them) need it. Updates in place.
   */
  migration?: pulumi.Input<{ hypervisors: pulumi.Input<pulumi.Input<Connection>[]>; access?: pulumi.Input<NonNullable<PoolInputs["migration"]>["access"]> }>;
}

// Every provider input has an Args field and vice versa.
const argsMatchSchema: SameKeys<GlusterPoolArgs, PoolInputs> = true;
void argsMatchSchema;

/** Every output, each once (compile-checked against PoolOutputs): each becomes an Output property even when unset. */
export const OUTPUT_KEYS = keysOf<PoolOutputs>({
  connection: true, name: true, volume: true, servers: true, type: true, targetPath: true, permissions: true, mountOptions: true,
  autostart: true, adopt: true, forceDestroy: true, migration: true,
  uuid: true, state: true, capacity: true, allocation: true, available: true, effectivePermissions: true, glusterUrl: true,
});

/**
 * A libvirt storage pool backed by a Gluster volume (`<pool type='netfs'>` with
 * `<format type='glusterfs'/>`, or a native `<pool type='gluster'>`).
 */
export class GlusterPool extends GlusterLibvirtResource {
  declare readonly connection: pulumi.Output<Connection>;
  declare readonly name: pulumi.Output<string>;
  declare readonly volume: pulumi.Output<string>;
  declare readonly servers: pulumi.Output<string[]>;
  declare readonly type: pulumi.Output<"netfs" | "gluster">;
  /** netfs mount point (absent for native gluster pools). */
  declare readonly targetPath: pulumi.Output<string | undefined>;
  declare readonly permissions: pulumi.Output<PoolOutputs["permissions"]>;
  declare readonly mountOptions: pulumi.Output<string[] | undefined>;
  declare readonly autostart: pulumi.Output<boolean>;
  declare readonly adopt: pulumi.Output<boolean>;
  declare readonly forceDestroy: pulumi.Output<boolean>;
  declare readonly migration: pulumi.Output<PoolOutputs["migration"]>;
  /** libvirt's uuid of the pool (also the resource id). */
  declare readonly uuid: pulumi.Output<string>;
  /** `running`, `inactive`, … as `virsh pool-info` says. */
  declare readonly state: pulumi.Output<string>;
  /** Bytes, as libvirt reports for the pool. */
  declare readonly capacity: pulumi.Output<number>;
  declare readonly allocation: pulumi.Output<number>;
  declare readonly available: pulumi.Output<number>;
  /** Ownership and mode applied to the mount point. */
  declare readonly effectivePermissions: pulumi.Output<PoolOutputs["effectivePermissions"]>;
  /** `gluster://SERVER/VOLUME`. */
  declare readonly glusterUrl: pulumi.Output<string>;

  static override isInstance(obj: unknown): obj is GlusterPool {
    return obj instanceof GlusterPool;
  }

  constructor(name: string, args: GlusterPoolArgs, opts?: pulumi.CustomResourceOptions) {
    // the hypervisors' connections are secret when any carries credentials, as `connection` is
    const migration = args.migration && pulumi.output(args.migration).apply((m) => connectionsInput(m.hypervisors).apply((hypervisors) => ({ ...m, hypervisors })));
    super("GlusterPool", name, { ...args, ...(migration ? { migration } : {}) }, OUTPUT_KEYS, opts);
  }
}
