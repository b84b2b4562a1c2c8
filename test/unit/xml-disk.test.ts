import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  buildDiskXml, diskSources, parseDomainDisks, sourceInPool, sourceReferencesVolume, parseDomainSummary, type DiskSpec, type DomainDisk, type PoolReference, type VolumeReference,
} from "../../provider/xml/disk";
import { XmlError } from "../../provider/xml/markup";

// As the in-use scans (provider/libvirt/usage.ts) ask it: any image of the disk, top first.
const diskReferencesVolume = (disk: DomainDisk, ref: VolumeReference) => diskSources(disk).some((s) => sourceReferencesVolume(s, ref));
const diskReferencesPool = (disk: DomainDisk, ref: PoolReference) => diskSources(disk).some((s) => sourceInPool(s, ref));

const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");
const inDomain = (disk: string) => `<domain type='qemu'><name>d</name><devices>${disk}</devices></domain>`;

const gfapi: DiskSpec = {
  source: { type: "gluster", volume: "primary", path: "vms/vm1-root.qcow2", servers: ["gs1.example.net", "gs2.example.net"] },
  target: "vdb",
  bus: "virtio",
  format: "qcow2",
  io: "native",
  discard: "unmap",
  serial: "vm1-root",
};

const file: DiskSpec = {
  source: { type: "file", file: "/mnt/libvirt/primary_gluster/data.img" },
  target: "sdb",
  bus: "scsi",
  format: "raw",
  readonly: true,
  shareable: true,
};

test("gfapi disk: every server is a <host> with the glusterd port", () => {
  assert.equal(buildDiskXml(gfapi), fixture("disk-gfapi-2hosts.xml"));
});

test("file disk on the FUSE mount", () => {
  assert.equal(buildDiskXml(file), fixture("disk-file.xml"));
});

test("build -> parse gives back what was asked for", () => {
  const [g] = parseDomainDisks(inDomain(buildDiskXml(gfapi)));
  assert.deepEqual(g, {
    type: "network",
    device: "disk",
    target: "vdb",
    bus: "virtio",
    driver: { name: "qemu", type: "qcow2", cache: "none", io: "native", discard: "unmap" },
    source: {
      protocol: "gluster",
      name: "primary/vms/vm1-root.qcow2",
      hosts: [{ name: "gs1.example.net", port: 24007 }, { name: "gs2.example.net", port: 24007 }],
    },
    backingChain: [],
    readonly: false,
    shareable: false,
    serial: "vm1-root",
  } satisfies DomainDisk);
  const [f] = parseDomainDisks(inDomain(buildDiskXml(file)));
  assert.deepEqual(f.source, { file: "/mnt/libvirt/primary_gluster/data.img" });
  assert.equal(f.readonly, true);
  assert.equal(f.shareable, true);
  assert.equal(f.driver?.cache, "none");
});

test("a dropped host would fail here", () => {
  const hosts = parseDomainDisks(inDomain(buildDiskXml({ ...gfapi, source: { ...gfapi.source, servers: ["a", "b", "c"], port: 24010 } as DiskSpec["source"] })))[0].source?.hosts;
  assert.deepEqual(hosts, [{ name: "a", port: 24010 }, { name: "b", port: 24010 }, { name: "c", port: 24010 }]);
});

test("special characters are escaped", () => {
  const xml = buildDiskXml({ ...file, source: { type: "file", file: "/mnt/it's <a> & \"b\".img" }, serial: "x'<y>&" });
  assert.match(xml, /file='\/mnt\/it&apos;s &lt;a&gt; &amp; &quot;b&quot;\.img'/);
  const [d] = parseDomainDisks(inDomain(xml));
  assert.equal(d.source?.file, "/mnt/it's <a> & \"b\".img");
  assert.equal(d.serial, "x'<y>&");
  // whitespace in attributes would be normalised to spaces if written literally
  const odd = "/mnt/a\tb\r\nc .img";
  assert.equal(parseDomainDisks(inDomain(buildDiskXml({ ...file, source: { type: "file", file: odd } })))[0].source?.file, odd);
});

test("gluster names are normalised and must point inside the volume", () => {
  const name = (path: string) =>
    parseDomainDisks(inDomain(buildDiskXml({ ...gfapi, source: { ...gfapi.source, path } as DiskSpec["source"] })))[0].source?.name;
  assert.equal(name("/vms//vm1.img"), "primary/vms/vm1.img");
  assert.throws(() => name("../other/vm1.img"), XmlError);
  assert.throws(() => name("/"), XmlError);
  assert.throws(() => buildDiskXml({ ...gfapi, source: { ...gfapi.source, servers: [] } as DiskSpec["source"] }), /at least one server/);
});

