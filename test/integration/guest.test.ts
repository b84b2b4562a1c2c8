/*
 * The lab's guest (docs/lab.md "The guest"): the image `lab up` builds, the definition it
 * offers, the lab's own domains booting it, and every request of the agent, against a guest
 * booted by libvirt with disks hot-plugged by root's virsh (no resource of ours involved: this
 * is the judge's own test). That guest is a copy of lab-stopped, started: the stopped VM boots
 * the same way when a test starts it (one boot serves both).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fillPattern, getGuestLab, GuestAgent, GuestAgentError, guestDomainXml, startGuest, type Guest, type GuestLab } from "../helpers/guest";
import { pristineDomainXml } from "../helpers/domain";
import { cliPath, parseLabInfo, runLabCommand } from "../helpers/lab";
import { tryVirsh, uniqueName, virsh } from "../helpers/local";
import { waitFor } from "../helpers/wait";

const MiB = 1024 * 1024;
let lab: GuestLab;
let guest: Guest;
const files: string[] = [];

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

before(async () => {
  lab = await getGuestLab();
  guest = await startGuest(lab, { copyOf: "stopped" });
  process.stderr.write(`guest: ${guest.name} answered ${guest.bootSeconds.toFixed(1)} s after virsh start\n`);
});

after(() => {
  guest?.drop();
  for (const f of files) fs.rmSync(f, { force: true });
});

/** A raw image file the QEMU user may open, in the guest run directory (both hypervisors see it). */
function imageFile(size: number, content?: Buffer): string {
  const file = path.join(lab.guest.runDir, `${uniqueName("disk")}.img`);
  files.push(file);
  fs.writeFileSync(file, "");
  fs.truncateSync(file, size);
  if (content) {
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, content, 0, content.length, 0);
    fs.closeSync(fd);
  }
  fs.chownSync(file, lab.qemu.uid, lab.qemu.gid);
  return file;
}

function attachScsi(file: string, target: string, serial: string): void {
  virsh("attach-disk", guest.name, file, target, "--targetbus", "scsi", "--serial", serial, "--live");
}

