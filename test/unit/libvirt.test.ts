import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { blockDeviceCapacity, resizeBlockDevice } from "../../provider/libvirt/domains";
import { findDiskUses } from "../../provider/libvirt/usage";
import { glusterUrl, pathInGlusterVolume, volumeGlusterUrl } from "../../provider/libvirt/gluster";
import type { Host } from "../../provider/host";
import { permissionsWithDefaults } from "../../provider/libvirt/qemu";
import { isVanishedFile, listVolumePaths, parseVolumeList, refreshPool, saysGone, volumePathMatcher } from "../../provider/libvirt/volumes";
import { sourceOfBackingPath, sourceReferencesVolume } from "../../provider/xml/disk";

const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");

/** A Host whose virsh answers `answer(args, n)` for its n-th call (from 1) and records every call; it runs nothing else. */
function virshOnlyHost(answer: (args: readonly string[], n: number) => string | Promise<string>): { host: Host; calls: string[][] } {
  const calls: string[][] = [];
  const host: Host = {
    label: "fake",
    libvirtUri: "qemu:///system",
    exec: () => Promise.reject(new Error("only virsh is expected")),
    virsh: async (args) => {
      calls.push([...args]);
      return answer(args, calls.length);
    },
  };
  return { host, calls };
}

const netfs = volumePathMatcher({ name: "p", type: "netfs", targetPath: "/var/lib/libvirt/gluster/p", gluster: { volume: "vol" } });
const native = volumePathMatcher({ name: "g", type: "gluster", gluster: { volume: "vol", directory: "/images" } });

test("vol-list lines split where the path is the pool's path of the name: spaces, unicode, padding", () => {
  // as virsh 9.0 prints them (a leading blank, names padded to the widest)
  const text = [
    " my vm.qcow2    /var/lib/libvirt/gluster/p/my vm.qcow2",
    " ünï cødé.img   /var/lib/libvirt/gluster/p/ünï cødé.img",
    " a  /var/lib/libvirt/gluster/p/a",
    "",
  ].join("\n");
  assert.deepEqual(parseVolumeList(text, netfs), [
    "/var/lib/libvirt/gluster/p/my vm.qcow2",
    "/var/lib/libvirt/gluster/p/ünï cødé.img",
    "/var/lib/libvirt/gluster/p/a",
  ]);
  // a name that contains what looks like a path of the pool is still split once
  assert.deepEqual(parseVolumeList(" x /var/lib/libvirt/gluster/p/y   /var/lib/libvirt/gluster/p/x /var/lib/libvirt/gluster/p/y", netfs), [
    "/var/lib/libvirt/gluster/p/x /var/lib/libvirt/gluster/p/y",
  ]);
});

test("native gluster pools list percent-encoded URLs; a line that does not parse fails closed", () => {
  assert.deepEqual(parseVolumeList(" my vm.qcow2    gluster://192.0.2.2/vol/images/my%20vm.qcow2", native), ["gluster://192.0.2.2/vol/images/my%20vm.qcow2"]);
  // a C-locale virsh escapes non-ASCII bytes: the name and path no longer agree
  assert.throws(() => parseVolumeList(" \\xff\\xffn.img   /var/lib/libvirt/gluster/p/\\xc3n.img", netfs), /cannot read the volume listing line/);
  // a name with a newline splits its line in two
  assert.throws(() => parseVolumeList(" a\nb   /var/lib/libvirt/gluster/p/a\nb", netfs), /cannot read the volume listing line/);
  // pools whose paths do not derive from names: the path is the last blank-free field
  const iscsi = volumePathMatcher({ name: "i", type: "iscsi" });
  assert.deepEqual(parseVolumeList(" unit:0:0:1   /dev/disk/by-path/ip-192.0.2.9:3260-iscsi-lun-1", iscsi), ["/dev/disk/by-path/ip-192.0.2.9:3260-iscsi-lun-1"]);
});

test("backing files name gluster sources by volume and path, whatever host, decoded", () => {
  assert.deepEqual(sourceOfBackingPath("gluster://gs1:24007/vol/images/my%20base.raw"), { protocol: "gluster", name: "vol/images/my base.raw" });
  assert.deepEqual(sourceOfBackingPath("gluster+tcp://[2001:db8::1]/vol/b.raw"), { protocol: "gluster", name: "vol/b.raw" });
  assert.deepEqual(sourceOfBackingPath("/var/lib/libvirt/gluster/p/base.raw"), { file: "/var/lib/libvirt/gluster/p/base.raw" });
});

