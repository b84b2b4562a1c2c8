import * as pulumi from "@pulumi/pulumi";
import { DiskAttachment, GlusterStorage, GlusterVolume, ImageVolume } from "pulumi-gluster-libvirt";

// Everything between a Gluster server's bricks and a VM's disk, in one program, each step
// taking what it needs from the step before:
//   GlusterVolume  the volume, with what QEMU needs to open images through libgfapi
//   GlusterStorage that volume as the same libvirt pool on every hypervisor
//   ImageVolume    a disk image in it (made once, through the first hypervisor)
//   DiskAttachment the image attached to a VM on the first hypervisor
//
// Stack config: `glusterHost` (a server of the trusted storage pool, reached over SSH),
// `bricks` (list of SERVER:/DIR), `hypervisors` (list of hosts), `vm`; user, key and
// known_hosts for every host from `gluster-libvirt:*`. Optional: `volumeName`, `replica`,
// `force`, `qemuOwner`, `poolName`, `imageSize`, `access`.
const config = new pulumi.Config();
const hypervisors = config.requireObject<string[]>("hypervisors");
if (!Array.isArray(hypervisors) || hypervisors.length === 0) {
  throw new Error("config hypervisors: list at least one host, e.g. pulumi config set --path 'hypervisors[0]' kvm1");
}

// The hypervisors' QEMU user (libvirt-qemu on Debian, 64055; qemu on RHEL, 107). It has to
// be known before the pools exist, since they mount the volume this sets it on: give it
// in config when yours differs; `npx gluster-libvirt doctor` compares it with each
// hypervisor's.
const qemuOwner = config.getObject<{ uid: number; gid: number }>("qemuOwner") ?? { uid: 64055, gid: 64055 };

const volume = new GlusterVolume("images", {
  // the gluster CLI runs as root there: a root login or sudo
  connection: { host: config.require("glusterHost"), sudo: config.getBoolean("glusterSudo") ?? true },
  name: config.get("volumeName") ?? "images",
  bricks: config.requireObject<string[]>("bricks"),
  replica: config.getNumber("replica") ?? 3,
  force: config.getBoolean("force") ?? false,
  virtProfile: true, // Gluster's profile for VM images, option by option in the preview
  qemuOwner, // storage.owner-uid/gid
  allowInsecure: true, // server.allow-insecure on: QEMU's libgfapi connects from an unprivileged port
  sharedPools: true, // open-behind, stat-prefetch off: every hypervisor's pool lists the volume, and refreshes while others delete
});

const storage = new GlusterStorage("images", {
  hypervisors: hypervisors.map((host) => ({ host })),
  name: config.get("poolName") ?? "images",
  volume: volume.name, // the pools wait for the volume to be created and started
  servers: volume.servers, // the bricks' servers: the first serves the volfile, the rest are backups
});

const first = hypervisors[0];
const image = new ImageVolume("vm1-data", {
  connection: { host: first },
  pool: storage.pools[first].name,
  name: "vm1-data.img",
  capacity: config.get("imageSize") ?? "1GiB",
});

// access "auto": libgfapi where the host's QEMU has the gluster driver, else the FUSE file.
const disk = new DiskAttachment("vm1-data", {
  connection: { host: first },
  domain: config.require("vm"),
  pool: image.pool,
  volume: image.name,
  target: "sdb",
  access: (config.get("access") as "auto" | "gfapi" | "fuse" | undefined) ?? "auto",
});

export const volumeId = volume.volumeId;
export const volumeOptions = volume.options;
export const mountPoints = Object.fromEntries(Object.entries(storage.pools).map(([host, pool]) => [host, pool.targetPath]));
export const imageUrl = image.glusterUrl;
export const attachedAs = disk.resolvedAccess;
