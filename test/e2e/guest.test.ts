import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as pulumi from "@pulumi/pulumi";
import { DiskAttachment, GlusterPool, ImageVolume } from "../../sdk";
import { fillPattern, getGuestLab, GuestAgentError, startGuest, type Guest, type GuestDisk, type GuestLab } from "../helpers/guest";
import { createGlusterVolume, tryVirsh, uniqueName } from "../helpers/local";
import { changes, labCredentials, newStack, type TestStack } from "../helpers/stack";

/*
 * The guest as the judge (issue 14 §2): a real Linux in a running VM looks at the disk the
 * engine attaches. For each access mode, one stack: a GlusterPool, an ImageVolume uploaded
 * from a local sparse image and grown to 64 MiB, and a DiskAttachment with a serial,
 * hot-plugged into the guest. The guest must list it with that size and serial, read the
 * image byte-exact, and its writes must be on the Gluster brick; destroy must take the device
 * away in the guest. The guest's data survives a no-op `up`, the DiskAttachment's removal
 * (the guest reports the disk gone) and its return (the guest sees it again), and the
 * replace that `readonly: true` makes; that read-only disk refuses the guest's writes.
 * Growing the ImageVolume's `capacity` while attached reaches the guest without a reboot
 * (issue 14 §3). Every `up` is followed by a refresh and a preview that change nothing.
 * One guest serves both modes (a boot costs ~10 s; a gfapi attach or detach ~20 s), and the
 * steps share one stack per mode, so the growth costs no attach of its own.
 */

const MiB = 1024 * 1024;
const CAPACITY = 64 * MiB;
/** what `capacity` grows to while the disk is attached */
const GROWN = 96 * MiB;
const IMAGE_SIZE = 24 * MiB;
/** Where the local image has data (the rest are holes): unaligned, and one at its end. */
const DATA_RANGES = [
  { offset: 0, length: 4096 },
  { offset: 5 * MiB + 17, length: 100_000 },
  { offset: IMAGE_SIZE - 8192, length: 8192 },
];

let lab: GuestLab;
let guest: Guest;
let gluster: ReturnType<typeof createGlusterVolume>;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-guest-"));
const imagePath = path.join(tmp, "disk.raw");
let image: Buffer;

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

before(async () => {
  lab = await getGuestLab();
  gluster = createGlusterVolume(lab, uniqueName("e2eguest").replace(/-/g, "_"));
  image = Buffer.alloc(IMAGE_SIZE);
  const fd = fs.openSync(imagePath, "w");
  fs.ftruncateSync(fd, IMAGE_SIZE);
  for (const r of DATA_RANGES) {
    randomBytes(r.length).copy(image, r.offset);
    fs.writeSync(fd, image, r.offset, r.length, r.offset);
  }
  fs.closeSync(fd);
  guest = await startGuest(lab);
  process.stderr.write(`guest: ${guest.name} answered ${guest.bootSeconds.toFixed(1)} s after virsh start\n`);
});

after(() => {
  guest?.drop();
  gluster?.remove();
  fs.rmSync(tmp, { recursive: true, force: true });
});

