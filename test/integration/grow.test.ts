import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { diskAttachment, type DiskOutputs } from "../../provider/disk";
import { GlusterLibvirtError, InputError } from "../../provider/errors";
import { closeAllHosts } from "../../provider/host";
import type { Unchecked } from "../../provider/resource";
import { imageVolume, type VolumeOutputs } from "../../provider/volume";
import { cloneLabDomain, dropDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { labConnection, qemuDiskCapacity, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";

/*
 * Growing a volume that running domains have open (issue 14 §3), on the provider's
 * CRUD against the lab: what QEMU sees (`virsh domblkinfo` of the running domain, as root
 * on this machine), the drift a growth behind QEMU's back leaves and how `up` repairs it,
 * and what is refused before anything changes. FUSE file disks only (~0.1 s each); the
 * gfapi disks are in test/e2e/grow.test.ts.
 */

const MiB = 2 ** 20;
let lab: LabInfo;
let pool: OwnPool;
const domains: string[] = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "it-grow-"));
fs.chmodSync(tmp, 0o755); // libvirt checks a block copy's target as QEMU's user

before(async () => {
  lab = await getLab();
  pool = await createOwnPool(lab, "itgrow");
});

after(async () => {
  domains.forEach(dropDomain);
  await pool?.remove();
  closeAllHosts();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A running copy of the lab's VM of this file's own. */
function runningDomain(): string {
  const name = cloneLabDomain(lab, "running");
  domains.push(name);
  return name;
}

async function checkedVolume(over: Unchecked) {
  const r = await imageVolume.check({}, { connection: labConnection(lab), pool: pool.name, ...over });
  assert.deepEqual(r.failures ?? [], []);
  return r.inputs!;
}

async function createVolume(name: string, capacity: string): Promise<VolumeOutputs> {
  return (await imageVolume.create(await checkedVolume({ name, capacity }))).outs as VolumeOutputs;
}

async function attach(domain: string, volume: string, target: string, over: Unchecked = {}): Promise<DiskOutputs> {
  const r = await diskAttachment.check({}, { connection: labConnection(lab), pool: pool.name, domain, volume, target, access: "fuse", ...over });
  assert.deepEqual(r.failures ?? [], []);
  const outs = (await diskAttachment.create(r.inputs!)).outs as DiskOutputs;
  assert.equal(outs.attachedLive, true);
  return outs;
}

/** `pulumi up` of a new capacity: diff, then update, as the engine runs them. */
async function grow(state: VolumeOutputs, capacity: string): Promise<VolumeOutputs> {
  const news = await checkedVolume({ name: state.name, capacity });
  const d = await imageVolume.diff(state.key, state, news);
  assert.deepEqual([d.changes, d.replaces], [true, []]);
  return (await imageVolume.update(state.key, state, news)).outs as VolumeOutputs;
}

async function refresh(state: VolumeOutputs): Promise<VolumeOutputs> {
  return (await imageVolume.read(state.key, state)).props as VolumeOutputs;
}

const volumeCapacity = (name: string) => Number(/^Capacity:\s+(\d+) bytes$/m.exec(virsh("vol-info", "--pool", pool.name, name, "--bytes"))![1]);

describe("growing a volume that running domains have open", () => {
  test("raw, in two running domains: grown once, each QEMU told; a second up changes nothing", async () => {
    const [a, b] = [runningDomain(), runningDomain()];
    const v = await createVolume(`${uniqueName("shared")}.img`, "1MiB");
    await attach(a, v.name, "sdb", { shareable: true });
    await attach(b, v.name, "sdc", { shareable: true });
    const grown = await grow(v, "3MiB");
    assert.equal(grown.capacity, 3 * MiB);
    assert.equal(grown.staleDisks, undefined);
    assert.equal(qemuDiskCapacity(a, "sdb"), 3 * MiB);
    assert.equal(qemuDiskCapacity(b, "sdc"), 3 * MiB);
    const again = await refresh(grown);
    assert.equal(again.staleDisks, undefined);
    assert.equal((await imageVolume.diff(v.key, again, await checkedVolume({ name: v.name, capacity: "3MiB" }))).changes, false);
  });

  test("grown behind QEMU's back (vol-resize alone, as before this change): the running disk keeps its old size; refresh records it, up tells QEMU", async () => {
    const domain = runningDomain();
    const v = await createVolume(`${uniqueName("behind")}.img`, "1MiB");
    await attach(domain, v.name, "sdb");
    virsh("vol-resize", "--pool", pool.name, v.name, "2M");
    assert.equal(qemuDiskCapacity(domain, "sdb"), 1 * MiB, "QEMU is not told of a vol-resize");

    const seen = await refresh(v);
    assert.equal(seen.capacity, 2 * MiB);
    assert.deepEqual(seen.staleDisks, [{ domain, target: "sdb", capacity: 1 * MiB }]);
    const news = await checkedVolume({ name: v.name, capacity: "2MiB" });
    assert.deepEqual(await imageVolume.diff(v.key, seen, news), { changes: true, replaces: [], deleteBeforeReplace: false });
    const repaired = (await imageVolume.update(v.key, seen, news)).outs as VolumeOutputs;
    assert.equal(repaired.staleDisks, undefined);
    assert.equal(qemuDiskCapacity(domain, "sdb"), 2 * MiB);
    assert.equal((await refresh(repaired)).staleDisks, undefined);
  });

  test("qcow2 open in a running domain: libvirt's vol-resize is refused by QEMU's lock, so its QEMU grows it (blockresize); the image stays sound", async () => {
    const domain = runningDomain();
    const v = await createVolume(`${uniqueName("q")}.qcow2`, "64MiB");
    await attach(domain, v.name, "sdb");
    const byHand = tryVirsh("vol-resize", "--pool", pool.name, v.name, "128M");
    assert.notEqual(byHand.code, 0, "qemu-img resize of an image QEMU has open");
    assert.match(byHand.stderr, /lock/);

    const grown = await grow(v, "1GiB");
    assert.equal(grown.capacity, 2 ** 30);
    assert.equal(qemuDiskCapacity(domain, "sdb"), 2 ** 30);
    assert.equal(volumeCapacity(v.name), 2 ** 30);
    execFileSync("qemu-img", ["check", "-U", v.path], { stdio: "pipe" });
    assert.equal(fs.statSync(v.path).size % 512, 0);
  });

  test("a running disk that cannot be resized (in a block copy): the error says who sees the new size and who not; refresh records it, the next up finishes", async () => {
    const [a, b] = [runningDomain(), runningDomain()];
    const v = await createVolume(`${uniqueName("busy")}.img`, "1MiB");
    // a's disk through libgfapi (~20 s): b's mirror job takes QEMU's file lock on resizing, which a FUSE disk of a would need too
    await attach(a, v.name, "sdb", { shareable: true, access: "gfapi" });
    await attach(b, v.name, "sdc", { shareable: true });
    // QEMU refuses block_resize while a mirror job runs on the disk ("Device … is in use")
    const copy = path.join(tmp, `${uniqueName("copy")}.img`);
    virsh("blockcopy", b, "sdc", copy, "--transient-job", "--wait", "--timeout", "30");
    try {
      await assert.rejects(grow(v, "2MiB"), (err: Error) => {
        assert.ok(err instanceof GlusterLibvirtError && !(err instanceof InputError), String(err));
        assert.match(err.details, /in use/, err.details);
        assert.match(err.message, new RegExp(`^capacity: volume '${v.name}' in pool '${pool.name}' is 2 MiB, but not every running domain that has it open could be told: running domain ${a} \\(sdb\\) sees the new size; ${b} \\(sdc\\) still sees 1 MiB; \`pulumi up\` tries again$`));
        return true;
      });
      assert.equal(qemuDiskCapacity(a, "sdb"), 2 * MiB);
      assert.equal(qemuDiskCapacity(b, "sdc"), 1 * MiB);
    } finally {
      virsh("blockjob", b, "sdc", "--abort");
    }
    // the engine keeps the old state after a failed update; refresh sees the volume grown and b behind
    const seen = await refresh(v);
    assert.equal(seen.capacity, 2 * MiB);
    assert.deepEqual(seen.staleDisks, [{ domain: b, target: "sdc", capacity: 1 * MiB }]);
    const news = await checkedVolume({ name: v.name, capacity: "2MiB" });
    assert.equal((await imageVolume.diff(v.key, seen, news)).changes, true);
    const done = (await imageVolume.update(v.key, seen, news)).outs as VolumeOutputs;
    assert.equal(done.staleDisks, undefined);
    assert.equal(qemuDiskCapacity(b, "sdc"), 2 * MiB);
    // and without a refresh in between (`up` after the failed one): the old state, the same end
    const v2 = await createVolume(`${uniqueName("busy2")}.img`, "1MiB");
    await attach(a, v2.name, "sdd");
    virsh("vol-resize", "--pool", pool.name, v2.name, "2M");
    const straight = await grow(v2, "2MiB");
    assert.equal(straight.capacity, 2 * MiB);
    assert.equal(qemuDiskCapacity(a, "sdd"), 2 * MiB);
  });

  test("refused before anything changes: an image open read-only in a running domain (raw or qcow2)", async () => {
    const domain = runningDomain();
    for (const [name, target] of [[`${uniqueName("ro")}.img`, "sdb"], [`${uniqueName("ro")}.qcow2`, "sdc"]]) {
      const v = await createVolume(name, "1MiB");
      await attach(domain, v.name, target, { readonly: true });
      await assert.rejects(grow(v, "2MiB"), (err: Error) => {
        assert.ok(err instanceof InputError, String(err));
        assert.equal(err.field, "capacity");
        assert.match(err.message, new RegExp(`open read-only in running domain ${domain} \\(${target}\\), and libvirt cannot resize a read-only disk`));
        return true;
      });
      assert.equal(volumeCapacity(v.name), 1 * MiB, name);
      assert.equal(qemuDiskCapacity(domain, target), 1 * MiB, name);
    }
  });
});
