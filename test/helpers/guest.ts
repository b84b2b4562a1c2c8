/**
 * A real guest on the lab (docs/lab.md "The guest"): Debian's kernel with the lab's busybox
 * initramfs, booted by libvirt from `lab.guest.domainXml` under a unique name, and a client
 * for the agent its /init runs on ttyS1 (a unix socket in `lab.guest.runDir`). Tests judge
 * disks by what this guest sees: sizes, serials, bytes, and devices going away.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { cliPath, getLab, parseLabInfo, type LabGuest, type LabInfo } from "./lab";
import { tryVirsh, uniqueName, virsh } from "./local";

const execFileAsync = promisify(execFile);

export type GuestLab = LabInfo & { guest: LabGuest };

/**
 * The lab with its guest image. A lab brought up by an older lab.sh has none: then this
 * runs `gluster-libvirt lab up` (which builds it, ~2 s with the packages installed) and says
 * so on stderr; throws with `up`'s own error output when that does not work.
 */
export async function getGuestLab(): Promise<GuestLab> {
  const current = await getLab().catch(() => undefined);
  if (current?.guest) return current as GuestLab;
  process.stderr.write(`guest: ${current ? "the lab has no guest image" : "the lab is not up"}; running \`gluster-libvirt lab up\`\n`);
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(process.execPath, [cliPath, "lab", "up"], { encoding: "utf8", maxBuffer: 16 << 20, timeout: 15 * 60_000 }));
  } catch (e) {
    const err = e as { code?: unknown; stderr?: string };
    throw new Error(`guest: \`node ${cliPath} lab up\` failed (exit ${String(err.code)}); the guest tests need its guest image:\n${(err.stderr ?? String(e)).trim()}`);
  }
  const lab = parseLabInfo(stdout);
  if (!lab.guest) throw new Error(`guest: \`lab up\` printed no "guest":\n${stdout}`);
  return lab as GuestLab;
}

/** The lab's guest definition for a guest called `name` (its socket and log paths follow the name). */
export function guestDomainXml(lab: GuestLab, name: string): string {
  return fs.readFileSync(lab.guest.domainXml, "utf8").replaceAll(lab.guest.namePlaceholder, name);
}

/**
 * A copy of lab-stopped as `lab up` defined it (it boots the guest, docs/lab.md), for a guest
 * called `name`: its disks (a demo's or a user's) and uuid left out, its name replaced in
 * `<name>` and in the agent socket and console log paths. Read with root's virsh on this machine.
 */
export function labStoppedCopyXml(lab: GuestLab, name: string): string {
  const from = lab.domains.stopped;
  const xml = virsh("dumpxml", "--inactive", from);
  const run = lab.guest.runDir;
  for (const want of [`<kernel>${lab.guest.kernel}</kernel>`, `path='${run}/${from}.agent.sock'`, `path='${run}/${from}.console.log'`]) {
    if (!xml.includes(want)) throw new Error(`guest: ${from} does not boot the lab's guest (its definition lacks ${want}): run \`gluster-libvirt lab up\``);
  }
  return xml
    .replace(/\s*<disk\b[\s\S]*?<\/disk>/g, "")
    .replace(/\s*<uuid>[^<]*<\/uuid>/, "")
    .replace(`<name>${from}</name>`, `<name>${name}</name>`)
    .replaceAll(`${run}/${from}.`, `${run}/${name}.`);
}

/** A disk as the guest's kernel sees it. */
export interface GuestDisk {
  /** the kernel's name: sda, vdb, … */
  dev: string;
  /** bytes */
  size: number;
  /** the kernel has it read-only (/sys/block/NAME/ro) */
  ro: boolean;
  /** "" when the disk has none */
  serial: string;
}

/** The agent answered `err <reason>`. */
export class GuestAgentError extends Error {
  override name = "GuestAgentError";
  constructor(
    readonly request: string,
    readonly reason: string,
  ) {
    super(`guest agent: \`${request}\` failed: ${reason}`);
  }
}

function parseDisk(line: string): GuestDisk {
  const m = /^dev=(\S+) size=(\d+) ro=([01]) serial=(.*)$/.exec(line);
  if (!m) throw new Error(`guest agent: not a disk line: ${JSON.stringify(line)}`);
  return { dev: m[1], size: Number(m[2]), ro: m[3] === "1", serial: m[4] };
}

