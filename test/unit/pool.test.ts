import { test } from "node:test";
import assert from "node:assert/strict";
import { VirshError } from "../../provider/errors";
import type { Host } from "../../provider/host";
import { createPool, definitionDifferences, glusterPool, migrationProblems, poolChanges, poolSchema } from "../../provider/pool";
import { UNKNOWN, type Unchecked } from "../../provider/resource";
import { buildPoolXml, parsePoolXml, type PoolSpec } from "../../provider/xml/pool";

const connection = { host: "kvm1" };
const valid = { connection, name: "primary_gluster", volume: "primary", servers: ["gs1", "10.0.0.2"] };

test("check fills defaults: netfs, mount point from the name, autostart", async () => {
  const r = await glusterPool.check({}, valid);
  assert.equal(r.failures, undefined);
  assert.deepEqual(r.inputs, {
    ...valid,
    type: "netfs",
    targetPath: "/var/lib/libvirt/gluster/primary_gluster",
    autostart: true,
    adopt: false,
    forceDestroy: false,
  });
});

test("check names each bad field", async () => {
  const r = await glusterPool.check({}, {
    connection: { host: "kvm1", port: 0 },
    name: "bad name",
    volume: "vol/x",
    servers: ["ok", "not a host!"],
    targetPath: "relative/path",
    permissions: { mode: "999" },
    mountOptions: ["a,b"],
  });
  assert.deepEqual(r.failures?.map((f) => f.property).sort(), [
    "connection.port", "mountOptions[0]", "name", "permissions.mode", "servers[1]", "targetPath", "volume",
  ]);
});

test("check: netfs-only fields are refused on a native gluster pool", async () => {
  const r = await glusterPool.check({}, { ...valid, type: "gluster", targetPath: "/mnt/x", mountOptions: ["ro"] });
  assert.deepEqual(r.failures?.map((f) => f.property).sort(), ["mountOptions", "targetPath"]);
  const ok = await glusterPool.check({}, { ...valid, type: "gluster" });
  assert.equal(ok.failures, undefined);
  assert.equal(ok.inputs?.targetPath, undefined);
});

test("check: extra servers belong in `servers`, not in mount options", async () => {
  const r = await glusterPool.check({}, { ...valid, mountOptions: ["backup-volfile-servers=gs2"] });
  assert.deepEqual(r.failures?.map((f) => f.property), ["mountOptions[0]"]);
});

test("check: the legacy single backup server option is refused too", async () => {
  const r = await glusterPool.check({}, { ...valid, mountOptions: ["log-level=WARNING", "backupvolfile-server=gs2"] });
  assert.deepEqual(r.failures?.map((f) => f.property), ["mountOptions[1]"]);
});

test("check: a netfs pool's backup servers cannot be IPv6 addresses (mount.glusterfs splits on ':')", async () => {
  const r = await glusterPool.check({}, { ...valid, servers: ["gs1", "gs2", "fd00::2"] });
  assert.deepEqual(r.failures?.map((f) => f.property), ["servers[2]"]);
  // the first server is the pool's <host>, and a native pool lists every server as a <host>
  assert.equal((await glusterPool.check({}, { ...valid, servers: ["fd00::1", "gs2"] })).failures, undefined);
  assert.equal((await glusterPool.check({}, { ...valid, type: "gluster", servers: ["gs1", "fd00::2"] })).failures, undefined);
});

test("check: system directories are refused as targetPath, directories of their own below mount parents are fine", async () => {
  const failing = async (targetPath: string) => (await glusterPool.check({}, { ...valid, targetPath })).failures?.map((f) => f.property);
  for (const p of ["/etc", "/etc/libvirt", "/root", "/var/lib/libvirt/images", "/var/lib/libvirt/images/x", "/var/log/x", "/tmp/x", "/usr/local/x", "/proc/1", "/boot", "/run/x"]) {
    assert.deepEqual(await failing(p), ["targetPath"], p);
  }
  for (const p of ["/var", "/var/lib", "/var/lib/libvirt", "/var/lib/libvirt/gluster", "/mnt", "/srv", "/home", "/opt"]) {
    assert.deepEqual(await failing(p), ["targetPath"], p);
  }
  for (const p of ["/var/lib/libvirt/gluster/p", "/mnt/gluster/p", "/srv/p", "/opt/pools/p", "/data/p", "/var/lib/libvirt/images2"]) {
    assert.equal(await failing(p), undefined, p);
  }
  const r = await glusterPool.check({}, { ...valid, targetPath: "/var/lib/libvirt/images" });
  assert.match(r.failures![0].reason, /system directory \/var\/lib\/libvirt\/images/);
});

