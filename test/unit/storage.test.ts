import { test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { GlusterStorage } from "../../sdk";

// Mocks only record registrations: this checks the component's wiring, while the
// pools themselves are exercised against real hosts in integration and e2e tests.
const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];
pulumi.runtime.setMocks({
  newResource: (args) => {
    registered.push({ type: args.type, name: args.name, inputs: args.inputs });
    return { id: `${args.name}-id`, state: args.inputs };
  },
  call: () => ({}),
});

test("GlusterStorage puts the same pool on every hypervisor, one child per host", async () => {
  const storage = new GlusterStorage("shared", {
    hypervisors: [{ host: "kvm1" }, { host: "kvm2", port: 2222 }],
    name: "primary_gluster",
    volume: "primary",
    servers: ["gs1", "gs2"],
  });
  assert.deepEqual(Object.keys(storage.pools), ["kvm1", "kvm2"]);
  const name = await new Promise((resolve) => storage.pools.kvm2.name.apply(resolve));
  assert.equal(name, "primary_gluster");
  await new Promise((r) => setTimeout(r, 100));
  const pools = registered.filter((r) => r.type === "pulumi-nodejs:dynamic/gluster-libvirt:GlusterPool");
  assert.deepEqual(pools.map((p) => p.name).sort(), ["shared-kvm1", "shared-kvm2"]);
  const kvm2 = pools.find((p) => p.name === "shared-kvm2")!;
  assert.deepEqual(kvm2.inputs.connection, { host: "kvm2", port: 2222 });
  assert.deepEqual(kvm2.inputs.servers, ["gs1", "gs2"]);
  // every pool is checked for migration between all of them; DiskAttachments take the same list
  assert.deepEqual(kvm2.inputs.migration, { hypervisors: [{ host: "kvm1" }, { host: "kvm2", port: 2222 }], access: "auto" });
  assert.deepEqual(await new Promise((resolve) => storage.hypervisors.apply(resolve)), [{ host: "kvm1" }, { host: "kvm2", port: 2222 }]);
});

test("GlusterStorage refuses a host listed twice or none at all", async () => {
  const args = { name: "p", volume: "v", servers: ["gs1"] };
  assert.throws(() => new GlusterStorage("dup", { ...args, hypervisors: [{ host: "a" }, { host: "a" }] }), /hypervisors: a is listed twice/);
  assert.throws(() => new GlusterStorage("none", { ...args, hypervisors: [] }), /at least one host/);
});
