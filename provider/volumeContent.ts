/**
 * Putting bytes into a volume that already exists, and proving they arrived.
 *
 * Upload of a local file: one pass over the file, in 64 KiB blocks; all-zero blocks
 * are not sent. The content sha256 is computed by a worker thread reading the file in
 * parallel, so hashing does not compete with ssh2's encryption on the main thread. Runs of data become *extents*, each
 * streamed over the pooled SSH connection into a file that was created sparse at its
 * full size, so what is skipped reads back as zeros. Each extent is written either
 *  - straight into the volume's file on the pool's FUSE mount (`dd … conv=notrunc`),
 *    when the connection may write that file (root, `sudo: true`, or its owner): the
 *    bytes go sshd → dd → FUSE, one copy fewer than through libvirt; or
 *  - by `virsh vol-upload --offset O` (sshd → virsh → libvirtd → file), which needs
 *    no file permissions: the fallback.
 * Holes shorter than MIN_HOLE are sent as zeros: a new extent costs a remote process
 * (and for vol-upload a libvirt stream, ~50 ms), more than a few MiB of zeros. Node
 * cannot SEEK_DATA/SEEK_HOLE, so holes are found by reading them (fast: the kernel
 * returns zeros without touching a disk), and the sha256 covers every byte.
 *
 * Verification: the host reads back every extent it was sent — from the file when it
 * may read it, else through libvirt (`vol-download`) — and hashes them with
 * `openssl dgst -sha256` (SHA extensions: ~5x coreutils' `sha256sum` here; `sha256sum`
 * where there is no openssl); that must equal the hash of the bytes we sent. Holes are
 * zero by construction.
 *
 * Download of a URL: the hypervisor runs `curl | virsh vol-upload` itself; the data
 * never passes through the machine running Pulumi.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { PassThrough } from "node:stream";
import { Worker } from "node:worker_threads";
import { GlusterLibvirtError } from "./errors";
import type { Host } from "./host";

/** Granularity of hole detection. */
export const BLOCK_SIZE = 64 * 1024;
/** Zero runs shorter than this inside data are sent rather than skipped. */
export const MIN_HOLE = 4 * 1024 * 1024;
const READ_SIZE = 1024 * 1024;
const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
const ZERO_READ = Buffer.alloc(READ_SIZE);

/** A byte range of the image that was written. */
export interface Extent {
  offset: number;
  length: number;
}

/** Where content goes: a volume in a (netfs) pool. */
export interface VolumeTarget {
  host: Host;
  pool: string;
  volume: string;
  /** the volume's file on the host's FUSE mount, when this connection may read and write it directly */
  file?: string;
}

/**
 * The volume's file when the connection may read and write it (as root, through sudo,
 * or as its owner): uploads then bypass libvirt's stream. Undefined otherwise.
 */
export async function directFile(host: Host, path: string | undefined): Promise<string | undefined> {
  if (!path?.startsWith("/")) return undefined; // native gluster pool: no file on the host
  const r = await host.exec(["test", "-f", path, "-a", "!", "-h", path, "-a", "-r", path, "-a", "-w", path], { check: false });
  return r.code === 0 ? path : undefined;
}

export interface UploadResult {
  /** sha256 of the whole file, holes included */
  sha256: string;
  size: number;
  /** the ranges sent (what the host verifies) */
  extents: Extent[];
}