/**
 * The agent's line protocol over its socket: one request line, answered by data lines and
 * a last line `ok` or `err <reason>`. Requests go one at a time, in order.
 */
export class GuestAgent {
  private buffer = "";
  private lines: string[] = [];
  private wake: (() => void) | undefined;
  private ended: Error | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly socket: net.Socket,
    readonly socketPath: string,
  ) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      let at: number;
      while ((at = this.buffer.indexOf("\n")) >= 0) {
        this.lines.push(this.buffer.slice(0, at).replace(/\r$/, ""));
        this.buffer = this.buffer.slice(at + 1);
      }
      this.wake?.();
    });
    const end = (why: string) => {
      this.ended ??= new Error(`guest agent: ${socketPath}: ${why}`);
      this.wake?.();
    };
    socket.on("error", (e) => end(e.message));
    socket.on("close", () => end("the connection closed (did the guest stop?)"));
  }

  /**
   * Connects and waits, up to `timeoutMs`, until the agent answers: `ping N` every half
   * second until `pong N` comes back, then one more ping, so that answers to pings still
   * queued in the guest are read before the first real request.
   */
  static async connect(socketPath: string, timeoutMs: number): Promise<GuestAgent> {
    const deadline = Date.now() + timeoutMs;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socketPath);
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
    const agent = new GuestAgent(socket, socketPath);
    try {
      let sent = 0;
      for (;;) {
        if (Date.now() >= deadline) throw new Error(`guest agent: no answer on ${socketPath} within ${timeoutMs} ms`);
        socket.write(`ping boot-${++sent}\n`);
        const line = await agent.nextLine(Math.min(deadline, Date.now() + 500));
        if (line !== undefined && /^pong boot-\d+$/.test(line)) break;
        // drain what else came in before the next ping
        while ((await agent.nextLine(Date.now())) !== undefined);
      }
      const token = `sync-${process.pid}-${Math.random().toString(36).slice(2)}`;
      socket.write(`ping ${token}\n`);
      for (;;) {
        const line = await agent.nextLine(deadline);
        if (line === undefined) throw new Error(`guest agent: no answer to the sync ping on ${socketPath} within ${timeoutMs} ms`);
        if (line === `pong ${token}`) break;
      }
      if ((await agent.nextLine(deadline)) !== "ok") throw new Error("guest agent: the sync ping was not answered with ok");
      return agent;
    } catch (e) {
      agent.close();
      throw e;
    }
  }

  /** The next whole line, or undefined once `deadline` (ms since the epoch) has passed. */
  private async nextLine(deadline: number): Promise<string | undefined> {
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      if (this.ended) throw this.ended;
      const wait = deadline - Date.now();
      if (wait <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Sends one request; resolves to its data lines, throws GuestAgentError on `err`. */
  request(line: string, timeoutMs = 60_000): Promise<string[]> {
    if (line.includes("\n")) throw new Error("guest agent: a request is one line");
    const run = async () => {
      this.socket.write(`${line}\n`);
      const deadline = Date.now() + timeoutMs;
      const data: string[] = [];
      for (;;) {
        const got = await this.nextLine(deadline);
        if (got === undefined) throw new Error(`guest agent: no answer to \`${line}\` within ${timeoutMs} ms (so far: ${JSON.stringify(data)})`);
        if (got === "ok") return data;
        if (got.startsWith("err")) throw new GuestAgentError(line, got.slice(4));
        data.push(got);
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  async ping(): Promise<void> {
    await this.request("ping");
  }

  /** Every block device of the guest. */
  async list(): Promise<GuestDisk[]> {
    return (await this.request("list")).map(parseDisk);
  }

  /** sha256 (hex) of `length` bytes of /dev/`dev` from byte `offset`, read from the disk (not the guest's cache). */
  async sha256(dev: string, offset: number, length: number): Promise<string> {
    const [hash] = await this.request(`sha256 ${dev} ${offset} ${length}`, 120_000);
    return hash;
  }

  /** Writes `bytes` at byte `offset` of /dev/`dev`, fsynced. Keep it small (hex on a serial line); see fill. */
  async write(dev: string, offset: number, bytes: Buffer): Promise<void> {
    await this.request(`write ${dev} ${offset} ${bytes.toString("hex")}`);
  }

  /** Writes `length` bytes of `word` + "\n" repeated (see fillPattern) at byte `offset`, fsynced. */
  async fill(dev: string, offset: number, length: number, word: string): Promise<void> {
    if (!/^\S+$/.test(word)) throw new Error(`guest agent: fill takes one word without spaces, not ${JSON.stringify(word)}`);
    await this.request(`fill ${dev} ${offset} ${length} ${word}`, 120_000);
  }

  async sync(): Promise<void> {
    await this.request("sync");
  }

  /** Waits up to `seconds` for /dev/`dev` to go away; throws GuestAgentError if it does not. */
  async waitGone(dev: string, seconds: number): Promise<void> {
    await this.request(`wait-gone ${dev} ${seconds}`, (seconds + 30) * 1000);
  }

  /** Waits up to `seconds` for a disk with this serial; throws GuestAgentError if none comes. */
  async waitPresent(serial: string, seconds: number): Promise<GuestDisk> {
    const [line] = await this.request(`wait-present ${serial} ${seconds}`, (seconds + 30) * 1000);
    return parseDisk(line);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** What `fill` writes: `word` + "\n" repeated, cut at `length` bytes. */
export function fillPattern(word: string, length: number): Buffer {
  const unit = Buffer.from(`${word}\n`);
  const out = Buffer.alloc(length);
  for (let at = 0; at < length; at += unit.length) unit.copy(out, at, 0, Math.min(unit.length, length - at));
  return out;
}

export interface Guest {
  name: string;
  agent: GuestAgent;
  agentSocket: string;
  consoleLog: string;
  /** from `virsh start` to the agent's first answer */
  bootSeconds: number;
  /** Stops and undefines the guest and removes its socket and log; fine if already gone. */
  drop(): void;
}

/** The last lines of a guest's console, for an error message. */
function consoleTail(file: string, lines = 25): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch (e) {
    return `(cannot read ${file}: ${(e as Error).message})`;
  }
}

/**
 * Defines and starts a guest on hypervisor 1 (root's virsh on this machine, as
 * cloneLabDomain does) under a unique name and waits, up to `bootTimeoutMs`, for its agent.
 * From the image's definition (`lab.guest.domainXml`), or with `copyOf: "stopped"` from
 * lab-stopped's own (labStoppedCopyXml). All or nothing: when it does not answer, the guest
 * is removed and the error carries the end of its console log. The caller drops it in an
 * `after` hook.
 */
export async function startGuest(lab: GuestLab, opts: { prefix?: string; bootTimeoutMs?: number; copyOf?: "stopped" } = {}): Promise<Guest> {
  const name = uniqueName(opts.prefix ?? "guest");
  const agentSocket = path.join(lab.guest.runDir, `${name}.agent.sock`);
  const consoleLog = path.join(lab.guest.runDir, `${name}.console.log`);
  const drop = () => {
    tryVirsh("destroy", name);
    tryVirsh("undefine", name);
    fs.rmSync(agentSocket, { force: true });
    fs.rmSync(consoleLog, { force: true });
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "guest-"));
  try {
    fs.writeFileSync(path.join(dir, "domain.xml"), opts.copyOf === "stopped" ? labStoppedCopyXml(lab, name) : guestDomainXml(lab, name));
    virsh("define", path.join(dir, "domain.xml"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const bootTimeoutMs = opts.bootTimeoutMs ?? 120_000;
  const t0 = Date.now();
  try {
    virsh("start", name);
    const agent = await GuestAgent.connect(agentSocket, bootTimeoutMs);
    return {
      name,
      agent,
      agentSocket,
      consoleLog,
      bootSeconds: (Date.now() - t0) / 1000,
      drop: () => {
        agent.close();
        drop();
      },
    };
  } catch (e) {
    const tail = consoleTail(consoleLog);
    drop();
    throw new Error(`guest ${name} did not come up: ${(e as Error).message}\nits console (${consoleLog}) ended with:\n${tail}`);
  }
}
