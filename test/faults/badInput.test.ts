/**
 * Hostile inputs through the real Pulumi engine: each preview must fail at check, with
 * an error naming every bad field, and the host must be exactly as before (no pool,
 * volume, mount, disk or file appeared). The engine stops a preview at the first
 * resource whose check fails, so each case is one resource (in a stack of its own),
 * with one hostile value in each of several fields: every failure of that resource is
 * reported. Values are placed against a real pool, volume and domain of this test, so
 * anything that slipped through would show in the listings.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DiskAttachment, GlusterPool, ImageVolume } from "../../sdk";
import { pristineDomainXml } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { tryVirsh, virsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";
import { labCredentials, newStack } from "../helpers/stack";

let lab: LabInfo;
let own: OwnPool;
/** the test's pool (on a Gluster volume of its own) and its mount point */
let pool: string;
let mountDir: string;
const tag = `${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
const volume = "sec-base.img";
const domain = `sec-dom-${tag}`;
/** Where hostile mount options would make the Gluster client write. */
const logFile = `/tmp/sec-faults-${tag}.log`;
const long = `sec${"x".repeat(297)}`;
/** Credentials in hostile URLs: they must not appear in any output. */
const SECRETS = ["SECRETPW1", "SECRETTOK1", "SECRETPW2", "SECRETTOK2", "SECRETPW3", "SECRETTOK3", "SECRETKEY4"];

/** Everything a hostile input could have changed on the host, as text. */
function hostListing(): string {
  const mounts = virshless("findmnt", "-rn", "-o", "TARGET").split("\n").filter((m) => /sec|^\/(etc|root|tmp)|libvirt\/images/.test(m));
  return JSON.stringify({
    pools: virsh("pool-list", "--all", "--name").split("\n").filter((p) => /sec|^-|\.\./.test(p)).sort(),
    volumes: virsh("vol-list", "--pool", pool),
    mountDir: fs.readdirSync(mountDir).sort(),
    mounts,
    disks: virsh("domblklist", "--details", domain),
    logFile: fs.existsSync(logFile),
    knownHosts: createHash("sha256").update(fs.readFileSync(lab.ssh.knownHostsFile)).digest("hex"),
  }, null, 1);
}

function virshless(cmd: string, ...args: string[]): string {
  return require("node:child_process").execFileSync(cmd, args, { encoding: "utf8" }) as string;
}

before(async () => {
  lab = await getLab();
  own = await createOwnPool(lab, "sec-faults", { by: "root" });
  pool = own.name;
  mountDir = own.targetPath!;
  virsh("vol-create-as", pool, volume, "1M", "--format", "raw");
  const xml = pristineDomainXml(lab, domain);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sec-faults-")), "domain.xml");
  fs.writeFileSync(file, xml);
  virsh("define", file);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

after(async () => {
  tryVirsh("undefine", domain);
  await own?.remove();
  fs.rmSync(logFile, { force: true });
});

type Args = Record<string, unknown>;
interface Case {
  /** hostile overrides of a valid resource's inputs */
  with: Args;
  /** the properties the error must name */
  fields: string[];
}

/** Runs one preview per case (a few at a time) and checks every failure is reported by field. */
async function previewAll(kind: string, make: (args: Args) => void, valid: () => Args, cases: Case[]): Promise<void> {
  const before = hostListing();
  const queue = cases.map((c, i) => ({ c, i }));
  const run = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const { c, i } = next;
      const base = valid();
      const args = { ...base, ...c.with, connection: { ...(base.connection as Args), ...((c.with.connection as Args) ?? {}) } };
      const t = await newStack(`sec-bad-${kind}-${i}`, async () => {
        make(args);
        return {};
      }, labCredentials(lab));
      try {
        const err = await t.stack.preview().then(() => undefined, (e: Error) => e);
        assert.ok(err, `${kind} case ${i} (${JSON.stringify(c.with)}): preview succeeded`);
        const output = err.message;
        for (const field of c.fields) {
          assert.ok(output.includes(`property ${field} value`), `${kind} case ${i}: no failure names ${field}:\n${output}`);
        }
        for (const secret of SECRETS) assert.ok(!output.includes(secret), `${kind} case ${i}: the output shows the credential ${secret}:\n${output}`);
      } finally {
        await t.cleanup();
      }
    }
  };
  await Promise.all([run(), run(), run()]);
  assert.equal(hostListing(), before, "the host changed");
}

/** Hostile values counted per resource, to hold the suite to at least 15 each. */
function hostileCount(cases: Case[]): number {
  return cases.reduce((n, c) => n + c.fields.length, 0);
}

describe("bad input is refused at preview, naming the field, and nothing happens on the host", () => {
  test("GlusterPool", async () => {
    const cases: Case[] = [
      {
        with: {
          name: "sec/../etc", volume: "sec;id", servers: ["sec$(id)", "-oProxyCommand=id", "sec`id`", "sec|id"],
          targetPath: "/etc", permissions: { mode: "0999" },
          mountOptions: [`log-file=${logFile}`, "volfile-server=evil.example", "a,b", "sec\nx"],
        },
        fields: ["name", "volume", "servers[0]", "servers[1]", "servers[2]", "servers[3]", "targetPath", "permissions.mode", "mountOptions[0]", "mountOptions[1]", "mountOptions[2]", "mountOptions[3]"],
      },
      {
        // 3e6 s: more than a timer holds (2^31-1 ms); it would fire after ~1 ms
        with: { connection: { host: "-oProxyCommand=id", timeouts: { command: 3e6 } }, name: long, volume: "../sec", targetPath: "/var/lib/libvirt/images", permissions: { mode: "7777", owner: -1 } },
        fields: ["connection.host", "connection.timeouts.command", "name", "volume", "targetPath", "permissions.mode", "permissions.owner"],
      },
      {
        with: { connection: { port: 0, libvirtUri: "qemu:///system;id" }, name: "-sec", targetPath: "/sec/../etc", mountOptions: ["dump-fuse=/root/sec"], servers: ["sec\nnewline"] },
        fields: ["connection.port", "connection.libvirtUri", "name", "targetPath", "mountOptions[0]", "servers[0]"],
      },
      {
        with: { connection: { port: 70000, user: "-oProxyCommand=id", proxyJump: "j@-oProxyCommand=id" }, name: "sec\nname", targetPath: "/root/sec", servers: ["[fd00::1]"] },
        fields: ["connection.port", "connection.user", "connection.proxyJump", "name", "targetPath", "servers[0]"],
      },
      // An unknown key next to an inline key: reported on the key, not on `connection`, whose value the engine would print.
      { with: { connection: { privateKey: `-----BEGIN OPENSSH ${"PRIVATE"} KEY-----\nSECRETKEY4\n` /* not a key: spelled apart so no scanner mistakes this file for one */, bogus: true } }, fields: ["connection.bogus"] },
    ];
    assert.ok(hostileCount(cases) >= 15);
    await previewAll("pool", (args) => new GlusterPool("bad", args as never), () => ({
      connection: { host: lab.ssh.host }, name: `sec-new-${tag}`, volume: own.gluster.name, servers: lab.gluster.servers,
    }), cases);
  });

  test("ImageVolume", async () => {
    const missing = path.join(os.tmpdir(), `sec-missing-${tag}.img`);
    const cases: Case[] = [
      {
        with: { name: "../sec.img", pool: "sec/pool", capacity: "1PB", format: "vmdk", permissions: { mode: "0999" }, source: { url: "file:///etc/shadow" } },
        fields: ["name", "pool", "capacity", "format", "permissions.mode", "source.url"],
      },
      {
        with: { name: "sec;id.img", capacity: -1, permissions: { owner: -5, mode: "7777" }, source: { url: "gopher://u:SECRETPW1@h.example/x?t=SECRETTOK1" } },
        fields: ["name", "capacity", "permissions.owner", "permissions.mode", "source.url"],
      },
      {
        with: { name: "-sec.img", capacity: "100TiB", source: { path: missing } },
        fields: ["name", "capacity"],
      },
      {
        with: { name: long, capacity: "12 parsecs", source: { url: "https://u:SECRETPW2@h.example/a b?t=SECRETTOK2" } },
        fields: ["name", "capacity", "source.url"],
      },
      {
        with: { connection: { libvirtUri: "qemu:///system;id" }, name: "sec`id`.img", source: { volume: "$(id)" } },
        fields: ["connection.libvirtUri", "name", "source.volume"],
      },
      {
        with: { connection: { host: "-oProxyCommand=id" }, name: "sec\n.img", backingVolume: { volume: "../etc/passwd", pool: "-sec" }, capacity: undefined },
        fields: ["connection.host", "name", "backingVolume.volume", "backingVolume.pool"],
      },
      // Two kinds of source: reported on the extra one, not on `source`, whose value the engine would print.
      { with: { source: { url: "https://u:SECRETPW3@h.example/x?t=SECRETTOK3", volume: "sec-other.img" } }, fields: ["source.volume"] },
      // A missing local file is reported on source.path (once nothing else is wrong).
      { with: { source: { path: missing }, capacity: undefined }, fields: ["source.path"] },
    ];
    assert.ok(hostileCount(cases) >= 15);
    await previewAll("volume", (args) => new ImageVolume("bad", args as never), () => ({
      connection: { host: lab.ssh.host }, pool, name: `sec-new-${tag}.img`, capacity: "1MiB",
    }), cases);
  });

  test("DiskAttachment", async () => {
    const cases: Case[] = [
      {
        with: { domain: "sec;id", pool: "../sec", volume: "sec$(id).img", target: "vda;id", serial: "sec`id`", detachTimeout: -1 },
        fields: ["domain", "pool", "volume", "target", "serial", "detachTimeout"],
      },
      {
        with: { domain: "-sec", pool: "sec\npool", volume: long, target: "../sda", bus: "usb", detachTimeout: 1e9 },
        fields: ["domain", "pool", "volume", "target", "bus", "detachTimeout"],
      },
      {
        with: { connection: { host: "-oProxyCommand=id" }, domain: "sec|x", target: "xvda", driver: { cache: "$(id)" }, serial: "s".repeat(40) },
        fields: ["connection.host", "domain", "target", "driver.cache", "serial"],
      },
      {
        with: { connection: { port: 70000, libvirtUri: "qemu:///system;id" }, domain: "sec dom", volume: "/etc/passwd", access: "nfs" },
        fields: ["connection.port", "connection.libvirtUri", "domain", "volume", "access"],
      },
    ];
    assert.ok(hostileCount(cases) >= 15);
    await previewAll("disk", (args) => new DiskAttachment("bad", args as never), () => ({
      connection: { host: lab.ssh.host }, domain, pool, volume, target: "sdb", access: "fuse",
    }), cases);
  });
});
