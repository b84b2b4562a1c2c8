import * as pulumi from "@pulumi/pulumi";
import { DiskAttachment, GlusterPool, ImageVolume } from "pulumi-gluster-libvirt";

// For hypervisors whose QEMU has no gluster block driver (RHEL 9+, QEMU after 11.0):
// libvirt mounts the Gluster volume through FUSE and every disk is a plain file on
// that mount (`<disk type='file'>`). Nothing here needs libgfapi.
const config = new pulumi.Config();
const connection = { host: config.require("host") };
const vm = config.require("vm");

const pool = new GlusterPool("fuse", {
  connection,
  name: config.get("poolName") ?? "fuse_gluster",
  volume: config.require("glusterVolume"),
  // the first server serves the volfile; the others become backup-volfile-servers
  servers: [config.require("glusterServer"), ...(config.getObject<string[]>("backupServers") ?? [])],
  // quieter FUSE client logs on the hypervisor
  mountOptions: ["log-level=WARNING"],
});

// A system disk and a scratch disk; qcow2 grows on demand on the Gluster volume.
const disks = [
  { name: `${vm}-system.qcow2`, capacity: config.get("systemSize") ?? "1GiB", target: "sdb" },
  { name: `${vm}-scratch.img`, capacity: config.get("scratchSize") ?? "256MiB", target: "sdc" },
];

const attachments = disks.map((d) => {
  const volume = new ImageVolume(d.name, { connection, pool: pool.name, name: d.name, capacity: d.capacity });
  return new DiskAttachment(`${vm}-${d.target}`, {
    connection,
    domain: vm,
    pool: pool.name,
    volume: volume.name,
    target: d.target,
    // the point of this example: always the FUSE-mounted file, never libgfapi
    access: "fuse",
  });
});

export const mountedAt = pool.targetPath;
export const diskFiles = attachments.map((a) => a.sourcePath);
export const access = attachments.map((a) => a.resolvedAccess);
