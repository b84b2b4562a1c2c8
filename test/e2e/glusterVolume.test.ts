import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { GlusterPool, GlusterVolume } from "../../sdk";
import { SHARED_POOL_OPTIONS, VIRT_GROUP } from "../../provider/gluster/options";
import { parseCliOutput, parseVolumeInfo, type GlusterVolumeInfo } from "../../provider/xml/gluster";
import { getLab, type LabInfo } from "../helpers/lab";
import { gluster, glusterBricks, isMounted, tryVirsh, uniqueName } from "../helpers/local";
import { changes, labCredentials, newStack, upConverged, type TestStack } from "../helpers/stack";

/*
 * GlusterVolume through the Pulumi engine, against the lab's glusterd: the resource logs in
 * as the lab user over SSH and runs `gluster` through `sudo -n`; the test watches glusterd
 * directly as root with the CLI (an observer independent of the transport).
 */

let lab: LabInfo;
let t: TestStack;
let adoptStack: TestStack | undefined;
const volName = uniqueName("e2egv").replace(/-/g, "_");
const poolName = uniqueName("e2egvpool");
const adoptName = uniqueName("e2egvadopt").replace(/-/g, "_");
let bricks: ReturnType<typeof glusterBricks>;
let adoptBricks: ReturnType<typeof glusterBricks>;

/** The volume as glusterd has it, or undefined when there is none of that name. */
function info(name: string): GlusterVolumeInfo | undefined {
  const xml = gluster("--xml", "volume", "info", name);
  return parseCliOutput(xml).opRet === 0 ? parseVolumeInfo(xml).find((v) => v.name === name) : undefined;
}

/**
 * A user's program: a replica-3 volume on the lab's one server (three bricks, `force`: they
 * are on the root filesystem), and optionally a GlusterPool on it, chained to its outputs.
 * Config: `options` (JSON), `wider` (six bricks), `arbiter` (the third brick an arbiter), `volume` (false: left out),
 * `pool` (`chained`, `literal`: the same values typed in, or `none`), `started`, `forceDestroy`.
 */
function program(): Promise<Record<string, unknown>> {
  const cfg = new pulumi.Config();
  const out: Record<string, unknown> = {};
  let volume: GlusterVolume | undefined;
  if (cfg.getBoolean("volume") ?? true) {
    volume = new GlusterVolume("vol", {
      connection: { host: lab.ssh.host, sudo: true },
      name: volName,
      bricks: cfg.getBoolean("wider") ? [...bricks.bricks, ...bricks.bricks.map((b) => `${b}x`)] : bricks.bricks,
      replica: 3,
      arbiter: cfg.getBoolean("arbiter") ? 1 : undefined,
      force: true,
      options: JSON.parse(cfg.get("options") ?? `{"performance.cache-size": "64MB"}`) as Record<string, string>,
      virtProfile: true,
      qemuOwner: { uid: lab.qemu.uid, gid: lab.qemu.gid },
      allowInsecure: true,
      sharedPools: true,
      started: cfg.getBoolean("started") ?? true,
      forceDestroy: cfg.getBoolean("forceDestroy") ?? false,
    });
    Object.assign(out, { volumeId: volume.volumeId, status: volume.status, servers: volume.servers, options: volume.options, bricks: volume.bricks, started: volume.started });
  }
  const pool = cfg.get("pool") ?? "none";
  if (pool !== "none") {
    const chained = pool === "chained" && volume;
    const p = new GlusterPool("pool", {
      connection: { host: lab.ssh.host },
      name: poolName,
      volume: chained ? volume!.name : volName,
      servers: chained ? volume!.servers : [lab.gluster.servers[0]],
    });
    out.targetPath = p.targetPath;
  }
  return Promise.resolve(out);
}

before(async () => {
  lab = await getLab();
  bricks = glusterBricks(lab, volName, 3);
  adoptBricks = glusterBricks(lab, adoptName, 1);
  t = await newStack("glustervol", program, labCredentials(lab));
});

after(async () => {
  await t?.cleanup().catch(() => undefined);
  await adoptStack?.cleanup().catch(() => undefined);
  tryVirsh("pool-destroy", poolName);
  tryVirsh("pool-delete", poolName);
  tryVirsh("pool-undefine", poolName);
  bricks?.remove();
  adoptBricks?.remove();
});

