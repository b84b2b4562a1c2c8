import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { GlusterPool } from "../../sdk";
import { getLab, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, isMounted, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { newStack, type TestStack, changes, labCredentials, upConverged } from "../helpers/stack";

let lab: LabInfo;
let t: TestStack;
let volume: ReturnType<typeof createGlusterVolume>;
const poolName = uniqueName("e2epool");

/** A user's program: which host is an input, credentials come from stack config. */
function program(): Promise<Record<string, unknown>> {
  const cfg = new pulumi.Config();
  const pool = new GlusterPool("primary", {
    connection: { host: lab.ssh.host },
    name: poolName,
    volume: volume.name,
    servers: lab.gluster.servers,
    autostart: cfg.getBoolean("autostart") ?? true,
    targetPath: cfg.get("targetPath"),
  });
  return Promise.resolve({ uuid: pool.uuid, state: pool.state, targetPath: pool.targetPath });
}

before(async () => {
  lab = await getLab();
  volume = createGlusterVolume(lab, uniqueName("e2epool").replace(/-/g, "_"));
  t = await newStack("pool", program, labCredentials(lab));
});
after(async () => {
  await t?.cleanup();
  tryVirsh("pool-destroy", poolName);
  tryVirsh("pool-undefine", poolName);
  volume?.remove();
});


describe("GlusterPool through the Pulumi engine", () => {
  test("up creates the pool on the lab host", async () => {
    const up = await upConverged(t);
    assert.equal(up.summary.result, "succeeded");
    assert.equal(up.outputs.state.value, "running");
    assert.equal(up.outputs.uuid.value, virsh("pool-uuid", poolName).trim());
    assert.ok(isMounted(up.outputs.targetPath.value), "mounted through FUSE");
  });

  test("a second up with unchanged inputs changes nothing", async () => {
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), {});
  });

  test("the state holds a tiny provider that loads the installed package at call time", async () => {
    const state = await t.stack.exportStack();
    const res = state.deployment.resources.find((r: { type: string }) => r.type === "pulumi-nodejs:dynamic/gluster-libvirt:GlusterPool");
    const provider: string = res.inputs.__provider;
    assert.match(provider, /require\("pulumi-gluster-libvirt\/provider"\)/);
    assert.doesNotMatch(provider, /zod|XMLParser|ssh2|BEGIN OPENSSH/, "no implementation or secret is serialized");
    assert.ok(provider.length < 8000, `__provider is ${provider.length} bytes`);
  });

  test("preview classifies edits as the replacement table says", async () => {
    await t.stack.setConfig("autostart", { value: "false" });
    const update = await t.stack.preview({ diff: true });
    assert.deepEqual(changes(update.changeSummary), { update: 1 });
    assert.match(update.stdout, /~ .*GlusterPool.*update/);

    await t.stack.setConfig("targetPath", { value: `/var/lib/libvirt/gluster/${poolName}-moved` });
    const replace = await t.stack.preview({ diff: true });
    assert.deepEqual(changes(replace.changeSummary), { replace: 1 });
    await t.stack.removeConfig("targetPath");
  });

  test("up applies the in-place update on the host", async () => {
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { update: 1 });
    assert.match(virsh("pool-info", poolName), /Autostart:\s+no/);
    await t.stack.removeConfig("autostart");
  });

  test("refresh detects manual drift and the next up repairs it", async () => {
    await upConverged(t); // back to autostart: true
    virsh("pool-destroy", poolName);
    const refresh = await t.stack.refresh();
    assert.deepEqual(changes(refresh.summary.resourceChanges), { update: 1 });
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { update: 1 });
    assert.match(virsh("pool-info", poolName), /State:\s+running/);
  });

  test("destroy removes the pool and its mount", async () => {
    const targetPath = virsh("pool-dumpxml", poolName).match(/<path>([^<]+)<\/path>/)?.[1];
    await t.stack.destroy();
    assert.notEqual(tryVirsh("pool-info", poolName).code, 0);
    assert.ok(targetPath && !isMounted(targetPath));
  });
});
