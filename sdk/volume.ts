import * as pulumi from "@pulumi/pulumi";
import { hasUrlCredentials } from "../provider/errors";
import type { VolumeInputs, VolumeOutputs } from "../provider/volume";
import type { Connection } from "./connection";
import { GlusterLibvirtResource, keysOf, type SameKeys } from "./provider";

/** Where an ImageVolume's content comes from; give exactly one of `path`, `url`, `volume`. */
export interface ImageVolumeSource {
  /**
   * A file on the machine running Pulumi, streamed to the host over the SSH connection.
   * Holes are neither read (SEEK_DATA, where `perl` is installed) nor sent, nor are
   * all-zero 64 KiB blocks; the host verifies what it received by sha256. With a root
   * login or `connection.sudo` the data is written straight into the file on the pool's
   * FUSE mount, otherwise through `virsh vol-upload`. A changed file (its
   * `contentDigest`) replaces the volume. Relative paths are resolved against the
   * program's working directory. netfs pools only.
   */
  path?: pulumi.Input<string>;
  /**
   * Downloaded by the hypervisor itself (`curl`), never through the Pulumi machine. A URL
   * with a userinfo (`https://user:password@…`) or any query string (tokens, signed URLs)
   * counts as carrying credentials: `source` is then a secret (state and `preview --diff`
   * show `[secret]`), the URL reaches curl on its stdin rather than on the host's command
   * line, and errors show it as `https://***@host/path?***`.
   */
  url?: pulumi.Input<string>;
  /**
   * With `url` or `path`: the expected sha256 (hex) of the whole image, as `sha256sum`
   * prints it; also the `sha256` output. A mismatch fails creation and leaves no volume
   * behind. For `path` the file is hashed before anything is created: one more read of
   * every byte, holes included.
   */
  sha256?: pulumi.Input<string>;
  /** A full copy of this volume (`vol-create-from`). */
  volume?: pulumi.Input<string>;
  /** With `volume`: its pool. Default: this volume's pool. */
  pool?: pulumi.Input<string>;
}

export interface ImageVolumeArgs {
  /** The hypervisor, reached over SSH. Changing `host` replaces the volume. */
  connection: pulumi.Input<Connection>;
  /** The storage pool (a GlusterPool's `name`). Replaces on change. */
  pool: pulumi.Input<VolumeInputs["pool"]>;
  /** File name in the pool (1-128 of `A-Za-z0-9_.+-`). Replaces on change. */
  name: pulumi.Input<VolumeInputs["name"]>;
  /**
   * Virtual size: bytes, or a string with a unit: `"20GiB"`, `"512M"` (binary: K, M, G,
   * T, KiB, MiB, …) or `"100GB"` (decimal: KB, MB, GB, TB). Required for empty volumes;
   * for content and overlays it defaults to the content's / backing volume's size, and a
   * larger value grows the image. Growing later resizes in place, and every running
   * domain on this host with the image attached sees the new size at once (`virsh
   * blockresize`; a qcow2 image open in a running domain is grown by its QEMU). Shrinking
   * is refused (data loss) — replace the volume explicitly instead.
   */
  capacity?: pulumi.Input<number | string>;
  /**
   * `"raw"` or `"qcow2"`. Default: qcow2 for names ending in `.qcow2` and for overlays,
   * else raw. For uploaded or downloaded content it must match what the content is.
   * Replaces on change.
   */
  format?: pulumi.Input<NonNullable<VolumeInputs["format"]>>;
  /**
   * Empty volumes only: `"off"` (default, sparse), `"metadata"` (qcow2), `"full"`
   * (every byte allocated; also applies when the volume is grown).
   */
  preallocation?: pulumi.Input<NonNullable<VolumeInputs["preallocation"]>>;
  /**
   * Ownership (numeric uid/gid) and mode of the file. Default: the pool's owner and
   * group, else the host's QEMU user (`libvirt-qemu`/`qemu`), mode `0660`. Changing it
   * later chowns the file (needs a root login or `connection.sudo`). In a native
   * `gluster` pool the file is created by `qemu-img` as the owner (root login or
   * `connection.sudo` required) with mode `0600`, which cannot be changed.
   */
  permissions?: pulumi.Input<VolumeInputs["permissions"]>;
  /** Initial content (at most one kind). Without it the volume is empty (zeros). Replaces on change. */
  source?: pulumi.Input<ImageVolumeSource>;
  /**
   * Make a qcow2 linked clone on top of this volume (its pool defaults to this one's).
   * The backing volume cannot be deleted while overlays use it. Replaces on change.
   */
  backingVolume?: pulumi.Input<{ volume: pulumi.Input<string>; pool?: pulumi.Input<string> }>;
  /** Take over a volume of this name that already exists (its format must match). Default false. */
  adopt?: pulumi.Input<boolean>;
}