describe("GlusterVolume through the Pulumi engine", () => {
  test("up creates a started replica-3 volume with the virt profile, QEMU's ownership and the declared options", async () => {
    const t0 = Date.now();
    const up = await upConverged(t);
    process.stderr.write(`glustervol: create + refresh + preview in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    assert.equal(up.summary.result, "succeeded");
    const v = info(volName);
    assert.ok(v, "the volume exists");
    assert.equal(v.status, "Started");
    assert.equal(v.replicaCount, 3);
    assert.deepEqual(v.bricks.map((b) => b.name), bricks.bricks);
    assert.equal(up.outputs.volumeId.value, v.id);
    assert.deepEqual(up.outputs.servers.value, [lab.gluster.servers[0]]);
    const want = { ...VIRT_GROUP, "performance.cache-size": "64MB", "storage.owner-uid": String(lab.qemu.uid), "storage.owner-gid": String(lab.qemu.gid), "server.allow-insecure": "on", ...SHARED_POOL_OPTIONS };
    for (const [key, value] of Object.entries(want)) assert.equal(v.options[key], value, key);
    assert.deepEqual(up.outputs.options.value, want);
  });

  test("an option change is previewed per option and applied in place", async () => {
    await t.stack.setConfig("options", { value: JSON.stringify({ "performance.cache-size": "128MB", "performance.write-behind-window-size": "4MB" }) });
    const preview = await t.stack.preview({ diff: true });
    process.stderr.write(`glustervol: preview --diff of an option change:\n${preview.stdout.split("\n").filter((l) => /options|performance/.test(l)).join("\n")}\n`);
    assert.deepEqual(changes(preview.changeSummary), { update: 1 });
    assert.match(preview.stdout, /performance\.cache-size.*64MB.*128MB/);
    assert.match(preview.stdout, /\+ .*performance\.write-behind-window-size.*4MB/);
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { update: 1 });
    assert.equal(info(volName)?.options["performance.cache-size"], "128MB");
    assert.equal(info(volName)?.options["performance.write-behind-window-size"], "4MB");

    // removed from the program: reset to glusterd's default
    await t.stack.setConfig("options", { value: JSON.stringify({ "performance.cache-size": "128MB" }) });
    await upConverged(t);
    assert.equal(info(volName)?.options["performance.write-behind-window-size"], undefined);
  });

  test("options changed by hand are drift on refresh, and up sets them back", async () => {
    gluster("volume", "set", volName, "network.ping-timeout", "42");
    gluster("volume", "reset", volName, "performance.cache-size");
    gluster("volume", "set", volName, "performance.io-thread-count", "8"); // not declared: never drift
    const refresh = await t.stack.refresh();
    assert.deepEqual(changes(refresh.summary.resourceChanges), { update: 1 });
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { update: 1 });
    const options = info(volName)!.options;
    assert.equal(options["network.ping-timeout"], "20");
    assert.equal(options["performance.cache-size"], "128MB");
    assert.equal(options["performance.io-thread-count"], "8");
  });

  test("a volume stopped by hand is started again by up", async () => {
    gluster("volume", "stop", volName);
    const refresh = await t.stack.refresh();
    assert.deepEqual(changes(refresh.summary.resourceChanges), { update: 1 });
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { update: 1 });
    assert.equal(info(volName)?.status, "Started");
  });

  test("a volume deleted by hand is gone on refresh, and up makes it again (on its old bricks: force)", async () => {
    const oldId = info(volName)!.id;
    gluster("volume", "stop", volName, "force");
    gluster("volume", "delete", volName);
    const refresh = await t.stack.refresh();
    assert.deepEqual(changes(refresh.summary.resourceChanges), { delete: 1 });
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { create: 1 });
    const v = info(volName)!;
    assert.equal(v.status, "Started");
    assert.notEqual(v.id, oldId);
    assert.equal(v.options["features.shard"], "on");
  });

  test("a change of bricks or the arbiter count is refused at preview, with the reason", async () => {
    const before = info(volName)!;
    for (const [key, value, field] of [["wider", "true", "bricks"], ["arbiter", "true", "arbiter"]] as const) {
      await t.stack.setConfig(key, { value });
      const err = await t.stack.preview({ diff: true }).then(() => undefined, (e: unknown) => e as Error);
      assert.ok(err, `a preview with ${key}=${value} must fail`);
      process.stderr.write(`glustervol: ${key}=${value}: ${/error: .*/.exec(err.message)?.[0] ?? err.message}\n`);
      assert.match(String(err.message), new RegExp(`changing a Gluster volume's ${field}[\\s\\S]*refused, nothing was changed`));
      await t.stack.removeConfig(key);
    }
    assert.deepEqual(info(volName), before, "the volume is untouched");
  });

  test("with forceDestroy, a layout change replaces the volume: deleted, then created on the same bricks", async () => {
    const oldId = info(volName)!.id;
    await t.stack.setConfig("forceDestroy", { value: "true" });
    await t.stack.setConfig("arbiter", { value: "true" });
    const preview = await t.stack.preview({ diff: true });
    assert.deepEqual(changes(preview.changeSummary), { replace: 1 });
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { replace: 1 });
    const v = info(volName)!;
    assert.deepEqual([v.replicaCount, v.arbiterCount, v.status], [3, 1, "Started"]);
    assert.notEqual(v.id, oldId);
    await t.stack.removeConfig("arbiter");
    await upConverged(t);
    assert.equal(info(volName)!.arbiterCount, 0);
    await t.stack.removeConfig("forceDestroy");
    await upConverged(t);
  });

  test("with a GlusterPool mounted on it, the volume's stop and delete are refused naming the client; once the pool is gone delete is allowed", async () => {
    await t.stack.setConfig("pool", { value: "chained" });
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { create: 1 });
    const targetPath = up.outputs.targetPath.value as string;
    assert.ok(isMounted(targetPath), "the pool mounts the volume through FUSE");
    fs.writeFileSync(path.join(targetPath, "marker.txt"), "kept\n");

    // stopping it would cut the mount off: refused the same way
    await t.stack.setConfig("started", { value: "false" });
    const stop = await t.stack.up().then(() => undefined, (e: unknown) => e as Error);
    assert.match(String(stop?.message), /is in use by fuse ×\d[\s\S]*stopping it would cut them off/);
    assert.equal(info(volName)?.status, "Started");
    await t.stack.removeConfig("started");

    // the pool no longer takes its values from the volume, so the volume alone can go
    await t.stack.setConfig("pool", { value: "literal" });
    await upConverged(t);
    await t.stack.setConfig("volume", { value: "false" });
    const err = await t.stack.up().then(() => undefined, (e: unknown) => e as Error);
    assert.ok(err, "deleting a volume with a mounted pool must fail");
    process.stderr.write(`glustervol: delete with the pool mounted: ${/error: .*/.exec(err.message)?.[0] ?? err.message}\n`);
    assert.match(String(err.message), new RegExp(`Gluster volume '${volName}' [\\s\\S]*is in use by fuse ×\\d`));
    assert.equal(info(volName)?.status, "Started", "the volume is untouched");

    await t.stack.setConfig("volume", { value: "true" });
    await t.stack.setConfig("pool", { value: "none" });
    const down = await upConverged(t);
    assert.deepEqual(changes(down.summary.resourceChanges), { delete: 1 });
    assert.ok(!isMounted(targetPath));
  });

  test("destroy deletes the volume, never the bricks' data", async () => {
    await t.stack.destroy();
    assert.equal(info(volName), undefined);
    for (const dir of bricks.dirs) assert.equal(fs.readFileSync(path.join(dir, "marker.txt"), "utf8"), "kept\n", dir);
  });

  test("adopt takes over a volume made by hand whose layout matches, and manages only the declared options", async () => {
    gluster("volume", "create", adoptName, adoptBricks.bricks[0], "force");
    gluster("volume", "set", adoptName, "performance.cache-size", "32MB");
    gluster("volume", "set", adoptName, "network.ping-timeout", "30");
    gluster("volume", "start", adoptName);
    const id = info(adoptName)!.id;
    let wrongLayout = true;
    adoptStack = await newStack("glustervol-adopt", () => {
      const v = new GlusterVolume("adopted", {
        connection: { host: lab.ssh.host, sudo: true },
        name: adoptName,
        bricks: wrongLayout ? [...adoptBricks.bricks, `${adoptBricks.bricks[0]}-2`] : adoptBricks.bricks,
        force: true,
        adopt: true,
        options: { "network.ping-timeout": "25" },
      });
      return Promise.resolve({ volumeId: v.volumeId, options: v.options });
    }, labCredentials(lab));

    const err = await adoptStack.stack.up().then(() => undefined, (e: unknown) => e as Error);
    assert.match(String(err?.message), /has another layout; not adopted, nothing was changed/);
    assert.equal(info(adoptName)?.options["network.ping-timeout"], "30", "nothing was changed");

    wrongLayout = false;
    const up = await upConverged(adoptStack);
    assert.equal(up.outputs.volumeId.value, id);
    assert.deepEqual(up.outputs.options.value, { "network.ping-timeout": "25" });
    const options = info(adoptName)!.options;
    assert.equal(options["network.ping-timeout"], "25");
    assert.equal(options["performance.cache-size"], "32MB", "an option not declared is left as it was");

    fs.writeFileSync(path.join(adoptBricks.dirs[0], "marker.txt"), "kept\n");
    await adoptStack.stack.destroy();
    assert.equal(info(adoptName), undefined);
    assert.ok(fs.existsSync(path.join(adoptBricks.dirs[0], "marker.txt")), "the brick's data stays");
  });
});
