import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GlusterLibvirtError } from "../../provider/errors";
import { imageVolume, type LiveDisk, partialGrowthError, planGrowth, staleDisksOf, volumeChanges, volumeSchema } from "../../provider/volume";
import { localContentDigest } from "../../provider/localImage";
import { UNKNOWN, type Unchecked } from "../../provider/resource";

const connection = { host: "kvm1" };
const empty = { connection, pool: "primary", name: "vm1.img", capacity: "1GiB" };

/** A local file that exists: this test's own compiled file. */
const existing = __filename;

const failures = async (inputs: Unchecked) => [...new Set(((await imageVolume.check({}, inputs)).failures ?? []).map((f) => f.property))].sort();

test("check fills defaults and turns sizes into bytes", async () => {
  const r = await imageVolume.check({}, empty);
  assert.equal(r.failures, undefined);
  assert.deepEqual(r.inputs, { ...empty, capacity: 2 ** 30, format: "raw", preallocation: "off", adopt: false });
});

test("check: format defaults from the name's extension, and to qcow2 for overlays", async () => {
  const format = async (over: Unchecked) => (await imageVolume.check({}, { ...empty, ...over })).inputs?.format;
  assert.equal(await format({ name: "a.qcow2" }), "qcow2");
  assert.equal(await format({ name: "a.QCOW2" }), "qcow2");
  assert.equal(await format({ name: "a.img" }), "raw");
  assert.equal(await format({ name: "a", capacity: undefined, backingVolume: { volume: "base.img" } }), "qcow2");
  assert.equal(await format({ name: "a.qcow2", format: "raw" }), "raw");
});

test("check names each bad field", async () => {
  assert.deepEqual(
    await failures({ connection: { host: "kvm1", port: 0 }, pool: "bad pool", name: "", capacity: "12 parsecs", format: "vmdk", permissions: { mode: "999" } }),
    ["capacity", "connection.port", "format", "name", "permissions.mode", "pool"],
  );
});

test("check: sources — exactly one kind, fields that belong to another kind are refused", async () => {
  assert.deepEqual(await failures({ ...empty, source: {} }), ["source"]);
  assert.deepEqual(await failures({ ...empty, source: { path: "/a", url: "https://x/y" } }), ["source.url"]);
  assert.deepEqual(await failures({ ...empty, source: { volume: "v", sha256: "0".repeat(64) } }), ["source.sha256"]);
  assert.deepEqual(await failures({ ...empty, source: { path: existing, sha256: "0".repeat(64) } }), []);
  assert.deepEqual(await failures({ ...empty, source: { url: "https://x/y", pool: "p" } }), ["source.pool"]);
  assert.deepEqual(await failures({ ...empty, source: { url: "file:///etc/passwd" } }), ["source.url"]);
  assert.deepEqual(await failures({ ...empty, source: { url: "https://x/y", sha256: "abc" } }), ["source.sha256"]);
  assert.deepEqual(await failures({ ...empty, source: { volume: "../x" } }), ["source.volume"]);
  assert.deepEqual(await failures({ ...empty, source: { path: existing }, backingVolume: { volume: "b" } }), ["backingVolume"]);
  assert.deepEqual(await failures({ ...empty, source: { nope: 1 } }), ["source", "source.nope"]);
});

test("check: sizes and formats that cannot work are refused up front", async () => {
  assert.deepEqual(await failures({ ...empty, capacity: undefined }), ["capacity"]);
  assert.deepEqual(await failures({ ...empty, capacity: 0 }), ["capacity"]);
  assert.deepEqual(await failures({ ...empty, name: "a.qcow2", capacity: 1000 }), ["capacity"]);
  assert.deepEqual(await failures({ ...empty, format: "raw", backingVolume: { volume: "b" } }), ["format"]);
  assert.deepEqual(await failures({ ...empty, preallocation: "metadata" }), ["preallocation"]);
  assert.deepEqual(await failures({ ...empty, source: { volume: "b" }, preallocation: "full" }), ["preallocation"]);
  assert.deepEqual(await failures({ ...empty, capacity: undefined, source: { url: "https://example.org/x.img" } }), []);
});

test("check: capacity is at most 64 TiB; negative and non-numeric sizes are refused", async () => {
  assert.deepEqual(await failures({ ...empty, capacity: "64TiB" }), []);
  for (const capacity of ["1PB", "65TiB", 64 * 2 ** 40 + 1, -1, "-1G", "1e3", Number.MAX_SAFE_INTEGER + 2, 1.5]) {
    assert.deepEqual(await failures({ ...empty, capacity }), ["capacity"], String(capacity));
  }
});

test("check: download URLs with whitespace or control characters are refused (URL parsers drop them silently)", async () => {
  for (const url of ["https://x/a b", "https://x/a\nb", "https://x/a\tb", " https://x/a", "https://x/a\u0000"]) {
    assert.deepEqual(await failures({ ...empty, source: { url } }), ["source.url"], JSON.stringify(url));
  }
  assert.deepEqual(await failures({ ...empty, source: { url: "https://u:p%20w@x/a?t=1" } }), []);
});

