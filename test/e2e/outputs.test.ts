import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { DiskAttachment, GlusterPool, GlusterVolume, ImageVolume } from "../../sdk";
import { OUTPUT_KEYS as DISK_OUTPUTS } from "../../sdk/disk";
import { OUTPUT_KEYS as GLUSTER_VOLUME_OUTPUTS } from "../../sdk/glusterVolume";
import { OUTPUT_KEYS as POOL_OUTPUTS } from "../../sdk/pool";
import { OUTPUT_KEYS as VOLUME_OUTPUTS } from "../../sdk/volume";
import { dropDomain, cloneLabDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, glusterBricks, tryVirsh, uniqueName } from "../helpers/local";
import { newStack, type TestStack, labCredentials, upConverged } from "../helpers/stack";

/*
 * Every output a class declares is an Output at runtime, whether its input was set or
 * left unset: Pulumi creates an Output property only for the keys it is given, and a
 * hand-kept list once left GlusterPool's `type`, `autostart`, `adopt` and `forceDestroy`
 * undefined when unset. Through the real engine, one resource of each class with only
 * the required inputs and one with the optional ones set.
 */

let lab: LabInfo;
let t: TestStack;
let gluster: ReturnType<typeof createGlusterVolume>;
let gluster2: ReturnType<typeof createGlusterVolume>;
let domain: string;
let minimalBricks: ReturnType<typeof glusterBricks>;
let fullBricks: ReturnType<typeof glusterBricks>;
const poolName = uniqueName("e2eout");
const glusterVolumeName = uniqueName("e2eoutgv").replace(/-/g, "_");

/** Keys whose property is not an Output on the instance. */
function missing(resource: object, keys: readonly string[]): string[] {
  return keys.filter((k) => !pulumi.Output.isInstance((resource as Record<string, unknown>)[k]));
}

function program(): Promise<Record<string, unknown>> {
  const connection = { host: lab.ssh.host };
  const minimalPool = new GlusterPool("minimal", { connection, name: poolName, volume: gluster.name, servers: lab.gluster.servers });
  const fullPool = new GlusterPool("full", {
    connection, name: `${poolName}-f`, volume: gluster2.name, servers: lab.gluster.servers, type: "netfs",
    targetPath: `/var/lib/libvirt/gluster/${poolName}-f`, permissions: { owner: lab.qemu.uid, group: lab.qemu.gid, mode: "0750" },
    mountOptions: ["log-level=WARNING"], autostart: false, adopt: false, forceDestroy: false,
  });
  const minimalVolume = new ImageVolume("minimal", { connection, pool: minimalPool.name, name: "a.img", capacity: "1MiB" });
  const fullVolume = new ImageVolume("full", {
    connection, pool: minimalPool.name, name: "b.qcow2", capacity: "1MiB", format: "qcow2", preallocation: "metadata",
    permissions: { owner: lab.qemu.uid, group: lab.qemu.gid, mode: "0640" }, adopt: false,
  });
  const minimalDisk = new DiskAttachment("minimal", { connection, domain, pool: minimalPool.name, volume: minimalVolume.name, target: "sdb" });
  const fullDisk = new DiskAttachment("full", {
    connection, domain, pool: minimalPool.name, volume: fullVolume.name, target: "sdc", bus: "scsi", access: "fuse",
    driver: { cache: "none", io: "threads", discard: "unmap" }, readonly: true, shareable: true, serial: "glv-out", live: false, detachTimeout: 10,
  });
  const glusterConnection = { host: lab.ssh.host, sudo: true };
  const minimalGlusterVolume = new GlusterVolume("minimal", { connection: glusterConnection, name: glusterVolumeName, bricks: minimalBricks.bricks, force: true });
  const fullGlusterVolume = new GlusterVolume("full", {
    connection: glusterConnection, name: `${glusterVolumeName}_f`, bricks: fullBricks.bricks, replica: 3, arbiter: 1, force: true,
    options: { "performance.cache-size": "64MB" }, virtProfile: false, qemuOwner: { uid: lab.qemu.uid, gid: lab.qemu.gid }, allowInsecure: true,
    started: false, adopt: false, forceDestroy: false,
  });
  return Promise.resolve({
    missing: {
      minimalGlusterVolume: missing(minimalGlusterVolume, GLUSTER_VOLUME_OUTPUTS), fullGlusterVolume: missing(fullGlusterVolume, GLUSTER_VOLUME_OUTPUTS),
      minimalPool: missing(minimalPool, POOL_OUTPUTS), fullPool: missing(fullPool, POOL_OUTPUTS),
      minimalVolume: missing(minimalVolume, VOLUME_OUTPUTS), fullVolume: missing(fullVolume, VOLUME_OUTPUTS),
      minimalDisk: missing(minimalDisk, DISK_OUTPUTS), fullDisk: missing(fullDisk, DISK_OUTPUTS),
    },
    minimalPoolType: minimalPool.type, minimalPoolAutostart: minimalPool.autostart, minimalPoolAdopt: minimalPool.adopt,
    minimalPoolForceDestroy: minimalPool.forceDestroy, minimalVolumeApplied: minimalVolume.appliedPermissions,
    minimalGlusterVolumeStarted: minimalGlusterVolume.started, minimalGlusterVolumeOptions: minimalGlusterVolume.options,
    fullGlusterVolumeStatus: fullGlusterVolume.status, fullGlusterVolumeArbiter: fullGlusterVolume.arbiter,
  });
}

before(async () => {
  lab = await getLab();
  gluster = createGlusterVolume(lab, uniqueName("e2eout").replace(/-/g, "_"));
  gluster2 = createGlusterVolume(lab, uniqueName("e2eout").replace(/-/g, "_"));
  domain = cloneLabDomain(lab, "stopped");
  minimalBricks = glusterBricks(lab, glusterVolumeName, 1);
  fullBricks = glusterBricks(lab, `${glusterVolumeName}_f`, 3);
  t = await newStack("outputs", program, labCredentials(lab));
});

after(async () => {
  await t?.cleanup();
  dropDomain(domain);
  for (const p of [poolName, `${poolName}-f`]) (tryVirsh("pool-destroy", p), tryVirsh("pool-undefine", p));
  gluster?.remove();
  gluster2?.remove();
  minimalBricks?.remove();
  fullBricks?.remove();
});

describe("outputs through the Pulumi engine", () => {
  test("every declared output of every class is an Output, set or unset, and unset defaults resolve", async () => {
    const up = await upConverged(t);
    assert.equal(up.summary.result, "succeeded");
    assert.deepEqual(up.outputs.missing.value, {
      minimalPool: [], fullPool: [], minimalVolume: [], fullVolume: [], minimalDisk: [], fullDisk: [],
      minimalGlusterVolume: [], fullGlusterVolume: [],
    });
    assert.equal(up.outputs.minimalGlusterVolumeStarted.value, true);
    assert.deepEqual(up.outputs.minimalGlusterVolumeOptions.value, {});
    assert.equal(up.outputs.fullGlusterVolumeStatus.value, "Created");
    assert.equal(up.outputs.fullGlusterVolumeArbiter.value, 1);
    assert.equal(up.outputs.minimalPoolType.value, "netfs");
    assert.equal(up.outputs.minimalPoolAutostart.value, true);
    assert.equal(up.outputs.minimalPoolAdopt.value, false);
    assert.equal(up.outputs.minimalPoolForceDestroy.value, false);
    assert.deepEqual(up.outputs.minimalVolumeApplied.value, { owner: lab.qemu.uid, group: lab.qemu.gid, mode: "0660" });
  });
});
