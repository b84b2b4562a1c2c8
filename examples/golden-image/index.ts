import * as pulumi from "@pulumi/pulumi";
import { DiskAttachment, GlusterPool, ImageVolume } from "pulumi-gluster-libvirt";

// A golden image uploaded once to the Gluster volume, and for each VM a qcow2 linked
// clone on top of it (only the VM's own writes take space), attached as its disk.
const config = new pulumi.Config();
const connection = { host: config.require("host") };
const vms = config.requireObject<string[]>("vms");
const baseImage = config.require("baseImage"); // local qcow2 or raw file, see README

const pool = new GlusterPool("images", {
  connection,
  name: config.get("poolName") ?? "images_gluster",
  volume: config.require("glusterVolume"),
  servers: [config.require("glusterServer")],
});

const format = baseImage.endsWith(".qcow2") ? "qcow2" : "raw";
// Streamed from this machine over the SSH connection and checked by sha256 on the
// host; a changed local file replaces the base (and with it, every clone). With
// `baseImageSha256` set, the file must also match that published checksum.
const base = new ImageVolume("base", {
  connection,
  pool: pool.name,
  name: `golden.${format === "qcow2" ? "qcow2" : "img"}`,
  format,
  source: { path: baseImage, sha256: config.get("baseImageSha256") },
});

const clones = vms.map((vm) => {
  const root = new ImageVolume(`${vm}-root`, {
    connection,
    pool: pool.name,
    name: `${vm}-root.qcow2`,
    backingVolume: { volume: base.name },
    // optional: give every clone more room than the base image has
    capacity: config.get("rootSize"),
  });
  const disk = new DiskAttachment(`${vm}-root`, {
    connection,
    domain: vm,
    pool: pool.name,
    volume: root.name,
    target: config.get("target") ?? "sdb",
    // "auto": libgfapi where the host's QEMU has the gluster driver, else the FUSE file
    access: config.get<"auto" | "gfapi" | "fuse">("access") ?? "auto",
  });
  return { vm, root, disk };
});

export const baseDigest = base.contentDigest;
export const baseSha256 = base.sha256;
export const overlays = Object.fromEntries(clones.map((c) => [c.vm, c.root.path]));
export const backedBy = clones.map((c) => c.root.backingStore);
export const access = clones.map((c) => c.disk.resolvedAccess);
