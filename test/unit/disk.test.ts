import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  attachMissing, defaultBus, diskAttachment, diskChanges, diskSchema, diskSourceFor, hostsRule, hotplugProblem, isOurDisk, resolveAccess,
  type AttachTo, type DiskOutputs, type Placement,
} from "../../provider/disk";
import { GlusterLibvirtError, InputError, SafetyCheckError, VirshError } from "../../provider/errors";
import type { Host } from "../../provider/host";
import { inspectDomain, locateDomain } from "../../provider/libvirt/domains";
import { qemuMayOpen } from "../../provider/libvirt/qemu";
import { UNKNOWN, type Unchecked } from "../../provider/resource";
import { buildDiskXml, parseDomainDisks, parseDomainSummary, type DomainSummary } from "../../provider/xml/disk";
import type { PoolInfo } from "../../provider/xml/pool";

const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");
const connection = { host: "kvm1" };
const valid = { connection, domain: "vm1", pool: "primary_gluster", volume: "vm1-data.img", target: "sdb" };

test("check fills defaults: bus from the target, auto access, cache none, live", async () => {
  const r = await diskAttachment.check({}, valid);
  assert.equal(r.failures, undefined);
  assert.deepEqual(r.inputs, {
    ...valid,
    bus: "scsi",
    access: "auto",
    driver: { cache: "none" },
    readonly: false,
    shareable: false,
    live: true,
    detachTimeout: 30,
  });
});

test("bus defaults follow the target prefix", () => {
  assert.equal(defaultBus("vdb"), "virtio");
  assert.equal(defaultBus("sdc"), "scsi");
  assert.equal(defaultBus("hdd"), "ide");
  assert.equal(defaultBus("xvda"), undefined);
  assert.equal(diskSchema.parse({ ...valid, target: "vdc" }).bus, "virtio");
  assert.equal(diskSchema.parse({ ...valid, bus: "sata" }).bus, "sata");
});

test("check names each bad field", async () => {
  const r = await diskAttachment.check({}, {
    connection: { host: "kvm1", port: 0 },
    domain: "bad name",
    pool: "",
    volume: "a/b",
    target: "xvda",
    access: "nfs",
    driver: { cache: "fast", format: "raw" },
    serial: "has space",
    detachTimeout: 0,
  });
  assert.deepEqual(r.failures?.map((f) => f.property).sort(), [
    "access", "connection.port", "detachTimeout", "domain", "driver.cache", "driver.format", "pool", "serial", "target", "volume",
  ]);
});

test("check: a bus must match the target's prefix", async () => {
  for (const [target, bus] of [["vdb", "scsi"], ["sdb", "virtio"], ["hdb", "sata"]]) {
    const r = await diskAttachment.check({}, { ...valid, target, bus });
    assert.deepEqual(r.failures?.map((f) => f.property), ["target"], `${target}/${bus}`);
  }
  assert.equal((await diskAttachment.check({}, { ...valid, target: "sdb", bus: "sata" })).failures, undefined);
});

test("check tolerates unknowns during preview", async () => {
  const r = await diskAttachment.check({}, { ...valid, connection: UNKNOWN, volume: UNKNOWN, target: UNKNOWN, bus: "virtio" });
  assert.equal(r.failures, undefined);
});

const state: DiskOutputs = {
  ...diskSchema.parse(valid),
  resolvedAccess: "fuse",
  diskXml: "<disk/>",
  sourcePath: "/mnt/p/vm1-data.img",
  format: "raw",
  attachedLive: true,
  attachedPersistent: true,
  domainRunning: true,
  domainUuid: "u-1",
};
const news = (over: Unchecked) => diskSchema.parse({ ...valid, ...over });

test("diff: each field applies as the table says", async () => {
  const cases: [Unchecked, string[], boolean][] = [
    [{}, [], false],
    [{ live: false }, [], true],
    [{ detachTimeout: 90 }, [], true],
    [{ connection: { host: "kvm1", port: 2222 } }, [], true],
    [{ connection: { host: "kvm2" } }, ["connection"], true],
    [{ domain: "vm2" }, ["domain"], true],
    [{ pool: "p2" }, ["pool"], true],
    [{ volume: "v2.img" }, ["volume"], true],
    [{ target: "sdc" }, ["target"], true],
    [{ target: "vdb" }, ["target", "bus"], true],
    [{ bus: "sata" }, ["bus"], true],
    [{ access: "fuse" }, ["access"], true],
    [{ driver: { cache: "writeback" } }, ["driver"], true],
    [{ driver: { io: "native" } }, ["driver"], true],
    [{ readonly: true }, ["readonly"], true],
    [{ shareable: true }, ["shareable"], true],
    [{ serial: "s1" }, ["serial"], true],
  ];
  for (const [over, replaces, changes] of cases) {
    const d = await diskAttachment.diff("u-1/sdb", state, news(over));
    assert.deepEqual(d.replaces, replaces, JSON.stringify(over));
    assert.equal(d.changes, changes, JSON.stringify(over));
  }
});