// Captured from libvirt 9.0 / QEMU 7.2: a domain defined with buildDiskXml disks,
// then started (live XML has aliases, source index and <backingStore> chains).
test("parses every disk of a live domain, with backing chain and aliases", () => {
  assert.deepEqual(parseDomainDisks(fixture("domain-live.xml")), [
    {
      type: "file",
      device: "disk",
      target: "vda",
      bus: "virtio",
      driver: { name: "qemu", type: "qcow2", cache: "none" },
      source: { file: "/tmp/xmltest/mnt/xmltest-clone.qcow2" },
      backingChain: [{ type: "file", format: "qcow2", source: { file: "/tmp/xmltest/mnt/xmltest-base.qcow2" } }],
      readonly: false,
      shareable: false,
      alias: "virtio-disk0",
    },
    {
      type: "network",
      device: "disk",
      target: "sdb",
      bus: "scsi",
      driver: { name: "qemu", type: "raw", cache: "none", io: "native", discard: "unmap" },
      source: {
        protocol: "gluster",
        name: "labvol/xmltest-data.img",
        hosts: [{ name: "192.0.2.2", port: 24007 }, { name: "127.0.0.1", port: 24007 }],
      },
      backingChain: [],
      readonly: false,
      shareable: true,
      serial: "xmltest-data",
      alias: "scsi0-0-0-1",
    },
    {
      type: "file",
      device: "cdrom",
      target: "hdc",
      bus: "ide",
      driver: { name: "qemu" },
      backingChain: [],
      readonly: true,
      shareable: false,
      alias: "ide0-1-0",
    },
  ] satisfies DomainDisk[]);
});

test("inactive XML has the same disks without aliases or backing chains", () => {
  const live = parseDomainDisks(fixture("domain-live.xml"));
  const inactive = parseDomainDisks(fixture("domain-inactive.xml"));
  assert.deepEqual(
    inactive,
    live.map(({ alias: _alias, ...d }) => ({
      ...d,
      backingChain: [],
      // libvirt fills in the default format of an empty cdrom in inactive XML only
      driver: d.device === "cdrom" ? { name: "qemu", type: "raw" } : d.driver,
    })),
  );
});

test("domain summary: controllers, acpi, running id, machine", () => {
  const controllers = [
    { type: "scsi", index: 0, model: "virtio-scsi" },
    { type: "usb", index: 0, model: "piix3-uhci" },
    { type: "pci", index: 0, model: "pci-root" },
    { type: "ide", index: 0 },
  ];
  assert.deepEqual(parseDomainSummary(fixture("domain-live.xml")), {
    name: "xmltest-dom",
    uuid: "dae223e5-b9e8-4a87-96f2-b442434041c8",
    id: 2,
    machine: "pc-i440fx-7.2",
    controllers,
    features: { acpi: true },
  });
  const inactive = parseDomainSummary(fixture("domain-inactive.xml"));
  assert.equal(inactive.id, undefined);
  assert.deepEqual(inactive.controllers, controllers);
  const bare = parseDomainSummary("<domain type='qemu'><name>b</name><uuid>u</uuid><devices/></domain>");
  assert.deepEqual(bare, { name: "b", uuid: "u", controllers: [], features: { acpi: false } });
});

test("diskReferencesVolume: by FUSE path, by gluster name, through the backing chain", () => {
  const [vda, sdb, cdrom] = parseDomainDisks(fixture("domain-live.xml"));
  assert.equal(diskReferencesVolume(vda, { filePath: "/tmp/xmltest/mnt/xmltest-clone.qcow2" }), true);
  assert.equal(diskReferencesVolume(vda, { filePath: "/tmp/xmltest//mnt/./xmltest-clone.qcow2" }), true);
  // the base image is in use by vda's overlay even though no disk names it directly
  assert.equal(diskReferencesVolume(vda, { filePath: "/tmp/xmltest/mnt/xmltest-base.qcow2" }), true);
  assert.equal(diskReferencesVolume(vda, { filePath: "/tmp/xmltest/mnt/xmltest-data.img" }), false);

  assert.equal(diskReferencesVolume(sdb, { glusterVolume: "labvol", glusterPath: "xmltest-data.img" }), true);
  assert.equal(diskReferencesVolume(sdb, { glusterVolume: "labvol", glusterPath: "/xmltest-data.img" }), true);
  assert.equal(diskReferencesVolume(sdb, { glusterVolume: "other", glusterPath: "xmltest-data.img" }), false);
  // the same file through the FUSE mount is only found when the caller gives that path too
  const both = { filePath: "/tmp/xmltest/mnt/xmltest-data.img", glusterVolume: "labvol", glusterPath: "xmltest-data.img" };
  assert.equal(diskReferencesVolume(sdb, both), true);
  assert.equal(diskReferencesVolume(cdrom, both), false);
  assert.equal(diskReferencesVolume(vda, {}), false);
});

