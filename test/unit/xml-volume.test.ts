import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { buildVolumeXml, parseVolumeXml, type VolumeSpec } from "../../provider/xml/volume";
import fc from "fast-check";
import { XmlError } from "../../provider/xml/markup";

const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");

const raw: VolumeSpec = {
  name: "data.img",
  capacity: 512 * 1024 ** 2,
  format: "raw",
  permissions: { mode: "0660", owner: 64055, group: 64055 },
};

const clone: VolumeSpec = {
  name: "vm1-root.qcow2",
  capacity: 10 * 1024 ** 3,
  allocation: 0,
  format: "qcow2",
  permissions: { mode: "0600", owner: 64055, group: 64055 },
  backingStore: { path: "/mnt/libvirt/primary_gluster/debian-12-base.qcow2", format: "qcow2" },
};

test("raw volume with permissions, sparse by default", () => {
  assert.equal(buildVolumeXml(raw), fixture("volume-raw.xml"));
});

test("qcow2 linked clone with its backing store", () => {
  assert.equal(buildVolumeXml(clone), fixture("volume-qcow2-backing.xml"));
});

test("build -> parse keeps everything the spec says", () => {
  for (const spec of [raw, clone]) {
    const info = parseVolumeXml(buildVolumeXml(spec));
    assert.deepEqual(
      { name: info.name, capacity: info.capacity, format: info.format, permissions: info.permissions, backingStore: info.backingStore },
      { name: spec.name, capacity: spec.capacity, format: spec.format, permissions: spec.permissions, backingStore: spec.backingStore },
    );
    assert.equal(info.allocation, spec.allocation ?? 0);
  }
});

test("permissions and backing store are in the XML (a dropped one fails here)", () => {
  const xml = buildVolumeXml(clone);
  assert.match(xml, /<owner>64055<\/owner>/);
  assert.match(xml, /<backingStore>\s*<path>\/mnt\/libvirt\/primary_gluster\/debian-12-base\.qcow2<\/path>\s*<format type='qcow2'\/>/);
});

test("special characters are escaped", () => {
  const spec: VolumeSpec = { ...clone, name: `it's<&>"x".qcow2`, backingStore: { path: "/mnt/a&b/<base>.qcow2", format: "raw" } };
  const xml = buildVolumeXml(spec);
  assert.match(xml, /<name>it&apos;s&lt;&amp;&gt;&quot;x&quot;\.qcow2<\/name>/);
  const info = parseVolumeXml(xml);
  assert.equal(info.name, spec.name);
  assert.deepEqual(info.backingStore, spec.backingStore);
});

test("builder refuses impossible volumes", () => {
  assert.throws(() => buildVolumeXml({ ...raw, backingStore: { path: "/x", format: "raw" } }), /qcow2/);
  assert.throws(() => buildVolumeXml({ ...raw, capacity: 1.5 }), XmlError);
  assert.throws(() => buildVolumeXml({ ...raw, capacity: -1 }), XmlError);
  assert.throws(() => buildVolumeXml({ ...raw, format: "vmdk" as never }), XmlError);
});

test("sizes in other units are converted to bytes", () => {
  const info = parseVolumeXml("<volume><name>v</name><capacity unit='G'>10</capacity><allocation unit='KB'>3</allocation></volume>");
  assert.equal(info.capacity, 10 * 1024 ** 3);
  assert.equal(info.allocation, 3000);
  assert.equal(parseVolumeXml("<volume><name>v</name><capacity>42</capacity></volume>").capacity, 42);
  assert.throws(() => parseVolumeXml("<volume><name>v</name><capacity unit='parsecs'>1</capacity></volume>"), /not a size/);
});

// Captured from libvirt 9.0: volumes created (vol-create) from buildVolumeXml output.
test("parses vol-dumpxml of a qcow2 linked clone in a netfs pool", () => {
  assert.deepEqual(parseVolumeXml(fixture("vol-dumpxml-qcow2-clone.xml")), {
    name: "xmltest-clone.qcow2",
    type: "file",
    key: "/tmp/xmltest/mnt/xmltest-clone.qcow2",
    path: "/tmp/xmltest/mnt/xmltest-clone.qcow2",
    capacity: 33554432,
    allocation: 197120,
    physical: 196616,
    format: "qcow2",
    permissions: { mode: "0600", owner: 64055, group: 64055 },
    backingStore: { path: "/tmp/xmltest/mnt/xmltest-base.qcow2", format: "qcow2" },
  });
});

test("parses vol-dumpxml of a sparse raw volume", () => {
  assert.deepEqual(parseVolumeXml(fixture("vol-dumpxml-raw.xml")), {
    name: "xmltest-data.img",
    type: "file",
    key: "/tmp/xmltest/mnt/xmltest-data.img",
    path: "/tmp/xmltest/mnt/xmltest-data.img",
    capacity: 67108864,
    allocation: 4096,
    physical: 67108864,
    format: "raw",
    permissions: { mode: "0660", owner: 64055, group: 64055 },
  });
});

test("parses the same file seen through a native gluster pool (network volume, gluster:// key)", () => {
  const info = parseVolumeXml(fixture("vol-dumpxml-gluster-pool.xml"));
  assert.equal(info.type, "network");
  assert.equal(info.key, "gluster://192.0.2.2:24007/labvol/xmltest-clone.qcow2");
  assert.equal(info.path, info.key);
  assert.deepEqual(info.backingStore, { path: "/tmp/xmltest/mnt/xmltest-base.qcow2", format: "qcow2" });
});

test("any representable name survives build -> parse unchanged (property)", () => {
  const representable = (s: string) => s.length > 0 && !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(s);
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 30 }).filter(representable), fc.constantFrom("\n", "\r\n", "\t", " ", "&", "'", ""), (base, extra) => {
      const name = extra + base + extra;
      const xml = buildVolumeXml({ ...clone, name, backingStore: { path: `/mnt/${name}`, format: "qcow2" } });
      const info = parseVolumeXml(xml);
      assert.equal(info.name, name);
      assert.equal(info.backingStore?.path, `/mnt/${name}`);
    }),
    { numRuns: 300 },
  );
});
