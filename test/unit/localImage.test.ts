import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BLOCK_SIZE, contentDigest, dataRegions, ExtentPlanner, fileSha256, localContentDigest, MIN_HOLE, scanAndHash, type Piece } from "../../provider/localImage";

const MiB = 1024 * 1024;
const sha256 = (...bufs: Buffer[]) => bufs.reduce((h, b) => h.update(b), createHash("sha256")).digest("hex");

function tmpDir(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "local-image-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A file of `size` bytes with `data` written at offsets: sparse (holes elsewhere), or with every zero written out. */
function imageFile(file: string, size: number, data: [number, Buffer][], allocated = false): string {
  const fd = fs.openSync(file, "w");
  if (allocated) for (let at = 0; at < size; at += MiB) fs.writeSync(fd, Buffer.alloc(Math.min(MiB, size - at)), 0, Math.min(MiB, size - at), at);
  else fs.ftruncateSync(fd, size);
  for (const [offset, buf] of data) fs.writeSync(fd, buf, 0, buf.length, offset);
  fs.closeSync(fd);
  return file;
}

/** Runs `fn` with no `perl` on PATH: the scan then reads every byte. */
async function withoutPerl<T>(fn: () => Promise<T>): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = "/nonexistent";
  try {
    return await fn();
  } finally {
    process.env.PATH = saved;
  }
}

/** Runs the planner over a block map ("D" data, "." zero), returning the extents in blocks. */
function plan(map: string, minHoleBlocks: number): { extents: [number, number][]; sent: number } {
  const planner = new ExtentPlanner(minHoleBlocks * BLOCK_SIZE);
  let sent = 0;
  [...map].forEach((c, i) => {
    const step = planner.feed(i * BLOCK_SIZE, BLOCK_SIZE, c === ".");
    sent += (step.zeros ?? 0) + (step.send ? BLOCK_SIZE : 0);
  });
  planner.finish();
  return { extents: planner.extents.map((e) => [e.offset / BLOCK_SIZE, e.length / BLOCK_SIZE]), sent: sent / BLOCK_SIZE };
}
test("ExtentPlanner: data runs become extents; short holes inside data are sent, long ones and the tail are not", () => {
  assert.deepEqual(plan("", 2), { extents: [], sent: 0 });
  assert.deepEqual(plan("....", 2), { extents: [], sent: 0 });
  assert.deepEqual(plan("DDDD", 2), { extents: [[0, 4]], sent: 4 });
  assert.deepEqual(plan("..DD..", 2), { extents: [[2, 2]], sent: 2 });
  assert.deepEqual(plan("D.D", 2), { extents: [[0, 3]], sent: 3 });
  assert.deepEqual(plan("D..D", 2), { extents: [[0, 1], [3, 1]], sent: 2 });
  assert.deepEqual(plan("DD...D.DD....", 3), { extents: [[0, 2], [5, 4]], sent: 6 });
  assert.ok(MIN_HOLE >= BLOCK_SIZE);
});

test("ExtentPlanner: zero runs fed as one long piece (a whole zero read chunk) plan like the same zeros fed block by block", () => {
  // The upload feeds a read chunk of zeros as one piece; data chunks block by block.
  const byPieces = (pieces: [number, boolean][], minHoleBlocks: number) => {
    const planner = new ExtentPlanner(minHoleBlocks * BLOCK_SIZE);
    let offset = 0;
    let sent = 0;
    for (const [blocks, isZero] of pieces) {
      const step = planner.feed(offset * BLOCK_SIZE, blocks * BLOCK_SIZE, isZero);
      sent += (step.zeros ?? 0) + (step.send ? blocks * BLOCK_SIZE : 0);
      offset += blocks;
    }
    planner.finish();
    return { extents: planner.extents.map((e) => [e.offset / BLOCK_SIZE, e.length / BLOCK_SIZE]), sent: sent / BLOCK_SIZE };
  };
  const blockMap = (pieces: [number, boolean][]) => pieces.map(([n, z]) => (z ? "." : "D").repeat(n)).join("");
  for (const pieces of [
    [[1, false], [16, true], [1, false]],
    [[1, false], [2, true], [16, true], [3, false], [16, true]],
    [[16, true], [2, false], [1, true], [1, false], [16, true], [16, true]],
    [[3, false], [1, true], [16, true]],
  ] as [number, boolean][][]) {
    for (const minHole of [2, 4, 16, 32]) assert.deepEqual(byPieces(pieces, minHole), plan(blockMap(pieces), minHole), `${blockMap(pieces)} minHole ${minHole}`);
  }
});