test("gluster URLs: IPv6 servers bracketed, the default port left out, paths encoded once", () => {
  assert.equal(glusterUrl("gs1", "vol"), "gluster://gs1/vol");
  assert.equal(glusterUrl("2001:db8::1", "vol", "a/b.img"), "gluster://[2001:db8::1]/vol/a/b.img");
  assert.equal(glusterUrl("gs1", "vol", "b.img", 24007), "gluster://gs1/vol/b.img");
  assert.equal(glusterUrl("gs1", "vol", "my vm+1.img", 24008), "gluster://gs1:24008/vol/my%20vm+1.img");
  assert.equal(pathInGlusterVolume({ directory: "/images/" }, "x.img"), "images/x.img");
  assert.equal(volumeGlusterUrl({ servers: ["::1", "gs2"], volume: "v", directory: "/d" }, "x.img"), "gluster://[::1]/v/d/x.img");
});

test("a volume deleted while virsh lists its pool (path `unknown`) makes the listing be read again, boundedly", async () => {
  const pool = { name: "p", uuid: "u-1", type: "netfs", targetPath: "/var/lib/libvirt/gluster/p", gluster: { volume: "vol" } };
  const fakeHost = (listings: string[]) => virshOnlyHost((_args, n) => listings[Math.min(n, listings.length) - 1]);
  const racing = " base.qcow2   /var/lib/libvirt/gluster/p/base.qcow2\n data.img     unknown\n";
  const settled = " base.qcow2   /var/lib/libvirt/gluster/p/base.qcow2\n";
  const once = fakeHost([racing, settled]);
  assert.deepEqual(await listVolumePaths(once.host, pool), ["/var/lib/libvirt/gluster/p/base.qcow2"]);
  assert.deepEqual(once.calls, [["vol-list", "--pool", "u-1"], ["vol-list", "--pool", "u-1"]]);
  // a path that stays unreadable is an error, after a bounded number of reads
  const stuck = fakeHost([racing]);
  await assert.rejects(listVolumePaths(stuck.host, pool), /cannot read the volume listing line " data.img     unknown"/);
  assert.equal(stuck.calls.length, 5);
  // any other unreadable line is not retried
  const garbled = fakeHost([" \\xffn.img   /var/lib/libvirt/gluster/p/\\xc3n.img\n"]);
  await assert.rejects(listVolumePaths(garbled.host, pool), /cannot read the volume listing line/);
  assert.equal(garbled.calls.length, 1);
});

test("owner fallback: what is wanted, else both ids of the inherited permissions, else the QEMU user (asked only then)", async () => {
  let hosts = 0;
  // `id` as a Debian host (libvirt-qemu) or a RHEL host (qemu) answers, or one without either user
  const fakeHost = (users: Record<string, [number, number]>) => {
    const calls: string[][] = [];
    const host: Host = {
      label: `fake-qemu-${++hosts}`, // qemuIdentity remembers its answer per label
      libvirtUri: "qemu:///system",
      virsh: () => Promise.reject(new Error("not used")),
      exec: (argv) => {
        calls.push([...argv]);
        const ids = users[argv[2]];
        const stdout = ids ? `${argv[1] === "-u" ? ids[0] : ids[1]}\n` : "";
        return Promise.resolve({ code: ids ? 0 : 1, stdout, stderr: ids ? "" : `id: '${argv[2]}': no such user\n` });
      },
    };
    return { host, calls };
  };
  const debian = { "libvirt-qemu": [64055, 108] as [number, number] };
  const defaults = { mode: "0660" };

  // both ids given: nothing is asked, the given mode wins over the default
  const given = fakeHost(debian);
  assert.deepEqual(await permissionsWithDefaults(given.host, { owner: 1, group: 2, mode: "0600" }, defaults), { owner: 1, group: 2, mode: "0600" });
  assert.deepEqual(given.calls, []);

  // one id given: the other is the QEMU user's, the given one stays
  const half = fakeHost(debian);
  assert.deepEqual(await permissionsWithDefaults(half.host, { owner: 1 }, defaults), { mode: "0660", owner: 1, group: 108 });
  assert.deepEqual(await permissionsWithDefaults(half.host, { group: 7 }, defaults), { mode: "0660", owner: 64055, group: 7 });
  assert.deepEqual(half.calls, [["id", "-u", "libvirt-qemu"], ["id", "-g", "libvirt-qemu"]], "asked once per host");

  // inherited (a pool's) owner and group when both are set, without asking the host; the inherited mode is not taken
  const pooled = fakeHost(debian);
  const pool = { owner: 10, group: 20, mode: "0755" };
  assert.deepEqual(await permissionsWithDefaults(pooled.host, undefined, { mode: "0660", inherit: pool }), { mode: "0660", owner: 10, group: 20 });
  assert.deepEqual(await permissionsWithDefaults(pooled.host, { group: 5 }, { mode: "0660", inherit: pool }), { mode: "0660", owner: 10, group: 5 });
  assert.deepEqual(pooled.calls, []);
  // inherited permissions that name only one id are not an owner: the QEMU user is
  assert.deepEqual(await permissionsWithDefaults(pooled.host, undefined, { mode: "0660", inherit: { owner: 10 } }), { mode: "0660", owner: 64055, group: 108 });

  // a RHEL host: libvirt-qemu is not there, qemu is
  const rhel = fakeHost({ qemu: [107, 107] });
  assert.deepEqual(await permissionsWithDefaults(rhel.host, undefined, { mode: "0755" }), { mode: "0755", owner: 107, group: 107 });
  assert.deepEqual(rhel.calls, [["id", "-u", "libvirt-qemu"], ["id", "-u", "qemu"], ["id", "-g", "qemu"]]);

  // no QEMU user at all: only what is given, and the mode
  const none = fakeHost({});
  assert.deepEqual(await permissionsWithDefaults(none.host, { owner: 3 }, defaults), { mode: "0660", owner: 3 });
});

