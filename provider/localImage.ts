/**
 * Reading a local image file for upload: which bytes to send, and digests of them.
 *
 * Holes are found without reading them: the kernel's SEEK_DATA/SEEK_HOLE, asked through
 * `perl` (Node has no lseek; perl is on Debian/Ubuntu as perl-base and on macOS). Where
 * that fails — no perl, a filesystem or OS without it — every byte is read. Data regions
 * are read in 1 MiB chunks and all-zero 64 KiB blocks inside them are skipped as well,
 * so the bytes sent depend on the content only, never on how the file is allocated.
 *
 * Content digest (`sparse-v1:<hex>`): the sha256 of a short text naming the file's size,
 * its extents (the ranges sent) and the sha256 of the extents' bytes. Two files with the
 * same content have the same digest; any changed byte changes it. It costs a hash of the
 * data only — a whole-file sha256 of a 4 GiB image with 64 MiB of data hashes 4 GiB.
 * The extents follow from BLOCK_SIZE and MIN_HOLE: they are part of "v1", and changing
 * them changes every digest (and so replaces uploaded volumes on the next `up`).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { type FileHandle, open, stat } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { GlusterLibvirtError } from "./errors";

/** Granularity of zero detection. */
export const BLOCK_SIZE = 64 * 1024;
/** Zero runs shorter than this inside data are sent rather than skipped. */
export const MIN_HOLE = 4 * 1024 * 1024;
/** Read size; the largest piece the scan yields. */
export const READ_SIZE = 1024 * 1024;
const ZERO_READ = Buffer.alloc(READ_SIZE);

/** A byte range of the file. */
export interface Extent {
  offset: number;
  length: number;
}

/** Bytes to send, and where they go. */
export interface Piece {
  offset: number;
  bytes: Buffer;
}

/**
 * Decides, block by block, what is sent. Pure bookkeeping, no I/O: `feed` returns
 * what to do with the block, so the scan can be tested without hosts.
 */
export class ExtentPlanner {
  readonly extents: Extent[] = [];
  private open: Extent | undefined;
  /** zero bytes seen since the last data byte of the open extent */
  private pendingZeros = 0;

  constructor(private readonly minHole = MIN_HOLE) {}

  /**
   * A block at `offset` (blocks arrive in order, contiguous). Returns whether the block
   * is sent and how many zero bytes ("zeros", a short hole) go before it. A block sent
   * after a long enough hole starts a new extent.
   */
  feed(offset: number, length: number, isZero: boolean): { zeros?: number; send: boolean } {
    if (isZero) {
      if (!this.open) return { send: false };
      this.pendingZeros += length;
      if (this.pendingZeros >= this.minHole) this.close();
      return { send: false };
    }
    if (!this.open) {
      this.open = { offset, length };
      this.extents.push(this.open);
      return { send: true };
    }
    const zeros = this.pendingZeros;
    this.open.length += zeros + length;
    this.pendingZeros = 0;
    return zeros ? { zeros, send: true } : { send: true };
  }

  /** End of file: trailing zeros are never sent (the file already has its full size). */
  finish(): void {
    this.close();
  }

  private close(): void {
    this.open = undefined;
    this.pendingZeros = 0;
  }
}

// lseek's whence values: SEEK_DATA/SEEK_HOLE are 3/4 on Linux and the BSDs, 4/3 on macOS.
const WHENCE = process.platform === "darwin" ? ["4", "3"] : ["3", "4"];
const REGIONS_PL = `
my ($file, $size, $data, $hole) = @ARGV;
open(my $f, "<", $file) or die "$!\\n";
for (my $pos = 0; $pos < $size; ) {
  my $d = sysseek($f, $pos, $data);
  if (!defined $d) { exit 0 if $!{ENXIO}; die "$!\\n"; }
  my $h = sysseek($f, $d, $hole);
  die "$!\\n" unless defined $h;
  print $d + 0, " ", ($h > $size ? $size : $h + 0), "\\n";
  $pos = $h;
}`;

/**
 * The ranges of a local file that may hold data, in order: the filesystem's own view
 * (SEEK_DATA/SEEK_HOLE), or the whole file when that cannot be asked.
 */
