import * as pulumi from "@pulumi/pulumi";
import { GlusterPool } from "pulumi-gluster-libvirt";

// Which hypervisor and which Gluster volume: stack config (`pulumi config set host kvm1`).
// User, key and known_hosts come from the `gluster-libvirt:*` stack config.
const config = new pulumi.Config();
const connection = { host: config.require("host") };

const pool = new GlusterPool("primary", {
  connection,
  name: "primary_gluster",
  volume: config.require("glusterVolume"),
  servers: [config.require("glusterServer")],
});

export const poolName = pool.name;
export const mountedAt = pool.targetPath;
export const capacityBytes = pool.capacity;