test("findDiskUses liveOnly: running domains' live definitions alone, no storage read; each use carries the uuid and the live disk", async () => {
  const uuid = "dae223e5-b9e8-4a87-96f2-b442434041c8";
  // exec fails: liveOnly runs no command on the host (no qemu-img of a backing chain)
  const { host, calls } = virshOnlyHost((args) => {
    const key = args.join(" ");
    if (key === "list --all --uuid --name") return `${uuid} xmltest-dom\n`;
    if (key === `dumpxml --inactive ${uuid}`) return fixture("domain-inactive.xml");
    if (key === `dumpxml ${uuid}`) return fixture("domain-live.xml");
    throw new Error(`unexpected virsh ${key}`);
  });
  const data = await findDiskUses(host, (s) => sourceReferencesVolume(s, { glusterVolume: "labvol", glusterPath: "xmltest-data.img" }), "x", { liveOnly: true });
  assert.deepEqual(data.map((u) => [u.domain, u.uuid, u.target, u.in, u.liveDisk?.source?.name]), [["xmltest-dom", uuid, "sdb", ["live"], "labvol/xmltest-data.img"]]);
  // an image below the disk's own (a backing file) is a use too; the live disk says whose image is on top
  const base = await findDiskUses(host, (s) => sourceReferencesVolume(s, { filePath: "/tmp/xmltest/mnt/xmltest-base.qcow2" }), "x", { liveOnly: true });
  assert.deepEqual(base.map((u) => [u.target, u.liveDisk?.source?.file]), [["vda", "/tmp/xmltest/mnt/xmltest-clone.qcow2"]]);
  assert.ok(calls.every((c) => !c[0].startsWith("pool-") && !c[0].startsWith("vol-")), JSON.stringify(calls));
});

test("block device size: domblkinfo's Capacity in bytes (anything else fails); blockresize gets the size in bytes", async () => {
  const answer = { text: "Capacity:       2097152\nAllocation:     0\nPhysical:       2097152\n" };
  const { host, calls } = virshOnlyHost((args) => (args[0] === "domblkinfo" ? answer.text : ""));
  assert.equal(await blockDeviceCapacity(host, "u-1", "sdb"), 2097152);
  await resizeBlockDevice(host, "u-1", "sdb", 3 * 2 ** 20 + 512);
  assert.deepEqual(calls, [["domblkinfo", "u-1", "sdb"], ["blockresize", "u-1", "sdb", "3146240B"]]);
  answer.text = "Capacity:       -\n";
  await assert.rejects(blockDeviceCapacity(host, "u-1", "sdb"), /unexpected `virsh domblkinfo` output for disk sdb/);
});

/**
 * A pool as libvirt keeps it: a refresh that fails stops it (storagePoolRefresh), pool-start
 * starts it. `refreshes` are the outcomes of successive refreshes (an error message or "ok").
 */
function poolThatStopsOnFailedRefresh(refreshes: string[], startFails?: string | string[], infoFails?: string) {
  let state = "running";
  let n = 0;
  let starts = 0;
  return virshOnlyHost((args) => {
    if (args[0] === "pool-refresh") {
      if (state !== "running") throw new Error("error: Requested operation is not valid: storage pool 'p' is not active");
      const outcome = refreshes[Math.min(n++, refreshes.length - 1)]!;
      if (outcome === "ok") return "Pool p refreshed\n";
      state = "inactive";
      throw new Error(`error: Failed to refresh pool p\n${outcome}`);
    }
    if (args[0] === "pool-info" && infoFails) throw new Error(infoFails);
    if (args[0] === "pool-info") return `Name:           p\nState:          ${state}\n`;
    if (args[0] === "pool-start") {
      const fails = Array.isArray(startFails) ? startFails[starts++] : startFails;
      if (fails) throw new Error(fails);
      state = "running";
      return "Pool p started\n";
    }
    throw new Error(`unexpected virsh ${args.join(" ")}`);
  });
}