test("check: a local source file that is missing, not a file or unreadable fails on source.path", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vol-check-"));
  try {
    const r = await imageVolume.check({}, { ...empty, source: { path: path.join(dir, "missing.img") } });
    assert.deepEqual(r.failures?.map((f) => f.property), ["source.path"]);
    assert.match(r.failures![0].reason, /missing\.img .*no such file/);
    assert.deepEqual((await imageVolume.check({}, { ...empty, source: { path: dir } })).failures?.map((f) => [f.property, f.reason]), [["source.path", `${dir} is not a regular file`]]);
    // another problem of `source` is reported alone, not buried under the file's
    assert.deepEqual(await failures({ ...empty, source: { path: path.join(dir, "missing.img"), url: "https://x/y" } }), ["source.url"]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("check: a relative source path becomes absolute; a sha256 is lower-cased", async () => {
  const relative = path.relative(process.cwd(), existing);
  const r = (await imageVolume.check({}, { ...empty, source: { path: relative } })).inputs;
  assert.equal(r?.source?.path, existing);
  const u = (await imageVolume.check({}, { ...empty, source: { url: "https://x/y", sha256: "AB".repeat(32) } })).inputs;
  assert.equal(u?.source?.sha256, "ab".repeat(32));
});

test("check tolerates unknowns during preview", async () => {
  assert.deepEqual(await failures({ ...empty, pool: UNKNOWN, name: UNKNOWN, capacity: UNKNOWN, connection: UNKNOWN }), []);
  assert.deepEqual(await failures({ ...empty, source: { path: UNKNOWN } }), []);
  assert.deepEqual(await failures({ ...empty, backingVolume: { volume: UNKNOWN }, capacity: undefined }), []);
});

test("every input is in the replacement table", () => {
  const inputs = Object.keys(volumeSchema.parse({ ...empty, permissions: {}, source: undefined })).sort();
  const schemaKeys = ["adopt", "backingVolume", "capacity", "connection", "format", "name", "permissions", "pool", "preallocation", "source"];
  assert.deepEqual(Object.keys(volumeChanges).sort(), schemaKeys);
  for (const k of inputs) assert.ok(k in volumeChanges, k);
});

const parsed = (over: Unchecked) => volumeSchema.parse({ ...empty, ...over });
const state = { ...parsed({}), key: "/mnt/p/vm1.img", path: "/mnt/p/vm1.img", glusterUrl: "gluster://gs1/v/vm1.img", capacity: 2 ** 30, allocation: 0 };

test("diff: each field applies as the table says", async () => {
  const cases: [Unchecked, string[], boolean][] = [
    [{}, [], false],
    [{ capacity: "2GiB" }, [], true],
    [{ permissions: { mode: "0600" } }, [], true],
    [{ preallocation: "full" }, [], true],
    [{ adopt: true }, [], true],
    [{ connection: { host: "kvm1", port: 2222 } }, [], true],
    [{ connection: { host: "kvm2" } }, ["connection"], true],
    [{ name: "vm2.img" }, ["name"], true],
    [{ pool: "other" }, ["pool"], true],
    [{ format: "qcow2" }, ["format"], true],
    [{ source: { volume: "gold.img" } }, ["source"], true],
    [{ capacity: undefined, backingVolume: { volume: "gold.img" }, format: "qcow2" }, ["format", "backingVolume"], true],
  ];
  for (const [over, replaces, changes] of cases) {
    const d = await imageVolume.diff("id", state, parsed(over));
    assert.deepEqual(d.replaces, replaces, JSON.stringify(over));
    assert.equal(d.changes, changes, JSON.stringify(over));
    assert.equal(d.deleteBeforeReplace, replaces.length > 0);
  }
});

test("diff: shrinking is refused with an error naming the field; with a replacement anyway it is fine", async () => {
  await assert.rejects(imageVolume.diff("id", state, parsed({ capacity: "512MiB" })), (err: Error) => {
    assert.match(err.message, /^capacity: shrinking volume 'vm1.img' from 1 GiB to 512 MiB would lose data/);
    assert.match(err.message, /--replace/);
    return true;
  });
  const d = await imageVolume.diff("id", state, parsed({ capacity: "512MiB", name: "vm2.img" }));
  assert.deepEqual(d.replaces, ["name"]);
});

test("diff: capacity left unset (content sources) is never a change; a hand-shrunk volume grows back", async () => {
  const src = { ...state, source: { url: "https://x/y" }, capacity: 5000 };
  assert.equal((await imageVolume.diff("id", src, parsed({ capacity: undefined, source: { url: "https://x/y" } }))).changes, false);
  const d = await imageVolume.diff("id", { ...state, capacity: 2 ** 29 }, parsed({}));
  assert.deepEqual([d.changes, d.replaces], [true, []]);
});

test("diff: a local source file whose content changed replaces the volume", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vol-diff-"));
  try {
    const file = path.join(dir, "img.raw");
    fs.writeFileSync(file, "version 1");
    const olds = { ...state, capacity: 9, source: { path: file }, contentDigest: await localContentDigest(file) };
    const news = parsed({ capacity: undefined, source: { path: file } });
    assert.deepEqual(await imageVolume.diff("id", olds, news), { changes: false, replaces: [], deleteBeforeReplace: false });
    fs.writeFileSync(file, "version 2");
    assert.deepEqual((await imageVolume.diff("id", olds, news)).replaces, ["source"]);
    fs.rmSync(file);
    await assert.rejects(imageVolume.diff("id", olds, news), /^InputError: source\.path: cannot read/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("diff: a running domain's disk smaller than the image (recorded by refresh) is an update, never a replacement", async () => {
  const stale = { ...state, staleDisks: [{ domain: "vm1", target: "sdb", capacity: 2 ** 20 }] };
  assert.deepEqual(await imageVolume.diff("id", stale, parsed({})), { changes: true, replaces: [], deleteBeforeReplace: false });
  assert.equal((await imageVolume.diff("id", { ...state, staleDisks: [] }, parsed({}))).changes, false);
});

const grow = { from: 2 ** 20, to: 2 ** 21 };
const disk = (over: Partial<LiveDisk>): LiveDisk => ({ domain: "vm1", uuid: "u-1", target: "sdb", readonly: false, capacity: 2 ** 20, ...over });

test("planGrowth: raw is grown by libvirt whoever has it open; qcow2 by libvirt when unused, else by its one QEMU; read-only disks refuse", () => {
  const two = [disk({}), disk({ domain: "vm2", uuid: "u-2", target: "sdc" })];
  assert.deepEqual(planGrowth("raw", [], grow), { by: "libvirt" });
  assert.deepEqual(planGrowth("raw", two, grow), { by: "libvirt" });

  assert.deepEqual(planGrowth("qcow2", [], grow), { by: "libvirt" });
  assert.deepEqual(planGrowth("qcow2", [disk({})], grow), { by: "qemu", through: disk({}) });
  const shared = planGrowth("qcow2", two, grow);
  assert.ok("problem" in shared);
  assert.match(shared.problem, /open in more than one running domain \(vm1 \(sdb\), vm2 \(sdc\)\)/);
  // QEMU cannot resize a read-only disk: refused for either format, naming them
  for (const format of ["raw", "qcow2"] as const) {
    const readonly = planGrowth(format, [disk({ domain: "vm2", target: "sdc", readonly: true })], grow);
    assert.ok("problem" in readonly, format);
    assert.match(readonly.problem, /open read-only in running domain vm2 \(sdc\), and libvirt cannot resize a read-only disk/, format);
  }
  // a qcow2 image grown behind its QEMU (by hand, or vol-resize of a libgfapi disk) is not touched again through it
  const behind = planGrowth("qcow2", [disk({})], { from: 2 ** 21, to: 2 ** 21 });
  assert.ok("problem" in behind);
  assert.match(behind.problem, /grown to 2 MiB behind the QEMU of running domain vm1 \(sdb\), which still gives the disk 1 MiB/);
  assert.deepEqual(planGrowth("raw", [disk({})], { from: 2 ** 21, to: 2 ** 21 }), { by: "libvirt" }, "a raw file grown behind QEMU: QEMU is told");
  // a read-only disk that already has the size (the others are being caught up) is no obstacle
  assert.deepEqual(planGrowth("raw", [disk({}), disk({ domain: "vm2", readonly: true, capacity: 2 ** 21 })], grow), { by: "libvirt" });
});

test("staleDisksOf: the disks QEMU gives fewer bytes than the image (more, QEMU's rounding up, is fine)", () => {
  const disks = [disk({ capacity: 2 ** 20 }), disk({ domain: "vm2", capacity: 2 ** 21 }), disk({ domain: "vm3", capacity: 2 ** 21 + 512 })];
  assert.deepEqual(staleDisksOf(disks, 2 ** 21).map((d) => d.domain), ["vm1"]);
  assert.deepEqual(staleDisksOf(disks, 2 ** 20), []);
});

test("partialGrowthError: names the field, who sees the new size, who does not and why", () => {
  const err = partialGrowthError("volume 'a.img' in pool 'p'", 2 ** 21, [disk({})], [
    { disk: disk({ domain: "vm2", target: "sdc" }), error: new GlusterLibvirtError("blockresize failed", { details: "stderr: boom" }) },
  ]);
  assert.ok(err instanceof GlusterLibvirtError);
  assert.match(err.message, /^capacity: volume 'a.img' in pool 'p' is 2 MiB, but not every running domain/);
  assert.match(err.message, /running domain vm1 \(sdb\) sees the new size; vm2 \(sdc\) still sees 1 MiB; `pulumi up` tries again$/);
  assert.match(err.details, /vm2 \(sdc\): blockresize failed\nstderr: boom/);
  const none = partialGrowthError("volume 'a.img' in pool 'p'", 2 ** 21, [], [{ disk: disk({}), error: new Error("gone") }]);
  assert.match(none.message, /could be told: vm1 \(sdb\) still sees 1 MiB;/);
});
