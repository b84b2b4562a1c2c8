import * as pulumi from "@pulumi/pulumi";
import { DiskAttachment, GlusterPool, ImageVolume } from "pulumi-gluster-libvirt";

// The core scenario, the classic manual flow as code: a Gluster volume as a libvirt
// pool, a disk image in it, and that image attached to a VM.
// Which hypervisor, Gluster volume and VM: stack config (`pulumi config set host kvm1`);
// user, key and known_hosts come from the `gluster-libvirt:*` stack config.
const config = new pulumi.Config();
const connection = { host: config.require("host") };

const pool = new GlusterPool("primary", {
  connection,
  name: config.get("poolName") ?? "primary_gluster",
  volume: config.require("glusterVolume"),
  servers: [config.require("glusterServer")],
});

const data = new ImageVolume("vm1-data", {
  connection,
  pool: pool.name,
  name: "vm1-data.img",
  capacity: config.get("dataSize") ?? "512MiB",
});

// access "auto": libgfapi (<disk type='network'>) where the host's QEMU has the gluster
// driver, the FUSE-mounted file otherwise. Hot-plugged when the VM runs.
const disk = new DiskAttachment("vm1-data", {
  connection,
  domain: config.require("vm"),
  pool: pool.name,
  volume: data.name,
  target: "sdb",
});

export const poolMountedAt = pool.targetPath;
export const volumeUrl = data.glusterUrl;
export const attachedAs = disk.resolvedAccess;