test("diff: access 'auto' does not flip with the host; only the requested value is compared", async () => {
  const d = await diskAttachment.diff("u-1/sdb", { ...state, resolvedAccess: "gfapi" }, news({}));
  assert.equal(d.changes, false);
});

test("diff: a disk detached by hand (found on refresh) is an update that re-attaches it", async () => {
  for (const drift of [{ attachedLive: false }, { attachedPersistent: false }]) {
    const d = await diskAttachment.diff("u-1/sdb", { ...state, ...drift }, news({}));
    assert.equal(d.changes, true, JSON.stringify(drift));
    assert.deepEqual(d.replaces, []);
  }
  // not live on a shut-off domain, or with live: false, is how it should be
  assert.equal((await diskAttachment.diff("u-1/sdb", { ...state, attachedLive: false, domainRunning: false }, news({}))).changes, false);
  assert.equal((await diskAttachment.diff("u-1/sdb", { ...state, live: false, attachedLive: false }, news({ live: false }))).changes, false);
});

test("every input is in the replacement table", () => {
  const inputs = Object.keys((diskSchema as unknown as { in: { shape: object } }).in.shape);
  assert.deepEqual(Object.keys(diskChanges).sort(), inputs.sort());
});

const summary = (over: Partial<DomainSummary>): DomainSummary => ({ name: "d", uuid: "u", id: 1, machine: "pc-i440fx-7.2", controllers: [], features: { acpi: true }, ...over });

test("hot-plug: sata and ide never; scsi needs virtio-scsi; virtio needs ACPI (pc) or a root port (q35)", () => {
  const lab = parseDomainSummary(fixture("domain-live.xml")); // acpi + virtio-scsi, like the lab domains
  assert.equal(hotplugProblem("scsi", lab), undefined);
  assert.equal(hotplugProblem("virtio", lab), undefined);
  assert.match(hotplugProblem("sata", lab)!, /cannot be hot-plugged.*live: false/);
  assert.match(hotplugProblem("ide", lab)!, /cannot be hot-plugged/);
  assert.match(hotplugProblem("scsi", summary({ controllers: [{ type: "scsi", index: 0, model: "lsilogic" }] }))!, /virtio-scsi/);
  assert.match(hotplugProblem("virtio", summary({ features: { acpi: false } }))!, /ACPI/);
  const q35 = summary({ machine: "pc-q35-7.2", controllers: [{ type: "pci", index: 0, model: "pcie-root" }] });
  assert.match(hotplugProblem("virtio", q35)!, /pcie-root-port/);
  assert.equal(hotplugProblem("virtio", { ...q35, controllers: [...q35.controllers, { type: "pci", index: 1, model: "pcie-root-port" }] }), undefined);
});

test("attach what is missing: the definition, then live when hot-plugging; an unpluggable disk is refused after the definition", async () => {
  const lab = parseDomainSummary(fixture("domain-live.xml"));
  const [disk] = parseDomainDisks(fixture("domain-live.xml"));
  const attached = async (bus: "scsi" | "sata", at: Placement, hotplug: boolean) => {
    const calls: AttachTo[] = [];
    const error = await attachMissing({ bus, domain: "vm1" }, lab, at, hotplug, async (where) => {
      calls.push(where);
    }).then(() => undefined, (err: unknown) => err);
    return { calls, error };
  };
  const config = { live: false, config: true };
  const live = { live: true, config: false };
  assert.deepEqual(await attached("scsi", {}, true), { calls: [config, live], error: undefined });
  assert.deepEqual(await attached("scsi", {}, false), { calls: [config], error: undefined });
  assert.deepEqual(await attached("scsi", { persistent: disk }, true), { calls: [live], error: undefined });
  assert.deepEqual(await attached("scsi", { live: disk }, true), { calls: [config], error: undefined });
  assert.deepEqual(await attached("scsi", { persistent: disk, live: disk }, true), { calls: [], error: undefined });
  // sata cannot be hot-plugged: the definition still gets the disk, then `bus` is refused
  const sata = await attached("sata", {}, true);
  assert.deepEqual(sata.calls, [config]);
  assert.ok(sata.error instanceof InputError);
  assert.equal(sata.error.field, "bus");
  assert.match(sata.error.message, /^bus: cannot hot-plug into running domain 'vm1': sata disks cannot be hot-plugged/);
  // not hot-plugging (shut-off domain or live: false): no refusal
  assert.deepEqual(await attached("sata", {}, false), { calls: [config], error: undefined });
});