test("check: mount options that redirect files, servers or the mounted part of the volume are refused", async () => {
  const options = ["log-file=/etc/shadow", "dump-fuse=/root/x", "volfile-server=evil", "volfile-id=other", "xlator-option=labvol-client-0.remote-host=evil", "transport=unix", "server-port=1", "subdir-mount=x", "fuse-mountopts=allow_other", "LOG-FILE=/x"];
  const r = await glusterPool.check({}, { ...valid, mountOptions: ["log-level=WARNING", ...options, "ro"] });
  assert.deepEqual(r.failures?.map((f) => f.property), options.map((_, i) => `mountOptions[${i + 1}]`));
  assert.match(r.failures![0].reason, /`log-file` would point the Gluster client/);
});

test("check tolerates unknowns during preview", async () => {
  const r = await glusterPool.check({}, { ...valid, volume: UNKNOWN, servers: [UNKNOWN], connection: UNKNOWN });
  assert.equal(r.failures, undefined);
});

const state = { ...poolSchema.parse(valid), uuid: "u-1", state: "running", capacity: 1, allocation: 0, available: 1, glusterUrl: "gluster://gs1/primary" };
const news = (over: Unchecked) => poolSchema.parse({ ...valid, ...over });

test("diff: each field applies as the table says", async () => {
  const cases: [Unchecked, string[], boolean][] = [
    [{}, [], false],
    [{ autostart: false }, [], true],
    [{ permissions: { mode: "0750" } }, [], true],
    [{ forceDestroy: true }, [], true],
    [{ connection: { host: "kvm1", port: 2222 } }, [], true],
    [{ connection: { host: "kvm2" } }, ["connection"], true],
    [{ name: "other" }, ["name", "targetPath"], true],
    [{ volume: "other" }, ["volume"], true],
    [{ servers: ["gs1"] }, ["servers"], true],
    [{ type: "gluster" }, ["type", "targetPath"], true],
    [{ targetPath: "/mnt/p" }, ["targetPath"], true],
    [{ mountOptions: ["log-level=WARNING"] }, ["mountOptions"], true],
  ];
  for (const [over, replaces, changes] of cases) {
    const d = await glusterPool.diff("u-1", state, news(over));
    assert.deepEqual(d.replaces, replaces, JSON.stringify(over));
    assert.equal(d.changes, changes, JSON.stringify(over));
  }
});

test("diff: a pool found stopped is an update (update starts it)", async () => {
  const d = await glusterPool.diff("u-1", { ...state, state: "inactive" }, news({}));
  assert.equal(d.changes, true);
  assert.deepEqual(d.replaces, []);
});

test("every input is in the replacement table", () => {
  const inputs = Object.keys((poolSchema as unknown as { in: { shape: object } }).in.shape);
  assert.deepEqual(Object.keys(poolChanges).sort(), inputs.sort());
});

test("adopt compares the pool directory and glusterd port too", () => {
  // What create wants for `valid`: the volume root on the default port.
  const wanted: PoolSpec = { name: "primary_gluster", type: "netfs", volume: "primary", servers: ["gs1", "10.0.0.2"], targetPath: "/var/lib/libvirt/gluster/primary_gluster" };
  const handMade = (over: Partial<PoolSpec>) => parsePoolXml(buildPoolXml({ ...wanted, ...over }));
  assert.deepEqual(definitionDifferences(handMade({}), wanted), []);
  assert.deepEqual(definitionDifferences(handMade({ port: 24007 }), wanted), [], "an explicit default port is no difference");
  assert.deepEqual(definitionDifferences(handMade({ directory: "/images" }), wanted), ['directory: host has "/images", wanted null']);
  assert.deepEqual(definitionDifferences(handMade({ port: 24010 }), wanted), ["port: host has 24010, wanted null"]);
  const native: PoolSpec = { name: "gfapi", type: "gluster", volume: "primary", servers: ["gs1"] };
  assert.deepEqual(definitionDifferences(parsePoolXml(buildPoolXml({ ...native, directory: "/vms", port: 24010 })), native), [
    "port: host has 24010, wanted null",
    'directory: host has "/vms", wanted null',
  ]);
});

