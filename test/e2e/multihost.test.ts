import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { GlusterStorage, ImageVolume } from "../../sdk";
import { getMultiHostLab, multiHostCredentials, runOnHypervisor, virshOn } from "../helpers/hypervisors";
import type { LabHypervisor, LabInfo } from "../helpers/lab";
import { createGlusterVolume, uniqueName } from "../helpers/local";
import { exampleProject, summaryCounts, type ExampleProject } from "../helpers/project";
import { newStack, type TestStack, changes, upConverged } from "../helpers/stack";

/*
 * GlusterStorage on two hypervisors of the lab (host 1 and hypervisor 2, a separate
 * libvirtd behind its own sshd): one pool per host over one Gluster volume, an image made
 * through host 1 seen by host 2, and destroy removing both. libvirt allows one netfs pool
 * per Gluster source per host, so the test has a volume of its own.
 */

let lab: LabInfo;
let hv1: LabHypervisor;
let hv2: LabHypervisor;
let t: TestStack;
let gluster: ReturnType<typeof createGlusterVolume>;
const poolName = uniqueName("e2emh");
const imageName = `${uniqueName("shared")}.img`;

function program(): Promise<Record<string, unknown>> {
  const storage = new GlusterStorage("shared", {
    hypervisors: lab.hypervisors.map((h) => ({ host: h.ssh.host })),
    name: poolName,
    volume: gluster.name,
    servers: lab.gluster.servers,
  });
  // Made once, through host 1: shared storage means every other host sees it.
  const image = new ImageVolume("image", {
    connection: { host: hv1.ssh.host },
    pool: storage.pools[hv1.ssh.host].name,
    name: imageName,
    capacity: "16MiB",
  }, {
    // after every host's pool started, so host 2's listing predates the image and the
    // test below sees what a pool-refresh adds
    dependsOn: Object.values(storage.pools),
  });
  return Promise.resolve({
    uuids: Object.fromEntries(Object.entries(storage.pools).map(([host, p]) => [host, p.uuid])),
    targetPaths: Object.fromEntries(Object.entries(storage.pools).map(([host, p]) => [host, p.targetPath])),
    imagePath: image.path,
  });
}

async function poolState(h: LabHypervisor): Promise<string | undefined> {
  const r = await runOnHypervisor(lab, h, ["virsh", "-q", "-c", lab.libvirtUri, "pool-info", poolName], { check: false });
  return r.code === 0 ? /State:\s+(\S+)/.exec(r.stdout)?.[1] : undefined;
}

before(async () => {
  lab = await getMultiHostLab(2);
  [hv1, hv2] = lab.hypervisors;
  gluster = createGlusterVolume(lab, uniqueName("e2emh").replace(/-/g, "_"));
  t = await newStack("multihost", program, multiHostCredentials(lab));
});

after(async () => {
  await t?.cleanup();
  for (const h of lab?.hypervisors ?? []) {
    await runOnHypervisor(lab, h, ["sh", "-c", `virsh -c ${lab.libvirtUri} pool-destroy ${poolName}; virsh -c ${lab.libvirtUri} pool-undefine ${poolName}`], { check: false });
  }
  gluster?.remove();
});

describe("GlusterStorage on two hypervisors through the Pulumi engine", () => {
  test("the lab's two hypervisors are separate libvirts", async () => {
    assert.notEqual(hv1.ssh.host, hv2.ssh.host);
    assert.notEqual(hv1.ssh.hostKeyFingerprint, hv2.ssh.hostKeyFingerprint);
    const on1 = (await virshOn(lab, hv1, "list", "--all", "--name")).split("\n");
    const on2 = (await virshOn(lab, hv2, "list", "--all", "--name")).split("\n");
    assert.ok(on1.includes(hv1.domains.running) && !on1.includes(hv2.domains.running), `host 1 lists: ${on1.join(" ")}`);
    assert.ok(on2.includes(hv2.domains.running) && !on2.includes(hv1.domains.running), `hypervisor 2 lists: ${on2.join(" ")}`);
  });

  test("up creates the pool on both hosts, each in its own libvirt", async () => {
    const up = await upConverged(t);
    assert.equal(up.summary.result, "succeeded");
    assert.deepEqual(changes(up.summary.resourceChanges), { create: 5 }, "stack, component, two pools, one image");
    const uuids = up.outputs.uuids.value as Record<string, string>;
    for (const h of [hv1, hv2]) {
      assert.equal(await poolState(h), "running", `pool on ${h.ssh.host}`);
      assert.equal((await virshOn(lab, h, "pool-uuid", poolName)).trim(), uuids[h.ssh.host], `${h.ssh.host} has its own pool`);
      // each host's libvirt mounted the volume itself, in its own mount table
      const target = (up.outputs.targetPaths.value as Record<string, string>)[h.ssh.host];
      const mnt = await runOnHypervisor(lab, h, ["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--mountpoint", target]);
      assert.match(mnt.stdout, new RegExp(`:/?${gluster.name}\\s+fuse\\.glusterfs`), `${h.ssh.host}: ${mnt.stdout}`);
    }
    assert.notEqual(uuids[hv1.ssh.host], uuids[hv2.ssh.host]);
  });

  test("what host 1 writes, hypervisor 2's pool lists after pool-refresh", async () => {
    const before = await virshOn(lab, hv2, "vol-list", poolName);
    assert.doesNotMatch(before, new RegExp(imageName), "hypervisor 2's pool was listed before the image existed");
    // the ImageVolume (made through host 1) and a file written into host 1's mount
    const target = (await t.stack.outputs()).targetPaths.value[hv1.ssh.host] as string;
    const note = `written through ${hv1.ssh.host} at ${Date.now()}`;
    await runOnHypervisor(lab, hv1, ["sudo", "-n", "sh", "-c", `printf '%s' "$1" > "$2"`, "sh", note, `${target}/from-host1.txt`]);
    await virshOn(lab, hv2, "pool-refresh", poolName);
    const after = await virshOn(lab, hv2, "vol-list", poolName);
    assert.match(after, new RegExp(`${imageName}\\s`), after);
    assert.match(after, /from-host1\.txt/, after);
    const info = await virshOn(lab, hv2, "vol-info", "--pool", poolName, imageName);
    assert.match(info, /Capacity:\s+16\.00 MiB/, info);
    const read = await runOnHypervisor(lab, hv2, ["sudo", "-n", "cat", `${target}/from-host1.txt`]);
    assert.equal(read.stdout, note);
    await runOnHypervisor(lab, hv1, ["sudo", "-n", "rm", "-f", `${target}/from-host1.txt`]);
  });

  test("refresh reads both pools back from their hosts", async () => {
    // capacity/available move with every write to the brick's filesystem: only deletions matter
    const r = await t.stack.refresh();
    assert.equal(r.summary.result, "succeeded");
    assert.equal(changes(r.summary.resourceChanges).delete, undefined, JSON.stringify(r.summary.resourceChanges));
  });

  test("destroy removes the pool from both hosts", async () => {
    const d = await t.stack.destroy();
    assert.equal(d.summary.result, "succeeded");
    for (const h of [hv1, hv2]) assert.equal(await poolState(h), undefined, `pool left on ${h.ssh.host}`);
  });
});

