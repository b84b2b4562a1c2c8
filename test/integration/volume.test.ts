import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { closeAllHosts, getHost } from "../../provider/host";
import type { Unchecked } from "../../provider/resource";
import { localContentDigest } from "../../provider/localImage";
import { imageVolume, type VolumeOutputs } from "../../provider/volume";
import { uploadFile } from "../../provider/volumeContent";
import { cloneLabDomain, dropDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { labConnection, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";
import { waitFor } from "../helpers/wait";

/*
 * ImageVolume against the lab: a Gluster volume and netfs pool of this file's own.
 * Results are observed directly as root on this machine (the FUSE mount, root's
 * virsh), independently of the SSH transport the provider uses.
 */

const MiB = 1024 * 1024;
let lab: LabInfo;
let pool: OwnPool;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "it-volume-"));
const domains: string[] = [];

before(async () => {
  lab = await getLab();
  pool = await createOwnPool(lab, "itvol");
});

after(async () => {
  domains.forEach(dropDomain);
  await pool?.remove();
  closeAllHosts();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function inputs(over: Unchecked): Unchecked {
  return { connection: labConnection(lab), pool: pool.name, name: uniqueName("v") + ".img", ...over };
}

async function checked(news: Unchecked) {
  const r = await imageVolume.check({}, news);
  assert.deepEqual(r.failures ?? [], []);
  return r.inputs!;
}

async function create(over: Unchecked): Promise<VolumeOutputs> {
  return (await imageVolume.create(await checked(inputs(over)))).outs as VolumeOutputs;
}

function exists(v: { name: string }): boolean {
  return tryVirsh("vol-info", "--pool", pool.name, v.name).code === 0;
}

/** A private copy of the lab's stopped domain, to attach disks to. */
function privateDomain(): string {
  const name = cloneLabDomain(lab, "stopped");
  domains.push(name);
  return name;
}

/** Waits until a process matching `pattern` runs (the remote writer of an upload), for at most 30 s. */
async function processAppears(pattern: string): Promise<void> {
  await waitFor(`a process matching ${pattern}`, () => spawnSync("pgrep", ["-f", pattern]).status === 0, 30_000, 10);
}

/** A sparse local file with the given data at the given offsets. */
function sparseFile(name: string, size: number, data: [number, Buffer][]): string {
  const file = path.join(tmp, name);
  const fd = fs.openSync(file, "w");
  fs.ftruncateSync(fd, size);
  for (const [offset, buf] of data) fs.writeSync(fd, buf, 0, buf.length, offset);
  fs.closeSync(fd);
  return file;
}

const sha256 = (buf: Buffer) => createHash("sha256").update(buf).digest("hex");

describe("ImageVolume on the lab", () => {
  test("empty raw and qcow2 volumes: sizes, formats, QEMU ownership, qcow2 padded to 512 bytes", async () => {
    const raw = await create({ capacity: "64MiB" });
    const qcow = await create({ name: uniqueName("v") + ".qcow2", capacity: "1GiB" });
    for (const [v, format, capacity] of [[raw, "raw", 64 * MiB], [qcow, "qcow2", 1024 * MiB]] as const) {
      assert.equal(v.format, format);
      assert.equal(v.capacity, capacity);
      assert.equal(v.path, path.join(pool.targetPath!, v.name));
      assert.equal(v.key, v.path);
      assert.equal(v.glusterUrl, `gluster://${lab.gluster.servers[0]}/${pool.gluster.name}/${v.name}`);
      const st = fs.statSync(v.path);
      assert.deepEqual([st.uid, st.gid, (st.mode & 0o777).toString(8)], [lab.qemu.uid, lab.qemu.gid, "660"], `${v.name} belongs to QEMU`);
    }
    assert.equal(fs.statSync(raw.path).size, 64 * MiB);
    assert.equal(fs.statSync(qcow.path).size % 512, 0, "qcow2 file padded for libgfapi");
    assert.match(virsh("vol-dumpxml", "--pool", pool.name, qcow.name), /<format type='qcow2'\/>/);

    // An existing name is not taken over silently.
    await assert.rejects(imageVolume.create(await checked(inputs({ name: raw.name, capacity: "64MiB" }))), /^InputError: name: .*already exists.*adopt/);
    const adopted = await imageVolume.create(await checked(inputs({ name: raw.name, capacity: "64MiB", adopt: true })));
    assert.equal(adopted.id, raw.key);
  });

  test("upload of a sparse file: data lands at its offsets, holes are not sent, the content digest is recorded", async () => {
    const size = 96 * MiB;
    const chunks: [number, Buffer][] = [
      [0, randomBytes(4096)],
      [5 * MiB + 123, randomBytes(70_000)],
      [40 * MiB, randomBytes(2 * MiB)],
      [size - 10, Buffer.from("tail-bytes")],
    ];
    const file = sparseFile("sparse.raw", size, chunks);
    const v = await create({ source: { path: file } });
    assert.equal(v.capacity, size);
    assert.equal(v.format, "raw");
    assert.equal(v.contentDigest, await localContentDigest(file));
    assert.equal(v.sha256, undefined, "a whole-file sha256 only when asked for");
    const onHost = fs.readFileSync(v.path);
    assert.equal(onHost.length, size);
    assert.ok(onHost.equals(fs.readFileSync(file)), "byte-for-byte equal on the host");
    for (const [offset, buf] of chunks) assert.ok(onHost.subarray(offset, offset + buf.length).equals(buf), `data at ${offset}`);
    // Only extents near data were written: the brick holds a few MiB, not 96.
    const brickFile = path.join(lab.stateDir, "bricks", pool.gluster.name, v.name);
    assert.ok(fs.statSync(brickFile).blocks * 512 < 16 * MiB, `sparse on the brick (${fs.statSync(brickFile).blocks * 512} bytes allocated)`);
    const st = fs.statSync(v.path);
    assert.equal(st.uid, lab.qemu.uid);

    // Same file: no change. Changed content: replace.
    const news = await checked(inputs({ name: v.name, source: { path: file } }));
    assert.equal((await imageVolume.diff(v.key, v, news)).changes, false);
    fs.writeFileSync(file, Buffer.from("changed"), { flag: "r+" });
    assert.deepEqual((await imageVolume.diff(v.key, v, news)).replaces, ["source"]);
  });

  test("upload through libvirt of an image with more extents than one virsh reads back: every extent lands", async () => {
    // 520 data blocks, each followed by a hole long enough to end its extent.
    const step = 4 * MiB + 64 * 1024;
    const count = 520;
    const chunks: [number, Buffer][] = Array.from({ length: count }, (_, i) => [i * step, randomBytes(64 * 1024)]);
    const file = sparseFile("many-extents.raw", count * step, chunks);
    const v = await create({ source: { path: file } });
    assert.equal(v.contentDigest, await localContentDigest(file));
    const fd = fs.openSync(v.path, "r");
    try {
      for (const i of [0, 1, 499, 500, 501, count - 1]) {
        const got = Buffer.alloc(64 * 1024);
        fs.readSync(fd, got, 0, got.length, i * step);
        assert.ok(got.equals(chunks[i][1]), `extent ${i}`);
      }
    } finally {
      fs.closeSync(fd);
    }
    const brickFile = path.join(lab.stateDir, "bricks", pool.gluster.name, v.name);
    assert.ok(fs.statSync(brickFile).blocks * 512 < 64 * MiB, "holes were not written");
  });

  test("a remote writer that fails reports the host's error instead of waiting for ever", { timeout: 60_000 }, async () => {
    const file = sparseFile("to-nowhere.raw", 8 * MiB, [[0, randomBytes(MiB)], [6 * MiB, randomBytes(MiB)]]);
    const host = getHost(labConnection(lab));
    // Through libvirt: the volume does not exist, so vol-upload fails before it reads the frame.
    await assert.rejects(uploadFile({ host, pool: pool.name, volume: "no-such-volume.img" }, file, 8 * MiB), /Storage volume not found: no storage vol with matching \w+ 'no-such-volume\.img'/);
    // Straight into a file: dd cannot open it.
    const sudoHost = getHost({ ...labConnection(lab), sudo: true });
    await assert.rejects(uploadFile({ host: sudoHost, pool: pool.name, volume: "x", file: "/nonexistent-dir/x.img" }, file, 8 * MiB), /No such file or directory/);
    for (const left of ["no-such-volume", "/nonexistent-dir/x.img"]) {
      assert.equal(spawnSync("pgrep", ["-f", left]).status, 1, `no remote writer left running (${left})`);
    }
  });

  test("upload with source.sha256: the whole file's sha256 is checked first and becomes the output; a wrong one creates nothing", async () => {
    const file = sparseFile("summed.raw", 12 * MiB, [[MiB, randomBytes(MiB)], [9 * MiB, randomBytes(4096)]]);
    const sum = sha256(fs.readFileSync(file));
    const v = await create({ source: { path: file, sha256: sum.toUpperCase() } });
    assert.equal(v.sha256, sum);
    assert.equal(v.contentDigest, await localContentDigest(file));
    assert.ok(fs.readFileSync(v.path).equals(fs.readFileSync(file)));

    const name = uniqueName("badsum") + ".img";
    const wrong = "f".repeat(64);
    await assert.rejects(create({ name, source: { path: file, sha256: wrong } }), (err: Error) => {
      assert.equal(err.name, "InputError");
      assert.match(err.message, new RegExp(`^source\\.sha256: checksum mismatch for ${file}: expected ${wrong}, the file has ${sum}`));
      return true;
    });
    assert.equal(exists({ name }), false);
    assert.equal(fs.existsSync(path.join(pool.targetPath!, name)), false);
  });

  test("upload of a qcow2 image keeps its format; a format that does not match the content is refused and removed", async () => {
    const img = path.join(tmp, "small.qcow2");
    const fresh = await create({ name: uniqueName("v") + ".qcow2", capacity: "16MiB" });
    fs.copyFileSync(fresh.path, img);
    const v = await create({ name: uniqueName("v") + ".qcow2", source: { path: img } });
    assert.equal(v.format, "qcow2");
    assert.equal(v.capacity, 16 * MiB);
    const name = uniqueName("v") + ".img";
    await assert.rejects(create({ name, source: { path: img } }), /format: the volume's content is a qcow2 image, not raw/);
    assert.equal(exists({ name }), false, "nothing left behind");
  });

  test("an upload cut off midway leaves no volume behind", async () => {
    const file = path.join(tmp, "big.bin");
    fs.writeFileSync(file, randomBytes(64 * MiB));
    fs.appendFileSync(file, randomBytes(64 * MiB));
    const name = uniqueName("cut") + ".img";
    const creating = imageVolume.create(await checked(inputs({ name, source: { path: file } })));
    // Cut the SSH connection while the host's `virsh vol-upload` of this volume runs.
    const onMount = path.join(pool.targetPath!, name);
    await processAppears(`vol-upload .*${name}`);
    closeAllHosts();
    await assert.rejects(creating, /nothing was left behind/);
    assert.equal(exists({ name }), false);
    assert.equal(fs.existsSync(onMount), false);
  });

  test("with sudo, uploads write straight into the file on the mount (dd): exact bytes, QEMU's ownership; cut off leaves nothing", async () => {
    const sudo = { ...labConnection(lab), sudo: true };
    const size = 48 * MiB;
    // 18 MiB of data at 0: one extent sent as two frames (16 MiB is the largest).
    const chunks: [number, Buffer][] = [[0, randomBytes(18 * MiB)], [30 * MiB + 7, randomBytes(100_000)], [size - 5, Buffer.from("tail!")]];
    const file = sparseFile("direct.raw", size, chunks);
    const v = await create({ connection: sudo, source: { path: file } });
    assert.equal(v.contentDigest, await localContentDigest(file));
    assert.ok(fs.readFileSync(v.path).equals(fs.readFileSync(file)), "byte-for-byte equal on the host");
    const st = fs.statSync(v.path);
    assert.deepEqual([st.uid, (st.mode & 0o777).toString(8)], [lab.qemu.uid, "660"]);

    const big = path.join(tmp, "direct-big.bin");
    fs.writeFileSync(big, randomBytes(64 * MiB));
    fs.appendFileSync(big, randomBytes(64 * MiB));
    const name = uniqueName("cutdd") + ".img";
    const creating = imageVolume.create(await checked(inputs({ connection: sudo, name, source: { path: big } })));
    await processAppears(`dd of=.*${name}`);
    closeAllHosts();
    await assert.rejects(creating, /nothing was left behind/);
    assert.equal(exists({ name }), false);
    assert.equal(fs.existsSync(path.join(pool.targetPath!, name)), false);
  });

  test("download by the host from a URL, with checksum; a wrong checksum or a 404 leaves nothing behind", async () => {
    const body = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(2 * MiB), randomBytes(1234)]);
    const server = http.createServer((req, res) => {
      if (req.url !== "/disk.img") return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/disk.img`;
    try {
      const v = await create({ source: { url, sha256: sha256(body) } });
      assert.equal(v.sha256, sha256(body));
      assert.equal(v.capacity, body.length);
      assert.ok(fs.readFileSync(v.path).equals(body), "the host holds exactly the served bytes");
      assert.equal(fs.statSync(v.path).uid, lab.qemu.uid);

      const grown = await create({ source: { url }, capacity: "8MiB" });
      assert.equal(grown.capacity, 8 * MiB, "capacity larger than the content grows the image");
      assert.equal(grown.sha256, sha256(body));

      const wrong = "0".repeat(64);
      const name = uniqueName("bad") + ".img";
      await assert.rejects(create({ name, source: { url, sha256: wrong } }), (err: Error) => {
        assert.match(err.message, new RegExp(`source\\.sha256: checksum mismatch .*expected ${wrong}, downloaded ${sha256(body)}`));
        return true;
      });
      assert.equal(exists({ name }), false);
      await assert.rejects(create({ name, source: { url: url.replace("disk.img", "missing.img") } }), /404|returned error/);
      assert.equal(exists({ name }), false);
    } finally {
      server.close();
    }
  });

  test("clone copies the content; an overlay is backed by its base, which cannot be deleted under it", async () => {
    const file = sparseFile("base.raw", 8 * MiB, [[MiB, randomBytes(MiB)]]);
    const base = await create({ source: { path: file } });
    const clone = await create({ source: { volume: base.name }, capacity: "16MiB" });
    assert.equal(clone.capacity, 16 * MiB);
    assert.ok(fs.readFileSync(clone.path).subarray(0, 8 * MiB).equals(fs.readFileSync(file)), "clone has the base's bytes");
    assert.equal(fs.statSync(clone.path).uid, lab.qemu.uid);

    const overlay = await create({ name: uniqueName("ov") + ".qcow2", backingVolume: { volume: base.name } });
    assert.equal(overlay.format, "qcow2");
    assert.equal(overlay.backingStore, base.path);
    assert.equal(overlay.capacity, 8 * MiB);
    assert.equal(fs.statSync(overlay.path).size % 512, 0);

    await assert.rejects(imageVolume.delete(base.key, base), new RegExp(`backing file of ${pool.name}/${overlay.name.replace(/\./g, "\\.")}`));
    assert.ok(exists(base));
    await imageVolume.delete(overlay.key, overlay);
    await imageVolume.delete(base.key, base);
    assert.equal(exists(base), false);
    await imageVolume.delete(base.key, base); // already gone: fine
  });

  test("resize: growing updates in place, shrinking is refused; refresh shows resizes and deletions by hand", async () => {
    const v = await create({ name: uniqueName("r") + ".qcow2", capacity: "32MiB" });
    const bigger = await checked(inputs({ name: v.name, capacity: "64MiB" }));
    const d = await imageVolume.diff(v.key, v, bigger);
    assert.deepEqual([d.changes, d.replaces], [true, []]);
    const grown = (await imageVolume.update(v.key, v, bigger)).outs as VolumeOutputs;
    assert.equal(grown.capacity, 64 * MiB);
    assert.match(virsh("vol-info", "--pool", pool.name, v.name, "--bytes"), /Capacity:\s+67108864 bytes/);
    assert.equal(fs.statSync(v.path).size % 512, 0);
    await assert.rejects(imageVolume.diff(v.key, grown, await checked(inputs({ name: v.name, capacity: "16MiB" }))), /capacity: shrinking .* would lose data/);

    virsh("vol-resize", "--pool", pool.name, v.name, "128M");
    const refreshed = await imageVolume.read(v.key, grown);
    assert.equal((refreshed.props as VolumeOutputs).capacity, 128 * MiB);
    virsh("vol-delete", "--pool", pool.name, v.name);
    assert.deepEqual(await imageVolume.read(v.key, grown), {});
  });

  test("delete is refused while a domain uses the volume (persistent definition), then succeeds", async () => {
    const v = await create({ capacity: "8MiB" });
    const domain = privateDomain();
    virsh("attach-disk", domain, v.path, "vdz", "--config", "--subdriver", "raw");
    await assert.rejects(imageVolume.delete(v.key, v), (err: Error) => {
      assert.match(err.message, new RegExp(`in use by ${domain} \\(vdz, persistent\\)`));
      return true;
    });
    assert.ok(exists(v));
    virsh("detach-disk", domain, "vdz", "--config");
    await imageVolume.delete(v.key, v);
    assert.equal(exists(v), false);
  });
});

describe("ImageVolume in a native gluster pool on the lab", () => {
  // A Gluster volume and `type: "gluster"` pool of their own. Every libgfapi client
  // (qemu-img, pool-refresh, vol-delete) waits ~10 s in glfs_fini: these tests are slow.
  let nativePool: OwnPool;
  const sudo = () => ({ ...labConnection(lab), sudo: true });
  const brickFile = (name: string) => path.join(lab.stateDir, "bricks", nativePool.gluster.name, name);

  before(async () => {
    lab = await getLab();
    nativePool = await createOwnPool(lab, "itnat", { type: "gluster" });
  });

  after(async () => {
    await nativePool?.remove();
    closeAllHosts();
  });

  async function createNative(over: Unchecked, connection: Unchecked = sudo()): Promise<VolumeOutputs> {
    return (await imageVolume.create(await checked({ connection, pool: nativePool.name, name: uniqueName("n") + ".img", ...over }))).outs as VolumeOutputs;
  }

  test("empty raw volume and qcow2 overlay via qemu-img as QEMU's user (sudo); base protected; delete", async () => {
    const base = await createNative({ capacity: "8MiB" });
    const url = `gluster://${lab.gluster.servers[0]}/${nativePool.gluster.name}/${base.name}`;
    assert.deepEqual([base.format, base.capacity, base.path, base.key, base.glusterUrl], ["raw", 8 * MiB, url, url, url]);
    let st = fs.statSync(brickFile(base.name));
    // Owner as a netfs volume gets it (the host's QEMU user); mode is what QEMU's gluster driver gives.
    const owner = spawnSync("id", ["-u", lab.qemu.user], { encoding: "utf8" }).stdout.trim();
    assert.deepEqual([String(st.uid), st.size, (st.mode & 0o777).toString(8)], [owner, 8 * MiB, "600"]);

    const overlay = await createNative({ name: uniqueName("ov") + ".qcow2", backingVolume: { volume: base.name } });
    assert.deepEqual([overlay.format, overlay.capacity, overlay.backingStore], ["qcow2", 8 * MiB, url]);
    st = fs.statSync(brickFile(overlay.name));
    assert.equal(String(st.uid), owner);
    assert.equal(st.size % 512, 0, "qcow2 file size a multiple of 512 (libgfapi)");
    assert.match(spawnSync("qemu-img", ["info", brickFile(overlay.name)], { encoding: "utf8" }).stdout, new RegExp(`backing file: ${url.replace(/[./]/g, "\\$&")}`));

    await assert.rejects(imageVolume.delete(base.key, base), /backing file of/);
    await imageVolume.delete(overlay.key, overlay);
    await imageVolume.delete(base.key, base);
    assert.equal(fs.existsSync(brickFile(base.name)), false);
    assert.equal(fs.existsSync(brickFile(overlay.name)), false);
  });

  test("refused up front: a login that cannot act as the owner, content sources, another mode", async () => {
    const name = uniqueName("n") + ".img";
    await assert.rejects(createNative({ name, capacity: "8MiB" }, labConnection(lab)), /connection: volumes in native gluster pool .* log in as root or set `connection\.sudo: true`/);
    await assert.rejects(createNative({ name, source: { path: "/etc/hostname" } }), /source: .*native gluster pool.*netfs/);
    await assert.rejects(createNative({ name, capacity: "8MiB", permissions: { mode: "0660" } }), /permissions: .*mode 0600/);
    assert.equal(fs.existsSync(brickFile(name)), false, "nothing created");
  });

  /** Runs `fn` with the pool's Gluster volume mounted through FUSE here: another client of the storage. */
  function onAnotherClient(fn: (mnt: string) => void): void {
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), "it-native-mnt-"));
    execFileSync("mount", ["-t", "glusterfs", `${lab.gluster.servers[0]}:/${nativePool.gluster.name}`, mnt]);
    try {
      fn(mnt);
    } finally {
      execFileSync("umount", [mnt]);
      fs.rmSync(mnt, { recursive: true, force: true });
    }
  }

  test("a file the pool does not list yet (made by another client) is found on the storage and never truncated", async () => {
    const name = uniqueName("hidden") + ".img";
    onAnotherClient((mnt) => fs.writeFileSync(path.join(mnt, name), randomBytes(MiB)));
    const before = sha256(fs.readFileSync(brickFile(name)));
    assert.notEqual(tryVirsh("vol-info", "--pool", nativePool.name, name).code, 0, "libvirt does not list it yet");
    await assert.rejects(createNative({ name, capacity: "8MiB" }), /name: a volume named .* already exists.*adopt/);
    assert.equal(sha256(fs.readFileSync(brickFile(name))), before, "its bytes are untouched (qemu-img create would have truncated it)");
  });

  test("a hidden file is never truncated when the pool's refresh does not complete (cut by the command timeout) or fails (an entry libvirt cannot open)", async () => {
    const name = uniqueName("hidden") + ".img";
    const second = uniqueName("hidden") + ".img";
    const junk = uniqueName("junk");
    onAnotherClient((mnt) => fs.writeFileSync(path.join(mnt, name), randomBytes(MiB)));
    const before = sha256(fs.readFileSync(brickFile(name)));
    try {
      // The review's case (found with fakes): a pool-refresh that did not complete was
      // ignored, the file looked absent, and qemu-img create truncated it. Absence is now
      // proven with qemu-img info, and a look that is cut stops the create. A native pool's
      // refresh and qemu-img info take ~10 s here (libgfapi's teardown): 2 s cuts them.
      // (On libvirt 9.0 the old code was saved by libvirt itself in both cases of this test:
      // the cut refresh goes on in libvirtd, holding the pool, so the next lookup timed out;
      // a failed refresh stops the pool, so the next lookup failed. Shown by reverting.)
      await assert.rejects(createNative({ name, capacity: "8MiB" }, { ...sudo(), timeouts: { command: 2 } }), /did not finish within 2 s/);
      assert.equal(sha256(fs.readFileSync(brickFile(name))), before, "its bytes are untouched (cut look)");
      // A refresh that fails once the file is proven there: a device node with no driver
      // behind it ("cannot open volume 'junk': Invalid argument"). libvirt stops the pool.
      // On another hidden file, made once the cut refresh has finished in libvirtd (a
      // listing waits for it): that refresh may have listed the first one by now, and then
      // the create is refused as "already exists in pool", before any refresh.
      execFileSync("virsh", ["-c", "qemu:///system", "-q", "vol-list", nativePool.name], { stdio: "ignore", timeout: 120_000 });
      onAnotherClient((mnt) => fs.writeFileSync(path.join(mnt, second), randomBytes(MiB)));
      const secondBefore = sha256(fs.readFileSync(brickFile(second)));
      onAnotherClient((mnt) => execFileSync("mknod", [path.join(mnt, junk), "c", "250", "250"]));
      await assert.rejects(createNative({ name: second, capacity: "8MiB" }), /already exists on the storage .*pool-refresh failed .*cannot open volume .*nothing was created/);
      assert.equal(sha256(fs.readFileSync(brickFile(second))), secondBefore, "its bytes are untouched (failed refresh)");
      assert.equal(sha256(fs.readFileSync(brickFile(name))), before, "the first one's too");
    } finally {
      onAnotherClient((mnt) => [name, second, junk].forEach((f) => fs.rmSync(path.join(mnt, f), { force: true })));
      if (!/^State:\s+running/m.test(virsh("pool-info", nativePool.name))) virsh("pool-start", nativePool.name);
    }
  });


});