/**
 * A host whose libvirt keeps at most one pool definition; pool-define does `define` first
 * (what libvirt did before the answer was lost), then answers with `defineError`.
 */
function poolHost(opts: { defineError: string; define?: (xml: string) => string | undefined; infoError?: string }) {
  let defined: string | undefined;
  const calls: string[] = [];
  const fail = (args: readonly string[], stderr: string) => Promise.reject(new VirshError(`virsh ${args.join(" ")}`, 1, stderr));
  const missing = (args: readonly string[]) => fail(args, `error: failed to get pool '${args[1]}'\nerror: Storage pool not found: no storage pool with matching name '${args[1]}'`);
  const host: Host = {
    label: "fake",
    libvirtUri: "qemu:///system",
    exec: () => Promise.reject(new Error("only virsh is expected")),
    virsh: async (args, o) => {
      calls.push(args[0]);
      switch (args[0]) {
        case "pool-define":
          defined = opts.define?.(String(o?.stdin));
          return fail(args, opts.defineError);
        case "pool-info":
          if (opts.infoError) return fail(args, opts.infoError);
          return defined ? "Name: x\nState: inactive\nAutostart: no\n" : missing(args);
        case "pool-dumpxml":
          return defined ?? missing(args);
        case "pool-destroy":
          return defined ? fail(args, `error: Requested operation is not valid: storage pool '${args[1]}' is not active`) : missing(args);
        case "pool-undefine":
          if (!defined) return missing(args);
          defined = undefined;
          return "";
        default:
          throw new Error(`unexpected virsh ${args.join(" ")}`);
      }
    },
  };
  return { host, calls, defined: () => defined };
}

test("create: a pool-define whose answer was lost says truthfully what is left, and undoes only its own definition", async () => {
  const args = poolSchema.parse({ ...valid, type: "gluster" });
  const cut = "error: End of file while reading data: Input/output error";

  const ours = poolHost({ defineError: cut, define: (xml) => xml });
  await assert.rejects(createPool(ours.host, args), /failed: .*End of file while reading data.*; it had been defined, and was undefined again$/);
  assert.equal(ours.defined(), undefined, "the definition sent was undefined again");

  const refused = poolHost({ defineError: "error: XML error: bad" });
  await assert.rejects(createPool(refused.host, args), /; nothing was defined$/);
  assert.ok(!refused.calls.includes("pool-undefine"));

  const someoneElses = poolHost({ defineError: cut, define: (xml) => xml.replace("<name>primary</name>", "<name>other</name>") });
  await assert.rejects(createPool(someoneElses.host, args), /; a pool 'primary_gluster' with another definition exists now, and was left alone$/);
  assert.ok(!someoneElses.calls.includes("pool-undefine") && someoneElses.defined() !== undefined);

  const blind = poolHost({ defineError: cut, infoError: "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused" });
  await assert.rejects(createPool(blind.host, args), /; whether it was defined could not be checked \(.*Connection refused\): check with `virsh pool-info primary_gluster`$/);
});

// ---------------------------------------------------------------------------------------
// Migration readiness (GlusterStorage's hypervisors)

const both = [{ host: "kvm1" }, { host: "kvm2" }];

test("check: migration layouts the inputs show would break are refused at preview, naming the field", async () => {
  const failures = async (over: Unchecked) => (await glusterPool.check({}, { ...valid, ...over })).failures?.map((f) => `${f.property}: ${f.reason}`) ?? [];
  assert.deepEqual(await failures({ migration: { hypervisors: both } }), []);
  assert.deepEqual((await glusterPool.check({}, { ...valid, migration: { hypervisors: both } })).inputs?.migration, { hypervisors: both, access: "auto" });
  assert.deepEqual(await failures({ type: "gluster", targetPath: undefined, migration: { hypervisors: both, access: "fuse" } }), [
    "migration.access: a native gluster pool has no FUSE mount, so no hypervisor could open a fuse disk; use type netfs, or access gfapi",
  ]);
  assert.deepEqual(await failures({ migration: { hypervisors: [{ host: "kvm1" }, { host: "kvm2", libvirtUri: "qemu:///session" }] } }), [
    "migration.hypervisors[1].libvirtUri: qemu:///session on kvm2, (the default) on kvm1: a VM migrates between libvirts of one kind",
  ]);
  assert.deepEqual(await failures({ migration: { hypervisors: [{ host: "kvm2" }, { host: "kvm3" }] } }), ["migration.hypervisors: must include this pool's own host kvm1"]);
  assert.deepEqual(await failures({ migration: { hypervisors: [{ host: "kvm1" }, { host: "kvm1" }] } }), ["migration.hypervisors[1].host: kvm1 is listed twice"]);
  assert.deepEqual(await failures({ migration: { hypervisors: both, access: "nfs" } }), [
    'migration.access: Invalid option: expected one of "auto"|"gfapi"|"fuse"',
  ]);
});

