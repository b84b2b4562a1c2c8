import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { localContentDigest } from "../../provider/localImage";
import { GlusterPool, ImageVolume } from "../../sdk";
import { getLab, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { newStack, type TestStack, changes, labCredentials, upConverged } from "../helpers/stack";

/* One create -> no-op -> resize -> destroy cycle of an uploaded volume through the engine. */

let lab: LabInfo;
let t: TestStack;
let gluster: ReturnType<typeof createGlusterVolume>;
const poolName = uniqueName("e2evolpool");
const volumeName = `${uniqueName("e2evol")}.img`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-volume-"));
const image = path.join(tmp, "disk.raw");

function program(): Promise<Record<string, unknown>> {
  const cfg = new pulumi.Config();
  const connection = { host: lab.ssh.host };
  const pool = new GlusterPool("pool", { connection, name: poolName, volume: gluster.name, servers: lab.gluster.servers });
  const disk = new ImageVolume("disk", {
    connection,
    pool: pool.name,
    name: volumeName,
    source: { path: image },
    capacity: cfg.get("capacity"),
  });
  return Promise.resolve({ path: disk.path, capacity: disk.capacity, contentDigest: disk.contentDigest, format: disk.format });
}

before(async () => {
  lab = await getLab();
  gluster = createGlusterVolume(lab, uniqueName("e2evol").replace(/-/g, "_"));
  const fd = fs.openSync(image, "w");
  fs.ftruncateSync(fd, 32 * 1024 * 1024);
  fs.writeSync(fd, Buffer.from("e2e boot sector"), 0, 15, 0);
  fs.closeSync(fd);
  t = await newStack("volume", program, labCredentials(lab));
});

after(async () => {
  await t?.cleanup();
  tryVirsh("vol-delete", "--pool", poolName, volumeName);
  tryVirsh("pool-destroy", poolName);
  tryVirsh("pool-undefine", poolName);
  gluster?.remove();
  fs.rmSync(tmp, { recursive: true, force: true });
});


describe("ImageVolume through the Pulumi engine", () => {
  test("up uploads the image into the pool", async () => {
    const up = await upConverged(t);
    assert.equal(up.summary.result, "succeeded");
    assert.equal(up.outputs.capacity.value, 32 * 1024 * 1024);
    assert.equal(up.outputs.format.value, "raw");
    assert.equal(up.outputs.contentDigest.value, await localContentDigest(image));
    assert.equal(fs.readFileSync(up.outputs.path.value).subarray(0, 15).toString(), "e2e boot sector");
  });

  test("a second up with unchanged inputs changes nothing", async () => {
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), {});
  });

  test("growing capacity is an in-place update; shrinking fails the preview", async () => {
    await t.stack.setConfig("capacity", { value: "64MiB" });
    const preview = await t.stack.preview({ diff: true });
    assert.deepEqual(changes(preview.changeSummary), { update: 1 });
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { update: 1 });
    assert.equal(up.outputs.capacity.value, 64 * 1024 * 1024);
    assert.match(virsh("vol-info", "--pool", poolName, volumeName, "--bytes"), /Capacity:\s+67108864 bytes/);

    await t.stack.setConfig("capacity", { value: "16MiB" });
    await assert.rejects(t.stack.preview(), /capacity: shrinking volume .* would lose data/);
    await t.stack.setConfig("capacity", { value: "64MiB" });
  });

  test("a changed local image replaces the volume, with the new content", async () => {
    const fd = fs.openSync(image, "r+");
    fs.writeSync(fd, Buffer.from("changed"), 0, 7, 20 * 1024 * 1024);
    fs.closeSync(fd);
    const preview = await t.stack.preview({ diff: true });
    assert.deepEqual(changes(preview.changeSummary), { replace: 1 });
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { replace: 1 });
    assert.equal(up.outputs.contentDigest.value, await localContentDigest(image));
    assert.equal(fs.readFileSync(up.outputs.path.value).subarray(20 * 1024 * 1024, 20 * 1024 * 1024 + 7).toString(), "changed");
    assert.equal(up.outputs.capacity.value, 64 * 1024 * 1024, "the replacement keeps the configured capacity");
  });

  test("destroy deletes the volume, then the pool", async () => {
    await t.stack.destroy();
    assert.notEqual(tryVirsh("vol-info", "--pool", poolName, volumeName).code, 0);
    assert.notEqual(tryVirsh("pool-info", poolName).code, 0);
  });
});