// Every provider input has an Args field and vice versa.
const argsMatchSchema: SameKeys<ImageVolumeArgs, VolumeInputs> = true;
void argsMatchSchema;

/** Every output, each once (compile-checked against VolumeOutputs): each becomes an Output property even when unset. */
export const OUTPUT_KEYS = keysOf<VolumeOutputs>({
  connection: true, pool: true, name: true, capacity: true, format: true, preallocation: true, permissions: true, source: true,
  backingVolume: true, adopt: true,
  key: true, path: true, glusterUrl: true, allocation: true, backingStore: true, effectivePermissions: true, appliedPermissions: true,
  sha256: true, contentDigest: true, staleDisks: true,
});

/** `source` as given, or as a secret as a whole when its URL carries credentials. */
function sourceInput(source: ImageVolumeArgs["source"]): ImageVolumeArgs["source"] {
  // Only a URL can carry credentials; other sources stay as they are (and as readable in preview).
  if (source === undefined || (!pulumi.Output.isInstance(source) && (source as ImageVolumeSource).url === undefined)) return source;
  return pulumi.output(source).apply((s) => (typeof s?.url === "string" && hasUrlCredentials(s.url) ? pulumi.secret(s) : s)) as pulumi.Output<ImageVolumeSource>;
}

/**
 * A disk image in a Gluster-backed libvirt pool: empty, uploaded from a local file,
 * downloaded by the host from a URL, cloned from another volume, or a qcow2 overlay.
 * Delete refuses while a domain uses the volume or another volume is backed by it.
 */
export class ImageVolume extends GlusterLibvirtResource {
  declare readonly connection: pulumi.Output<Connection>;
  declare readonly pool: pulumi.Output<string>;
  declare readonly name: pulumi.Output<string>;
  /** Virtual size in bytes, as the host reports it. */
  declare readonly capacity: pulumi.Output<number>;
  /** Bytes allocated on the storage. */
  declare readonly allocation: pulumi.Output<number>;
  /** As libvirt reads the file. */
  declare readonly format: pulumi.Output<VolumeOutputs["format"]>;
  declare readonly preallocation: pulumi.Output<"off" | "metadata" | "full">;
  declare readonly permissions: pulumi.Output<VolumeOutputs["permissions"]>;
  declare readonly source: pulumi.Output<VolumeOutputs["source"]>;
  declare readonly backingVolume: pulumi.Output<VolumeOutputs["backingVolume"]>;
  declare readonly adopt: pulumi.Output<boolean>;
  /** libvirt's key of the volume (the resource id); for netfs pools, the file path. */
  declare readonly key: pulumi.Output<string>;
  /** The file on the host (netfs), or a gluster:// URL (native gluster pool). */
  declare readonly path: pulumi.Output<string>;
  /** `gluster://SERVER/VOLUME/PATH`. */
  declare readonly glusterUrl: pulumi.Output<string>;
  /** Path of the backing image (overlays). */
  declare readonly backingStore: pulumi.Output<string | undefined>;
  /** Owner, group and mode of the file as the host reports them (read back on refresh). */
  declare readonly effectivePermissions: pulumi.Output<VolumeOutputs["effectivePermissions"]>;
  /** What this resource gave the file (`permissions` with its defaults); `up` restores it when the host drifts. */
  declare readonly appliedPermissions: pulumi.Output<VolumeOutputs["appliedPermissions"]>;
  /** sha256 of the whole content: downloaded volumes, and uploads given `source.sha256`. */
  declare readonly sha256: pulumi.Output<string | undefined>;
  /**
   * Uploaded volumes: the source file's content digest, `sparse-v1:<hex>` — it hashes the
   * data and where it lies, not the holes, so it is cheap for sparse images. Not a
   * `sha256sum`; ask for that with `source.sha256`.
   */
  declare readonly contentDigest: pulumi.Output<string | undefined>;
  /**
   * Seen on refresh: disks of running domains (on this host) that open the image but whose
   * QEMU still gives them a smaller size; the next `up` tells them (`virsh blockresize`).
   */
  declare readonly staleDisks: pulumi.Output<VolumeOutputs["staleDisks"]>;

  static override isInstance(obj: unknown): obj is ImageVolume {
    return obj instanceof ImageVolume;
  }

  constructor(name: string, args: ImageVolumeArgs, opts?: pulumi.CustomResourceOptions) {
    const inputs: ImageVolumeArgs = { ...args, source: sourceInput(args.source) };
    super("ImageVolume", name, inputs, OUTPUT_KEYS, opts);
  }
}
