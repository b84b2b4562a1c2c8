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
 *  - through `virsh vol-upload --offset O` (sshd → virsh → libvirtd → file), which needs
 *    no file permissions: the fallback. Each extent is a libvirt stream of its own; small
 *    ones share one virsh process, large ones are streamed by a virsh each.
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
 * never passes through the machine running Pulumi. The URL reaches curl as a config on
 * its stdin, never on a command line (`ps` on the host would show credentials in it).
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { CommandError, displayUrl, GlusterLibvirtError, redact, urlSecrets } from "./errors";
import type { Host } from "./host";
import { type Extent, type Piece, READ_SIZE, scanAndHash, type ScannedContent } from "./localImage";

/** Largest frame of the direct writer: its bytes are held in memory until it is sent. */
const FRAME_SIZE = 16 * 1024 * 1024;
/** Through libvirt, an extent that reaches this size gets a `vol-upload` of its own. */
const STREAMED_EXTENT = 4 * 1024 * 1024;

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
    this.done.catch(() => undefined); // observed in ready()/end()
  }

  /** Buffers `chunk` whatever the backlog; `ready()` waits for it to drain. */
  queue(chunk: Buffer): void {
    this.stream.write(chunk);
  }

  /** Resolves once the backlog is below the high-water mark; rejects if the command failed. */
  async ready(): Promise<void> {
    if (this.failed) throw this.failed;
    if (this.stream.writableNeedDrain) {
      // The command may die while we wait for room: do not wait forever.
      await Promise.race([once(this.stream, "drain"), this.done.then(() => { throw new GlusterLibvirtError("the remote writer ended before its input did"); })]);
    }
  }

  async write(chunk: Buffer): Promise<void> {
    await this.ready();
    this.queue(chunk);
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
 * Writes straight into the volume's file: `dd iflag=fullblock,count_bytes` reads exactly
 * one frame; `nofollow`: as root, never write through a symlink someone put in the
 * volume's place.
 */
const DIRECT_WRITER =
  'f=$1; while read -r off len; do dd of="$f" bs=1M iflag=fullblock,count_bytes count="$len" oflag=seek_bytes,nofollow seek="$off" conv=notrunc status=none || exit 1; done';

/**
 * Writes small extents through libvirt with one `virsh` process (a virsh per extent
 * costs ~30 ms to start and connect; a `vol-upload` inside a running one a few ms).
 * Each frame: `head -c LEN` feeds a FIFO that the next `vol-upload` reads to its end;
 * then a line `frame-N`, an unknown command, which virsh reports on stderr (unbuffered,
 * unlike its stdout) once the upload is done. Any other stderr line before it is the
 * upload's error: a `vol-upload` that fails may never open the FIFO, so the waiting
 * `head` is released (the FIFO opened here) and killed. virsh cannot take the data on
 * its own stdin: it reads past a frame's end. Stdin is kept on fd 6 for `head`: a
 * background job's stdin would be /dev/null.
 */
const LIBVIRT_BATCH_WRITER = `
uri=$1 pool=$2 vol=$3
d=$(mktemp -d) || exit 1
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$d"' EXIT
mkfifo "$d/data" "$d/cmd" "$d/err" || exit 1
virsh -q -c "$uri" <"$d/cmd" 2>"$d/err" >/dev/null &
exec 3>"$d/cmd" 4<"$d/err" 6<&0
n=0
while read -r off len; do
  n=$((n+1))
  head -c "$len" <&6 >"$d/data" & h=$!
  printf "vol-upload --pool '%s' --offset %s '%s' '%s'\\nframe-%s\\n" "$pool" "$off" "$vol" "$d/data" "$n" >&3
  errors= ok=
  while read -r line <&4; do
    case $line in *"'frame-$n'") ok=1; break ;; *) errors="$errors$line\n" ;; esac
  done
  if [ -z "$ok" ] || [ -n "$errors" ]; then exec 5<>"$d/data"; printf '%b' "$errors" >&2; exit 1; fi
  wait $h || exit 1
done
`;

/** Writes pieces (contiguous runs form extents) into the volume. */
interface ExtentWriter {
  write(piece: Piece): Promise<void>;
  end(): Promise<void>;
  abort(err: Error): void;
}

/**
 * Sends the pieces to one remote writer as frames `OFFSET LENGTH\n<bytes>`. A frame's
 * length goes before its bytes, so a frame (at most FRAME_SIZE, never across extents)
 * is gathered in memory; it is handed over whole while the previous one drains, so
 * reading the file overlaps sending (at most two frames in memory).
 */
class FrameWriter implements ExtentWriter {
  private input: RemoteInput | undefined;
  private parts: Buffer[] = [];
  private start = 0;
  private length = 0;

  constructor(private readonly host: Host, private readonly writer: readonly string[]) {}

  async write(piece: Piece): Promise<void> {
    const contiguous = piece.offset === this.start + this.length;
    if (this.length > 0 && (!contiguous || this.length + piece.bytes.length > FRAME_SIZE)) await this.flush();
    if (this.length === 0) this.start = piece.offset;
    this.parts.push(piece.bytes);
    this.length += piece.bytes.length;
  }

  private async flush(): Promise<void> {
    this.input ??= new RemoteInput((stdin) => this.host.exec(this.writer, { stdin }));
    await this.input.ready();
    this.input.queue(Buffer.from(`${this.start} ${this.length}\n`));
    for (const part of this.parts) this.input.queue(part);
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

/**
 * Through libvirt (no file permissions needed). libvirt takes one upload per volume at a
 * time. Extents shorter than STREAMED_EXTENT go to the batch writer above; a longer one is
 * streamed as it is read by a `virsh vol-upload` of its own, with no frames and no
 * extra copy (the batch writer is ended first).
 */
class LibvirtWriter implements ExtentWriter {
  private batch: FrameWriter | undefined;
  private stream: RemoteInput | undefined;
  private parts: Buffer[] = [];
  private start = 0;
  private length = 0;

  constructor(private readonly target: VolumeTarget) {}

  async write(piece: Piece): Promise<void> {
    if (piece.offset !== this.start + this.length) {
      await this.endExtent();
      this.start = piece.offset;
      this.length = 0;
    }
    this.length += piece.bytes.length;
    if (this.stream) return this.stream.write(piece.bytes);
    this.parts.push(piece.bytes);
    if (this.length < STREAMED_EXTENT) return;
    await this.batch?.end();
    this.batch = undefined;
    const { host, pool, volume } = this.target;
    this.stream = new RemoteInput((stdin) => host.virsh(["vol-upload", "--pool", pool, "--offset", String(this.start), volume, "/dev/stdin"], { stdin }));
    for (const part of this.parts.splice(0)) await this.stream.write(part);
  }

  private async endExtent(): Promise<void> {
    if (this.stream) {
      await this.stream.end();
      this.stream = undefined;
    }
    if (this.parts.length === 0) return;
    const { host, pool, volume } = this.target;
    this.batch ??= new FrameWriter(host, ["bash", "-c", LIBVIRT_BATCH_WRITER, "bash", host.libvirtUri, pool, volume]);
    let at = this.start;
    for (const bytes of this.parts.splice(0)) {
      await this.batch.write({ offset: at, bytes });
      at += bytes.length;
    }
  }

  async end(): Promise<void> {
    await this.endExtent();
    await this.batch?.end();
  }

  abort(err: Error): void {
    this.stream?.abort(err);
    this.batch?.abort(err);
  }
}

/**
 * Streams a local file into an existing volume of at least its size, skipping holes.
 * On failure the volume holds partial data: the caller deletes it.
 */
export async function uploadFile(target: VolumeTarget, path: string, size: number, onProgress?: ProgressReporter): Promise<ScannedContent> {
  const writer: ExtentWriter = target.file !== undefined
    ? new FrameWriter(target.host, ["sh", "-c", DIRECT_WRITER, "sh", target.file])
    : new LibvirtWriter(target);
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

/** Shell function `hash`: sha256 of stdin as `HEX  -`; openssl where present (SHA extensions), else coreutils. */
const HASH_FN = 'hash() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r; else sha256sum; fi; }; ';

/** Extents per `virsh` invocation when reading back through libvirt (a command string must stay under 128 KiB). */
const READS_PER_VIRSH = 500;

/**
 * sha256 of the volume's bytes in `extents` (concatenated), computed on the host from
 * what it reads back: the file itself (`dd` per extent) or libvirt's `vol-download`,
 * many per `virsh` process (one libvirt connection, not one per extent). The extent
 * list arrives on stdin, so its length is not bound by the command line's. bash for
 * `pipefail`: a failed read must not hash as "empty"; a read that went missing inside
 * a virsh batch shows as a mismatch.
 */
export async function hostSha256(target: VolumeTarget, extents: readonly Extent[]): Promise<{ sha256: string; stderr: string }> {
  if (extents.length === 0) return { sha256: EMPTY_SHA256, stderr: "" };
  const read = target.file !== undefined
    ? 'f=$1; while read -r off len; do dd if="$f" bs=1M iflag=skip_bytes,count_bytes,nofollow skip="$off" count="$len" status=none </dev/null || exit 1; done'
    : 'uri=$1 pool=$2 vol=$3 n=0 cmds=; ' +
      'while read -r off len; do cmds="$cmds vol-download --pool \'$pool\' --offset $off --length $len \'$vol\' /dev/stdout;"; n=$((n+1)); ' +
      `if [ $n -ge ${READS_PER_VIRSH} ]; then virsh -q -c "$uri" "$cmds" </dev/null || exit 1; n=0 cmds=; fi; done; ` +
      '[ -z "$cmds" ] || virsh -q -c "$uri" "$cmds" </dev/null';
  const argv = ["bash", "-o", "pipefail", "-c", `${HASH_FN}{ ${read}; } | hash`, "bash"];
  argv.push(...(target.file !== undefined ? [target.file] : [target.host.libvirtUri, target.pool, target.volume]));
  const r = await target.host.exec(argv, { stdin: extents.map((e) => `${e.offset} ${e.length}\n`).join("") });
  const hash = /^[0-9a-f]{64}\b/.exec(r.stdout.trim());
  if (!hash) throw new GlusterLibvirtError(`hashing on ${target.host.label} printed no sha256`, { details: r.stdout });
  return { sha256: hash[0], stderr: r.stderr };
}

/** Upload, then have the host prove it holds what was sent. */
export async function uploadAndVerify(target: VolumeTarget, path: string, size: number, onProgress?: ProgressReporter): Promise<ScannedContent> {
  const result = await uploadFile(target, path, size, onProgress);
  const onHost = await hostSha256(target, result.extents);
  if (onHost.sha256 !== result.sentSha256) {
    throw new GlusterLibvirtError(
      `upload of ${path} to ${target.pool}/${target.volume} on ${target.host.label} is corrupt (or the file changed meanwhile): the host read back sha256 ${onHost.sha256}, the file has ${result.sentSha256}`,
      { details: onHost.stderr || undefined },
    );
  }
  return result;
}

/**
 * A curl config (`curl -K`) that names `url`: a double-quoted value where `\\` and `"`
 * are escaped (curl's config syntax). The URL schema refuses whitespace and control
 * characters, so no other escape is needed; they are refused here too.
 */
export function curlConfig(url: string): string {
  if (/[\x00-\x1f\x7f]/.test(url)) throw new GlusterLibvirtError("a download URL cannot contain control characters");
  return `url = "${url.replace(/[\\"]/g, (c) => `\\${c}`)}"\n`;
}

/**
 * The host downloads `url` into the volume (`curl -K - | virsh vol-upload`). The URL
 * (which may carry credentials, see hasUrlCredentials) is handed to curl as a config on
 * stdin: it is in no argv on either machine. virsh reads curl's output through the
 * pipe, so stdin is curl's alone. Errors are redacted of the URL's credentials.
 */
export async function downloadToVolume(target: VolumeTarget, url: string): Promise<void> {
  const protocols = "=http,https,ftp,ftps";
  const script = `curl -fsSL --proto ${protocols} --proto-redir ${protocols} -K - | virsh -q -c "$1" vol-upload --pool "$2" "$3" /dev/stdin`;
  try {
    await target.host.exec(["bash", "-o", "pipefail", "-c", script, "bash", target.host.libvirtUri, target.pool, target.volume], { stdin: curlConfig(url) });
  } catch (err) {
    const secrets = urlSecrets(url);
    const stderr = err instanceof CommandError ? redact(err.stderr, secrets).trimEnd() : "";
    // A new error without `cause`: nothing of the original travels unredacted.
    throw new GlusterLibvirtError(`downloading ${displayUrl(url)} on ${target.host.label} failed: ${redact((err as Error).message, secrets)}`, {
      details: stderr ? `stderr:\n${stderr}` : undefined,
    });
  }
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
