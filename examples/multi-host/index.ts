import * as pulumi from "@pulumi/pulumi";
import { GlusterStorage, ImageVolume } from "pulumi-gluster-libvirt";

// A cluster's shared storage: one Gluster volume as the same libvirt pool on every
// hypervisor (VMs can only run on, and migrate between, hosts that have it), and a disk
// image made once in it. The storage is shared, so the image is created through one host
// only; every host's pool holds the same file. libvirt keeps a per-host list of a pool's
// volumes: another host lists a new file after `virsh pool-refresh` (README).
//
// Stack config: `hypervisors` (list of hosts), `glusterServers` (list), `glusterVolume`;
// user, key and known_hosts for all hosts from `gluster-libvirt:*`.
const config = new pulumi.Config();
const hypervisors = config.requireObject<string[]>("hypervisors");
if (!Array.isArray(hypervisors) || hypervisors.length === 0) {
  throw new Error("config hypervisors: list at least one host, e.g. pulumi config set --path 'hypervisors[0]' kvm1");
}

const storage = new GlusterStorage("primary", {
  hypervisors: hypervisors.map((host) => ({ host })),
  name: config.get("poolName") ?? "primary_gluster",
  volume: config.require("glusterVolume"),
  servers: config.requireObject<string[]>("glusterServers"),
});

// Made through the first host only. A second ImageVolume of the same file on another host
// would be two resources owning one file: deleting either deletes it for every host.
const creator = hypervisors[0];
const image = new ImageVolume("shared-data", {
  connection: { host: creator },
  pool: storage.pools[creator].name,
  name: config.get("imageName") ?? "shared-data.img",
  capacity: config.get("imageSize") ?? "256MiB",
});

export const poolName = storage.poolName;
/** host → where libvirt mounted the volume on that host */
export const mountPoints = Object.fromEntries(Object.entries(storage.pools).map(([host, pool]) => [host, pool.targetPath]));
/** the image's file, the same path on every host */
export const imagePath = image.path;
export const imageUrl = image.glusterUrl;
