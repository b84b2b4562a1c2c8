/**
 * Putting bytes into a volume that already exists, and proving they arrived.
 *
 * Upload of a local file: `scanAndHash` (localImage.ts) yields the bytes to send — holes
 * and all-zero blocks skipped — grouped in extents, into a file that was created sparse
 * at its full size, so what is skipped reads back as zeros. The bytes go either
 *  - straight into the volume's file on the pool's FUSE mount, when the connection may
 *    write that file (root, `sudo: true`, or its owner): one remote shell for the whole
 *    upload reads frames `OFFSET LENGTH\n<bytes>` and runs `dd … seek=OFFSET count=LENGTH`
 *    for each (sshd → dd → FUSE, one copy fewer than through libvirt); or
 *  - by `virsh vol-upload --offset O` per extent (sshd → virsh → libvirtd → file), which
 *    needs no file permissions: the fallback. Each extent is a libvirt stream, ~30 ms.
 * Holes shorter than MIN_HOLE are sent as zeros: a new extent costs a remote process
 * (and for vol-upload a libvirt stream), more than a few MiB of zeros.
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
import { PassThrough } from "node:stream";
import { GlusterLibvirtError } from "./errors";
import type { Host } from "./host";
import { type Extent, type Piece, READ_SIZE, scanAndHash, type ScannedContent } from "./localImage";

/** Largest frame of the direct writer: its bytes are held in memory until it is sent. */
const FRAME_SIZE = 16 * 1024 * 1024;

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

export type ProgressReporter = (bytesDone: number, totalBytes: number) => void;

/** The stdin of one remote command, with backpressure; a failed command fails the next write. */
class RemoteInput {
  private readonly stream = new PassThrough({ highWaterMark: READ_SIZE });
  private readonly done: Promise<unknown>;
  private failed: unknown;

  constructor(run: (stdin: PassThrough) => Promise<unknown>) {
    this.done = run(this.stream).catch((err: unknown) => {
      this.failed = err;
      throw err;
    });
    this.done.catch(() => undefined); // observed in write()/end()
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    if (!this.stream.write(chunk)) {
      // The command may die while we wait for room: do not wait forever.
      await Promise.race([once(this.stream, "drain"), this.done.then(() => { throw new GlusterLibvirtError("the remote writer ended before its input did"); })]);
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

/** Writes pieces (contiguous runs form extents) into the volume. */
interface ExtentWriter {
  write(piece: Piece): Promise<void>;
  end(): Promise<void>;
  abort(err: Error): void;
}

/**
 * Direct: one remote shell writes every extent. A frame's length goes before its bytes,
 * so a frame (at most FRAME_SIZE, never across extents) is gathered before it is sent.
 * `dd iflag=fullblock,count_bytes` reads exactly the frame; `nofollow`: as root, never
 * write through a symlink someone put in the volume's place.
 */
class FrameWriter implements ExtentWriter {
  private static readonly SCRIPT =
    'f=$1; while read -r off len; do dd of="$f" bs=1M iflag=fullblock,count_bytes count="$len" oflag=seek_bytes,nofollow seek="$off" conv=notrunc status=none || exit 1; done';
  private input: RemoteInput | undefined;
  private parts: Buffer[] = [];
  private start = 0;
  private length = 0;

  constructor(private readonly host: Host, private readonly file: string) {}

  async write(piece: Piece): Promise<void> {
    const contiguous = piece.offset === this.start + this.length;
    if (this.length > 0 && (!contiguous || this.length + piece.bytes.length > FRAME_SIZE)) await this.flush();
    if (this.length === 0) this.start = piece.offset;
    this.parts.push(piece.bytes);
    this.length += piece.bytes.length;
  }

  private async flush(): Promise<void> {
    this.input ??= new RemoteInput((stdin) => this.host.exec(["sh", "-c", FrameWriter.SCRIPT, "sh", this.file], { stdin }));
    await this.input.write(Buffer.from(`${this.start} ${this.length}\n`));
    for (const part of this.parts) await this.input.write(part);
    this.parts = [];
    this.length = 0;
  }

  async end(): Promise<void> {
    if (this.length > 0) await this.flush();
    await this.input?.end();
  }

  abort(err: Error): void {
    this.input?.abort(err);
  }
}

/** Fallback: one `virsh vol-upload --offset` per extent, streamed as it is read. */
class VolUploadWriter implements ExtentWriter {
  private current: RemoteInput | undefined;
  private next = -1;

  constructor(private readonly target: VolumeTarget) {}

  async write(piece: Piece): Promise<void> {
    if (piece.offset !== this.next) {
      await this.current?.end();
      const { host, pool, volume } = this.target;
      const args = ["vol-upload", "--pool", pool, "--offset", String(piece.offset), volume, "/dev/stdin"];
      this.current = new RemoteInput((stdin) => host.virsh(args, { stdin }));
    }
    await this.current!.write(piece.bytes);
    this.next = piece.offset + piece.bytes.length;
  }

  async end(): Promise<void> {
    await this.current?.end();
  }

  abort(err: Error): void {
    this.current?.abort(err);
  }
}

/**
 * Streams a local file into an existing volume of at least its size, skipping holes.
 * On failure the volume holds partial data: the caller deletes it.
 */
export async function uploadFile(target: VolumeTarget, path: string, size: number, onProgress?: ProgressReporter): Promise<ScannedContent> {
  const writer: ExtentWriter = target.file !== undefined ? new FrameWriter(target.host, target.file) : new VolUploadWriter(target);
  try {
    const scanned = await scanAndHash(path, size, async (piece) => {
      await writer.write(piece);
      onProgress?.(piece.offset + piece.bytes.length, size);
    });
    await writer.end();
    return scanned;
  } catch (err) {
    writer.abort(err as Error);
    throw err;
  }
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
export async function uploadAndVerify(target: VolumeTarget, path: string, size: number, onProgress?: ProgressReporter): Promise<ScannedContent> {
  const result = await uploadFile(target, path, size, onProgress);
  const onHost = await hostSha256(target, result.extents);
  if (onHost !== result.sentSha256) {
    throw new GlusterLibvirtError(`upload of ${path} to ${target.pool}/${target.volume} on ${target.host.label} is corrupt (or the file changed meanwhile): the host read back sha256 ${onHost}, the file has ${result.sentSha256}`);
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