describe("examples/multi-host through the pulumi CLI on both hypervisors", () => {
  let p: ExampleProject | undefined;
  let vol: ReturnType<typeof createGlusterVolume> | undefined;
  const pool = uniqueName("exmh").replace(/-/g, "_");
  after(async () => {
    if (p) await p.pulumi(["destroy", "--yes", "--skip-preview"], { check: false });
    p?.remove();
    for (const h of lab?.hypervisors ?? []) {
      await runOnHypervisor(lab, h, ["sh", "-c", `virsh -c ${lab.libvirtUri} pool-destroy ${pool}; virsh -c ${lab.libvirtUri} pool-undefine ${pool}`], { check: false });
    }
    vol?.remove();
  });

  test("preview, up, the image seen from host 2 after pool-refresh, destroy", async () => {
    vol = createGlusterVolume(lab, uniqueName("exmh").replace(/-/g, "_"));
    p = await exampleProject("multi-host");
    const salt = fs.readFileSync(p.stackFile, "utf8").match(/^encryptionsalt:.*$/m)?.[0] ?? "";
    const config: Record<string, unknown> = {
      "gluster-multi-host:hypervisors": lab.hypervisors.map((h) => h.ssh.host),
      "gluster-multi-host:glusterServers": lab.gluster.servers,
      "gluster-multi-host:glusterVolume": vol.name,
      "gluster-multi-host:poolName": pool,
      "gluster-multi-host:imageSize": "8MiB",
      "gluster-libvirt:port": String(lab.ssh.port),
      "gluster-libvirt:user": lab.ssh.user,
      "gluster-libvirt:privateKeyPath": lab.ssh.privateKeyPath,
      // hypervisor 2's known_hosts knows both hosts (docs/lab.md)
      "gluster-libvirt:knownHostsFile": hv2.ssh.knownHostsFile,
    };
    fs.writeFileSync(p.stackFile, `${salt}\nconfig:\n${Object.entries(config).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join("\n")}\n`);

    const preview = await p.pulumi(["preview", "--diff"]);
    assert.deepEqual(summaryCounts(preview.stdout), { create: 5 }, preview.stdout);
    const up = await p.upConverged(["up", "--yes", "--skip-preview"], { transpileOnly: true });
    assert.deepEqual(summaryCounts(up.stdout), { create: 5 }, up.stdout);
    const outputs = JSON.parse((await p.pulumi(["stack", "output", "--json"])).stdout) as { imagePath: string; mountPoints: Record<string, string> };
    assert.deepEqual(Object.keys(outputs.mountPoints).sort(), lab.hypervisors.map((h) => h.ssh.host).sort());

    await virshOn(lab, hv2, "pool-refresh", pool);
    assert.equal((await virshOn(lab, hv2, "vol-path", "--pool", pool, "shared-data.img")).trim(), outputs.imagePath);

    const down = await p.pulumi(["destroy", "--yes", "--skip-preview"], { transpileOnly: true });
    assert.ok((summaryCounts(down.stdout).delete ?? 0) >= 5, down.stdout);
    for (const h of [hv1, hv2]) {
      const r = await runOnHypervisor(lab, h, ["virsh", "-q", "-c", lab.libvirtUri, "pool-info", pool], { check: false });
      assert.notEqual(r.code, 0, `pool left on ${h.ssh.host}`);
    }
  });
});
