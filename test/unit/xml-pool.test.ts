import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { buildPoolXml, parsePoolXml, type PoolSpec } from "../../provider/xml/pool";
import { XmlError } from "../../provider/xml/markup";

// Tests run from dist/test/unit; fixtures stay in the source tree.
const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");

const netfs3: PoolSpec = {
  name: "primary_gluster",
  type: "netfs",
  volume: "primary",
  servers: ["gs1.example.net", "gs2.example.net", "gs3.example.net"],
  targetPath: "/mnt/libvirt/primary_gluster",
  permissions: { mode: "0755", owner: 64055, group: 64055 },
  mountOptions: ["log-level=WARNING"],
  uuid: "6f0e8bb4-1c1f-4c55-9a43-51b1f2a3c0de",
};

const single: PoolSpec = {
  name: "single",
  type: "netfs",
  volume: "vmstore",
  directory: "/images",
  servers: ["10.0.0.5"],
  targetPath: "/var/lib/libvirt/single",
};

const gluster: PoolSpec = {
  name: "gfapi_primary",
  type: "gluster",
  volume: "primary",
  servers: ["gs1.example.net"],
  port: 24007,
};

test("netfs pool with three servers: first is the host, the others backup-volfile-servers", () => {
  assert.equal(buildPoolXml(netfs3), fixture("pool-netfs-3servers.xml"));
});

test("netfs pool with one server declares no fs namespace and no mount options", () => {
  assert.equal(buildPoolXml(single), fixture("pool-netfs-1server.xml"));
});

test("native gluster pool", () => {
  assert.equal(buildPoolXml(gluster), fixture("pool-gluster.xml"));
});

test("build -> parse round-trips every spec", () => {
  for (const spec of [netfs3, single, gluster]) {
    assert.deepEqual(parsePoolXml(buildPoolXml(spec)), spec);
  }
  const sub: PoolSpec = { ...gluster, servers: ["a", "b"], directory: "/vm/images", port: undefined };
  delete sub.port;
  assert.deepEqual(parsePoolXml(buildPoolXml(sub)), sub);
});

test("dropping a backup server or the mount option is visible after parsing", () => {
  const parsed = parsePoolXml(fixture("pool-netfs-3servers.xml"));
  assert.deepEqual(parsed.servers, ["gs1.example.net", "gs2.example.net", "gs3.example.net"]);
  assert.deepEqual(parsed.mountOptions, ["log-level=WARNING"]);
  const withoutBackups = fixture("pool-netfs-3servers.xml").replace(/\s*<fs:option name='backup[^']*'\/>/, "");
  assert.deepEqual(parsePoolXml(withoutBackups).servers, ["gs1.example.net"]);
  // The builder itself must not lose servers either.
  assert.match(buildPoolXml(netfs3), /<fs:option name='backup-volfile-servers=gs2\.example\.net:gs3\.example\.net'\/>/);
});

test("special characters are escaped and survive a round trip", () => {
  const spec: PoolSpec = {
    ...single,
    name: `a&b<c>'d"`,
    targetPath: "/mnt/it's <here> & \"there\"",
    mountOptions: ["x-opt='1'&<2>"],
  };
  const xml = buildPoolXml(spec);
  assert.ok(!/&(?!amp;|lt;|gt;|apos;|quot;)/.test(xml), xml);
  assert.match(xml, /<name>a&amp;b&lt;c&gt;&apos;d&quot;<\/name>/);
  assert.deepEqual(parsePoolXml(xml), spec);
});