describe("the lab's guest", () => {
  test("lab status offers the image, built from the installed kernel, and a definition to boot it", async () => {
    const status = await runLabCommand("status");
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(parseLabInfo(status.stdout).guest, lab.guest, "status reports the guest image as ready");
    assert.doesNotMatch(status.stderr, /guest (image )?is not ready/);
    assert.ok(fs.existsSync(`/boot/vmlinuz-${lab.guest.kernelVersion}`), `the kernel ${lab.guest.kernelVersion} is installed`);
    assert.ok(fs.readFileSync(lab.guest.kernel).equals(fs.readFileSync(`/boot/vmlinuz-${lab.guest.kernelVersion}`)));
    const listing = execFileSync("sh", ["-c", `gzip -dc '${lab.guest.initrd}' | cpio -t --quiet`], { encoding: "utf8" }).split("\n");
    for (const f of ["init", "bin/busybox", "bin/sh", "bin/dd", "bin/sha256sum", "etc/modules.order", "lib/modules/virtio_scsi.ko", "lib/modules/sd_mod.ko", "lib/modules/virtio_blk.ko"]) {
      assert.ok(listing.includes(f), `the initramfs has ${f}`);
    }
    const xml = guestDomainXml(lab, "probe");
    assert.match(xml, /<name>probe<\/name>/);
    assert.match(xml, /<memory unit='MiB'>256<\/memory>/);
    assert.ok(xml.includes(`<kernel>${lab.guest.kernel}</kernel>`) && xml.includes(`<initrd>${lab.guest.initrd}</initrd>`));
    assert.match(xml, /<cmdline>console=ttyS0[^<]*<\/cmdline>/);
    assert.match(xml, /<controller type='scsi' index='0' model='virtio-scsi'\/>/);
    assert.ok(xml.includes(`<source mode='bind' path='${lab.guest.runDir}/probe.agent.sock'/>`));
    assert.ok(!xml.includes(lab.guest.namePlaceholder));
  });

  test("the lab's domains boot the guest: lab-running runs it, its agent answers; lab-stopped's definition is the same", async () => {
    const running = lab.guest.running;
    assert.ok(running, "lab status reports lab-running's guest as ready (guest.running); run `gluster-libvirt lab up`");
    assert.equal(running.domain, lab.domains.running);
    assert.equal(running.agentSocket, path.join(lab.guest.runDir, `${lab.domains.running}.agent.sock`));
    assert.match(fs.readFileSync(running.consoleLog, "utf8"), /guest: up in [\d.]+ s; agent on ttyS1/);
    // the shared VM: ping and list only (others attach disks to it; one client at a time)
    const agent = await GuestAgent.connect(running.agentSocket, 60_000);
    try {
      assert.deepEqual(await agent.request("ping lab-running"), ["pong lab-running"]);
      await agent.list();
    } finally {
      agent.close();
    }
    for (const [name, scope] of [[lab.domains.running, []], [lab.domains.stopped, ["--inactive"]]] as const) {
      const xml = virsh("dumpxml", ...scope, name);
      assert.ok(xml.includes(`<kernel>${lab.guest.kernel}</kernel>`) && xml.includes(`<initrd>${lab.guest.initrd}</initrd>`), `${name} boots the guest's kernel and initramfs`);
      assert.ok(xml.includes(`path='${lab.guest.runDir}/${name}.agent.sock'`), `${name} has its agent socket`);
    }
    // this file's guest is a copy of lab-stopped as defined, started
    assert.ok(virsh("dumpxml", guest.name).includes(`<kernel>${lab.guest.kernel}</kernel>`));
  });

  test("ping and list: a guest without disks", async () => {
    assert.deepEqual(await guest.agent.request("ping a b"), ["pong a b"]);
    assert.deepEqual(await guest.agent.list(), []);
    assert.match(fs.readFileSync(guest.consoleLog, "utf8"), /guest: up in [\d.]+ s; agent on ttyS1/, "the kernel console goes to the log");
  });

  test("a hot-plugged scsi disk: wait-present by serial, size, sha256 of a range, write and fill reach the file", async () => {
    const content = randomBytes(3 * MiB + 5);
    const file = imageFile(8 * MiB, content);
    const serial = `scsi-${randomBytes(3).toString("hex")}`;
    const t0 = Date.now();
    attachScsi(file, "sdb", serial);
    const disk = await guest.agent.waitPresent(serial, 30);
    process.stderr.write(`guest: a hot-plugged scsi disk was ${disk.dev} in the guest ${((Date.now() - t0) / 1000).toFixed(1)} s after attach-disk\n`);
    assert.deepEqual(disk, { dev: disk.dev, size: 8 * MiB, ro: false, serial });
    assert.ok((await guest.agent.list()).some((d) => d.serial === serial));
    assert.equal(await guest.agent.sha256(disk.dev, 0, content.length), sha256(content));
    assert.equal(await guest.agent.sha256(disk.dev, 12345, 1000), sha256(content.subarray(12345, 13345)));

    const bytes = randomBytes(100);
    await guest.agent.write(disk.dev, 4 * MiB + 1, bytes);
    await guest.agent.fill(disk.dev, 5 * MiB, 200_000, "pattern");
    await guest.agent.sync();
    const onHost = fs.readFileSync(file);
    assert.ok(onHost.subarray(4 * MiB + 1, 4 * MiB + 101).equals(bytes), "write reached the image file");
    assert.ok(onHost.subarray(5 * MiB, 5 * MiB + 200_000).equals(fillPattern("pattern", 200_000)), "fill reached the image file");

    // the host changes the file under the guest: sha256 reads the disk, not the guest's cache
    const fresh = randomBytes(4096);
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, fresh, 0, fresh.length, 0);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    assert.equal(await guest.agent.sha256(disk.dev, 0, 4096), sha256(fresh));

    const t1 = Date.now();
    virsh("detach-disk", guest.name, "sdb", "--live");
    await guest.agent.waitGone(disk.dev, 30);
    process.stderr.write(`guest: ${disk.dev} was gone in the guest ${((Date.now() - t1) / 1000).toFixed(1)} s after detach-disk\n`);
    assert.ok(!(await guest.agent.list()).some((d) => d.serial === serial));
  });

  test("bad requests are answered with err, and the agent keeps answering", async () => {
    const file = imageFile(MiB);
    attachScsi(file, "sdc", "small");
    const disk = await guest.agent.waitPresent("small", 30);
    const refused = async (request: string, reason: RegExp) => {
      await assert.rejects(guest.agent.request(request), (e: unknown) => e instanceof GuestAgentError && reason.test(e.reason), request);
    };
    await refused("frobnicate", /unknown request 'frobnicate'/);
    await refused(`sha256 ${disk.dev} 0 ${MiB + 1}`, /past the end/);
    await refused(`sha256 ${disk.dev} -1 5`, /decimal byte counts/);
    await refused("sha256 ../etc 0 1", /bad device name/);
    await refused("sha256 sdzz 0 1", /no disk sdzz/);
    await refused(`write ${disk.dev} 0 abc`, /odd number of hex digits/);
    await refused(`write ${disk.dev} 0 zz`, /hex digits/);
    await refused(`wait-gone ${disk.dev} 1`, /still present after 1 s/);
    await refused("wait-present no-such-serial 1", /no disk with serial no-such-serial after 1 s/);
    await refused("wait-present x soon", /whole number/);
    assert.deepEqual(await guest.agent.request("ping still here"), ["pong still here"]);
    virsh("detach-disk", guest.name, "sdc", "--live");
    await guest.agent.waitGone(disk.dev, 30);
  });

  test("a read-only disk: ro=1 in list, and write is refused with err", async () => {
    const file = imageFile(MiB, Buffer.from("read only"));
    virsh("attach-disk", guest.name, file, "sdd", "--targetbus", "scsi", "--serial", "ro-disk", "--mode", "readonly", "--live");
    const disk = await guest.agent.waitPresent("ro-disk", 30);
    assert.deepEqual(disk, { dev: disk.dev, size: MiB, ro: true, serial: "ro-disk" });
    await assert.rejects(guest.agent.write(disk.dev, 0, Buffer.from("x")), (e: unknown) => e instanceof GuestAgentError && /write to \S+ failed/.test(e.reason));
    assert.equal(await guest.agent.sha256(disk.dev, 0, 9), sha256(Buffer.from("read only")));
    virsh("detach-disk", guest.name, "sdd", "--live");
    await guest.agent.waitGone(disk.dev, 30);
  });

  test("a virtio-blk disk: its serial from /sys/block/vd*/serial; with a guest OS its unplug completes", async () => {
    const file = imageFile(2 * MiB);
    virsh("attach-disk", guest.name, file, "vdb", "--targetbus", "virtio", "--serial", "vblk-1", "--live");
    const disk = await guest.agent.waitPresent("vblk-1", 30);
    assert.deepEqual(disk, { dev: disk.dev, size: 2 * MiB, ro: false, serial: "vblk-1" });
    assert.match(disk.dev, /^vd[a-z]$/);
    virsh("detach-disk", guest.name, "vdb", "--live");
    await guest.agent.waitGone(disk.dev, 30);
    assert.ok(!/target dev='vdb'/.test(virsh("dumpxml", guest.name)), "libvirt dropped the disk from the live definition");
  });
});