test("diff: migration updates in place (update checks the new layout)", async () => {
  assert.equal(poolChanges.migration, "update");
});

const debian = { owner: 64055, group: 64055 };
const rhel = { owner: 107, group: 107 };

test("migrationProblems: QEMU must open the same images everywhere, and every host open a disk as any would attach it", () => {
  const netfs = { type: "netfs" as const, permissions: undefined };
  const fact = (label: string, qemu: typeof debian | undefined, glusterDriver?: boolean) => ({ label, qemu, glusterDriver });
  assert.deepEqual(migrationProblems([fact("kvm1", debian, true), fact("kvm2", debian, true)], { ...netfs, access: "auto" }), []);
  assert.deepEqual(migrationProblems([fact("kvm1", debian, false), fact("kvm2", debian, false)], { ...netfs, access: "auto" }), [], "auto means fuse on both");
  assert.deepEqual(migrationProblems([fact("kvm1", debian), fact("kvm2", debian)], { ...netfs, access: "fuse" }), []);

  const [users] = migrationProblems([fact("kvm1", debian), fact("kvm2", rhel)], { ...netfs, access: "fuse" });
  assert.match(users, /^QEMU runs as 64055:64055 on kvm1, 107:107 on kvm2: an image owned for one could not be opened by another; give the pool permissions/);
  // gfapi disks: a group every host's QEMU is in makes it fine; one some QEMU lacks does not
  const owned = { type: "netfs" as const, permissions: { owner: 0, group: 64055 } };
  assert.deepEqual(migrationProblems([fact("kvm1", debian, true), fact("kvm2", { owner: 107, group: 64055 }, true)], { ...owned, access: "gfapi" }), []);
  assert.deepEqual(migrationProblems([fact("kvm1", debian, true), fact("kvm2", rhel, true)], { ...owned, access: "gfapi" }), [
    "QEMU on kvm2 (107:107) could not open images owned 0:64055 mode 0660 (the pool's permissions)",
  ]);
  assert.equal(migrationProblems([fact("kvm1", debian, true), fact("kvm2", rhel, true)], { ...owned, access: "auto" }).length, 1, "auto: gfapi where the driver is");
  // fuse disks: libvirt gives the image to each host's QEMU at attach
  assert.deepEqual(migrationProblems([fact("kvm1", debian), fact("kvm2", rhel)], { ...owned, access: "fuse" }), []);
  assert.deepEqual(migrationProblems([fact("kvm1", debian, false), fact("kvm2", rhel, false)], { ...owned, access: "auto" }), []);
  assert.deepEqual(migrationProblems([fact("kvm1", debian), fact("kvm2", undefined)], { ...netfs, access: "fuse" }), [
    "cannot tell which user QEMU runs as on kvm2 (neither libvirt-qemu nor qemu exists)",
  ]);

  assert.deepEqual(migrationProblems([fact("kvm1", debian, true), fact("kvm2", debian, false)], { ...netfs, access: "gfapi" }), [
    "QEMU has no gluster block driver on kvm2 (qemu-block-extra on Debian), and gfapi disks need it",
  ]);
  assert.deepEqual(migrationProblems([fact("kvm1", debian, false), fact("kvm2", debian, false)], { type: "gluster", permissions: undefined, access: "auto" }), [
    "QEMU has no gluster block driver on kvm1, kvm2 (qemu-block-extra on Debian), and a native gluster pool's disks need it",
  ]);
  const [mixed] = migrationProblems([fact("kvm1", debian, true), fact("kvm2", debian, false)], { ...netfs, access: "auto" });
  assert.match(mixed, /^QEMU has no gluster block driver on kvm2 .*, but on kvm1 it has: access auto would attach gfapi disks there, which could not be opened after a migration; set access fuse/);
});
