import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { diskAttachment, type DiskOutputs } from "../../provider/disk";
import { SafetyCheckError } from "../../provider/errors";
import { closeAllHosts } from "../../provider/host";
import { localContentDigest } from "../../provider/localImage";
import type { Unchecked } from "../../provider/resource";
import { imageVolume, type VolumeOutputs } from "../../provider/volume";
import { parseDomainDisks } from "../../provider/xml/disk";
import { cloneLabDomain, dropDomain, pristineDomainXml } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { labConnection, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";

/*
 * The safety checks that guard data, each reproduced on the lab as the review found it
 * (issue "Nothing lost, nothing hung"): in-use scans that must fail closed, adopt that
 * must verify content, ownership drift, symlinks. Each test would pass a delete, an
 * adopt or a chown that loses or changes data if the check were missing. Observed as
 * root on this machine, independently of the SSH transport.
 */

let lab: LabInfo;
let pool: OwnPool;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "it-safety-"));
fs.chmodSync(tmp, 0o755); // the lab's login user reads overlays kept here
const domains: string[] = [];
const cleanups: (() => unknown)[] = [];

before(async () => {
  lab = await getLab();
  pool = await createOwnPool(lab, "itsafe");
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  domains.forEach(dropDomain);
  await pool?.remove();
  closeAllHosts();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function volumeInputs(over: Unchecked) {
  const r = await imageVolume.check({}, { connection: labConnection(lab), pool: pool.name, name: `${uniqueName("sv")}.img`, ...over });
  assert.deepEqual(r.failures ?? [], []);
  return r.inputs!;
}

async function createVolume(over: Unchecked = { capacity: "1MiB" }): Promise<VolumeOutputs> {
  return (await imageVolume.create(await volumeInputs(over))).outs as VolumeOutputs;
}

const exists = (v: { name: string }) => tryVirsh("vol-info", "--pool", pool.name, v.name).code === 0;

/** A shut-off copy of the lab's pristine domain under a name of our choosing. */
function defineDomain(name: string): string {
  const xml = pristineDomainXml(lab, name);
  const file = path.join(tmp, `${name}.xml`);
  fs.writeFileSync(file, xml);
  virsh("define", file);
  domains.push(name);
  return name;
}

describe("fail-closed safety checks on the lab", () => {
  test("delete finds an overlay whose name has a space (and unicode) and refuses", async () => {
    const base = await createVolume();
    const overlay = `my överlay ${process.pid}.qcow2`;
    virsh("vol-create-as", pool.name, overlay, "1M", "--format", "qcow2", "--backing-vol", base.path, "--backing-vol-format", "raw");
    await assert.rejects(imageVolume.delete(base.key, base), (err: Error) => {
      assert.match(err.message, /is the backing file of/);
      assert.ok(err.message.includes(`${pool.name}/${overlay}`), err.message);
      return true;
    });
    assert.ok(exists(base), "the base image is still there");
    virsh("vol-delete", "--pool", pool.name, overlay);
    await imageVolume.delete(base.key, base);
    assert.equal(exists(base), false);
  });

  test("an inactive pool cannot be listed: the delete refuses and names it; once it is gone the delete goes ahead", async () => {
    const v = await createVolume();
    const dirPool = uniqueName("itsafe-inactive");
    fs.mkdirSync(path.join(tmp, dirPool));
    virsh("pool-define-as", dirPool, "dir", "--target", path.join(tmp, dirPool));
    cleanups.push(() => tryVirsh("pool-undefine", dirPool));
    try {
      await assert.rejects(imageVolume.delete(v.key, v), (err: Error) => {
        assert.ok(err instanceof SafetyCheckError, String(err));
        // (other tests' pools on the shared host may be named too: every unchecked pool is)
        assert.match(err.message, new RegExp(`could not check (?:.*; )?pool '${dirPool}' \\(inactive`));
        return true;
      });
      assert.ok(exists(v));
    } finally {
      virsh("pool-undefine", dirPool);
    }
    await imageVolume.delete(v.key, v);
    assert.equal(exists(v), false);
  });

  test("a pool whose storage fails under it (its Gluster volume stopped) stops the delete, naming the pool", async () => {
    const other = await createOwnPool(lab, "itsafe2");
    cleanups.push(() => other.remove());
    const v = await createVolume();
    execFileSync("gluster", ["--mode=script", "volume", "stop", other.gluster.name, "force"]);
    try {
      await assert.rejects(imageVolume.delete(v.key, v), (err: Error) => {
        assert.ok(err instanceof SafetyCheckError, String(err));
        assert.ok(err.message.includes(`pool '${other.name}'`), err.message);
        return true;
      });
      assert.ok(exists(v), "nothing deleted while the other pool could not be checked");
    } finally {
      execFileSync("gluster", ["--mode=script", "volume", "start", other.gluster.name, "force"]);
    }
    await other.remove();
    await imageVolume.delete(v.key, v);
    assert.equal(exists(v), false);
  });

  test("a shut-off domain named like a running domain's id: a DiskAttachment lands on it, and the volume's delete sees its disk", async () => {
    const running = cloneLabDomain(lab, "running");
    domains.push(running);
    const id = virsh("domid", running).trim();
    assert.match(id, /^\d+$/);
    const named = defineDomain(id);
    const v = await createVolume();
    const r = await diskAttachment.check({}, { connection: labConnection(lab), domain: named, pool: pool.name, volume: v.name, target: "sdc", access: "fuse" });
    assert.deepEqual(r.failures ?? [], []);
    const disk = (await diskAttachment.create(r.inputs!)).outs as DiskOutputs;
    assert.notEqual(disk.domainUuid, virsh("domuuid", running).trim(), "not the running domain whose id is the name");
    const targets = (dom: string, inactive: boolean) =>
      parseDomainDisks(virsh("dumpxml", ...(inactive ? ["--inactive"] : []), dom)).map((d) => d.target);
    assert.ok(targets(disk.domainUuid, true).includes("sdc"), "the shut-off domain has the disk");
    assert.ok(!targets(running, false).includes("sdc") && !targets(running, true).includes("sdc"), "the running domain does not");
    await assert.rejects(imageVolume.delete(v.key, v), new RegExp(`in use by ${id} \\(sdc, persistent\\)`));
    await diskAttachment.delete(`${disk.domainUuid}/sdc`, disk);
    assert.ok(!targets(disk.domainUuid, true).includes("sdc"));
    await imageVolume.delete(v.key, v);
  });

  test("a shut-off domain whose disk is an overlay outside every pool: the base image's delete follows the chain and refuses", async () => {
    const base = await createVolume();
    const overlay = path.join(tmp, `${uniqueName("outside")}.qcow2`);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base.path, "-F", "raw", overlay]);
    fs.chmodSync(overlay, 0o644);
    const domain = defineDomain(uniqueName("itsafe-ovl"));
    virsh("attach-disk", domain, overlay, "vdz", "--config", "--subdriver", "qcow2");
    await assert.rejects(imageVolume.delete(base.key, base), new RegExp(`in use by ${domain} \\(vdz, persistent\\)`));
    assert.ok(exists(base));
    virsh("detach-disk", domain, "vdz", "--config");
    await imageVolume.delete(base.key, base);
  });

  test("adopt verifies the content on the host: a changed byte is refused, the same bytes are taken over with their digest", async () => {
    const file = path.join(tmp, "adopt.raw");
    fs.writeFileSync(file, randomBytes(1 << 20));
    const v = await createVolume({ source: { path: file } });
    const onHost = fs.openSync(v.path, "r+");
    const original = Buffer.alloc(1);
    fs.readSync(onHost, original, 0, 1, 4096);
    fs.writeSync(onHost, Buffer.from([original[0] ^ 0xff]), 0, 1, 4096);
    const again = await volumeInputs({ name: v.name, source: { path: file }, adopt: true });
    try {
      await assert.rejects(imageVolume.create(again), /source\.path: .*content is not that of/);
    } finally {
      fs.writeSync(onHost, original, 0, 1, 4096);
      fs.closeSync(onHost);
    }
    const adopted = (await imageVolume.create(again)).outs as VolumeOutputs;
    assert.equal(adopted.contentDigest, await localContentDigest(file), "the digest that later diffs compare with");
    await imageVolume.delete(adopted.key, adopted);
  });

  test("adopt of a downloaded image verifies it on the host by source.sha256, and without one refuses", async () => {
    const content = randomBytes(1 << 20);
    const file = path.join(tmp, "adopt-url.raw");
    fs.writeFileSync(file, content);
    const v = await createVolume({ source: { path: file } });
    const digest = createHash("sha256").update(content).digest("hex");
    // adopt reads the volume on the host; the URL is never fetched (nothing listens on port 9)
    const url = "http://127.0.0.1:9/image.raw";
    const adopt = (sha256?: string) => volumeInputs({ name: v.name, source: { url, ...(sha256 ? { sha256 } : {}) }, adopt: true });
    await assert.rejects(imageVolume.create(await adopt()), /source\.sha256: .*cannot be verified without `source\.sha256`; not adopted/);
    await assert.rejects(imageVolume.create(await adopt("0".repeat(64))), new RegExp(`source\\.sha256: .*its sha256 is ${digest}, not 0{64}; not adopted`));
    const adopted = (await imageVolume.create(await adopt(digest))).outs as VolumeOutputs;
    assert.equal(adopted.sha256, digest);
    await imageVolume.delete(adopted.key, adopted);
  });

  test("ownership changed on the host is seen on refresh and restored by update", async () => {
    const v = await createVolume();
    assert.deepEqual(v.effectivePermissions, { owner: lab.qemu.uid, group: lab.qemu.gid, mode: "0660" });
    assert.deepEqual(v.appliedPermissions, v.effectivePermissions);
    fs.chownSync(v.path, 0, 0); // what libvirt does to a detached file disk whose owner it did not remember
    const read = (await imageVolume.read(v.key, v)).props as VolumeOutputs;
    assert.deepEqual(read.effectivePermissions, { owner: 0, group: 0, mode: "0660" });
    const inputs = await volumeInputs({ name: v.name, capacity: "1MiB" });
    const diff = await imageVolume.diff(v.key, read, inputs);
    assert.equal(diff.changes, true, "drift shows as a change");
    assert.deepEqual(diff.replaces, []);
    const sudo = { ...inputs, connection: { ...labConnection(lab), sudo: true } };
    const updated = (await imageVolume.update(v.key, read, sudo)).outs as VolumeOutputs;
    const st = fs.statSync(v.path);
    assert.deepEqual([st.uid, st.gid], [lab.qemu.uid, lab.qemu.gid]);
    assert.equal((await imageVolume.diff(v.key, updated, sudo)).changes, false, "converged");
    await imageVolume.delete(v.key, updated);
  });

  test("a fuse attachment of an image QEMU can open tells libvirt to keep its owner", async () => {
    const v = await createVolume();
    const domain = defineDomain(uniqueName("itsafe-own"));
    const r = await diskAttachment.check({}, { connection: labConnection(lab), domain, pool: pool.name, volume: v.name, target: "sdd", access: "fuse" });
    const disk = (await diskAttachment.create(r.inputs!)).outs as DiskOutputs;
    assert.match(disk.diskXml, /<seclabel model='dac' relabel='no'\/>/);
    assert.match(virsh("dumpxml", "--inactive", domain), /relabel='no'/);
    await diskAttachment.delete(`${disk.domainUuid}/sdd`, disk);
    await imageVolume.delete(v.key, v);
  });

  test("a stamped create takes over only what that stamp recorded creating: a volume made by hand is refused", async () => {
    const stamp = `it/safety/ImageVolume/${uniqueName("stamp")}`;
    const name = `${uniqueName("stamped")}.img`;
    virsh("vol-create-as", pool.name, name, "1M", "--format", "raw"); // someone else's
    const before = fs.statSync(path.join(pool.targetPath!, name));
    await assert.rejects(imageVolume.create({ ...(await volumeInputs({ name, capacity: "1MiB" })), __stamp: stamp }), /already exists.*adopt/);
    const after = fs.statSync(path.join(pool.targetPath!, name));
    assert.deepEqual([after.ino, after.uid, after.mtimeMs], [before.ino, before.uid, before.mtimeMs], "untouched");
    virsh("vol-delete", "--pool", pool.name, name);

    // the same stamp's own volume, left as if the run had died after creating it, is taken over
    const mine = (await imageVolume.create({ ...(await volumeInputs({ name, capacity: "1MiB" })), __stamp: stamp })).outs as VolumeOutputs;
    const again = (await imageVolume.create({ ...(await volumeInputs({ name, capacity: "1MiB" })), __stamp: stamp })).outs as VolumeOutputs;
    assert.equal(again.key, mine.key);
    await imageVolume.delete(again.key, again);
    // delete forgets the stamp: a hand-made volume of that name is someone else's again
    virsh("vol-create-as", pool.name, name, "1M", "--format", "raw");
    await assert.rejects(imageVolume.create({ ...(await volumeInputs({ name, capacity: "1MiB" })), __stamp: stamp }), /already exists.*adopt/);
    virsh("vol-delete", "--pool", pool.name, name);
  });

  test("a permissions change never follows a symlink planted in the volume's place", async () => {
    const v = await createVolume();
    const victim = path.join(tmp, "victim");
    fs.writeFileSync(victim, "precious");
    fs.chmodSync(victim, 0o600);
    fs.rmSync(v.path);
    fs.symlinkSync(victim, v.path);
    const inputs = await volumeInputs({ name: v.name, capacity: "1MiB", permissions: { mode: "0644" }, connection: { ...labConnection(lab), sudo: true } });
    await assert.rejects(imageVolume.update(v.key, v, inputs), /is not a regular file/);
    const st = fs.statSync(victim);
    assert.deepEqual([st.uid, st.gid, (st.mode & 0o777).toString(8)], [0, 0, "600"], "the symlink's target is untouched");
    fs.rmSync(v.path);
  });
});