test("diskReferencesVolume: type='volume' disks and inactive XML", () => {
  const [vol] = parseDomainDisks(inDomain(
    "<disk type='volume' device='disk'><source pool='primary_gluster' volume='data.img'/><target dev='vdc' bus='virtio'/></disk>",
  ));
  assert.equal(diskReferencesVolume(vol, { pool: "primary_gluster", volume: "data.img" }), true);
  assert.equal(diskReferencesVolume(vol, { pool: "primary_gluster", volume: "other.img" }), false);
  const [vda] = parseDomainDisks(fixture("domain-inactive.xml"));
  // no backing chain in inactive XML: overlays must be found via the pool's volumes
  assert.equal(diskReferencesVolume(vda, { filePath: "/tmp/xmltest/mnt/xmltest-base.qcow2" }), false);
});

test("diskReferencesPool: a disk whose backing image is in the pool uses the pool", () => {
  // Live XML of an overlay kept outside the pool on top of a base image inside it.
  const [overlay] = parseDomainDisks(inDomain(`
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/vm1.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/mnt/libvirt/primary_gluster//base.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>`));
  const [gfapiOverlay] = parseDomainDisks(inDomain(`
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/vm2.qcow2'/>
      <backingStore type='network'>
        <format type='qcow2'/>
        <source protocol='gluster' name='/primary/images/base.qcow2'><host name='gs1'/></source>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>`));
  const pool = { targetPath: "/mnt/libvirt/primary_gluster", glusterVolume: "primary", pool: "primary_gluster" };
  assert.equal(diskReferencesPool(overlay, pool), true);
  assert.equal(diskReferencesPool(gfapiOverlay, pool), true);
  const elsewhere = { targetPath: "/mnt/libvirt/other", glusterVolume: "other", pool: "other" };
  assert.equal(diskReferencesPool(overlay, elsewhere), false);
  assert.equal(diskReferencesPool(gfapiOverlay, elsewhere), false);
  // a sibling directory sharing the mount point's prefix is not inside it
  assert.equal(diskReferencesPool(overlay, { targetPath: "/mnt/libvirt/primary" }), false);
});

test("diskReferencesPool: top-level sources by mount path, gluster volume and pool name", () => {
  const [vda, sdb, cdrom] = parseDomainDisks(fixture("domain-live.xml"));
  assert.equal(diskReferencesPool(vda, { targetPath: "/tmp/xmltest/mnt" }), true);
  assert.equal(diskReferencesPool(vda, { targetPath: "/tmp/xmltest/mnt/" }), true);
  assert.equal(diskReferencesPool(sdb, { targetPath: "/tmp/xmltest/mnt" }), false);
  assert.equal(diskReferencesPool(sdb, { glusterVolume: "labvol" }), true);
  assert.equal(diskReferencesPool(sdb, { glusterVolume: "labvo" }), false);
  assert.equal(diskReferencesPool(cdrom, { targetPath: "/tmp/xmltest/mnt", glusterVolume: "labvol" }), false);
  const [vol] = parseDomainDisks(inDomain(
    "<disk type='volume' device='disk'><source pool='primary_gluster' volume='data.img'/><target dev='vdc' bus='virtio'/></disk>",
  ));
  assert.equal(diskReferencesPool(vol, { pool: "primary_gluster" }), true);
  assert.equal(diskReferencesPool(vol, { pool: "other" }), false);
});

test("parsers reject what is not a domain", () => {
  assert.throws(() => parseDomainDisks("<pool type='dir'/>"), /expected a <domain>/);
  assert.throws(() => parseDomainDisks(fixture("domain-live.xml").slice(0, 500)), /malformed/);
  assert.throws(() => parseDomainSummary("<domain><name>x</name></domain>"), /uuid/);
});