test("dataRegions: the filesystem's data ranges of a sparse file (SEEK_DATA through perl); the whole file when perl is missing", async (t) => {
  const dir = tmpDir(t);
  const size = 64 * MiB;
  const file = imageFile(path.join(dir, "sparse.raw"), size, [[8 * MiB, randomBytes(MiB)], [40 * MiB + 5, randomBytes(100)]]);
  const regions = await dataRegions(file, size);
  const covered = (offset: number, length: number) => regions.some((r) => r.offset <= offset && offset + length <= r.offset + r.length);
  assert.ok(covered(8 * MiB, MiB) && covered(40 * MiB + 5, 100), `data inside the regions: ${JSON.stringify(regions)}`);
  const listed = regions.reduce((n, r) => n + r.length, 0);
  assert.ok(listed < 8 * MiB, `holes are not listed (${listed} bytes of ${size})`);
  assert.deepEqual(await withoutPerl(() => dataRegions(file, size)), [{ offset: 0, length: size }]);

  const dense = imageFile(path.join(dir, "dense.raw"), 3 * MiB, [[0, randomBytes(3 * MiB)]]);
  assert.deepEqual(await dataRegions(dense, 3 * MiB), [{ offset: 0, length: 3 * MiB }]);
  assert.deepEqual(await dataRegions(dense, 0), []);
});

test("scanAndHash: sends the data extents, in order, and hashes exactly those bytes", async (t) => {
  const dir = tmpDir(t);
  const size = 48 * MiB + 1000; // not a whole number of blocks
  const a = randomBytes(2 * MiB);
  const b = randomBytes(70_000);
  const tail = Buffer.from("tail");
  const file = imageFile(path.join(dir, "img.raw"), size, [[0, a], [20 * MiB + 3, b], [size - 4, tail]]);
  const pieces: Piece[] = [];
  const scanned = await scanAndHash(file, size, async (p) => void pieces.push({ offset: p.offset, bytes: Buffer.from(p.bytes) }));
  const tailBlock = Math.floor((size - 4) / BLOCK_SIZE) * BLOCK_SIZE;
  const bStart = Math.floor((20 * MiB + 3) / BLOCK_SIZE) * BLOCK_SIZE;
  const bEnd = Math.ceil((20 * MiB + 3 + b.length) / BLOCK_SIZE) * BLOCK_SIZE;
  assert.deepEqual(scanned.extents, [
    { offset: 0, length: 2 * MiB },
    { offset: bStart, length: bEnd - bStart },
    { offset: tailBlock, length: size - tailBlock },
  ]);
  // Pieces are contiguous within extents, never cross one, and are the file's bytes.
  const content = fs.readFileSync(file);
  let next = -1;
  let extent = -1;
  for (const p of pieces) {
    if (p.offset !== next) assert.equal(p.offset, scanned.extents[++extent].offset, "a new extent starts where the planner says");
    assert.ok(p.bytes.equals(content.subarray(p.offset, p.offset + p.bytes.length)), `bytes at ${p.offset}`);
    next = p.offset + p.bytes.length;
    assert.ok(next <= scanned.extents[extent].offset + scanned.extents[extent].length);
  }
  assert.equal(extent, scanned.extents.length - 1);
  assert.ok(pieces.length <= 6, `whole data chunks go out as one piece each (${pieces.length} pieces)`);
  const sent = scanned.extents.map((e) => content.subarray(e.offset, e.offset + e.length));
  assert.equal(scanned.sentSha256, sha256(...sent));
  assert.equal(scanned.digest, contentDigest(size, scanned.extents, scanned.sentSha256));
  assert.match(scanned.digest, /^sparse-v1:[0-9a-f]{64}$/);
  assert.equal(await fileSha256(file, size), sha256(content));
});

test("content digest: a function of the content only — same for holes and written zeros, with or without SEEK_DATA; any change shows", async (t) => {
  const dir = tmpDir(t);
  const size = 24 * MiB;
  const data: [number, Buffer][] = [[MiB, randomBytes(300_000)], [10 * MiB + 77, randomBytes(5000)], [MIN_HOLE * 5, randomBytes(BLOCK_SIZE)]];
  const sparse = imageFile(path.join(dir, "sparse.raw"), size, data);
  const allocated = imageFile(path.join(dir, "allocated.raw"), size, data, true);
  assert.ok(fs.statSync(allocated).blocks * 512 >= size && fs.statSync(sparse).blocks * 512 < size / 2, "one file sparse, one fully allocated");
  const digest = await localContentDigest(sparse);
  assert.equal(await localContentDigest(allocated), digest);
  assert.equal(await withoutPerl(() => localContentDigest(sparse)), digest);

  const moved = imageFile(path.join(dir, "moved.raw"), size, [[MiB + BLOCK_SIZE, data[0][1]], data[1], data[2]]);
  assert.notEqual(await localContentDigest(moved), digest, "the same data elsewhere");
  const longer = imageFile(path.join(dir, "longer.raw"), size + BLOCK_SIZE, data);
  assert.notEqual(await localContentDigest(longer), digest, "more trailing zeros");
  const fd = fs.openSync(sparse, "r+");
  fs.writeSync(fd, Buffer.from([data[1][1][0] ^ 1]), 0, 1, data[1][0]);
  fs.closeSync(fd);
  assert.notEqual(await localContentDigest(sparse), digest, "one byte changed");
});

test("scanAndHash: a file that changes size while it is read is an error", async (t) => {
  const dir = tmpDir(t);
  const file = imageFile(path.join(dir, "grow.raw"), 4 * MiB, [[0, randomBytes(4 * MiB)]]);
  await assert.rejects(scanAndHash(file, 4 * MiB, async (p) => {
    if (p.offset === 0) fs.appendFileSync(file, "more");
  }), /changed size while it was read/);
});
