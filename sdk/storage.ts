import * as pulumi from "@pulumi/pulumi";
import { connectionsInput, type Connection } from "./connection";
import { GlusterPool, type GlusterPoolArgs } from "./pool";

export interface GlusterStorageArgs extends Omit<GlusterPoolArgs, "connection" | "migration"> {
  /**
   * The hypervisors that all get the pool. Each `host` is a plain string: it names the
   * per-host pool resource, so adding or removing a host touches only that host.
   */
  hypervisors: (Omit<Connection, "host"> & { host: string })[];
  /**
   * How the disks of VMs on this storage reach the images — pass `storage.access` to each
   * DiskAttachment's `access`: `"auto"` (default), `"gfapi"` or `"fuse"`. Every pool is
   * checked against it (GlusterPool's `migration`): a layout between whose hosts a VM
   * could not migrate is refused, at preview where the inputs show it, else at create.
   */
  access?: pulumi.Input<"auto" | "gfapi" | "fuse">;
}

/**
 * The same Gluster-backed pool on every hypervisor of a cluster: VMs can only migrate
 * between hosts that all have it. One `GlusterPool` per host, as children.
 */
export class GlusterStorage extends pulumi.ComponentResource {
  /** host → its pool */
  readonly pools: Record<string, GlusterPool>;
  /** the libvirt pool name, the same on every host; known once every host has the pool */
  readonly poolName: pulumi.Output<string>;
  /**
   * The hypervisors' connections, as given: a DiskAttachment's `hypervisors`, so that it
   * finds its domain on whichever of them runs it after a live migration.
   */
  readonly hypervisors: pulumi.Output<Connection[]>;
  /** the disks' access the pools were checked for: a DiskAttachment's `access` */
  readonly access: pulumi.Output<"auto" | "gfapi" | "fuse">;

  constructor(name: string, args: GlusterStorageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("gluster-libvirt:index:GlusterStorage", name, {}, opts);
    const { hypervisors, access, ...pool } = args;
    const hosts = hypervisors.map((h) => h.host);
    const duplicate = hosts.find((h, i) => hosts.indexOf(h) !== i);
    if (duplicate) throw new Error(`GlusterStorage ${name}: hypervisors: ${duplicate} is listed twice`);
    if (!hosts.length) throw new Error(`GlusterStorage ${name}: hypervisors: name at least one host`);
    this.hypervisors = connectionsInput(hypervisors);
    this.access = pulumi.output(access ?? "auto");
    const migration = { hypervisors: this.hypervisors, access: this.access };
    this.pools = Object.fromEntries(
      hypervisors.map((connection) => [connection.host, new GlusterPool(`${name}-${connection.host}`, { ...pool, connection, migration }, { parent: this })]),
    );
    // from the pools, so that what uses the name (a DiskAttachment) waits until every host has the pool
    this.poolName = pulumi.all(Object.values(this.pools).map((p) => p.name)).apply((names) => names[0]);
    this.registerOutputs({ poolName: this.poolName, hypervisors: this.hypervisors, access: this.access });
  }
}
