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

  test("the state holds a one-line provider that loads the installed package at call time", async () => {
    const state = await t.stack.exportStack();
    const res = state.deployment.resources.find((r: { type: string }) => r.type === "pulumi-nodejs:dynamic/gluster-libvirt:GlusterPool");
    for (const provider of [res.inputs.__provider, res.outputs.__provider] as string[]) {
      assert.equal(provider, `exports.handler = () => require("pulumi-gluster-libvirt/provider").providerFor("GlusterPool");\n`);
    }
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

  test("a state whose __provider 0.1 serialized (an object of seven methods) still refreshes and destroys", async () => {
    const legacy = await pulumi.runtime.serializeFunction(() => legacyProvider("GlusterPool"));
    const state = await t.stack.exportStack();
    const res = state.deployment.resources.find((r: { type: string }) => r.type.endsWith(":GlusterPool"));
    res.inputs.__provider = res.outputs.__provider = legacy.text;
    await t.stack.importStack(state);
    const refresh = await t.stack.refresh();
    assert.deepEqual(changes(refresh.summary.resourceChanges), {});
    const after = (await t.stack.exportStack()).deployment.resources.find((r: { type: string }) => r.type.endsWith(":GlusterPool"));
    assert.equal(after.outputs.__provider, legacy.text, "refresh ran the provider in state, and kept it");
  });

  test("destroy removes the pool and its mount", async () => {
    const targetPath = virsh("pool-dumpxml", poolName).match(/<path>([^<]+)<\/path>/)?.[1];
    await t.stack.destroy(); // through the legacy provider of the test above
    assert.notEqual(tryVirsh("pool-info", poolName).code, 0);
    assert.ok(targetPath && !isMounted(targetPath));
  });
});

/** The provider object 0.1's SDK handed `pulumi.dynamic.Resource`, which serialized it into state. */
function legacyProvider(kind: string): pulumi.dynamic.ResourceProvider {
  const impl = () => require("pulumi-gluster-libvirt/provider");
  return {
    async configure(req) {
      impl().configure(req.config);
    },
    async check(olds, news) {
      return impl().resources[kind].check(olds, news);
    },
    async diff(id, olds, news) {
      return impl().resources[kind].diff(id, olds, news);
    },
    async create(inputs) {
      return impl().resources[kind].create(inputs);
    },
    async read(id, props) {
      return impl().resources[kind].read(id, props);
    },
    async update(id, olds, news) {
      return impl().resources[kind].update(id, olds, news);
    },
    async delete(id, props) {
      return impl().resources[kind].delete(id, props);
    },
  };
}