test("access: auto takes gfapi when QEMU has the driver, else fuse; impossible requests say why", () => {
  assert.deepEqual(resolveAccess("auto", "netfs", true), { access: "gfapi" });
  assert.deepEqual(resolveAccess("auto", "netfs", false), { access: "fuse" });
  assert.deepEqual(resolveAccess("fuse", "netfs", true), { access: "fuse" });
  assert.deepEqual(resolveAccess("gfapi", "netfs", true), { access: "gfapi" });
  assert.deepEqual(resolveAccess("gfapi", "gluster", true), { access: "gfapi" });
  assert.deepEqual(resolveAccess("auto", "gluster", true), { access: "gfapi" });
  assert.match((resolveAccess("gfapi", "netfs", false) as { problem: string }).problem, /no gluster block driver.*fuse/);
  assert.match((resolveAccess("fuse", "gluster", true) as { problem: string }).problem, /no FUSE mount/);
  assert.match((resolveAccess("auto", "gluster", false) as { problem: string }).problem, /no gluster block driver.*no FUSE mount/);
});

const netfs: PoolInfo = { name: "p", type: "netfs", volume: "labvol", servers: ["gs1", "gs2"], targetPath: "/var/lib/libvirt/gluster/p" };

test("source: the file on the mount for fuse, the path inside the volume with every server for gfapi", () => {
  assert.deepEqual(diskSourceFor("fuse", netfs, "/var/lib/libvirt/gluster/p/vm1.img"), { type: "file", file: "/var/lib/libvirt/gluster/p/vm1.img" });
  assert.deepEqual(diskSourceFor("gfapi", netfs, "/var/lib/libvirt/gluster/p/vm1.img"), { type: "gluster", volume: "labvol", path: "vm1.img", servers: ["gs1", "gs2"] });
  // a pool over a directory of the volume: the path inside the volume includes it
  assert.deepEqual(diskSourceFor("gfapi", { ...netfs, directory: "/images", port: 24008 }, "/var/lib/libvirt/gluster/p/a/vm1.img"), {
    type: "gluster", volume: "labvol", path: "images/a/vm1.img", servers: ["gs1", "gs2"], port: 24008,
  });
  // a native gluster pool names volumes by URL
  const native: PoolInfo = { name: "g", type: "gluster", volume: "labvol", servers: ["gs1"] };
  assert.deepEqual(diskSourceFor("gfapi", native, "gluster://gs1:24007/labvol/images/vm1.img"), { type: "gluster", volume: "labvol", path: "images/vm1.img", servers: ["gs1"] });
  assert.throws(() => diskSourceFor("gfapi", netfs, "/elsewhere/vm1.img"), /not under the pool's mount/);
  // and the golden XML for both comes out of it
  assert.equal(
    buildDiskXml({ source: diskSourceFor("fuse", { ...netfs, targetPath: "/mnt/libvirt/primary_gluster" }, "/mnt/libvirt/primary_gluster/data.img"), target: "sdb", bus: "scsi", format: "raw", readonly: true, shareable: true }),
    fixture("disk-file.xml"),
  );
  // an image QEMU can open as it is keeps its owner: libvirt is told not to relabel it
  assert.equal(
    buildDiskXml({ source: diskSourceFor("fuse", { ...netfs, targetPath: "/mnt/libvirt/primary_gluster" }, "/mnt/libvirt/primary_gluster/data.img", true), target: "sdb", bus: "scsi", format: "raw", readonly: true, shareable: true }),
    fixture("disk-file-keep-owner.xml"),
  );
  // and so does a libgfapi one: the seclabel inside its network source, after the hosts
  const kept = buildDiskXml({ source: diskSourceFor("gfapi", { ...netfs, volume: "primary", servers: ["gs1"] }, `${netfs.targetPath}/data.img`, true), target: "sdb", bus: "scsi", format: "raw" });
  assert.match(kept, /<source protocol='gluster' name='primary\/data.img'>\n\s+<host name='gs1' port='24007'\/>\n\s+<seclabel model='dac' relabel='no'\/>\n\s+<\/source>/);
  assert.doesNotMatch(buildDiskXml({ source: diskSourceFor("gfapi", { ...netfs, volume: "primary", servers: ["gs1"] }, `${netfs.targetPath}/data.img`), target: "sdb", bus: "scsi", format: "raw" }), /seclabel/);
  const pool: PoolInfo = { ...netfs, volume: "primary", servers: ["gs1.example.net", "gs2.example.net"], targetPath: "/mnt/p", directory: "/vms" };
  assert.equal(
    buildDiskXml({
      source: diskSourceFor("gfapi", pool, "/mnt/p/vm1-root.qcow2"), target: "vdb", bus: "virtio", format: "qcow2",
      io: "native", discard: "unmap", serial: "vm1-root",
    }),
    fixture("disk-gfapi-2hosts.xml"),
  );
});

test("gfapi needs a file QEMU's user may open itself (Gluster checks the libgfapi client's uid)", () => {
  const qemu = { owner: 64055, group: 64055 };
  assert.equal(qemuMayOpen({ owner: 0, group: 0, mode: "0600" }, qemu, false), false);
  assert.equal(qemuMayOpen({ owner: 0, group: 0, mode: "0644" }, qemu, true), true);
  assert.equal(qemuMayOpen({ owner: 0, group: 0, mode: "0644" }, qemu, false), false);
  assert.equal(qemuMayOpen({ owner: 0, group: 64055, mode: "0660" }, qemu, false), true);
  assert.equal(qemuMayOpen({ owner: 64055, group: 64055, mode: "0600" }, qemu, false), true);
  assert.equal(qemuMayOpen({ owner: 64055, group: 0, mode: "0400" }, qemu, false), false);
  // what cannot be told is neither: gfapi is not refused on it, and fuse does not keep the owner on it
  assert.equal(qemuMayOpen(undefined, qemu, false), undefined);
  assert.equal(qemuMayOpen({ owner: 0, group: 0, mode: "0600" }, undefined, false), undefined);
  assert.equal(qemuMayOpen({ owner: 64055, mode: "0600" }, qemu, false), undefined);
  assert.equal(qemuMayOpen({ owner: 64055, group: 64055 }, qemu, false), undefined);
});

test("our disk is found by target and image, not by target alone", () => {
  const [vda, sdb] = parseDomainDisks(fixture("domain-live.xml"));
  assert.equal(isOurDisk(vda, "vda", "/tmp/xmltest/mnt/xmltest-clone.qcow2"), true);
  assert.equal(isOurDisk(vda, "vda", "/tmp/xmltest/mnt/other.img"), false);
  assert.equal(isOurDisk(vda, "vdb", "/tmp/xmltest/mnt/xmltest-clone.qcow2"), false);
  assert.equal(isOurDisk(sdb, "sdb", "labvol/xmltest-data.img"), true);
  assert.equal(isOurDisk(sdb, "sdb", "labvol/other.img"), false);
});

// ---------------------------------------------------------------------------------------
// Hypervisors sharing the pool (migration)

const hypervisors = [{ host: "kvm1" }, { host: "kvm2" }];

test("check: hypervisors instead of connection; exactly one of them, each host once", async () => {
  const { connection: _c, ...rest } = valid;
  assert.equal((await diskAttachment.check({}, { ...rest, hypervisors })).failures, undefined);
  const failures = async (over: Unchecked) => (await diskAttachment.check({}, { ...rest, ...over })).failures?.map((f) => `${f.property}: ${f.reason}`);
  assert.deepEqual(await failures({}), ["connection: give the hypervisor's connection, or hypervisors"]);
  assert.deepEqual(await failures({ connection, hypervisors }), ["hypervisors: give either connection or hypervisors, not both"]);
  assert.deepEqual(await failures({ hypervisors: [] }), ["hypervisors: name at least one hypervisor"]);
  assert.deepEqual(await failures({ hypervisors: [{ host: "kvm1" }, { host: "kvm2" }, { host: "kvm1" }] }), ["hypervisors[2].host: kvm1 is listed twice"]);
  assert.match((await failures({ hypervisors: [{ host: "kvm1", port: 0 }] }))?.join("\n") ?? "", /^hypervisors\[0\]\.port: /);
  // preview: a GlusterStorage's hypervisors not known yet
  assert.equal((await diskAttachment.check({}, { ...rest, hypervisors: UNKNOWN })).failures, undefined);
  assert.equal((await diskAttachment.check({}, { ...rest, hypervisors: [UNKNOWN, { host: "kvm2" }] })).failures, undefined);
});

test("diff: another set of hypervisors updates while it keeps a host; none in common, or unknown, replaces", async () => {
  const old = { ...state, connection: undefined, hypervisors };
  const d = (over: Unchecked, from: DiskOutputs = old) => diskAttachment.diff("u-1/sdb", from, news(over) as never);
  const cases: [DiskOutputs, Unchecked, string[], boolean][] = [
    [old, { connection: undefined, hypervisors }, [], false],
    [old, { connection: undefined, hypervisors: [{ host: "kvm2" }, { host: "kvm3" }] }, [], true],
    [old, { connection: undefined, hypervisors: [{ host: "kvm1", port: 2222 }, { host: "kvm2" }] }, [], true],
    [old, { connection: undefined, hypervisors: [{ host: "kvm3" }] }, ["hypervisors"], true],
    // from the one-connection form (state written before hypervisors existed) and back
    [state, { connection: undefined, hypervisors }, [], true],
    [state, { connection: undefined, hypervisors: [{ host: "kvm2" }] }, ["hypervisors"], true],
    [old, { connection: { host: "kvm2" } }, [], true],
    [old, { connection: { host: "kvm9" } }, ["connection"], true],
  ];
  for (const [from, over, replaces, changes] of cases) {
    const r = await d(over, from);
    assert.deepEqual(r.replaces, replaces, JSON.stringify(over));
    assert.equal(r.changes, changes, JSON.stringify(over));
    assert.equal(r.deleteBeforeReplace, replaces.length > 0);
  }
  const unknown = await diskAttachment.diff("u-1/sdb", old, { ...news({}), connection: undefined, hypervisors: UNKNOWN } as never);
  assert.deepEqual(unknown.replaces, ["hypervisors"]);
  assert.equal(hostsRule(old, { hypervisors: [UNKNOWN] }), "replace");
  assert.equal(hostsRule(state, { connection }), "update");
});

/** A hypervisor whose virsh knows the domains in `xmls` (uuid → live XML; inactive the same) and fails as told. */
function hypervisor(label: string, xmls: Record<string, string>, fails?: Error): Host {
  return {
    label,
    libvirtUri: "qemu:///system",
    exec: () => Promise.reject(new Error("only virsh is expected")),
    virsh: async (args) => {
      if (fails) throw fails;
      const xml = xmls[args[args.length - 1]];
      if (args[0] === "dumpxml" && xml) return xml;
      throw new VirshError(`virsh ${args.join(" ")}`, 1, `error: failed to get domain '${args[args.length - 1]}'`);
    },
  };
}

test("locateDomain: the one hypervisor that has the domain; none is gone; several or one not asked is an error naming them", async () => {
  const live = fixture("domain-live.xml");
  const uuid = /<uuid>([^<]+)<\/uuid>/.exec(live)![1];
  const lookup = (h: Host) => inspectDomain(h, uuid);
  const has = (label: string) => hypervisor(label, { [uuid]: live });
  const empty = (label: string) => hypervisor(label, {});
  assert.equal((await locateDomain([empty("kvm1"), has("kvm2")], lookup, "domain 'vm1'"))?.host.label, "kvm2");
  assert.equal((await locateDomain([has("kvm1"), empty("kvm2")], lookup, "domain 'vm1'"))?.dom.uuid, uuid);
  assert.equal(await locateDomain([empty("kvm1"), empty("kvm2")], lookup, "domain 'vm1'"), undefined);
  await assert.rejects(locateDomain([has("kvm1"), has("kvm2")], lookup, "domain 'vm1'"), (e: Error) => {
    assert.match(e.message, /^domain 'vm1' is defined on 2 hypervisors: kvm1 \(running\), kvm2 \(running\); nothing was changed$/);
    assert.match((e as GlusterLibvirtError).details, /--undefinesource/);
    return true;
  });
  // a host that cannot be asked might be the one that has it
  const down = hypervisor("kvm2", {}, new Error("SSH kvm2: connect ECONNREFUSED\nmore"));
  await assert.rejects(locateDomain([has("kvm1"), down], lookup, "domain 'vm1'"), (e: Error) => {
    assert.ok(e instanceof SafetyCheckError);
    assert.equal(e.message, "cannot tell which hypervisor has domain 'vm1': could not ask kvm2 (SSH kvm2: connect ECONNREFUSED); nothing was changed");
    return true;
  });
  // one host: its own answer and its own errors, as before hypervisors existed
  await assert.rejects(locateDomain([down], lookup, "domain 'vm1'"), /^Error: SSH kvm2: connect ECONNREFUSED/);
});
