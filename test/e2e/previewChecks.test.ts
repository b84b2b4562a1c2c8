import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { resources } from "../../provider";
import { closeAllHosts } from "../../provider/host";
import type { ResourceCrud } from "../../provider/resource";
import { DiskAttachment, GlusterPool, GlusterVolume, ImageVolume } from "../../sdk";
import { startCountingProxy, type CountingProxy } from "../helpers/countingProxy";
import { cloneLabDomain, dropDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, gluster, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";
import { changes, labCredentials, newStack, upConverged, type TestStack } from "../helpers/stack";

/*
 * Issue 15 §3: a preview runs create's own pre-flight for what it would create, and the
 * delete's refusal for what it would replace, and fails with up's message; nothing else
 * touches a host. Every stack reaches the lab through a TCP proxy that counts the SSH
 * connections, so "an unchanged preview opens none" and "one connection per host" are
 * counted, not assumed.
 */

const classes = { ImageVolume, DiskAttachment, GlusterPool, GlusterVolume };
type Kind = keyof typeof classes;

let lab: LabInfo;
let own: OwnPool;
let domain: string;
let proxy: CountingProxy;
let stoppedPool: string;
let stoppedGluster: ReturnType<typeof createGlusterVolume>;
const stacks: TestStack[] = [];
const volume = `${uniqueName("p15")}.img`;
const spare = `${uniqueName("p15-spare")}.img`;

/** Stack config: the lab's credentials, through the counting proxy. */
function viaProxy(): Record<string, { value: string }> {
  return { ...labCredentials(lab), "gluster-libvirt:port": { value: String(proxy.port) }, "gluster-libvirt:knownHostsFile": { value: proxy.knownHostsFile } };
}

async function stackOf(name: string, program: () => void): Promise<TestStack> {
  const t = await newStack(name, async () => program(), viaProxy());
  stacks.push(t);
  return t;
}

/** The SSH connections `run` made through the proxy. */
async function counted<T>(run: () => Promise<T>): Promise<{ result: T; connections: number }> {
  const before = proxy.connections;
  const result = await run();
  return { result, connections: proxy.connections - before };
}

/** What a failed preview or up printed. */
async function failure(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (e) {
    return String((e as Error)?.message ?? e);
  }
  assert.fail("expected the operation to fail");
}

/**
 * What this file's stacks could change on the host, as root sees it (pools and Gluster
 * volumes of this file's own names: other suites' come and go meanwhile).
 */
function hostSnapshot(): string {
  // (whitespace collapsed: virsh sizes its columns to every pool, other suites' too)
  const ours = (text: string) => text.split("\n").filter((l) => /[pw]15/.test(l)).map((l) => l.trim().split(/\s+/).join(" ")).sort().join("\n");
  return [
    ours(virsh("pool-list", "--all")),
    virsh("vol-list", own.name),
    virsh("dumpxml", "--inactive", domain),
    ours(gluster("volume", "list")),
    gluster("volume", "info", lab.gluster.volume),
  ].join("\n---\n");
}

before(async () => {
  lab = await getLab();
  own = await createOwnPool(lab, "p15", { by: "root" });
  domain = cloneLabDomain(lab, "stopped");
  stoppedPool = uniqueName("p15-stopped");
  stoppedGluster = createGlusterVolume(lab, stoppedPool.replace(/-/g, "_"), { start: false });
  proxy = await startCountingProxy(lab);
});

after(async () => {
  await Promise.all(stacks.map((t) => t.cleanup().catch(() => undefined)));
  if (domain) dropDomain(domain);
  if (stoppedPool) tryVirsh("pool-undefine", stoppedPool);
  stoppedGluster?.remove();
  await own?.remove();
  closeAllHosts();
  proxy?.close();
});

describe("preview predicts what up would trip over", () => {
  let owned: TestStack;

  test("an unchanged stack's preview opens no SSH connection; a replaced disk does not trip over itself", async () => {
    owned = await stackOf("p15-owned", () => {
      const config = new pulumi.Config();
      const connection = { host: "127.0.0.1" };
      const format = config.get("format") as "qcow2" | undefined;
      const image = new ImageVolume("image", { connection, pool: own.name, name: volume, capacity: "1MiB", ...(format ? { format } : {}) });
      const other = new ImageVolume("spare", { connection, pool: own.name, name: spare, capacity: "1MiB" });
      new DiskAttachment("disk", { connection, domain, pool: own.name, volume: config.get("disk") === "spare" ? other.name : image.name, target: "sdc", access: "fuse" });
    });
    const up = await counted(() => upConverged(owned));
    assert.deepEqual(changes(up.result.summary.resourceChanges), { create: 4 });
    assert.ok(up.connections >= 1, "the up went through the counting proxy");
    const unchanged = await counted(() => owned.stack.preview({ expectNoChanges: true }));
    assert.equal(unchanged.connections, 0, "an unchanged stack's preview touches no host");
    // Another volume at the same target: the old disk is detached first, so sdc is not "taken".
    await owned.stack.setConfig("disk", { value: "spare" });
    const replaced = await counted(() => owned.stack.preview({ diff: true }));
    assert.deepEqual(changes(replaced.result.changeSummary), { replace: 1 });
    assert.equal(replaced.connections, 1, "the replacement is checked, on one connection");
    assert.ok(!replaced.result.stdout.includes("__preview"), "the hidden marker is never shown");
    await owned.stack.removeConfig("disk");
  });

  test("a replacement of a volume another domain's disk uses fails in preview with the delete's refusal, as up does", async () => {
    virsh("attach-disk", domain, `${own.targetPath}/${volume}`, "sdb", "--config");
    await owned.stack.setConfig("format", { value: "qcow2" });
    const before = hostSnapshot();
    const preview = await failure(() => owned.stack.preview({ diff: true }));
    const refusal = `volume '${volume}' in pool '${own.name}' on ${lab.ssh.user}@127.0.0.1:${proxy.port} is in use by ${domain} (sdb, persistent); detach it first`;
    // The stack's own disk (sdc) is not named: the engine detaches it first, as up shows.
    assert.ok(preview.includes(refusal), `the preview names the disk that is not the stack's:\n${preview}`);
    assert.equal(hostSnapshot(), before, "the preview changed nothing on the host");
    const up = await failure(() => owned.stack.up());
    assert.ok(up.includes(refusal), `up fails with the same message:\n${up}`);
    assert.match(virsh("vol-dumpxml", "--pool", own.name, volume), /<format type='raw'\/>/, "the volume is still there, as it was");
    virsh("detach-disk", domain, "sdb", "--config");
    await owned.stack.removeConfig("format");
  });

  test("creates that up would refuse fail the preview, each with create's own message, on one connection", async () => {
    const connection = { host: "127.0.0.1" };
    const missingPool = uniqueName("p15-nopool");
    const at = `${lab.ssh.user}@127.0.0.1:${proxy.port}`;
    // Each case: one resource, and the message its create fails with. A preview stops at its
    // first failing check, so each case is previewed alone (three stacks at a time).
    const cases: { name: string; kind: Kind; args: Record<string, unknown>; reason: string }[] = [
      {
        name: "in-missing-pool", kind: "ImageVolume", args: { connection, pool: missingPool, name: "a.img", capacity: "1MiB" },
        reason: `no storage pool named '${missingPool}' on ${at}`,
      },
      {
        name: "in-stopped-pool", kind: "ImageVolume", args: { connection, pool: stoppedPool, name: "b.img", capacity: "1MiB" },
        reason: `storage pool '${stoppedPool}' on ${at} is inactive, not running`,
      },
      {
        name: "name-taken", kind: "ImageVolume", args: { connection, pool: own.name, name: volume, capacity: "1MiB" },
        reason: `a volume named '${volume}' already exists in pool '${own.name}' on ${at}; set adopt: true to take it over`,
      },
      {
        name: "adopt-shrinks", kind: "ImageVolume", args: { connection, pool: own.name, name: volume, capacity: "512KiB", adopt: true },
        reason: `volume '${volume}' already holds 1 MiB; shrinking is refused (data loss)`,
      },
      {
        name: "target-taken", kind: "DiskAttachment", args: { connection, domain, pool: own.name, volume, target: "sdb", access: "fuse" },
        reason: `domain '${domain}' already has a disk at sdb (${own.targetPath}/${volume})`,
      },
      {
        name: "no-hotplug", kind: "DiskAttachment", args: { connection, domain: lab.domains.running, pool: own.name, volume, target: "sdz", bus: "sata", access: "fuse" },
        reason: `cannot hot-plug into running domain '${lab.domains.running}': sata disks cannot be hot-plugged`,
      },
      {
        name: "pool-taken", kind: "GlusterPool", args: { connection, name: own.name, volume: own.gluster.name, servers: lab.gluster.servers },
        reason: `a pool named '${own.name}' already exists on ${at}; set adopt: true to take it over`,
      },
      {
        // glusterd listens on IPv4 only (transport.address-family inet): ::1 refuses, nothing leaves the machine
        name: "pool-unreachable", kind: "GlusterPool", args: { connection, name: uniqueName("w15-unreach"), volume: own.gluster.name, servers: ["::1"] },
        reason: `doctor check gluster-reachable fails: ${at} cannot connect to ::1:24007 (glusterd); fix: open TCP 24007 on ::1 to ${at}`,
      },
      {
        name: "gluster-taken", kind: "GlusterVolume", args: { connection: { ...connection, sudo: true }, name: lab.gluster.volume, bricks: [`${lab.gluster.servers[0]}:/nonexistent/brick`] },
        reason: `a Gluster volume named '${lab.gluster.volume}' already exists on ${at}; set adopt: true to take it over`,
      },
    ];
    const program = () => {
      const only = cases.find((c) => c.name === new pulumi.Config().get("case"));
      if (only) new (classes[only.kind] as new (name: string, args: unknown) => unknown)(only.name, only.args);
    };
    const workers = await Promise.all([1, 2, 3].map((i) => stackOf(`p15-batch${i}`, program)));
    virsh("attach-disk", domain, `${own.targetPath}/${volume}`, "sdb", "--config");
    // A Gluster pool defined but not started, only while it is needed: an inactive pool makes
    // other suites' in-use scans (their deletes) fail closed.
    virsh("pool-define-as", stoppedPool, "netfs", "--source-host", lab.gluster.servers[0], "--source-path", `/${stoppedGluster.name}`, "--source-format", "glusterfs", "--target", `/var/lib/libvirt/gluster/${stoppedPool}`);
    try {
      const before = hostSnapshot();
      const queue = [...cases];
      const { connections: used } = await counted(() =>
        Promise.all(workers.map(async (t) => {
          for (let c = queue.shift(); c; c = queue.shift()) {
            await t.stack.setConfig("case", { value: c.name });
            const preview = await failure(() => t.stack.preview());
            assert.ok(preview.includes(c.reason), `${c.name}: the preview says "${c.reason}":\n${preview}`);
          }
        })),
      );
      assert.equal(used, cases.length, "each preview opened one SSH connection, shared by its checks");
      for (const c of cases) {
        // What up does: the provider's own check and create, with the same inputs and host.
        const direct = { ...(c.args.connection as object), port: proxy.port, user: lab.ssh.user, privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: proxy.knownHostsFile };
        const crud = resources[c.kind] as unknown as ResourceCrud<Record<string, unknown>, unknown>;
        const checked = await crud.check({}, { ...c.args, connection: direct });
        assert.equal(checked.failures, undefined, `${c.name}: up's check passes`);
        await assert.rejects(crud.create(checked.inputs!), (err: Error) => err.message.includes(c.reason), `${c.name}: create fails with the same message`);
      }
      assert.equal(hostSnapshot(), before, "neither the previews nor the refused creates changed anything on the host");
    } finally {
      tryVirsh("pool-undefine", stoppedPool);
      virsh("detach-disk", domain, "sdb", "--config");
    }
  });

  test("inputs not known until up (chained outputs) and objects this run creates first do not fail the preview", async () => {
    const connection = { host: "127.0.0.1" };
    const name = uniqueName("p15-new");
    const chained = await stackOf("p15-chained", () => {
      const pool = new GlusterPool("pool", { connection, name, volume: own.gluster.name, servers: lab.gluster.servers });
      // unknown in a preview: the uuid exists only once the pool does
      new ImageVolume("unknown-pool", { connection, pool: pool.uuid.apply(() => name), name: "u.img", capacity: "1MiB" });
      // known (an input passed through), but the pool is made by this run
      const image = new ImageVolume("planned-pool", { connection, pool: pool.name, name: "p.img", capacity: "1MiB" });
      new DiskAttachment("unknown-volume", { connection, domain, pool: pool.name, volume: image.key.apply(() => "p.img"), target: "sdc", access: "fuse" });
      new DiskAttachment("planned-volume", { connection, domain, pool: pool.name, volume: image.name, target: "sdd", access: "fuse" });
    });
    const before = hostSnapshot();
    const preview = await chained.stack.preview();
    assert.deepEqual(changes(preview.changeSummary), { create: 6 });
    assert.equal(hostSnapshot(), before);
  });
});