export async function dataRegions(path: string, size: number): Promise<Extent[]> {
  const whole = size > 0 ? [{ offset: 0, length: size }] : [];
  const st = await stat(path);
  if (size === 0 || process.platform === "win32" || st.blocks * 512 >= size) return whole; // nothing to skip
  const listed = await new Promise<string | undefined>((done) => {
    execFile("perl", ["-e", REGIONS_PL, path, String(size), ...WHENCE], { maxBuffer: 1 << 28, timeout: 60_000 }, (err, stdout) => done(err ? undefined : stdout));
  });
  if (listed === undefined) return whole;
  const regions: Extent[] = [];
  for (const line of listed.split("\n")) {
    const m = /^(\d+) (\d+)$/.exec(line);
    if (m) regions.push({ offset: Number(m[1]), length: Number(m[2]) - Number(m[1]) });
    else if (line !== "") return whole;
  }
  return regions;
}

/** Fills `buf` from `pos` unless the file ends first; returns the bytes read. */
async function readFull(fh: FileHandle, buf: Buffer, pos: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/**
 * The pieces of a read chunk and whether each is all zeros: a chunk of zeros is one
 * piece, one memcmp; anything else is cut into BLOCK_SIZE blocks.
 */
function* blocksOf(chunk: Buffer): Generator<[number, number, boolean]> {
  if (chunk.equals(ZERO_READ.subarray(0, chunk.length))) {
    yield [0, chunk.length, true];
    return;
  }
  for (let at = 0; at < chunk.length; at += BLOCK_SIZE) {
    const end = Math.min(at + BLOCK_SIZE, chunk.length);
    yield [at, end - at, chunk.subarray(at, end).equals(ZERO_READ.subarray(0, end - at))];
  }
}

/** Zeros to send, in pieces of at most READ_SIZE. */
function* zeroPieces(offset: number, length: number): Generator<Piece> {
  for (let at = 0; at < length; at += READ_SIZE) yield { offset: offset + at, bytes: ZERO_READ.subarray(0, Math.min(READ_SIZE, length - at)) };
}

/**
 * The bytes to send of a local file of `size` bytes, in order: contiguous pieces form
 * an extent; `planner.extents` lists them once the scan is done. Regions the filesystem
 * reports as holes are not read. Fails if the file's size is not `size`.
 */
export async function* scanFile(path: string, size: number, planner: ExtentPlanner): AsyncGenerator<Piece> {
  const regions = await dataRegions(path, size);
  const fh = await open(path, "r");
  try {
    let offset = 0; // everything before has been fed to the planner
    for (const region of regions) {
      const start = Math.max(offset, Math.floor(region.offset / BLOCK_SIZE) * BLOCK_SIZE);
      const end = Math.min(size, Math.ceil((region.offset + region.length) / BLOCK_SIZE) * BLOCK_SIZE);
      if (start >= end) continue;
      if (start > offset) planner.feed(offset, start - offset, true); // a hole: zeros, not read
      for (let pos = start; pos < end; ) {
        const chunk = Buffer.allocUnsafe(Math.min(READ_SIZE, end - pos));
        const got = await readFull(fh, chunk, pos);
        if (got < chunk.length) break; // shrank: reported below
        let run = -1; // start of the current run of sent blocks in `chunk`
        for (const [at, length, isZero] of blocksOf(chunk)) {
          const step = planner.feed(pos + at, length, isZero);
          if (run >= 0 && (!step.send || step.zeros)) {
            yield { offset: pos + run, bytes: chunk.subarray(run, at) };
            run = -1;
          }
          if (step.zeros) yield* zeroPieces(pos + at - step.zeros, step.zeros);
          if (step.send && run < 0) run = at;
        }
        if (run >= 0) yield { offset: pos + run, bytes: chunk.subarray(run) };
        pos += chunk.length;
      }
      offset = end;
    }
    if (offset < size) planner.feed(offset, size - offset, true);
    planner.finish();
    const now = (await fh.stat()).size;
    if (now !== size) throw new GlusterLibvirtError(`${path} changed size while it was read (${size} bytes before, ${now} now)`);
  } finally {
    await fh.close();
  }
}

const HASH_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const hash = require("node:crypto").createHash("sha256");
const buf = Buffer.allocUnsafe(1 << 20);
const fd = fs.openSync(workerData.path, "r");
parentPort.on("message", (range) => {
  if (range === null) {
    fs.closeSync(fd);
    parentPort.postMessage(hash.digest("hex"));
    parentPort.close();
    return;
  }
  const [offset, length] = range;
  for (let pos = offset, end = offset + length; pos < end; ) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
    if (n === 0) throw new Error("file ended before " + end + " bytes");
    hash.update(buf.subarray(0, n));
    pos += n;
  }
});
`;

/** Coalesce contiguous ranges up to this size before handing them to the worker. */
const HASH_BATCH = 8 * 1024 * 1024;

/**
 * sha256 of ranges of a local file, in the order added, computed by a worker thread
 * reading the file itself: hashing never competes with ssh2's encryption on the main
 * thread, and a file changed meanwhile shows as a mismatch with what was sent.
 */
export class RangeHasher {
  private readonly worker: Worker;
  private readonly result: Promise<string>;
  private pending: Extent | undefined;

  constructor(private readonly path: string) {
    this.worker = new Worker(HASH_WORKER, { eval: true, workerData: { path } });
    this.result = new Promise((resolve, reject) => {
      this.worker.once("message", resolve);
      this.worker.once("error", reject);
      this.worker.once("exit", (code) => reject(new GlusterLibvirtError(`hashing ${path} stopped (exit ${code})`)));
    });
    this.result.catch(() => undefined); // reported by digest()
  }

  add(offset: number, length: number): void {
    const p = this.pending;
    if (p && p.offset + p.length === offset && p.length < HASH_BATCH) {
      p.length += length;
      return;
    }
    if (p) this.worker.postMessage([p.offset, p.length]);
    this.pending = { offset, length };
  }

  async digest(): Promise<string> {
    if (this.pending) this.worker.postMessage([this.pending.offset, this.pending.length]);
    this.pending = undefined;
    this.worker.postMessage(null);
    try {
      return await this.result;
    } catch (err) {
      throw new GlusterLibvirtError(`cannot hash ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  stop(): void {
    void this.worker.terminate();
  }
}