for (const access of ["fuse", "gfapi"] as const) {
  describe(`access: ${access} — what the guest sees`, () => {
    let t: TestStack;
    const poolName = uniqueName(`e2eguest${access}`).replace(/-/g, "_");
    const volumeName = `${uniqueName(`e2eguest-${access}`)}.img`;
    const serial = `gl-${access}-${randomBytes(3).toString("hex")}`;
    let disk: GuestDisk;
    const fill = { offset: 48 * MiB, length: MiB, word: `guest-${access}-${randomBytes(4).toString("hex")}` };
    const bytes = { offset: 56 * MiB + 3, data: randomBytes(64) };

    /** The guest reads back what it wrote, and the uploaded image unchanged. */
    async function assertGuestData(): Promise<void> {
      assert.equal(await guest.agent.sha256(disk.dev, fill.offset, fill.length), sha256(fillPattern(fill.word, fill.length)), "the filled MiB");
      assert.equal(await guest.agent.sha256(disk.dev, bytes.offset, bytes.data.length), sha256(bytes.data), "the written bytes");
      assert.equal(await guest.agent.sha256(disk.dev, 0, IMAGE_SIZE), sha256(image), "the uploaded image");
    }

    before(async () => {
      t = await newStack(`guest-${access}`, async () => {
        const connection = { host: lab.ssh.host };
        const pool = new GlusterPool("pool", { connection, name: poolName, volume: gluster.name, servers: lab.gluster.servers });
        const cfg = new pulumi.Config();
        const volume = new ImageVolume("image", { connection, pool: pool.name, name: volumeName, source: { path: imagePath }, capacity: cfg.get("capacity") ?? "64MiB" });
        if (cfg.getBoolean("attached") === false) return {};
        const readonly = cfg.getBoolean("readonly");
        const attachment = new DiskAttachment("disk", { connection, domain: guest.name, pool: pool.name, volume: volume.name, target: "sdb", access, serial, readonly });
        return { resolvedAccess: attachment.resolvedAccess, attachedLive: attachment.attachedLive };
      }, labCredentials(lab));
    });

    after(async () => {
      try {
        await t?.cleanup();
      } finally {
        // also when the stack's destroy failed: a pool left behind would outlive its volume
        tryVirsh("pool-destroy", poolName);
        tryVirsh("pool-undefine", poolName);
      }
    });

    /** refresh and `preview --expect-no-changes` after an up: nothing differs from the state. */
    async function assertConverged(): Promise<void> {
      const refresh = await t.stack.refresh();
      assert.deepEqual(changes(refresh.summary.resourceChanges), {}, "refresh found drift");
      await t.stack.preview({ expectNoChanges: true });
    }

    test("up hot-plugs the disk: the guest lists it with the declared size and serial", async () => {
      const t0 = Date.now();
      const up = await t.stack.up();
      const upSeconds = (Date.now() - t0) / 1000;
      assert.equal(up.summary.result, "succeeded");
      assert.deepEqual(changes(up.summary.resourceChanges), { create: 4 }, "the stack, the pool, the image, the disk");
      assert.equal(up.outputs.resolvedAccess.value, access);
      assert.equal(up.outputs.attachedLive.value, true);
      const t1 = Date.now();
      disk = await guest.agent.waitPresent(serial, 30);
      process.stderr.write(`guest: ${access}: up took ${upSeconds.toFixed(1)} s; the guest had ${disk.dev} ${((Date.now() - t1) / 1000).toFixed(1)} s after it\n`);
      assert.deepEqual(disk, { dev: disk.dev, size: CAPACITY, ro: false, serial });
      assert.ok((await guest.agent.list()).some((d) => d.dev === disk.dev && d.size === CAPACITY && d.serial === serial));
      await assertConverged();
    });

    test("the guest reads the uploaded image byte-exact, and zeros where it was grown", async () => {
      for (const r of DATA_RANGES) {
        assert.equal(await guest.agent.sha256(disk.dev, r.offset, r.length), sha256(image.subarray(r.offset, r.offset + r.length)), `data at ${r.offset}+${r.length}`);
      }
      assert.equal(await guest.agent.sha256(disk.dev, 0, IMAGE_SIZE), sha256(image), "the whole image, holes included");
      assert.equal(await guest.agent.sha256(disk.dev, IMAGE_SIZE, 8 * MiB), sha256(Buffer.alloc(8 * MiB)), "the grown part");
    });

    test("what the guest writes is on the Gluster brick; a refresh and a preview change nothing", async () => {
      await guest.agent.fill(disk.dev, fill.offset, fill.length, fill.word);
      await guest.agent.write(disk.dev, bytes.offset, bytes.data);
      await guest.agent.sync();
      const brickFile = path.join(lab.stateDir, "bricks", gluster.name, volumeName);
      const fd = fs.openSync(brickFile, "r");
      try {
        const read = (offset: number, length: number) => {
          const b = Buffer.alloc(length);
          assert.equal(fs.readSync(fd, b, 0, length, offset), length, `${brickFile}: short read at ${offset}`);
          return b;
        };
        assert.ok(read(fill.offset, fill.length).equals(fillPattern(fill.word, fill.length)), "the filled MiB on the brick");
        assert.ok(read(bytes.offset, bytes.data.length).equals(bytes.data), "the written bytes on the brick");
        assert.ok(read(0, IMAGE_SIZE).equals(image), "the uploaded image is untouched on the brick");
      } finally {
        fs.closeSync(fd);
      }
      await assertGuestData();
      await assertConverged();
    });

    /** Sets one stack config value and runs `up`, which must make exactly `want`; logs its time as `what`. */
    async function upWith(key: string, value: string, want: Record<string, number>, what: string) {
      await t.stack.setConfig(key, { value });
      const t0 = Date.now();
      const up = await t.stack.up();
      assert.deepEqual(changes(up.summary.resourceChanges), want, what);
      process.stderr.write(`guest: ${access}: the ${what} took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      return up;
    }

    test("an up that changes nothing leaves the disk and the guest's data alone", async () => {
      const up = await t.stack.up();
      assert.deepEqual(changes(up.summary.resourceChanges), {});
      assert.deepEqual(await guest.agent.waitPresent(serial, 0), disk, "the same device, never re-plugged");
      await assertGuestData();
    });

    test("removing the DiskAttachment detaches the disk: the guest reports it gone", async () => {
      await upWith("attached", "false", { delete: 1 }, "detach");
      await guest.agent.waitGone(disk.dev, 30);
      assert.ok(!(await guest.agent.list()).some((d) => d.serial === serial), "no disk with the serial is left in the guest");
      await assertConverged();
    });

    test("adding it back re-attaches the disk: the guest sees it and reads what it wrote before", async () => {
      const up = await upWith("attached", "true", { create: 1 }, "re-attach");
      assert.equal(up.outputs.attachedLive.value, true);
      disk = await guest.agent.waitPresent(serial, 30);
      assert.deepEqual(disk, { dev: disk.dev, size: CAPACITY, ro: false, serial });
      await assertGuestData();
      await assertConverged();
    });

    // Issue 14 §3 through the guest: the engine resizes the live block device (blockresize);
    // QEMU tells the guest (virtio-scsi: a parameter-change event, on which Linux rescans the
    // disk; virtio-blk: a config-change interrupt), so no rescan is asked of the guest.
    test("growing capacity while attached: the guest sees the new size without a reboot, its data intact", async () => {
      await upWith("capacity", `${GROWN / MiB}MiB`, { update: 1 }, "growth (the image, in place)");
      const t1 = Date.now();
      // bounded: the guest learns of it asynchronously (~0.1 s here)
      for (;;) {
        const found = (await guest.agent.list()).find((d) => d.serial === serial);
        assert.ok(found, `the disk with serial ${serial} left the guest during the growth`);
        assert.equal(found.dev, disk.dev, "the same device, never re-plugged");
        if (found.size === GROWN) break;
        assert.equal(found.size, CAPACITY, "the old size until the guest sees the new one");
        assert.ok(Date.now() - t1 < 30_000, `the guest still sees ${found.size} bytes 30 s after the up that grew the image to ${GROWN}`);
        await sleep(200);
      }
      process.stderr.write(`guest: ${access}: the guest saw the growth ${((Date.now() - t1) / 1000).toFixed(1)} s after the up\n`);
      disk = { ...disk, size: GROWN };
      await assertGuestData();
      assert.equal(await guest.agent.sha256(disk.dev, CAPACITY, GROWN - CAPACITY), sha256(Buffer.alloc(GROWN - CAPACITY)), "zeros in the grown part");
      // the grown part is usable: the guest writes its last bytes, and they are on the brick
      const tail = randomBytes(32);
      await guest.agent.write(disk.dev, GROWN - tail.length, tail);
      assert.equal(await guest.agent.sha256(disk.dev, GROWN - tail.length, tail.length), sha256(tail));
      const brickFile = path.join(lab.stateDir, "bricks", gluster.name, volumeName);
      assert.equal(fs.statSync(brickFile).size, GROWN, "the image on the brick");
      const onBrick = Buffer.alloc(tail.length);
      const fd = fs.openSync(brickFile, "r");
      try {
        fs.readSync(fd, onBrick, 0, tail.length, GROWN - tail.length);
      } finally {
        fs.closeSync(fd);
      }
      assert.ok(onBrick.equals(tail), "the bytes written past the old end are on the brick");
      await assertConverged();
    });

    // A replace detaches live and attaches again: for gfapi that works only because the
    // disk carries relabel='no' (libvirt would give the image to root on the detach).
    test("readonly: true re-attaches the disk: read-only in the guest, writes refused, the guest's data survived", async () => {
      await upWith("readonly", "true", { replace: 1 }, "readonly replace (detach + attach)");
      // by serial and ro: the detached device may linger in the guest for a moment
      const deadline = Date.now() + 30_000;
      for (;;) {
        const found = (await guest.agent.list()).find((d) => d.serial === serial);
        if (found?.ro) {
          disk = found;
          break;
        }
        assert.ok(Date.now() < deadline, `no read-only disk with serial ${serial} in the guest after 30 s (it lists ${JSON.stringify(found)})`);
        await sleep(200);
      }
      assert.deepEqual(disk, { dev: disk.dev, size: GROWN, ro: true, serial });
      await assert.rejects(guest.agent.write(disk.dev, 0, Buffer.from("nope")), (e: unknown) => e instanceof GuestAgentError && /write to \S+ failed/.test(e.reason));
      await assertGuestData();
      await assertConverged();
    });

    test("destroy: the guest reports the device gone", async () => {
      const t0 = Date.now();
      await t.stack.destroy();
      const destroySeconds = (Date.now() - t0) / 1000;
      const t1 = Date.now();
      await guest.agent.waitGone(disk.dev, 30);
      process.stderr.write(`guest: ${access}: destroy took ${destroySeconds.toFixed(1)} s; ${disk.dev} was gone in the guest ${((Date.now() - t1) / 1000).toFixed(1)} s after it\n`);
      assert.ok(!(await guest.agent.list()).some((d) => d.serial === serial));
    });
  });
}
