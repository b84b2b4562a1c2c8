import * as pulumi from "@pulumi/pulumi";
import { connectionsInput, type Connection } from "./connection";
import { GlusterPool, type GlusterPoolArgs } from "./pool";

export interface GlusterStorageArgs extends Omit<GlusterPoolArgs, "connection"> {
  /**
   * The hypervisors that all get the pool. Each `host` is a plain string: it names the
   * per-host pool resource, so adding or removing a host touches only that host.
   */
  hypervisors: (Omit<Connection, "host"> & { host: string })[];
}

/**
 * The same Gluster-backed pool on every hypervisor of a cluster: VMs can only migrate
 * between hosts that all have it. One `GlusterPool` per host, as children.
 */
export class GlusterStorage extends pulumi.ComponentResource {
  /** host → its pool */
  readonly pools: Record<string, GlusterPool>;
  /** the libvirt pool name, the same on every host */
  readonly poolName: pulumi.Output<string>;
  /**
   * The hypervisors' connections, as given: a DiskAttachment's `hypervisors`, so that it
   * finds its domain on whichever of them runs it after a live migration.
   */
  readonly hypervisors: pulumi.Output<Connection[]>;

  constructor(name: string, args: GlusterStorageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("gluster-libvirt:index:GlusterStorage", name, {}, opts);
    const { hypervisors, ...pool } = args;
    const hosts = hypervisors.map((h) => h.host);
    const duplicate = hosts.find((h, i) => hosts.indexOf(h) !== i);
    if (duplicate) throw new Error(`GlusterStorage ${name}: hypervisors: ${duplicate} is listed twice`);
    if (!hosts.length) throw new Error(`GlusterStorage ${name}: hypervisors: name at least one host`);
    this.pools = Object.fromEntries(
      hypervisors.map((connection) => [connection.host, new GlusterPool(`${name}-${connection.host}`, { ...pool, connection }, { parent: this })]),
    );
    this.poolName = pulumi.output(args.name);
    this.hypervisors = connectionsInput(hypervisors);
    this.registerOutputs({ poolName: this.poolName, hypervisors: this.hypervisors });
  }
}
