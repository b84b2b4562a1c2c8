import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { closeAllHosts } from "../../provider/host";
import { ImageVolume } from "../../sdk";
import { startCountingProxy, type CountingProxy } from "../helpers/countingProxy";
import { getLab, type LabInfo } from "../helpers/lab";
import { uniqueName, virsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";
import { changes, labCredentials, newStack, type TestStack } from "../helpers/stack";

/*
 * Issue 16: one SSH login per host and run. The engine may leave a host without work for
 * a long while (here: a resource that takes longer than the transport's idle timeout
 * outside the engine, 5 s); the connection stays open for the next operation on that host
 * instead of logging in again. Counted through a TCP proxy in front of the lab's sshd.
 */

/** Longer than `timeouts.idle`'s default outside a dynamic-provider process (5 s). */
const PAUSE_MS = 7000;

const pause: pulumi.dynamic.ResourceProvider = {
  async create() {
    await new Promise((r) => setTimeout(r, PAUSE_MS));
    return { id: "pause" };
  },
  async delete() {
    await new Promise((r) => setTimeout(r, PAUSE_MS));
  },
};

class Pause extends pulumi.dynamic.Resource {
  constructor(name: string, opts: pulumi.CustomResourceOptions) {
    super(pause, name, {}, opts, "test", "Pause");
  }
}

let lab: LabInfo;
let own: OwnPool;
let proxy: CountingProxy;
let t: TestStack | undefined;
const first = `${uniqueName("c16a")}.img`;
const second = `${uniqueName("c16b")}.img`;

before(async () => {
  lab = await getLab();
  own = await createOwnPool(lab, "c16", { by: "root" });
  proxy = await startCountingProxy(lab);
});

after(async () => {
  await t?.cleanup().catch(() => undefined);
  await own?.remove();
  closeAllHosts();
  proxy?.close();
});

/** The SSH connections `run` made through the proxy. */
async function counted<T>(run: () => Promise<T>): Promise<{ result: T; connections: number }> {
  const before = proxy.connections;
  const result = await run();
  return { result, connections: proxy.connections - before };
}

describe("connections in a Pulumi run", () => {
  test("a host left without work for longer than the idle timeout keeps its one connection for the whole up and destroy", async () => {
    t = await newStack("c16", async () => {
      const connection = { host: "127.0.0.1" };
      const a = new ImageVolume("first", { connection, pool: own.name, name: first, capacity: "1MiB" });
      const gap = new Pause("gap", { dependsOn: [a] });
      new ImageVolume("second", { connection, pool: own.name, name: second, capacity: "1MiB" }, { dependsOn: [gap] });
    }, { ...labCredentials(lab), "gluster-libvirt:port": { value: String(proxy.port) }, "gluster-libvirt:knownHostsFile": { value: proxy.knownHostsFile } });
    const up = await counted(() => t!.stack.up());
    assert.deepEqual(changes(up.result.summary.resourceChanges), { create: 4 });
    assert.equal(up.connections, 1, `one login for the run, though the host had no work for ${PAUSE_MS / 1000} s between the two volumes`);
    assert.match(virsh("vol-list", own.name), new RegExp(second.replace(/\./g, "\\.")));
    const refreshed = await counted(() => t!.stack.refresh());
    assert.equal(refreshed.connections, 1, "a refresh reads both volumes over one login");
    await t.stack.preview({ expectNoChanges: true });
    const destroyed = await counted(() => t!.stack.destroy());
    assert.equal(destroyed.connections, 1, "the destroy deletes both volumes over one login, the pause between them");
    assert.doesNotMatch(virsh("vol-list", own.name), /c16/);
  });
});
