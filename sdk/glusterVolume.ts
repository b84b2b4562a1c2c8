import * as pulumi from "@pulumi/pulumi";
import type { GlusterVolumeInputs, GlusterVolumeOutputs } from "../provider/glusterVolume";
import type { Connection } from "./connection";
import { GlusterLibvirtResource, keysOf, type SameKeys } from "./provider";

export interface GlusterVolumeArgs {
  /**
   * A server of the trusted storage pool, reached over SSH; the `gluster` CLI runs there
   * as root (a root login or `sudo: true`). Any server of the pool manages the same
   * volume, so changing it (`host` included) only updates.
   */
  connection: pulumi.Input<Connection>;
  /** Gluster volume name (1-128 of `A-Za-z0-9_-`). Never changed: see `forceDestroy`. */
  name: pulumi.Input<GlusterVolumeInputs["name"]>;
  /**
   * Bricks, `SERVER:/DIRECTORY`, in Gluster's order (consecutive bricks form a replica or
   * disperse set). Never changed: a preview refuses a change unless `forceDestroy`.
   */
  bricks: pulumi.Input<pulumi.Input<string>[]>;
  /** Copies per replica set (`replica N`); omit for a volume without replication. Never changed. */
  replica?: pulumi.Input<number>;
  /** `1`: the last brick of each replica-3 set is an arbiter (metadata only). Never changed. */
  arbiter?: pulumi.Input<1>;
  /** Bricks per disperse (erasure-coded) set. Never changed. */
  disperse?: pulumi.Input<number>;
  /** With `disperse`: bricks per set that may fail; default glusterd's choice. Never changed. */
  redundancy?: pulumi.Input<number>;
  /** Create even with bricks on the root filesystem, or several copies on one server (`volume create … force`). Default false. */
  force?: pulumi.Input<boolean>;
  /**
   * Volume options by full name (`{"performance.cache-size": "256MB"}`), each set with
   * `volume set`; one removed from here is reset to glusterd's default. Options not named
   * here (or by the inputs below) are left as they are. Updates in place.
   */
  options?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /**
   * Gluster's profile for VM images (`gluster volume set VOL group virt`), spelled out as
   * its 25 options of glusterfs 10 (sharding, quorum, no client caches, O_DIRECT, …), which
   * the preview shows as options; a value in `options` wins. Sharding can never be turned
   * off again. Needs `replica`: glusterd refuses the group's self-heal options elsewhere. Default false.
   */
  virtProfile?: pulumi.Input<boolean>;
  /**
   * The hypervisors' QEMU user (`libvirt-qemu`, 64055 on Debian; `qemu`, 107 on RHEL):
   * `storage.owner-uid`/`storage.owner-gid`, so QEMU may open the volume's files through
   * libgfapi. Updates in place.
   */
  qemuOwner?: pulumi.Input<GlusterVolumeInputs["qemuOwner"]>;
  /** `server.allow-insecure on` (or `off`): clients on unprivileged ports, as QEMU's libgfapi is, may connect. */
  allowInsecure?: pulumi.Input<boolean>;
  /**
   * The volume's directory is listed by libvirt pools on several hypervisors (the usual
   * case): `performance.open-behind off` and `performance.stat-prefetch off`, without which
   * a pool refresh on one hypervisor fails "Stale file handle" whenever another deletes a
   * file meanwhile, and libvirt then stops that pool. Default false (the options are left
   * as they are). Updates in place.
   */
  sharedPools?: pulumi.Input<boolean>;
  /** Keep the volume started (`volume start`) or stopped. Default true. Updates in place. */
  started?: pulumi.Input<boolean>;
  /**
   * Take over a volume of this name that already exists, provided its bricks and layout
   * match; only the options declared here are then managed. Without it an existing volume
   * is an error. Default false.
   */
  adopt?: pulumi.Input<boolean>;
  /**
   * Allow what would otherwise be refused: deleting (or stopping) the volume while clients
   * are connected, and replacing it (delete + create) when its layout changes. Never deletes
   * the bricks' data. Default false.
   */
  forceDestroy?: pulumi.Input<boolean>;
}

// Every provider input has an Args field and vice versa.
const argsMatchSchema: SameKeys<GlusterVolumeArgs, GlusterVolumeInputs> = true;
void argsMatchSchema;

/** Every output, each once (compile-checked against GlusterVolumeOutputs): each becomes an Output property even when unset. */
export const OUTPUT_KEYS = keysOf<GlusterVolumeOutputs>({
  connection: true, name: true, bricks: true, replica: true, arbiter: true, disperse: true, redundancy: true, force: true,
  options: true, virtProfile: true, qemuOwner: true, allowInsecure: true, sharedPools: true, started: true, adopt: true, forceDestroy: true,
  volumeId: true, status: true, volumeType: true, servers: true,
});

/**
 * A Gluster volume of a trusted storage pool, managed with the `gluster` CLI on one of its
 * servers: created from bricks, its options and start state kept as declared. Deleting it
 * deletes the volume's definition, never the bricks' data.
 *
 * ```ts
 * const vol = new GlusterVolume("images", { connection: { host: "gs1", sudo: true }, name: "images",
 *   bricks: ["gs1:/data/images", "gs2:/data/images", "gs3:/data/images"], replica: 3,
 *   virtProfile: true, qemuOwner: { uid: 64055, gid: 64055 }, sharedPools: true });
 * new GlusterPool("images", { connection: { host: "kvm1" }, name: "images", volume: vol.name, servers: vol.servers });
 * ```
 */
export class GlusterVolume extends GlusterLibvirtResource {
  declare readonly connection: pulumi.Output<Connection>;
  declare readonly name: pulumi.Output<string>;
  /** The bricks as glusterd has them. */
  declare readonly bricks: pulumi.Output<string[]>;
  declare readonly replica: pulumi.Output<number | undefined>;
  declare readonly arbiter: pulumi.Output<1 | undefined>;
  declare readonly disperse: pulumi.Output<number | undefined>;
  declare readonly redundancy: pulumi.Output<number | undefined>;
  declare readonly force: pulumi.Output<boolean>;
  /** The declared options (the convenience inputs' among them) with the values the volume has. */
  declare readonly options: pulumi.Output<Record<string, string>>;
  declare readonly virtProfile: pulumi.Output<boolean>;
  declare readonly qemuOwner: pulumi.Output<GlusterVolumeOutputs["qemuOwner"]>;
  declare readonly allowInsecure: pulumi.Output<boolean | undefined>;
  declare readonly sharedPools: pulumi.Output<boolean>;
  /** Whether the volume is started. */
  declare readonly started: pulumi.Output<boolean>;
  declare readonly adopt: pulumi.Output<boolean>;
  declare readonly forceDestroy: pulumi.Output<boolean>;
  /** The volume's uuid (also the resource id). */
  declare readonly volumeId: pulumi.Output<string>;
  /** `Created`, `Started` or `Stopped`. */
  declare readonly status: pulumi.Output<string>;
  /** `Replicate`, `Distribute`, `Distributed-Replicate`, `Disperse`, … */
  declare readonly volumeType: pulumi.Output<string>;
  /** The bricks' servers, each once: what GlusterPool's `servers` takes. */
  declare readonly servers: pulumi.Output<string[]>;

  static override isInstance(obj: unknown): obj is GlusterVolume {
    return obj instanceof GlusterVolume;
  }

  constructor(name: string, args: GlusterVolumeArgs, opts?: pulumi.CustomResourceOptions) {
    super("GlusterVolume", name, args, OUTPUT_KEYS, opts);
  }
}