test("builder refuses what it cannot express instead of writing broken or misleading XML", () => {
  assert.throws(() => buildPoolXml({ ...single, servers: [] }), XmlError);
  assert.throws(() => buildPoolXml({ ...single, targetPath: undefined }), /targetPath/);
  assert.throws(() => buildPoolXml({ ...single, volume: "a/b" }), XmlError);
  assert.throws(() => buildPoolXml({ ...single, servers: ["a", "fe80::1"] }), /':'/);
  assert.throws(() => buildPoolXml({ ...gluster, targetPath: "/mnt/x" }), /netfs pools only/);
  assert.throws(() => buildPoolXml({ ...single, mountOptions: ["backup-volfile-servers=x"] }), /in servers/);
  assert.throws(() => buildPoolXml({ ...single, name: "bad\u0001name" }), XmlError);
  assert.throws(() => buildPoolXml({ ...single, permissions: { mode: "0999" } }), XmlError);
  assert.throws(() => buildPoolXml({ ...single, permissions: { owner: -1 } }), XmlError);
});

test("parser reads hand-written variants the way libvirt means them", () => {
  const xml = `<?xml version="1.0"?>
<pool type="netfs" xmlns:mnt="http://libvirt.org/schemas/storagepool/fs/1.0">
  <!-- edited by hand -->
  <name>hand</name>
  <source><format type="glusterfs"/><dir path="vol//sub/"/><host name="h1"/></source>
  <target><path>/mnt/hand</path><permissions><mode>755</mode><owner>-1</owner><group>0</group></permissions></target>
  <mnt:mount_opts><mnt:option name="backupvolfile-server=h2"/><mnt:option name="acl"/></mnt:mount_opts>
  <capacity unit="GiB">
    2
  </capacity>
</pool>`;
  assert.deepEqual(parsePoolXml(xml), {
    name: "hand",
    type: "netfs",
    volume: "vol",
    directory: "/sub",
    servers: ["h1", "h2"],
    targetPath: "/mnt/hand",
    permissions: { mode: "0755", group: 0 },
    mountOptions: ["acl"],
    capacity: 2 * 1024 ** 3,
  });
});

test("parser refuses pools that are not Gluster pools, and malformed documents", () => {
  assert.throws(() => parsePoolXml("<pool type='dir'><name>d</name><target><path>/x</path></target></pool>"), /type 'dir'/);
  assert.throws(
    () => parsePoolXml("<pool type='netfs'><name>n</name><source><host name='h'/><dir path='/e'/><format type='nfs'/></source></pool>"),
    /not glusterfs/,
  );
  assert.throws(() => parsePoolXml(fixture("pool-gluster.xml").slice(0, -20)), /malformed/);
  assert.throws(() => parsePoolXml("<volume type='file'><name>v</name></volume>"), /expected a <pool>/);
});

// Captured from libvirt 9.0 (pool-dumpxml of pools defined from buildPoolXml output).
test("parses a live netfs pool as libvirt 9.0 prints it, sizes in bytes", () => {
  assert.deepEqual(parsePoolXml(fixture("pool-netfs-dumpxml.xml")), {
    name: "xmltest-netfs",
    type: "netfs",
    volume: "labvol",
    servers: ["192.0.2.2", "127.0.0.1", "localhost"],
    targetPath: "/tmp/xmltest/mnt",
    permissions: { mode: "0755", owner: 64055, group: 64055 },
    mountOptions: ["log-level=WARNING"],
    uuid: "52dc8a6a-2416-4509-ae1a-646378d7dce5",
    capacity: 270553174016,
    allocation: 19677835264,
    available: 250875338752,
  });
});

test("parses a live native gluster pool; every host is kept", () => {
  assert.deepEqual(parsePoolXml(fixture("pool-gluster-dumpxml.xml")), {
    name: "xmltest-gfapi",
    type: "gluster",
    volume: "labvol",
    servers: ["192.0.2.2", "127.0.0.1"],
    port: 24007,
    uuid: "b1113d8b-66ff-491f-8fde-272a9c5962f7",
    capacity: 270553174016,
    allocation: 19678498816,
    available: 250874675200,
  });
});

test("a netfs pool with two <host>s (libvirt defines it but refuses to start it) is reported, not guessed", () => {
  const xml = fixture("pool-netfs-1server.xml").replace("<host name='10.0.0.5'/>", "<host name='a'/><host name='b'/>");
  assert.throws(() => parsePoolXml(xml), /libvirt allows one/);
});