export type ProgressReporter = (bytesRead: number, totalBytes: number) => void;

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
   * A block at `offset` (blocks arrive in order, contiguous). Returns the actions:
   * "start" a new extent here, then "zeros" bytes to send before this block, and
   * whether the block itself is sent; or "end" the open extent (a hole is long enough).
   */
  feed(offset: number, length: number, isZero: boolean): { end?: boolean; start?: boolean; zeros?: number; send: boolean } {
    if (isZero) {
      if (!this.open) return { send: false };
      this.pendingZeros += length;
      if (this.pendingZeros < this.minHole) return { send: false };
      this.close();
      return { end: true, send: false };
    }
    if (!this.open) {
      this.open = { offset, length };
      this.extents.push(this.open);
      return { start: true, send: true };
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

/** The remote command that writes one extent from its stdin. */
function writeExtent(target: VolumeTarget, offset: number, stdin: PassThrough): Promise<unknown> {
  if (target.file !== undefined) {
    // iflag=fullblock: whole 1 MiB writes into FUSE whatever the pipe hands dd.
    // nofollow: as root, never write through a symlink someone put in the volume's place.
    const dd = ["dd", `of=${target.file}`, "bs=1M", "iflag=fullblock", "oflag=seek_bytes,nofollow", `seek=${offset}`, "conv=notrunc", "status=none"];
    return target.host.exec(dd, { stdin });
  }
  return target.host.virsh(["vol-upload", "--pool", target.pool, "--offset", String(offset), target.volume, "/dev/stdin"], { stdin });
}

/** One extent's remote writer in flight, fed through a stream with backpressure. */
class ExtentStream {
  private readonly stream = new PassThrough({ highWaterMark: READ_SIZE });
  private readonly done: Promise<unknown>;
  private failed: unknown;

  constructor(target: VolumeTarget, offset: number) {
    this.done = writeExtent(target, offset, this.stream)
      .catch((err: unknown) => {
        this.failed = err;
        throw err;
      });
    this.done.catch(() => undefined); // observed in write()/end()
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    if (!this.stream.write(chunk)) {
      // The upload may die while we wait for room: do not wait forever.
      await Promise.race([once(this.stream, "drain"), this.done.then(() => { throw new GlusterLibvirtError("vol-upload ended before its input did"); })]);
    }
  }

  async end(): Promise<void> {
    this.stream.end();
    await this.done;
  }

  abort(err: Error): void {
    this.stream.destroy(err);
  }
}

/**
 * The pieces of a read chunk and whether each is all zeros: a chunk of zeros (the bulk
 * of a sparse file) is one piece, one memcmp; anything else is cut into BLOCK_SIZE blocks.
 */
function* piecesOf(chunk: Buffer): Generator<[Buffer, boolean]> {
  if (chunk.length <= READ_SIZE && chunk.equals(ZERO_READ.subarray(0, chunk.length))) {
    yield [chunk, true];
    return;
  }
  for (let at = 0; at < chunk.length; at += BLOCK_SIZE) {
    const block = chunk.subarray(at, Math.min(at + BLOCK_SIZE, chunk.length));
    yield [block, isZeroBlock(block)];
  }
}

function isZeroBlock(block: Buffer): boolean {
  return block.length === BLOCK_SIZE ? block.equals(ZERO_BLOCK) : block.equals(ZERO_BLOCK.subarray(0, block.length));
}

const HASH_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const hash = require("node:crypto").createHash("sha256");
const buf = Buffer.allocUnsafe(1 << 20);
const fd = fs.openSync(workerData.path, "r");
try {
  const ranges = workerData.ranges ?? [{ offset: 0, length: Infinity }];
  for (const { offset, length } of ranges) {
    for (let pos = offset, end = offset + length; pos < end; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
      if (n === 0) {
        if (length === Infinity) break;
        throw new Error("file ended before " + end + " bytes");
      }
      hash.update(buf.subarray(0, n));
      pos += n;
    }
  }
} finally {
  fs.closeSync(fd);
}
parentPort.postMessage(hash.digest("hex"));
`;

/** sha256 of a local file, or of the concatenation of `ranges` of it, computed on a worker thread. */
export function fileSha256(path: string, ranges?: readonly Extent[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(HASH_WORKER, { eval: true, workerData: { path, ranges } });
    worker.once("message", resolve);
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new GlusterLibvirtError(`hashing ${path} stopped (exit ${code})`)));
  });
}

/**
 * Streams a local file into an existing volume of at least its size, skipping holes.
 * On failure the volume holds partial data: the caller deletes it.
 */
export async function uploadFile(target: VolumeTarget, path: string, expectedSize: number, onProgress?: ProgressReporter): Promise<UploadResult> {
  const whole = fileSha256(path);
  whole.catch(() => undefined); // awaited below, unless the upload fails first
  const planner = new ExtentPlanner();
  let current: ExtentStream | undefined;
  let offset = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: READ_SIZE })) {
      for (const [block, isZero] of piecesOf(chunk as Buffer)) {
        const step = planner.feed(offset, block.length, isZero);
        if (step.end) {
          await current!.end();
          current = undefined;
        }
        if (step.start) current = new ExtentStream(target, offset);
        for (let z = step.zeros ?? 0; z > 0; z -= READ_SIZE) await current!.write(ZERO_READ.subarray(0, Math.min(z, READ_SIZE)));
        if (step.send) await current!.write(block);
        offset += block.length;
      }
      onProgress?.(offset, expectedSize);
    }
    planner.finish();
    await current?.end();
  } catch (err) {
    current?.abort(err as Error);
    throw err;
  }
  if (offset !== expectedSize) {
    throw new GlusterLibvirtError(`${path} changed size while it was uploaded (${expectedSize} bytes before, ${offset} read)`);
  }
  return { sha256: await whole, size: offset, extents: planner.extents };
}

/** sha256 of the empty string: what a file with no data extents sends. */
const EMPTY_SHA256 = createHash("sha256").digest("hex");

/** The libvirt URI the host's virsh uses, for commands that run virsh inside a pipeline. */
async function libvirtUri(host: Host): Promise<string> {
  return (await host.virsh(["uri"])).trim();
}

/** Shell function `hash`: sha256 of stdin as `HEX  -`; openssl where present (SHA extensions), else coreutils. */
const HASH_FN = 'hash() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r; else sha256sum; fi; }; ';

/**
 * sha256 of the volume's bytes in `extents` (concatenated), computed on the host from
 * what it reads back: the file itself (direct targets) or libvirt's `vol-download`.
 * bash for `pipefail`: a failed read must not hash as "empty".
 */
export async function hostSha256(target: VolumeTarget, extents: readonly Extent[]): Promise<string> {
  if (extents.length === 0) return EMPTY_SHA256;
  const read = target.file !== undefined
    ? 'f=$1; shift; while [ $# -gt 0 ]; do dd if="$f" bs=1M iflag=skip_bytes,count_bytes,nofollow skip="$1" count="$2" status=none || exit 1; shift 2; done'
    : 'uri=$1 pool=$2 vol=$3; shift 3; while [ $# -gt 0 ]; do virsh -q -c "$uri" vol-download --pool "$pool" --offset "$1" --length "$2" "$vol" /dev/stdout || exit 1; shift 2; done';
  const argv = ["bash", "-o", "pipefail", "-c", `${HASH_FN}${read} | hash`, "bash"];
  argv.push(...(target.file !== undefined ? [target.file] : [await libvirtUri(target.host), target.pool, target.volume]));
  for (const e of extents) argv.push(String(e.offset), String(e.length));
  const r = await target.host.exec(argv);
  const hash = /^[0-9a-f]{64}\b/.exec(r.stdout.trim());
  if (!hash) throw new GlusterLibvirtError(`hashing on ${target.host.label} printed no sha256`, { details: r.stdout });
  return hash[0];
}

/** Upload, then have the host prove it holds what was sent. */
export async function uploadAndVerify(target: VolumeTarget, path: string, size: number, onProgress?: ProgressReporter): Promise<UploadResult> {
  const result = await uploadFile(target, path, size, onProgress);
  const { extents } = result;
  const wholeFile = extents.length === 1 && extents[0].offset === 0 && extents[0].length === size;
  // Both sides hash the same ranges at once: the host from the volume, we from the file.
  const [onHost, sent] = await Promise.all([hostSha256(target, extents), wholeFile ? result.sha256 : fileSha256(path, extents)]);
  if (onHost !== sent) {
    throw new GlusterLibvirtError(`upload of ${path} to ${target.pool}/${target.volume} on ${target.host.label} is corrupt (or the file changed meanwhile): the host read back sha256 ${onHost}, the file has ${sent}`);
  }
  return result;
}

/**
 * The host downloads `url` into the volume (`curl -fsSL URL | virsh vol-upload`). The
 * URL is a positional argument of the script, never part of its text.
 */
export async function downloadToVolume(target: VolumeTarget, url: string): Promise<void> {
  const script = 'curl -fsSL --proto =http,https,ftp,ftps "$1" | virsh -q -c "$2" vol-upload --pool "$3" "$4" /dev/stdin';
  await target.host.exec(["bash", "-o", "pipefail", "-c", script, "bash", url, await libvirtUri(target.host), target.pool, target.volume]);
}

/**
 * Extends a file to `length` by writing zeros at its end through libvirt (no file
 * permissions needed). Used to pad qcow2 files to 512 bytes for libgfapi.
 */
export async function appendZeros(target: VolumeTarget, at: number, length: number): Promise<void> {
  await target.host.virsh(["vol-upload", "--pool", target.pool, "--offset", String(at), "--length", String(length), target.volume, "/dev/stdin"], {
    stdin: Buffer.alloc(length),
  });
}
