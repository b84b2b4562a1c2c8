import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { XmlError } from "../../provider/xml/markup";
import { parseCliOutput, parseVolumeClients, parseVolumeInfo, splitBrick } from "../../provider/xml/gluster";
import { describeClients, parseClientList } from "../../provider/gluster/volumes";
import { VIRT_GROUP, parseGroupFile, sameOptionValue } from "../../provider/gluster/options";
import { classifyCommandError } from "../../provider/errors";

// Tests run from dist/test/unit; fixtures stay in the source tree.
const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");

test("volume info of the lab's labvol (one brick, distribute, started)", () => {
  const [v, ...rest] = parseVolumeInfo(fixture("gluster-volume-info-labvol.xml"));
  assert.equal(rest.length, 0);
  assert.equal(v.name, "labvol");
  assert.equal(v.id, "4be5c31b-5e6b-4eca-9b47-dea2b704618a");
  assert.equal(v.status, "Started");
  assert.equal(v.type, "Distribute");
  assert.deepEqual([v.brickCount, v.replicaCount, v.arbiterCount, v.disperseCount], [1, 1, 0, 0]);
  assert.deepEqual(v.bricks, [{ name: "192.0.2.2:/var/lib/gluster-libvirt-lab/gluster/brick", host: "192.0.2.2", path: "/var/lib/gluster-libvirt-lab/gluster/brick", isArbiter: false }]);
  assert.deepEqual(v.options, {
    "storage.owner-gid": "64055", "storage.owner-uid": "64055", "server.allow-insecure": "on",
    "storage.fips-mode-rchecksum": "on", "transport.address-family": "inet", "nfs.disable": "on",
  });
});

test("a missing volume: opRet -1 with glusterd's message, classified as not found", () => {
  const info = parseCliOutput(fixture("gluster-volume-info-missing.xml"));
  assert.equal(info.opRet, -1);
  assert.equal(info.error, "Volume does not exist");
  assert.equal(classifyCommandError(info.error), "not-found-gluster-volume");
  const status = parseCliOutput(fixture("gluster-volume-status-missing.xml"));
  assert.equal(status.error, "Volume nosuchvol does not exist");
  assert.equal(classifyCommandError(status.error), "not-found-gluster-volume");
  assert.throws(() => parseVolumeInfo(fixture("gluster-volume-info-missing.xml")), XmlError);
  // libvirt's volume errors stay libvirt's
  assert.equal(classifyCommandError("error: Storage volume not found: no storage vol with matching path"), "not-found-volume");
  assert.equal(classifyCommandError("Volume v1 is not in the started state"), "not-running");
});

test("a replica-3 volume, and one with an arbiter: replicaCount includes the arbiter", () => {
  const [r3] = parseVolumeInfo(fixture("gluster-volume-info-replica3.xml"));
  assert.deepEqual([r3.type, r3.status, r3.brickCount, r3.replicaCount, r3.arbiterCount], ["Replicate", "Started", 3, 3, 0]);
  assert.equal(r3.options["network.ping-timeout"], "30");
  assert.equal(r3.options["features.shard"], "on");
  const [arb] = parseVolumeInfo(fixture("gluster-volume-info-arbiter.xml"));
  assert.deepEqual([arb.type, arb.status, arb.replicaCount, arb.arbiterCount], ["Replicate", "Created", 3, 1]);
  assert.deepEqual(arb.bricks.map((b) => b.isArbiter), [false, false, true]);
});

test("opRet 0 is success even with an <opErrstr>: glusterd warns there when force reuses an old volume's bricks", () => {
  const out = parseCliOutput(fixture("gluster-volume-create-reused-bricks.xml"));
  assert.equal(out.opRet, 0);
  assert.match(out.error, /already part of a volume/);
});

test("volume status clients: each brick's connections", () => {
  assert.deepEqual(parseVolumeClients(fixture("gluster-volume-status-clients-labvol.xml")), [
    { brick: "192.0.2.2:/var/lib/gluster-libvirt-lab/gluster/brick", clients: ["192.0.2.2:49148", "192.0.2.2:49139"] },
  ]);
});

test("client-list: kinds of clients; a table that does not add up is unreadable", () => {
  const text = fixture("gluster-client-list-labvol.txt");
  assert.deepEqual(parseClientList(text), [{ name: "fuse", count: 1 }, { name: "gfapi.qemu-system-x86", count: 1 }]);
  assert.equal(parseClientList(text.replace("volume labvol : 2", "volume labvol : 3")), undefined);
  assert.equal(parseClientList("Volume labvol is not started\n"), undefined);
});

test("who uses a volume: Gluster's own daemons do not count; without a client-list every connection does", () => {
  const bricks = [{ brick: "h:/b1", clients: ["h:49150", "h:49151"] }, { brick: "h:/b2", clients: ["h:49150"] }];
  assert.equal(describeClients([{ name: "glustershd", count: 2 }], bricks), undefined);
  assert.match(describeClients([{ name: "glustershd", count: 1 }, { name: "fuse", count: 1 }], bricks) ?? "", /^fuse ×1 \(.*h:49150, h:49151\)$/);
  assert.match(describeClients(undefined, bricks) ?? "", /^2 client connection/);
  assert.equal(describeClients(undefined, [{ brick: "h:/b1", clients: [] }]), undefined);
});

test("the virt group table is the one glusterfs 10.3 ships", () => {
  assert.deepEqual(VIRT_GROUP, parseGroupFile(fixture("gluster-groups-virt")));
});

test("option values: the same text, or the same boolean in any of glusterd's spellings", () => {
  assert.ok(sameOptionValue("on", "on"));
  assert.ok(sameOptionValue("enable", "on"));
  assert.ok(sameOptionValue("Off", "disable"));
  assert.ok(!sameOptionValue("on", "off"));
  assert.ok(!sameOptionValue("20", "30"));
  assert.ok(!sameOptionValue(undefined, "on"));
});

test("bricks split at the first ':/'", () => {
  assert.deepEqual(splitBrick("gs1:/data/b:1"), { host: "gs1", path: "/data/b:1" });
  assert.equal(splitBrick("/data/b1"), undefined);
  assert.equal(splitBrick("gs1:data"), undefined);
});
