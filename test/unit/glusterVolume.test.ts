import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createArgv, describeChange, glusterVolume, glusterVolumeSchema, layoutDifferences, observedOptions, refusedChanges, type GlusterVolumeArgs } from "../../provider/glusterVolume";
import { VIRT_GROUP } from "../../provider/gluster/options";
import { UNKNOWN } from "../../provider/resource";
import { parseVolumeInfo } from "../../provider/xml/gluster";

const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");
const connection = { host: "gs1", sudo: true };
const bricks = ["gs1:/data/b1", "gs1:/data/b2", "gs1:/data/b3"];
const valid = { connection, name: "vmstore", bricks, replica: 3, force: true };
const args = (extra: object = {}): GlusterVolumeArgs => glusterVolumeSchema.parse({ ...valid, ...extra });

test("check fills defaults and spells the convenience inputs out as options", async () => {
  const r = await glusterVolume.check({}, { ...valid, virtProfile: true, qemuOwner: { uid: 64055, gid: 64055 }, allowInsecure: true, sharedPools: true, options: { "network.ping-timeout": "30" } });
  assert.equal(r.failures, undefined);
  const inputs = r.inputs!;
  assert.deepEqual(inputs.options, {
    ...VIRT_GROUP, "network.ping-timeout": "30", "storage.owner-uid": "64055", "storage.owner-gid": "64055", "server.allow-insecure": "on",
    "performance.open-behind": "off", "performance.stat-prefetch": "off",
  });
  assert.equal((await glusterVolume.check({}, valid)).inputs!.sharedPools, false, "sharedPools is opt-in: options left as they are");
  assert.deepEqual((await glusterVolume.check({}, valid)).inputs!.options, {});
  assert.equal(inputs.started, true);
  assert.equal(inputs.adopt, false);
  assert.equal(inputs.forceDestroy, false);
  // what check returns is taken again as it is (create parses it once more)
  assert.deepEqual(glusterVolumeSchema.parse(inputs), inputs);
});

test("check names each bad field, before any host is contacted", async () => {
  const r = await glusterVolume.check({}, {
    connection, name: "v m", bricks: ["gs1:/data/b1", "gs1:/etc/x", "bad", "gs1:/var/lib"], replica: 3,
    options: { "Bad Key": "x", "cluster.op-version": "1", "a.b": "" },
  });
  assert.deepEqual(r.failures?.map((f) => f.property).sort(), [
    "bricks[1]", "bricks[2]", "bricks[3]", "name", 'options["Bad Key"]', 'options["a.b"]', 'options["cluster.op-version"]',
  ]);
  const key = r.failures?.find((f) => f.property === 'options["cluster.op-version"]');
  assert.match(key?.reason ?? "", /every volume of the trusted storage pool/);
});

test("check: layout rules and conflicts with convenience inputs", async () => {
  const reasons = async (news: Record<string, unknown>) => Object.fromEntries(((await glusterVolume.check({}, news)).failures ?? []).map((f) => [f.property, f.reason]));
  assert.match((await reasons({ ...valid, bricks: bricks.slice(0, 2) })).bricks, /whole replica sets of 3/);
  assert.match((await reasons({ ...valid, replica: 2, arbiter: 1, bricks: bricks.slice(0, 2) })).arbiter, /replica: 3/);
  assert.match((await reasons({ ...valid, disperse: 3 })).disperse, /not both/);
  assert.match((await reasons({ ...valid, replica: undefined, redundancy: 1 })).redundancy, /disperse/);
  assert.match((await reasons({ ...valid, replica: undefined, disperse: 3, redundancy: 2 })).redundancy, /less than half/);
  assert.match((await reasons({ ...valid, bricks: [bricks[0], bricks[0], bricks[1]] }))["bricks[1]"], /twice/);
  assert.match((await reasons({ ...valid, qemuOwner: { uid: 1, gid: 2 }, options: { "storage.owner-uid": "0" } }))['options["storage.owner-uid"]'], /conflicts with qemuOwner.uid/);
  assert.deepEqual(await reasons({ ...valid, allowInsecure: true, options: { "server.allow-insecure": "enable" } }), {});
  assert.match((await reasons({ ...valid, sharedPools: true, options: { "performance.open-behind": "on" } }))['options["performance.open-behind"]'], /conflicts with sharedPools/);
  assert.match((await reasons({ ...valid, replica: undefined, virtProfile: true })).virtProfile, /without replica/);
});