const vanished = "error: cannot read header '/var/lib/libvirt/gluster/p/h9-v66.img': Stale file handle";

test("isVanishedFile: a file gone between libvirt's readdir and its open, not any refresh failure", () => {
  assert.ok(isVanishedFile(new Error(vanished)));
  assert.ok(isVanishedFile(new Error("error: cannot open volume '/var/lib/libvirt/gluster/p/a.img': No such file or directory")));
  assert.ok(!isVanishedFile(new Error("error: cannot open directory '/var/lib/libvirt/gluster/p': Permission denied")));
  assert.ok(!isVanishedFile(new Error("error: cannot open directory '/var/lib/libvirt/gluster/p': No such file or directory")), "the pool's own directory is no file inside it");
  assert.ok(!isVanishedFile(new Error("error: storage pool 'p' has asynchronous jobs running.")));
  assert.ok(!isVanishedFile(undefined));
});

test("saysGone: only of that very path, in either quotes, for either way of being gone", () => {
  assert.ok(saysGone(vanished, "/var/lib/libvirt/gluster/p/h9-v66.img"));
  assert.ok(saysGone("find: \u2018/mnt/p/x.img\u2019: No such file or directory", "/mnt/p/x.img"));
  assert.ok(!saysGone(vanished, "/var/lib/libvirt/gluster/p/h9-v6"), "a prefix of the path is another file");
  assert.ok(!saysGone("qemu-img: Could not open '/mnt/p/base.img': No such file or directory", "/mnt/p/o.qcow2"), "another file (a backing file) gone");
  assert.ok(!saysGone("qemu-img: Could not open '/mnt/p/o.qcow2': Permission denied", "/mnt/p/o.qcow2"));
});

test("refreshPool: a file vanishing during the refresh restarts the pool libvirt stopped, then refreshes again", async () => {
  const { host, calls } = poolThatStopsOnFailedRefresh([vanished, "ok"]);
  await refreshPool(host, "p");
  assert.deepEqual(calls.map((c) => c[0]), ["pool-refresh", "pool-info", "pool-start", "pool-refresh"]);
});

test("refreshPool: files vanishing every time: three refreshes, the pool started again after each, the error stands", async () => {
  const { host, calls } = poolThatStopsOnFailedRefresh([vanished]);
  await assert.rejects(refreshPool(host, "p"), /Stale file handle/);
  assert.deepEqual(calls.map((c) => c[0]), ["pool-refresh", "pool-info", "pool-start", "pool-refresh", "pool-info", "pool-start", "pool-refresh", "pool-info", "pool-start"]);
});

test("refreshPool: skipIfBusy leaves a pool busy with a job of libvirt's own unrefreshed, without waiting", async () => {
  const { host, calls } = poolThatStopsOnFailedRefresh(["error: storage pool 'p' has asynchronous jobs running."]);
  await refreshPool(host, "p", { skipIfBusy: true });
  assert.deepEqual(calls.map((c) => c[0]), ["pool-refresh"]);
});

test("refreshPool: any other refresh failure stands at once, and the pool is not started", async () => {
  const { host, calls } = poolThatStopsOnFailedRefresh(["error: cannot open directory '/var/lib/libvirt/gluster/p': Permission denied"]);
  await assert.rejects(refreshPool(host, "p"), /Permission denied/);
  assert.deepEqual(calls.map((c) => c[0]), ["pool-refresh"]);
});

test("refreshPool: a pool that cannot be started again says so, with the refresh's failure", async () => {
  const { host } = poolThatStopsOnFailedRefresh([vanished], "error: failed to start pool p\nerror: mount failed");
  await assert.rejects(refreshPool(host, "p"), (err: Error) => {
    assert.match(err.message, /pool 'p' on fake: its refresh failed on a file that vanished meanwhile \(.*Stale file handle\), libvirt stopped the pool, and starting it again failed: .*mount failed/s);
    return true;
  });
});

test("refreshPool: a pool whose state cannot be read after the failed refresh says so, with the refresh's failure", async () => {
  const { host } = poolThatStopsOnFailedRefresh([vanished], undefined, "error: failed to get pool 'p'");
  await assert.rejects(refreshPool(host, "p"), (err: Error) => {
    assert.match(err.message, /pool 'p' on fake: its refresh failed on a file that vanished meanwhile \(.*Stale file handle\), and reading whether libvirt stopped the pool failed: .*failed to get pool/s);
    return true;
  });
});

test("refreshPool: a start that fails on a file vanishing too (a start refreshes) is tried again", async () => {
  const { host, calls } = poolThatStopsOnFailedRefresh([vanished, "ok"], [vanished.replace("h9-v66", "h1-v51")]);
  await refreshPool(host, "p");
  assert.deepEqual(calls.map((c) => c[0]), ["pool-refresh", "pool-info", "pool-start", "pool-start", "pool-refresh"]);
});
