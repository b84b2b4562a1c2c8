import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { DiskAttachment, GlusterPool, ImageVolume } from "../../sdk";
import { getGuestLab, startGuest, type Guest, type GuestLab } from "../helpers/guest";
import { createGlusterVolume, qemuDiskCapacity, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { newStack, type TestStack, changes, labCredentials, upConverged } from "../helpers/stack";

/*
 * Issue 14 §3: growing an ImageVolume that a running VM has attached reaches that VM.
 * Four images on one pool — raw and qcow2, each attached through the FUSE mount (a file
 * disk) and through libgfapi (a network disk) — hot-plugged into a running lab guest (a
 * real Linux, test/helpers/guest.ts); then `capacity` grows in one `up`. Two judges: QEMU
 * (`virsh domblkinfo` of the running domain: libvirt asks QEMU) and the guest, which must
 * list each disk, by its serial, with the new size without a reboot or rescan. The qcow2
 * images grow from 64 MiB to 1 GiB, past 512 MiB, so QEMU also has to grow their L1
 * table. Before this change the raw disks kept their old size in QEMU, and the qcow2 FUSE
 * image could not be grown at all (QEMU holds a lock on it). Each gfapi attach and detach
 * takes ~20 s (LAB.md), a guest boot ~10 s: budget ~3 minutes.
 */

let lab: GuestLab;
let t: TestStack;
let gluster: ReturnType<typeof createGlusterVolume>;
let guest: Guest;
let domain: string;
const poolName = uniqueName("e2egrowpool");
const MiB = 2 ** 20;

/** name suffix, format, access, guest device */
const IMAGES = [
  ["raw-fuse", "raw", "fuse", "sdb"],
  ["raw-gfapi", "raw", "gfapi", "sdc"],
  ["qcow2-fuse", "qcow2", "fuse", "sdd"],
  ["qcow2-gfapi", "qcow2", "gfapi", "sde"],
] as const;
const volumeNames = Object.fromEntries(IMAGES.map(([key, format]) => [key, `${uniqueName(`e2egrow-${key}`)}.${format === "raw" ? "img" : "qcow2"}`]));
/** each disk's serial: how the guest tells them apart */
const serials = Object.fromEntries(IMAGES.map(([key]) => [key, `grow-${key}-${process.pid}`]));

/** The size, in bytes, of each of the four disks as the guest lists it (by serial). */
async function guestSizes(): Promise<Record<string, number | undefined>> {
  const disks = await guest.agent.list();
  return Object.fromEntries(IMAGES.map(([key]) => [key, disks.find((d) => d.serial === serials[key])?.size]));
}

function program(): Promise<Record<string, unknown>> {
  const cfg = new pulumi.Config();
  const connection = { host: lab.ssh.host };
  const pool = new GlusterPool("pool", { connection, name: poolName, volume: gluster.name, servers: lab.gluster.servers });
  const outputs: Record<string, unknown> = {};
  for (const [key, format, access, target] of IMAGES) {
    const image = new ImageVolume(key, { connection, pool: pool.name, name: volumeNames[key], format, capacity: cfg.require("capacity") });
    const disk = new DiskAttachment(`${key}-disk`, { connection, domain, pool: pool.name, volume: image.name, target, access, serial: serials[key] });
    outputs[key] = pulumi.all([image.capacity, image.path, disk.resolvedAccess, disk.attachedLive]).apply(([capacity, path, resolvedAccess, attachedLive]) => ({ capacity, path, resolvedAccess, attachedLive }));
  }
  return Promise.resolve(outputs);
}

before(async () => {
  lab = await getGuestLab();
  gluster = createGlusterVolume(lab, uniqueName("e2egrow").replace(/-/g, "_"));
  guest = await startGuest(lab, { prefix: "e2egrow" });
  domain = guest.name;
  process.stderr.write(`guest: ${guest.name} answered ${guest.bootSeconds.toFixed(1)} s after virsh start\n`);
  t = await newStack("grow", program, { ...labCredentials(lab), capacity: { value: "64MiB" } });
});

after(async () => {
  await t?.cleanup();
  guest?.drop();
  for (const name of Object.values(volumeNames)) tryVirsh("vol-delete", "--pool", poolName, name);
  tryVirsh("pool-destroy", poolName);
  tryVirsh("pool-undefine", poolName);
  gluster?.remove();
});

describe("growing an attached ImageVolume reaches the running VM (fuse and gfapi, raw and qcow2)", () => {
  test("up: four images hot-plugged into the running VM, 64 MiB each as QEMU and the guest see them", async () => {
    const up = await upConverged(t);
    assert.equal(up.summary.result, "succeeded");
    for (const [key, , access, target] of IMAGES) {
      assert.equal(up.outputs[key].value.resolvedAccess, access, key);
      assert.equal(up.outputs[key].value.attachedLive, true, key);
      assert.equal(qemuDiskCapacity(domain, target), 64 * MiB, key);
      assert.equal((await guest.agent.waitPresent(serials[key], 30)).size, 64 * MiB, `${key} in the guest`);
    }
  });

  test("growing capacity: one in-place update per image; every running disk has the new size at once, in QEMU and in the guest, converged", async () => {
    await t.stack.setConfig("capacity", { value: "1GiB" });
    assert.deepEqual(changes((await t.stack.preview({ diff: true })).changeSummary), { update: 4 });
    const up = await upConverged(t);
    assert.deepEqual(changes(up.summary.resourceChanges), { update: 4 });
    for (const [key, format, , target] of IMAGES) {
      assert.equal(qemuDiskCapacity(domain, target), 2 ** 30, `${key}: QEMU of the running domain sees the grown disk`);
      assert.equal(up.outputs[key].value.capacity, 2 ** 30, key);
      assert.match(virsh("vol-info", "--pool", poolName, volumeNames[key], "--bytes"), /Capacity:\s+1073741824 bytes/, key);
      if (format === "qcow2") {
        // QEMU grew it: the image is sound, 1 GiB in its header, and still 512-aligned for libgfapi
        const file = up.outputs[key].value.path as string;
        const info = JSON.parse(execFileSync("qemu-img", ["info", "-U", "--output=json", file], { encoding: "utf8" })) as { "virtual-size": number };
        assert.equal(info["virtual-size"], 2 ** 30, key);
        execFileSync("qemu-img", ["check", "-U", file], { stdio: "pipe" });
        assert.equal(fs.statSync(file).size % 512, 0, `${key}: file size is a multiple of 512`);
      }
    }
    // the guest learns of it from QEMU (virtio-scsi's parameter-change event): bounded wait
    const grown = Object.fromEntries(IMAGES.map(([key]) => [key, 2 ** 30]));
    const deadline = Date.now() + 30_000;
    let seen = await guestSizes();
    while (JSON.stringify(seen) !== JSON.stringify(grown) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      seen = await guestSizes();
    }
    assert.deepEqual(seen, grown, "the guest lists every disk with the new size, without a reboot");
  });

  test("a restarted VM opens every grown image again (qcow2 over libgfapi too) at the new size; nothing to change", async () => {
    virsh("destroy", domain);
    virsh("start", domain);
    for (const [key, , , target] of IMAGES) assert.equal(qemuDiskCapacity(domain, target), 2 ** 30, key);
    await t.stack.refresh();
    await t.stack.preview({ expectNoChanges: true, diff: true });
  });

  test("destroy detaches the disks and deletes the images and the pool", async () => {
    await t.stack.destroy();
    for (const [, , , target] of IMAGES) assert.notEqual(tryVirsh("domblkinfo", domain, target).code, 0, target);
    assert.notEqual(tryVirsh("pool-info", poolName).code, 0);
  });
});