test("check and diff refuse a layout change with an explanation, unless forceDestroy", async () => {
  const olds = args();
  const r = await glusterVolume.check(olds, { ...valid, bricks: [...bricks, "gs1:/data/b4", "gs1:/data/b5", "gs1:/data/b6"] });
  assert.deepEqual(r.failures?.map((f) => f.property), ["bricks"]);
  assert.match(r.failures![0].reason, /needs a new volume.*refused, nothing was changed.*forceDestroy: true/);
  const replica = await glusterVolume.check(olds, { ...valid, replica: undefined });
  assert.deepEqual(replica.failures?.map((f) => f.property), ["replica"]);
  await assert.rejects(glusterVolume.diff("id", { ...olds, volumeId: "id", status: "Started", volumeType: "Replicate", servers: ["gs1"] }, { ...olds, name: "other" }), /^InputError: name: changing a Gluster volume's name/);
  // forceDestroy lets it through as a replacement
  const forced = await glusterVolume.check(olds, { ...valid, name: "other", forceDestroy: true });
  assert.equal(forced.failures, undefined);
  const diff = await glusterVolume.diff("id", { ...olds, volumeId: "id", status: "Started", volumeType: "Replicate", servers: ["gs1"] }, forced.inputs!);
  assert.deepEqual(diff.replaces, ["name"]);
  // a value not known yet (preview) is not judged
  assert.deepEqual(refusedChanges(olds, { ...olds, bricks: UNKNOWN }), []);
  // a first create has no olds
  assert.deepEqual(refusedChanges({}, olds), []);
});

test("sharding once on is never turned off, forceDestroy or not", () => {
  const on = args({ virtProfile: true });
  for (const news of [args(), args({ options: { "features.shard": "off" } }), args({ forceDestroy: true })]) {
    assert.deepEqual(refusedChanges(on, news).map((r) => r.field), ['options["features.shard"]']);
  }
  assert.deepEqual(refusedChanges(on, args({ options: { "features.shard": "on" } })), []);
});

test("option changes, start state and the connection update in place", async () => {
  const olds = { ...args({ options: { "network.ping-timeout": "20" } }), volumeId: "id", status: "Started", volumeType: "Replicate", servers: ["gs1"] };
  for (const news of [
    args({ options: { "network.ping-timeout": "30" } }),
    args({ options: {} }),
    args({ options: { "network.ping-timeout": "20" }, started: false }),
    args({ options: { "network.ping-timeout": "20" }, connection: { host: "gs2", sudo: true } }),
  ]) {
    const d = await glusterVolume.diff("id", olds, news);
    assert.equal(d.changes, true);
    assert.deepEqual(d.replaces, []);
  }
  assert.equal((await glusterVolume.diff("id", olds, args({ options: { "network.ping-timeout": "20" } }))).changes, false);
});

test("create's argv: counts before bricks, force last", () => {
  assert.deepEqual(createArgv(args()), ["volume", "create", "vmstore", "replica", "3", ...bricks, "force"]);
  assert.deepEqual(createArgv(args({ arbiter: 1, force: false })), ["volume", "create", "vmstore", "replica", "3", "arbiter", "1", ...bricks]);
  assert.deepEqual(createArgv(args({ replica: undefined, disperse: 3, redundancy: 1 })), ["volume", "create", "vmstore", "disperse", "3", "redundancy", "1", ...bricks, "force"]);
});

test("adopt compares bricks and counts with what the server has", () => {
  const [labvol] = parseVolumeInfo(fixture("gluster-volume-info-labvol.xml"));
  const brick = "192.0.2.2:/var/lib/gluster-libvirt-lab/gluster/brick";
  assert.deepEqual(layoutDifferences(labvol, args({ name: "labvol", bricks: [brick], replica: undefined })), []);
  assert.deepEqual(layoutDifferences(labvol, args({ name: "labvol", bricks: [brick, "192.0.2.2:/x/b2", "192.0.2.2:/x/b3"] })), [
    `bricks: the server has ["${brick}"], wanted ["${brick}","192.0.2.2:/x/b2","192.0.2.2:/x/b3"]`,
    "replica: the server has 1, wanted 3",
  ]);
});

test("observed options: declared keys only, the declared spelling where the value means the same", () => {
  assert.deepEqual(observedOptions({ "cluster.eager-lock": "on", "network.ping-timeout": "20", "user.cifs": "off" }, { "cluster.eager-lock": "enable", "network.ping-timeout": "42", "nfs.disable": "on" }), {
    "cluster.eager-lock": "on", "network.ping-timeout": "42",
  });
});

test("a refused change says what it is in a few words", () => {
  assert.equal(describeChange(["a:/1", "a:/2"], ["a:/1", "a:/2", "a:/3"]), "adds a:/3");
  assert.equal(describeChange(["a:/1", "a:/2"], ["a:/1", "a:/9"]), "adds a:/9; removes a:/2");
  assert.equal(describeChange(["a:/1", "a:/2"], ["a:/2", "a:/1"]), "the same entries in another order");
  assert.equal(describeChange(3, undefined), "3 → null");
});
