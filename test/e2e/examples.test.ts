import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { parseDomainDisks } from "../../provider/xml/disk";
import { cloneLabDomain, dropDomain } from "../helpers/domain";
import { getLab, repoRoot, type LabInfo } from "../helpers/lab";
import { getMultiHostLab, knownHostsOfAll, runOnHypervisor } from "../helpers/hypervisors";
import { createGlusterVolume, gluster, glusterBricks, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { exampleProject, packPackage, passphrase, summaryCounts, type ExampleProject } from "../helpers/project";

/*
 * Every example, run the way a user runs it: the packed package installed with npm into
 * a copy of the example, the real `pulumi` CLI and Node language host, stack config
 * from the lab's JSON, preview --diff, up, a no-op up, destroy; then the host is checked.
 * Every up must leave the stack converged: refresh, then preview --expect-no-changes.
 * Each example gets its own Gluster volume (one netfs pool per volume and host) and its
 * own copies of the lab's running VM; disks are FUSE files to keep it quick.
 */

let lab: LabInfo;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-examples-"));

interface Ctx {
  gluster: string;
  poolName: string;
  vms: string[];
}

interface Case {
  example: string;
  vms: number;
  /** libvirt pool name the example will use */
  poolName(): string;
  /** stack config besides the lab's credentials; a string value is written as YAML text */
  config(ctx: Ctx): Record<string, unknown>;
  /** resources an up creates, the stack included */
  resources: number;
  /** disk targets each VM gets */
  targets: string[];
  /** more steps between the no-op up and destroy */
  more?(p: ExampleProject, ctx: Ctx, writeConfig: (extra?: Record<string, unknown>) => void): Promise<void>;
}

const common = (ctx: Ctx) => ({
  host: lab.ssh.host,
  glusterServer: lab.gluster.servers[0],
  glusterVolume: ctx.gluster,
});

/** The stack-config example's layout, as a user writes it in Pulumi.<stack>.yaml. */
function layoutYaml(ctx: Ctx, extraImage = "", mistake = false): string {
  return [
    "",
    "    hosts:",
    `      ${JSON.stringify(lab.ssh.host)}:`,
    "        pools:",
    `          ${ctx.poolName}:`,
    `            volume: ${ctx.gluster}`,
    `            servers: [${lab.gluster.servers.join(", ")}]`,
    "            images:",
    "              base.qcow2: { capacity: 8MiB }",
    "              clone.qcow2: { backing: base.qcow2 }",
    `              data.img: { capacity: ${mistake ? "lots" : "1MiB"} }`,
    ...(extraImage ? [`              ${extraImage}: { capacity: 1MiB }`] : []),
    "        disks:",
    `          ${ctx.vms[0]}:`,
    "            sdb: { image: " + `${ctx.poolName}/clone.qcow2, access: fuse }`,
    `            sdc: { image: ${ctx.poolName}/${mistake ? "dta.img" : "data.img"}, access: fuse }`,
  ].join("\n");
}

const cases: Case[] = [
  {
    example: "basic",
    vms: 1,
    poolName: () => uniqueName("exbasic").replace(/-/g, "_"),
    config: (ctx) => ({ ...common(ctx), vm: ctx.vms[0], poolName: ctx.poolName, dataSize: "1MiB" }),
    resources: 4,
    targets: ["sdb"],
  },
  {
    example: "fuse-only",
    vms: 1,
    poolName: () => uniqueName("exfuse").replace(/-/g, "_"),
    config: (ctx) => ({ ...common(ctx), vm: ctx.vms[0], poolName: ctx.poolName, systemSize: "2MiB", scratchSize: "1MiB" }),
    resources: 6,
    targets: ["sdb", "sdc"],
  },
  {
    example: "golden-image",
    vms: 2,
    poolName: () => uniqueName("exgolden").replace(/-/g, "_"),
    config: (ctx) => {
      const image = path.join(tmp, "golden.qcow2");
      if (!fs.existsSync(image)) execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", image, "16M"]);
      return { ...common(ctx), vms: ctx.vms, poolName: ctx.poolName, baseImage: image, access: "fuse" };
    },
    resources: 7,
    targets: ["sdb"],
  },
  {
    example: "stack-config",
    vms: 1,
    poolName: () => uniqueName("exlayout").replace(/-/g, "_"),
    config: (ctx) => ({ "gluster-stack-config:layout": layoutYaml(ctx) }),
    resources: 7,
    targets: ["sdb", "sdc"],
    async more(p, ctx, writeConfig) {
      // a mistake in the YAML: refused before anything runs, naming where it is
      writeConfig({ "gluster-stack-config:layout": layoutYaml(ctx, "", true) });
      const bad = await p.pulumi(["preview", "--diff"], { check: false, transpileOnly: true });
      assert.notEqual(bad.code, 0);
      const said = bad.stdout + bad.stderr;
      assert.match(said, /gluster-stack-config:layout\.hosts\["127\.0\.0\.1"\]\.pools\.\w+\.images\["data\.img"\]\.capacity: a size such as/);
      assert.match(said, /gluster-stack-config:layout\.hosts\["127\.0\.0\.1"\]\.disks\[?"?[\w-]+"?\]?\.sdc\.image: no image 'dta\.img'/);
      assert.doesNotMatch(said, /at Object\.|\.ts:\d+:\d+/, "no stack trace, just the problems");

      // one image more in the YAML: exactly one create
      writeConfig({ "gluster-stack-config:layout": layoutYaml(ctx, "extra.img") });
      const preview = await p.pulumi(["preview", "--diff"], { transpileOnly: true });
      assert.deepEqual(summaryCounts(preview.stdout), { create: 1 }, preview.stdout);
      assert.match(preview.stdout, /\+ pulumi-nodejs:dynamic\/gluster-libvirt:ImageVolume: \(create\)[\s\S]*name\s*: "extra\.img"/);
      const up = await p.upConverged(["up", "--yes", "--skip-preview"], { transpileOnly: true });
      assert.deepEqual(summaryCounts(up.stdout), { create: 1 }, up.stdout);
      assert.ok(virsh("vol-list", ctx.poolName).includes("extra.img"));
    },
  },
];

before(async () => {
  lab = await getLab();
  await packPackage();
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * The stack's config file: the lab's address and credentials, as they would be for real
 * hosts (`knownHostsFile` one that knows every host named), then `config` (keys without a
 * namespace are the example's own; a string starting with a newline is written as YAML text).
 */
function writeStackConfig(p: ExampleProject, example: string, config: Record<string, unknown>, knownHostsFile = lab.ssh.knownHostsFile): void {
  const salt = fs.readFileSync(p.stackFile, "utf8").match(/^encryptionsalt:.*$/m)?.[0] ?? "";
  const all: Record<string, unknown> = {
    "gluster-libvirt:port": String(lab.ssh.port),
    "gluster-libvirt:user": lab.ssh.user,
    "gluster-libvirt:privateKeyPath": lab.ssh.privateKeyPath,
    "gluster-libvirt:knownHostsFile": knownHostsFile,
    ...Object.fromEntries(Object.entries(config).map(([k, v]) => [k.includes(":") ? k : `gluster-${example}:${k}`, v])),
  };
  const lines = Object.entries(all).map(([k, v]) => `  ${k}: ${typeof v === "string" && v.startsWith("\n") ? v : JSON.stringify(v)}`);
  fs.writeFileSync(p.stackFile, `${salt}\nconfig:\n${lines.join("\n")}\n`);
}

/** Files on the Gluster volume's brick (what is really stored), without Gluster's own. */
const brickFiles = (gluster: string) => fs.readdirSync(path.join(lab.stateDir, "bricks", gluster)).filter((f) => !f.startsWith("."));

// EXAMPLES=golden-image,basic runs only those
const only = process.env.EXAMPLES?.split(",");

test("every example is run by a test (full-stack by fullStack below, multi-host by e2e/multihost.test.ts); EXAMPLES names only known ones", () => {
  const covered = [...cases.map((c) => c.example), "full-stack", "multi-host"].sort();
  assert.deepEqual(fs.readdirSync(path.join(repoRoot, "examples")).sort(), covered);
  for (const name of only ?? []) assert.ok(covered.includes(name), `EXAMPLES names an unknown example: ${name}`);
});

describe("examples through the pulumi CLI", { concurrency: true }, () => {
  if (!only || only.includes("full-stack")) test("full-stack: from bricks to a VM disk in one converged up, a no-op up, destroy keeps the bricks' data", fullStack);
  for (const c of cases.filter((c) => !only || only.includes(c.example))) {
    test(c.example, async (t) => {
      const poolName = c.poolName();
      const gluster = createGlusterVolume(lab, uniqueName(`ex${c.example}`).replace(/-/g, "_"));
      const ctx: Ctx = { gluster: gluster.name, poolName, vms: [] };
      let p: ExampleProject | undefined;
      let destroyed = false;
      try {
        for (let i = 0; i < c.vms; i++) ctx.vms.push(cloneLabDomain(lab, "running"));
        p = await exampleProject(c.example);
        const project = p;
        const writeConfig = (config = c.config(ctx)) => writeStackConfig(project, c.example, config);
        writeConfig();

        await t.test("preview --diff shows every create", async () => {
          const preview = await project.pulumi(["preview", "--diff"]);
          assert.deepEqual(summaryCounts(preview.stdout), { create: c.resources }, preview.stdout);
        });

        await t.test("up creates the pool, images and disks on the host", async () => {
          // the preview above type-checked the program; later runs only transpile it
          const up = await project.upConverged(["up", "--yes", "--skip-preview"], { transpileOnly: true });
          assert.deepEqual(summaryCounts(up.stdout), { create: c.resources }, up.stdout);
          assert.match(virsh("pool-info", ctx.poolName), /State:\s+running/);
          const mount = virsh("pool-dumpxml", ctx.poolName).match(/<path>([^<]+)<\/path>/)?.[1];
          for (const vm of ctx.vms) {
            const disks = parseDomainDisks(virsh("dumpxml", vm));
            assert.deepEqual(disks.map((d) => d.target).sort(), c.targets, `${vm}'s live disks`);
            for (const d of disks) {
              // basic uses access "auto": libgfapi on this lab; the others ask for FUSE files
              const onGluster = d.source?.protocol === "gluster" ? d.source.name?.startsWith(`${ctx.gluster}/`) : mount && d.source?.file?.startsWith(`${mount}/`);
              assert.ok(onGluster, `${vm} ${d.target}: ${JSON.stringify(d.source)} is not on the Gluster volume`);
            }
          }
          assert.ok(brickFiles(ctx.gluster).length > 0, "images are on the Gluster volume");
        });

        await t.test("a second up changes nothing", async () => {
          const up = await project.upConverged(["up", "--yes"], { transpileOnly: true });
          assert.deepEqual(summaryCounts(up.stdout), {}, up.stdout);
        });

        if (c.more) await t.test("edits", () => c.more!(project, ctx, (extra) => writeConfig(extra)));

        await t.test("destroy leaves nothing on the host", async () => {
          const down = await project.pulumi(["destroy", "--yes", "--skip-preview"]);
          if (process.env.EXAMPLES_VERBOSE) console.log(down.stdout);
          destroyed = true;
          assert.ok((summaryCounts(down.stdout).delete ?? 0) >= c.resources, down.stdout);
          assert.notEqual(tryVirsh("pool-info", ctx.poolName).code, 0, "pool gone");
          for (const vm of ctx.vms) {
            assert.deepEqual(parseDomainDisks(virsh("dumpxml", vm)), [], `${vm}: no live disks`);
            assert.deepEqual(parseDomainDisks(virsh("dumpxml", "--inactive", vm)), [], `${vm}: no disks defined`);
          }
          assert.deepEqual(brickFiles(ctx.gluster), [], "no images left on the Gluster volume");
        });
      } finally {
        if (p && !destroyed) await p.pulumi(["destroy", "--yes", "--skip-preview"], { check: false });
        p?.remove();
        ctx.vms.forEach(dropDomain);
        // only a pool on our own Gluster volume
        if (tryVirsh("pool-dumpxml", ctx.poolName).stdout.includes(ctx.gluster)) {
          tryVirsh("pool-destroy", ctx.poolName);
          tryVirsh("pool-undefine", ctx.poolName);
        }
        gluster.remove();
      }
    });
  }
});

/*
 * full-stack (run with the other examples, concurrently): the Gluster volume is made by the program itself (three bricks of a replica-3
 * volume on the lab's one Gluster server, `force`), then the same pool on both of the lab's
 * hypervisors, an image and a disk on host 1's VM — libgfapi, the path the volume's options
 * are for. destroy removes all of that but never the bricks' data.
 */
async function fullStack(): Promise<void> {
  const volumeName = uniqueName("exfull").replace(/-/g, "_");
  const poolName = uniqueName("exfull").replace(/-/g, "_");
  let bricks: ReturnType<typeof glusterBricks> | undefined;
  let vm: string | undefined;
  let p: ExampleProject | undefined;
  try {
    const multi = await getMultiHostLab(2);
    bricks = glusterBricks(multi, volumeName, 3);
    vm = cloneLabDomain(multi, "running");
    p = await exampleProject("full-stack");
    const project = p;
    writeStackConfig(project, "full-stack", {
      glusterHost: multi.ssh.host,
      bricks: bricks.bricks,
      force: true,
      volumeName,
      qemuOwner: { uid: multi.qemu.uid, gid: multi.qemu.gid },
      hypervisors: multi.hypervisors.map((h) => h.ssh.host),
      poolName,
      vm,
      imageSize: "8MiB",
    }, knownHostsOfAll(multi));
    const total = 7; // stack, volume, storage component, a pool per hypervisor, image, disk

    const preview = await project.pulumi(["preview", "--diff"]);
    assert.deepEqual(summaryCounts(preview.stdout), { create: total }, preview.stdout);
    assert.match(preview.stdout, /storage\.owner-uid\s*: "\d+"/, "the volume's options are in the preview");

    const up = await project.upConverged(["up", "--yes", "--skip-preview"], { transpileOnly: true });
    assert.deepEqual(summaryCounts(up.stdout), { create: total }, up.stdout);
    const info = gluster("volume", "info", volumeName);
    assert.match(info, /Status: Started/, info);
    assert.match(info, /Number of Bricks: 1 x 3 = 3/, info);
    assert.match(info, new RegExp(`storage\\.owner-uid: ${multi.qemu.uid}\\b`), info);
    assert.match(info, /performance\.open-behind: off/, "sharedPools: the pools' refreshes survive another hypervisor's deletes");
    assert.match(info, /performance\.stat-prefetch: off/, info);
    for (const h of multi.hypervisors) {
      const state = await runOnHypervisor(multi, h, ["virsh", "-q", "-c", multi.libvirtUri, "pool-info", poolName]);
      assert.match(state.stdout, /State:\s+running/, `the pool on ${h.ssh.host}`);
    }
    const [disk] = parseDomainDisks(virsh("dumpxml", vm));
    assert.equal(disk?.target, "sdb", `${vm}'s live disks`);
    // this lab's QEMU has the gluster driver: access "auto" is libgfapi, onto the volume the program made
    assert.equal(disk.source?.protocol, "gluster", JSON.stringify(disk.source));
    assert.equal(disk.source?.name, `${volumeName}/vm1-data.img`);
    for (const dir of bricks.dirs) assert.ok(fs.existsSync(path.join(dir, "vm1-data.img")), `the image on brick ${dir}`);

    // the installed package's doctor, from the stack directory: its config and deployed resources say what to check
    const checked = spawnSync(path.join(project.dir, "node_modules", ".bin", "gluster-libvirt"), ["doctor", "--stack-dir", project.dir, "--json"], {
      encoding: "utf8",
      env: { ...process.env, PULUMI_BACKEND_URL: `file://${path.join(project.dir, ".pulumi-state")}`, PULUMI_CONFIG_PASSPHRASE: passphrase, PULUMI_SKIP_UPDATE_CHECK: "true" },
      timeout: 120_000,
    });
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    const { results } = JSON.parse(checked.stdout) as { results: { subject: string; check: string; status: string; message: string }[] };
    const seen = (subject: RegExp, check: string) => results.some((r) => subject.test(r.subject) && r.check === check && r.status === "ok");
    assert.ok(seen(new RegExp(`^volume ${volumeName}$`), "pending-heals"), checked.stdout);
    assert.ok(seen(new RegExp(`^volume ${volumeName}$`), "shared-pools"), checked.stdout);
    for (const h of multi.hypervisors) assert.ok(seen(new RegExp(`^hypervisor \\S+@${h.ssh.host.replace(/\./g, "\\.")}:`), "qemu-owner"), `${h.ssh.host}: ${checked.stdout}`);

    const again = await project.pulumi(["up", "--yes"], { transpileOnly: true });
    assert.deepEqual(summaryCounts(again.stdout), {}, again.stdout);

    // data on the volume that no resource manages: destroy must leave it on the bricks
    const mount = (JSON.parse((await project.pulumi(["stack", "output", "--json"])).stdout) as { mountPoints: Record<string, string> }).mountPoints[multi.ssh.host];
    fs.writeFileSync(path.join(mount, "keep.txt"), "not the stack's");

    const down = await project.pulumi(["destroy", "--yes", "--skip-preview"], { transpileOnly: true });
    assert.ok((summaryCounts(down.stdout).delete ?? 0) >= total, down.stdout);
    assert.doesNotMatch(spawnGluster(volumeName), /Status:/, "the volume is deleted from glusterd");
    assert.deepEqual(parseDomainDisks(virsh("dumpxml", vm)), [], `${vm}: no live disks`);
    for (const dir of bricks.dirs) {
      assert.equal(fs.readFileSync(path.join(dir, "keep.txt"), "utf8"), "not the stack's", `brick ${dir} keeps the data`);
      assert.ok(fs.existsSync(path.join(dir, ".glusterfs")), `brick ${dir} keeps Gluster's metadata`);
      assert.ok(!fs.existsSync(path.join(dir, "vm1-data.img")), `the image resource deleted its file (brick ${dir})`);
    }
    p.remove();
    p = undefined;
  } finally {
    if (p) await p.pulumi(["destroy", "--yes", "--skip-preview"], { check: false, transpileOnly: true });
    p?.remove();
    if (vm) dropDomain(vm);
    for (const h of lab?.hypervisors ?? []) {
      // only a pool on our own Gluster volume
      const pool = await runOnHypervisor(lab, h, ["virsh", "-q", "-c", lab.libvirtUri, "pool-dumpxml", poolName], { check: false });
      if (pool.stdout.includes(volumeName)) {
        await runOnHypervisor(lab, h, ["sh", "-c", `virsh -c ${lab.libvirtUri} pool-destroy ${poolName}; virsh -c ${lab.libvirtUri} pool-undefine ${poolName}`], { check: false });
      }
    }
    bricks?.remove();
  }
}

/** `gluster volume info NAME`'s output, or its error text when there is no such volume. */
function spawnGluster(name: string): string {
  try {
    return gluster("volume", "info", name);
  } catch (e) {
    return String((e as { stderr?: string }).stderr ?? e);
  }
}