/*
 * How `lab up` brought the shared lab's domains from an older lab.sh's definition (no OS) to
 * the guest, on a scratch domain defined as that lab.sh did: lab.sh's own ensure_domain, run
 * by sourcing the script. Its uuid and its persistent disk (a demo's) stay; while it carries a
 * disk attached live only it keeps running as it is; once that is gone it is restarted into
 * the guest, and the guest sees the kept disk. A guest whose agent socket was removed is
 * restarted too.
 */
describe("lab up on a lab domain of an older lab.sh", () => {
  const name = uniqueName("labdom");
  const labSh = path.resolve(path.dirname(cliPath), "..", "..", "scripts", "lab.sh");
  let agent: GuestAgent | undefined;

  after(() => {
    agent?.close();
    tryVirsh("destroy", name);
    tryVirsh("undefine", name);
    for (const ext of ["agent.sock", "console.log"]) fs.rmSync(path.join(lab.guest.runDir, `${name}.${ext}`), { force: true });
  });

  /** lab.sh's ensure_domain NAME running, as `up` runs it for lab-running; its stderr. */
  function ensureRunning(): string {
    const r = spawnSync("bash", ["-c", 'source "$1" && ensure_domain "$2" running', "ensure_domain", labSh, name], { encoding: "utf8", timeout: 300_000 });
    assert.equal(r.status, 0, `ensure_domain ${name} failed:\n${r.stderr}`);
    return r.stderr;
  }

  const bootsGuest = (...scope: string[]) => virsh("dumpxml", ...scope, name).includes(`<kernel>${lab.guest.kernel}</kernel>`);

  test("redefined keeping uuid and disks; restarted into the guest only once no disk is attached live only; restarted when its agent socket is gone", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "labdom-"));
    try {
      fs.writeFileSync(path.join(dir, "old.xml"), pristineDomainXml(lab, name));
      virsh("define", path.join(dir, "old.xml"));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const uuid = virsh("domuuid", name).trim();
    virsh("attach-disk", name, imageFile(MiB), "sdb", "--targetbus", "scsi", "--serial", "kept-1", "--config");
    virsh("start", name);
    virsh("attach-disk", name, imageFile(MiB), "sdc", "--targetbus", "scsi", "--live");
    assert.ok(!bootsGuest(), "the old definition boots no guest");

    const first = ensureRunning();
    assert.match(first, /redefining domain .* to boot the guest/);
    assert.match(first, /is not restarted to boot the guest: it has disks attached live only/);
    assert.ok(bootsGuest("--inactive"), "the persistent definition boots the guest");
    assert.equal(virsh("domuuid", name).trim(), uuid, "the same uuid");
    assert.match(virsh("domblklist", "--inactive", name), /\bsdb\b/, "the persistent disk is kept");
    assert.ok(!bootsGuest(), "not restarted while it has a disk attached live only");
    assert.match(virsh("domblklist", name), /\bsdc\b/, "the live-only disk is still there");

    virsh("detach-disk", name, "sdc", "--live");
    await waitFor("sdc to leave the live domain", () => Promise.resolve(!/\bsdc\b/.test(virsh("domblklist", name))), 30_000, 200);
    const second = ensureRunning();
    assert.match(second, /restarting domain .* to boot the guest/);
    assert.ok(bootsGuest(), "it runs the guest now");
    // ensure_domain waited for the agent to start; the guest sees the disk that was kept
    agent = await GuestAgent.connect(path.join(lab.guest.runDir, `${name}.agent.sock`), 60_000);
    assert.equal((await agent.waitPresent("kept-1", 30)).size, MiB);
    assert.doesNotMatch(ensureRunning(), /redefining|restarting|starting/, "a third run changes nothing");

    // its agent socket removed under it (seen once on the shared lab): up restarts it
    agent.close();
    agent = undefined;
    const socket = path.join(lab.guest.runDir, `${name}.agent.sock`);
    fs.rmSync(socket);
    assert.match(ensureRunning(), /restarting domain .* to give its guest agent a socket again/);
    agent = await GuestAgent.connect(socket, 60_000);
    assert.equal((await agent.waitPresent("kept-1", 30)).size, MiB, "the kept disk, after the restart");
  });
});
