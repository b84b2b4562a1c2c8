import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { diskAttachment, type DiskOutputs } from "../../provider/disk";
import { InputError } from "../../provider/errors";
import { closeAllHosts } from "../../provider/host";
import type { Unchecked } from "../../provider/resource";
import { parseDomainDisks, type DomainDisk } from "../../provider/xml/disk";
import { buildVolumeXml } from "../../provider/xml/volume";
import { cloneLabDomain, dropDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { labConnection, uniqueName, virsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";

/*
 * Each test works on its own copies of the lab's domains (helpers/domain.ts), so
 * nothing here changes lab-running/lab-stopped that other tests share. The copies
 * start after the pool is mounted: on the lab, / is not a shared mount, so a FUSE
 * mount made later would not reach an already running QEMU (see explainAttachFailure). Disks are FUSE file disks (~0.1 s to hot-plug) except the
 * one gfapi test (~20 s each way, see LAB.md). The lab is observed directly with
 * root's virsh, independently of the SSH transport under test.
 */

let lab: LabInfo;
let pool: OwnPool;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "it-disk-"));
const domains: string[] = [];

before(async () => {
  lab = await getLab();
  pool = await createOwnPool(lab, "itdisk");
});

after(async () => {
  for (const name of domains) dropDomain(name);
  await pool?.remove();
  closeAllHosts();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function cloneDomain(from: "running" | "stopped"): string {
  const name = cloneLabDomain(lab, from);
  domains.push(name);
  return name;
}

/** A raw volume in the test pool; `owner` set = defined from XML with QEMU's ownership. */
function newVolume(opts: { qemuOwned?: boolean } = {}): string {
  const name = `${uniqueName("itvol")}.img`;
  if (opts.qemuOwned) {
    const file = path.join(tmp, `${name}.xml`);
    fs.writeFileSync(file, buildVolumeXml({ name, capacity: 1 << 20, format: "raw", permissions: { owner: lab.qemu.uid, group: lab.qemu.gid, mode: "0600" } }));
    virsh("vol-create", pool.name, file);
  } else {
    virsh("vol-create-as", pool.name, name, "1M", "--format", "raw"); // root:root 0600, as libvirt makes it
  }
  return name;
}

const disksOf = (domain: string, flavour: "live" | "persistent"): DomainDisk[] =>
  parseDomainDisks(virsh("dumpxml", ...(flavour === "persistent" ? ["--inactive"] : []), domain));
const diskAt = (domain: string, flavour: "live" | "persistent", target: string) => disksOf(domain, flavour).find((d) => d.target === target);

function inputs(over: Unchecked): Unchecked {
  return { connection: labConnection(lab), pool: pool.name, access: "fuse", ...over };
}

async function checked(news: Unchecked) {
  const r = await diskAttachment.check({}, news);
  assert.deepEqual(r.failures ?? [], []);
  return r.inputs!;
}

async function attach(over: Unchecked): Promise<DiskOutputs> {
  return (await diskAttachment.create(await checked(inputs(over)))).outs as DiskOutputs;
}

async function read(outs: DiskOutputs): Promise<DiskOutputs | undefined> {
  const r = await diskAttachment.read(`${outs.domainUuid}/${outs.target}`, outs);
  return r.id === undefined ? undefined : (r.props as DiskOutputs);
}

describe("DiskAttachment on the lab", () => {
  test("fuse: hot-plug into a running VM (live + persistent), read without drift, hot-unplug confirmed", async () => {
    const domain = cloneDomain("running");
    const volume = newVolume();
    const outs = await attach({ domain, volume, target: "sdb" });
    const file = `${pool.targetPath}/${volume}`;
    assert.equal(outs.resolvedAccess, "fuse");
    assert.equal(outs.attachedLive, true);
    assert.equal(outs.attachedPersistent, true);
    assert.equal(outs.domainRunning, true);
    assert.equal(outs.domainUuid, virsh("domuuid", domain).trim());
    assert.equal(outs.sourcePath, file);
    assert.equal(outs.format, "raw");
    for (const flavour of ["live", "persistent"] as const) {
      const disk = diskAt(domain, flavour, "sdb");
      assert.equal(disk?.type, "file", flavour);
      assert.equal(disk?.source?.file, file, flavour);
      assert.equal(disk?.bus, "scsi", flavour);
      assert.equal(disk?.driver?.cache, "none", flavour);
    }

    const refreshed = await read(outs);
    assert.deepEqual(refreshed, outs, "a refresh right after create finds what create reported");
    assert.equal((await diskAttachment.diff("", refreshed!, await checked(inputs({ domain, volume, target: "sdb" })))).changes, false);

    await diskAttachment.delete("", outs);
    assert.equal(diskAt(domain, "live", "sdb"), undefined, "gone from the running VM");
    assert.equal(diskAt(domain, "persistent", "sdb"), undefined, "gone from the definition");
    await diskAttachment.delete("", outs); // already gone = success
    assert.equal(await read(outs), undefined);
  });

  test("stopped VM: persistent-only attach; the disk is live once the VM starts", async () => {
    const domain = cloneDomain("stopped");
    const volume = newVolume();
    const outs = await attach({ domain, volume, target: "sdc" });
    assert.equal(outs.domainRunning, false);
    assert.equal(outs.attachedLive, false);
    assert.equal(outs.attachedPersistent, true);
    assert.equal(diskAt(domain, "persistent", "sdc")?.source?.file, `${pool.targetPath}/${volume}`);
    // not live on a shut-off VM is as it should be: no change planned
    assert.equal((await diskAttachment.diff("", outs, await checked(inputs({ domain, volume, target: "sdc" })))).changes, false);

    virsh("start", domain);
    const started = await read(outs);
    assert.equal(started?.domainRunning, true);
    assert.equal(started?.attachedLive, true);
    assert.equal(diskAt(domain, "live", "sdc")?.source?.file, `${pool.targetPath}/${volume}`);

    await diskAttachment.delete("", started!);
    assert.equal(diskAt(domain, "live", "sdc"), undefined);
    assert.equal(diskAt(domain, "persistent", "sdc"), undefined);
  });

  test("live: false on a running VM defines only; update to live: true hot-plugs", async () => {
    const domain = cloneDomain("running");
    const volume = newVolume();
    const outs = await attach({ domain, volume, target: "sdd", live: false });
    assert.equal(outs.attachedLive, false);
    assert.equal(outs.attachedPersistent, true);
    assert.equal(diskAt(domain, "live", "sdd"), undefined);

    const news = await checked(inputs({ domain, volume, target: "sdd", live: true }));
    const diff = await diskAttachment.diff("", outs, news);
    assert.deepEqual([diff.changes, diff.replaces], [true, []]);
    const updated = (await diskAttachment.update("", outs, news)).outs as DiskOutputs;
    assert.equal(updated.attachedLive, true);
    assert.equal(diskAt(domain, "live", "sdd")?.source?.file, `${pool.targetPath}/${volume}`);
    await diskAttachment.delete("", updated);
    assert.equal(diskAt(domain, "live", "sdd"), undefined);
  });

  test("drift: a disk detached by hand is seen on refresh and re-attached by update; a setting changed by hand replaces", async () => {
    const domain = cloneDomain("running");
    const volume = newVolume();
    const args = inputs({ domain, volume, target: "sde" });
    const outs = await attach(args);

    virsh("detach-disk", domain, "sde", "--live");
    const liveGone = await read(outs);
    assert.deepEqual([liveGone?.attachedLive, liveGone?.attachedPersistent], [false, true]);
    const diff = await diskAttachment.diff("", liveGone!, await checked(args));
    assert.deepEqual([diff.changes, diff.replaces], [true, []]);
    const healed = (await diskAttachment.update("", liveGone!, await checked(args))).outs as DiskOutputs;
    assert.deepEqual([healed.attachedLive, healed.attachedPersistent], [true, true]);
    assert.ok(diskAt(domain, "live", "sde"));

    // someone turns on the host page cache in the definition: shown, and replaces
    const changed = path.join(tmp, "sde.xml");
    fs.writeFileSync(changed, healed.diskXml.replace("cache='none'", "cache='writeback'"));
    virsh("update-device", domain, changed, "--config");
    const cached = await read(healed);
    assert.equal(cached?.driver.cache, "writeback");
    assert.deepEqual((await diskAttachment.diff("", cached!, await checked(args))).replaces, ["driver"]);

    virsh("detach-disk", domain, "sde", "--live", "--config");
    assert.equal(await read(healed), undefined, "detached everywhere: gone from state on refresh");
    await diskAttachment.delete("", healed); // nothing left to do
  });

  test("errors come before anything changes", async () => {
    const domain = cloneDomain("running");
    const volume = newVolume();
    const taken = await attach({ domain, volume, target: "sdf" });
    const before = { live: virsh("dumpxml", domain), persistent: virsh("dumpxml", "--inactive", domain) };
    const refused = async (over: Unchecked, field: string, message: RegExp) => {
      await assert.rejects(diskAttachment.create(await checked(inputs({ domain, volume: newVolume(), target: "sdg", ...over }))), (err: unknown) => {
        assert.ok(err instanceof InputError, String(err));
        assert.equal(err.field, field);
        assert.match(err.message, message);
        return true;
      });
      assert.deepEqual({ live: virsh("dumpxml", domain), persistent: virsh("dumpxml", "--inactive", domain) }, before, `${field}: domain unchanged`);
    };
    await refused({ target: "sdf" }, "target", /already has a disk at sdf/);
    await refused({ domain: uniqueName("nodomain") }, "domain", /no domain named/);
    await refused({ volume: "missing.img" }, "volume", /no volume 'missing.img'/);
    await refused({ pool: uniqueName("nopool") }, "pool", /no storage pool/);
    await refused({ bus: "sata" }, "bus", /sata disks cannot be hot-plugged.*live: false/);
    // libvirt makes vol-create-as files root:root 0600: QEMU could not open them via libgfapi
    await refused({ access: "gfapi" }, "volume", /owned by 0:0 mode 0600.*QEMU cannot open it/);
    await diskAttachment.delete("", taken);
  });

  test("a guest that does not release the disk: a timeout error, the disk stays recorded and defined", async () => {
    // No OS in a copy of the pristine definition: nothing answers the ACPI eject of a virtio (PCI) disk.
    const domain = cloneDomain("running");
    const volume = newVolume();
    const outs = await attach({ domain, volume, target: "vdb", detachTimeout: 1 });
    await assert.rejects(diskAttachment.delete("", outs), new RegExp(`guest of domain '${domain}' did not release disk vdb within 1 s`));
    assert.ok(diskAt(domain, "live", "vdb"), "still live");
    assert.ok(diskAt(domain, "persistent", "vdb"), "definition untouched");
    const after = await read(outs);
    assert.deepEqual([after?.attachedLive, after?.attachedPersistent], [true, true]);
    // once the VM is off, delete only has the definition to change
    virsh("destroy", domain);
    await diskAttachment.delete("", outs);
    assert.equal(diskAt(domain, "persistent", "vdb"), undefined);
    // and with the domain gone altogether, delete is a success
    dropDomain(domain);
    await diskAttachment.delete("", outs);
  });

  test("gfapi end to end: a network disk with every Gluster server, opened by QEMU through libgfapi (slow)", async () => {
    const domain = cloneDomain("running");
    const volume = newVolume({ qemuOwned: true });
    const outs = await attach({ domain, volume, target: "sdh", access: "auto" });
    assert.equal(outs.resolvedAccess, "gfapi", "the lab's QEMU has the gluster block driver");
    assert.equal(outs.sourcePath, `${pool.gluster.name}/${volume}`);
    for (const flavour of ["live", "persistent"] as const) {
      const disk = diskAt(domain, flavour, "sdh");
      assert.equal(disk?.type, "network", flavour);
      assert.equal(disk?.source?.protocol, "gluster", flavour);
      assert.equal(disk?.source?.name, `${pool.gluster.name}/${volume}`, flavour);
      assert.deepEqual(disk?.source?.hosts?.map((h) => h.name), lab.gluster.servers, flavour);
    }
    assert.equal(outs.attachedLive, true);
    await diskAttachment.delete("", outs);
    assert.equal(diskAt(domain, "live", "sdh"), undefined);
    assert.equal(diskAt(domain, "persistent", "sdh"), undefined);
  });
});