/** sha256 of a whole local file of `size` bytes, holes included. */
export async function fileSha256(path: string, size: number): Promise<string> {
  const hasher = new RangeHasher(path);
  if (size > 0) hasher.add(0, size);
  return hasher.digest();
}

/** What a scan learned about a local file. */
export interface ScannedContent {
  size: number;
  /** the ranges sent */
  extents: Extent[];
  /** sha256 of the extents' bytes, concatenated (what the host must read back) */
  sentSha256: string;
  /** `sparse-v1:<hex>`: the content digest (see the module comment) */
  digest: string;
}

export function contentDigest(size: number, extents: readonly Extent[], sentSha256: string): string {
  const text = ["gluster-libvirt sparse content v1", `size ${size}`, ...extents.map((e) => `extent ${e.offset} ${e.length}`), `data ${sentSha256}`].join("\n");
  return `sparse-v1:${createHash("sha256").update(text).digest("hex")}`;
}

/**
 * Scans a local file of `size` bytes, handing each piece to `send` (in order, awaited)
 * while a worker hashes the same ranges; returns the extents and digests.
 */
export async function scanAndHash(path: string, size: number, send?: (piece: Piece) => Promise<void>): Promise<ScannedContent> {
  const planner = new ExtentPlanner();
  const hasher = new RangeHasher(path);
  try {
    for await (const piece of scanFile(path, size, planner)) {
      hasher.add(piece.offset, piece.bytes.length);
      await send?.(piece);
    }
  } catch (err) {
    hasher.stop();
    throw err;
  }
  const sentSha256 = await hasher.digest();
  return { size, extents: planner.extents, sentSha256, digest: contentDigest(size, planner.extents, sentSha256) };
}

/** The content digest of a local file (diff: has it changed?). */
export async function localContentDigest(path: string): Promise<string> {
  return (await scanAndHash(path, (await stat(path)).size)).digest;
}
