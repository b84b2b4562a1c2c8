import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { DiskAttachment, GlusterPool, ImageVolume } from "../../sdk";
import { parseDomainDisks } from "../../provider/xml/disk";
import { cloneLabDomain, dropDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { newStack, type TestStack, changes, labCredentials, upConverged } from "../helpers/stack";

/*
 * The core scenario in one `pulumi up`: a Gluster volume as a pool, an image in it,
 * the image attached to a VM. The VM is a shut-off copy of the lab's stopped domain
 * (persistent-only attach), started afterwards; a FUSE disk keeps the run short
 * (the gfapi path is proven in the integration test).
 */

let lab: LabInfo;
let t: TestStack;
let gluster: ReturnType<typeof createGlusterVolume>;
let domain: string;
const poolName = uniqueName("e2ediskpool");
const volumeName = `${uniqueName("e2edisk")}.img`;

function program(): Promise<Record<string, unknown>> {
  const cfg = new pulumi.Config();
  const connection = { host: lab.ssh.host };
  const pool = new GlusterPool("pool", { connection, name: poolName, volume: gluster.name, servers: lab.gluster.servers });
  const image = new ImageVolume("image", { connection, pool: pool.name, name: volumeName, capacity: "1MiB" });
  const disk = new DiskAttachment("disk", {
    connection,
    domain,
    pool: pool.name,
    volume: image.name,
    target: "sdb",
    access: "fuse",
    readonly: cfg.getBoolean("readonly"),
    detachTimeout: cfg.getNumber("detachTimeout"),
  });
  return Promise.resolve({
    resolvedAccess: disk.resolvedAccess,
    attachedLive: disk.attachedLive,
    attachedPersistent: disk.attachedPersistent,
    domainUuid: disk.domainUuid,
    imagePath: image.path,
  });
}

before(async () => {
  lab = await getLab();
  gluster = createGlusterVolume(lab, uniqueName("e2edisk").replace(/-/g, "_"));
  domain = cloneLabDomain(lab, "stopped");
  t = await newStack("disk", program, labCredentials(lab));
});

after(async () => {
  await t?.cleanup();
  if (domain) dropDomain(domain);
  tryVirsh("pool-destroy", poolName);
  tryVirsh("pool-undefine", poolName);
  gluster?.remove();
});

const diskAt = (flavour: "live" | "persistent") =>
  parseDomainDisks(virsh("dumpxml", ...(flavour === "persistent" ? ["--inactive"] : []), domain)).find((d) => d.target === "sdb");

describe("DiskAttachment through the Pulumi engine, with GlusterPool and ImageVolume", () => {
  test("one up: pool, image, and the image in the VM's definition", async () => {
    const up = await upConverged(t);
    assert.equal(up.summary.result, "succeeded");
    assert.deepEqual(changes(up.summary.resourceChanges), { create: 4 }, "the stack, the pool, the image, the disk");
    assert.equal(up.outputs.resolvedAccess.value, "fuse");
    assert.equal(up.outputs.attachedPersistent.value, true);
    assert.equal(up.outputs.attachedLive.value, false, "the VM is shut off");
    assert.equal(up.outputs.domainUuid.value, virsh("domuuid", domain).trim());
    assert.equal(diskAt("persistent")?.source?.file, up.outputs.imagePath.value);
  });

  test("a second up changes nothing", async () => {
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), {});
  });

  test("preview: detachTimeout updates in place, readonly replaces", async () => {
    await t.stack.setConfig("detachTimeout", { value: "60" });
    assert.deepEqual(changes((await t.stack.preview({ diff: true })).changeSummary), { update: 1 });
    await t.stack.setConfig("readonly", { value: "true" });
    assert.deepEqual(changes((await t.stack.preview({ diff: true })).changeSummary), { replace: 1 });
    await t.stack.removeConfig("readonly");
    await t.stack.removeConfig("detachTimeout");
  });

  test("the VM starts with the disk; refresh records it live", async () => {
    virsh("start", domain);
    await t.stack.refresh();
    // refresh updates resource state (stack outputs only change on up)
    const { deployment } = await t.stack.exportStack();
    const disk = deployment.resources.find((r: { type: string }) => r.type.endsWith(":DiskAttachment"));
    assert.equal(disk.outputs.attachedLive, true);
    assert.equal(disk.outputs.domainRunning, true);
    assert.equal(diskAt("live")?.source?.file, disk.outputs.sourcePath);
  });

  test("destroy detaches the disk from the running VM and its definition", async () => {
    await t.stack.destroy();
    assert.equal(diskAt("live"), undefined);
    assert.equal(diskAt("persistent"), undefined);
    assert.notEqual(tryVirsh("pool-info", poolName).code, 0);
  });
});
