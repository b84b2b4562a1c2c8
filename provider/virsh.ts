/**
 * The virsh runner. Starting `virsh` costs ~40 ms per command on the host and an exec
 * channel costs round trips, so commands without stdin are typed into a long-lived
 * `virsh -q -c URI` process (its interactive mode, reading stdin) on one exec channel.
 *
 * Delimiting a command's output in that stream (see the lab notes): after each command
 * we type `echo <END>` (a token on stdout) and `<ERR>` (a command that does not exist,
 * so virsh names it in an error on stderr). Both tokens are random per session. Every
 * line typed is echoed on stdout after the prompt; the prompt is learned when the
 * session starts. virsh reports no per-command exit status there: a command failed
 * when it printed an `error:` line.
 *
 * Commands with stdin (XML, uploads), or whose arguments the interactive tokenizer
 * cannot carry (see quote.ts), run as a one-shot `virsh` exec on the same connection.
 * Commands on one session are strictly serial and only sent once the previous one
 * finished, so if a session dies, only the command in flight is in doubt.
 */
import { randomBytes } from "node:crypto";
import { StringDecoder } from "node:string_decoder";
import type { ClientChannel } from "ssh2";
import { GlusterLibvirtError, InputError, SshError, VirshError, redact, redactArgv } from "./errors";
import { type SshConnection, closeReasons, exitStatus } from "./ssh/connections";
import { remoteCommandLine, shellCommandLine, virshSessionLine } from "./ssh/quote";

/** Sessions per runner: a slow command (pool-build, vol-clone) does not block the others. */
const MAX_SESSIONS = 3;

// ---------------------------------------------------------------------------------------
// The session transcript, as pure functions

export interface SessionMarkers {
  prompt: string;
  end: string;
  err: string;
}

/** What is typed for one command (or for the greeting, without a command). */
export function sessionInput(line: string | undefined, m: Pick<SessionMarkers, "end" | "err">): string {
  return `${line === undefined ? "" : `${line}\n`}echo ${m.end}\n${m.err}\n`;
}

/** A transcript that cannot come from virsh: the session is out of step and must go. */
export class SessionProtocolError extends GlusterLibvirtError {}

/**
 * The greeting: whatever the login shell printed, then `<prompt>echo END\nEND<prompt>ERR\n`.
 * Returns the prompt and the unread rest, or undefined while incomplete.
 */
export function takeGreeting(buf: string, end: string, err: string): { prompt: string; rest: string } | undefined {
  const anchor = `echo ${end}\n${end}`;
  const a = buf.indexOf(anchor);
  if (a < 0) return undefined;
  const b = buf.indexOf(`${err}\n`, a + anchor.length);
  if (b < 0) return undefined;
  const prompt = buf.slice(a + anchor.length, b);
  if (!prompt || prompt.includes("\n") || buf.slice(a - prompt.length, a) !== prompt) {
    throw new SessionProtocolError(`virsh session: unexpected greeting ${JSON.stringify(buf.slice(0, 200))}`);
  }
  return { prompt, rest: buf.slice(b + err.length + 1) };
}

/**
 * One command's stdout: `<prompt><echo of the line>\n<output><prompt>echo END\nEND<prompt>ERR\n`.
 * The echo of the typed line is skipped up to its newline (readline may redraw a long
 * line with `\r`, but never puts a newline in it; typed lines contain none).
 */
export function takeStdout(buf: string, m: SessionMarkers): { output: string; rest: string } | undefined {
  const tail = `${m.prompt}echo ${m.end}\n${m.end}${m.prompt}${m.err}\n`;
  const at = buf.indexOf(tail);
  if (at < 0) return undefined;
  const echoEnd = buf.indexOf("\n");
  if (!buf.startsWith(m.prompt) || echoEnd > at) {
    throw new SessionProtocolError(`virsh session: unexpected output ${JSON.stringify(buf.slice(0, 200))}`);
  }
  return { output: buf.slice(echoEnd + 1, at), rest: buf.slice(at + tail.length) };
}

/** One command's stderr: everything before the line naming the ERR token. */
export function takeStderr(buf: string, err: string): { stderr: string; rest: string } | undefined {
  const at = buf.indexOf(`'${err}'`);
  const nl = at < 0 ? -1 : buf.indexOf("\n", at);
  if (nl < 0) return undefined;
  return { stderr: buf.slice(0, buf.lastIndexOf("\n", at) + 1), rest: buf.slice(nl + 1) };
}

/** virsh prints `error: …` for every failure (messages are pinned to English). */
export function sessionCommandFailed(stderr: string): boolean {
  return /^error: /m.test(stderr);
}

// ---------------------------------------------------------------------------------------
// One live session

interface Pending {
  end: string;
  err: string;
  greeting: boolean;
  stdout?: string;
  stderr?: string;
  resolve: (r: { stdout: string; stderr: string }) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

class VirshSession {
  state: "starting" | "idle" | "busy" | "dead" = "starting";
  private out = "";
  private err = "";
  private prompt = "";
  private pending: Pending | undefined;
  private channel: ClientChannel | undefined;
  private readonly id = randomBytes(4).toString("hex");
  private seq = 0;

  constructor(private readonly label: string) {}

  async start(conn: SshConnection, commandLine: string, timeoutMs: number): Promise<void> {
    const channel = (this.channel = await conn.openChannel(commandLine));
    // Closed (runner closed, aborted) while the channel was opening: give the channel back.
    if (this.state === "dead") {
      channel.close();
      throw new SshError("connection-lost", this.label, "virsh session was closed while starting");
    }
    const outText = new StringDecoder("utf8");
    const errText = new StringDecoder("utf8");
    channel.on("data", (d: Buffer) => ((this.out += outText.write(d)), this.pump()));
    channel.stderr.on("data", (d: Buffer) => ((this.err += errText.write(d)), this.pump()));
    channel.on("close", () => this.die());
    await this.send(undefined, timeoutMs);
    this.state = "idle";
  }

  /** Type one line (already quoted for virsh) and wait for its output. */
  run(line: string, timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
    this.state = "busy";
    return this.send(line, timeoutMs).finally(() => {
      if (this.state === "busy") this.state = "idle";
    });
  }

  private send(line: string | undefined, timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
    const channel = this.channel;
    if (!channel || this.state === "dead") return Promise.reject(new SshError("connection-lost", this.label, "virsh session is closed"));
    const n = this.seq++;
    const markers = { end: `glv_end_${this.id}_${n}`, err: `glv_err_${this.id}_${n}` };
    return new Promise((resolve, reject) => {
      const p: Pending = { ...markers, greeting: line === undefined, resolve, reject };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          const what = line === undefined ? "virsh did not start" : "virsh command did not finish";
          this.die(new SshError("timeout", this.label, `${what} within ${timeoutMs / 1000} s; its session was closed`));
        }, timeoutMs);
      }
      this.pending = p;
      channel.write(sessionInput(line, markers));
    });
  }

  /** Consume whatever arrived for the pending command; settle it once both streams are complete. */
  private pump(): void {
    const p = this.pending;
    if (!p) return;
    try {
      if (p.stdout === undefined) {
        if (p.greeting) {
          const g = takeGreeting(this.out, p.end, p.err);
          if (g) ((this.prompt = g.prompt), (this.out = g.rest), (p.stdout = ""));
        } else {
          const s = takeStdout(this.out, { prompt: this.prompt, ...p });
          if (s) ((this.out = s.rest), (p.stdout = s.output));
        }
      }
      if (p.stderr === undefined) {
        const e = takeStderr(this.err, p.err);
        if (e) ((this.err = e.rest), (p.stderr = e.stderr));
      }
    } catch (err) {
      return this.die(err as Error);
    }
    if (p.stdout !== undefined && p.stderr !== undefined) {
      clearTimeout(p.timer);
      this.pending = undefined;
      p.resolve({ stdout: p.stdout, stderr: p.stderr });
    }
  }

  /** The session is over (channel closed, timeout, protocol error): fail what is in flight. */
  die(reason?: Error): void {
    if (this.state === "dead") return;
    const wasStarting = this.state === "starting";
    this.state = "dead";
    this.channel?.close();
    const p = this.pending;
    this.pending = undefined;
    if (!p) return;
    clearTimeout(p.timer);
    const ours = this.channel && closeReasons.get(this.channel);
    if (reason ?? ours) return p.reject((reason ?? ours)!);
    const exitCode = this.channel && exitStatus.get(this.channel)?.code;
    if (wasStarting && exitCode !== undefined) {
      // virsh exits at once when it cannot reach libvirtd: report that as the command's failure.
      return p.reject(new VirshSessionStartError(exitCode, this.err));
    }
    const what = wasStarting ? "the connection closed while virsh was starting" : "virsh session ended while a command was running; it may or may not have run";
    p.reject(new SshError("connection-lost", this.label, what, { details: this.err ? `stderr:\n${this.err}` : undefined }));
  }
}

/** virsh exited before its session was up (no libvirtd, no permission, no virsh). */
class VirshSessionStartError extends Error {
  constructor(
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super("virsh exited at start");
  }
}

// ---------------------------------------------------------------------------------------
// The runner: one per (connection, libvirt URI, sudo)

export interface VirshRunnerOptions {
  conn: SshConnection;
  libvirtUri: string;
  sudo: boolean;
  commandTimeoutMs: number;
  /** Bound for a session's start (virsh reaching libvirtd): the command timeout, or its default when that is 0. */
  startTimeoutMs: number;
  /** For messages: `user@host:port`. */
  target: string;
  /** Strings to redact from every message. */
  secrets: readonly string[];
}

interface Job {
  args: readonly string[];
  line: string;
  resolve: (stdout: string) => void;
  reject: (err: Error) => void;
}

/** virsh command names; anything else in args[0] would be a global option we do not allow. */
const COMMAND_NAME = /^[a-z][a-z0-9-]*$/;

export class VirshRunner {
  private sessions: VirshSession[] = [];
  private queue: Job[] = [];

  constructor(private readonly o: VirshRunnerOptions) {
    // Another caller needs a channel and none is free: idle sessions give theirs back.
    o.conn.onPressure(() => {
      for (const s of this.sessions) if (s.state === "idle") s.die();
    });
    // (Sessions that become idle while callers still wait give theirs back in dispatch.)
  }

  private argv(args: readonly string[]): string[] {
    return ["virsh", "-q", "-c", this.o.libvirtUri, ...args];
  }

  /** The command line for messages: quoted, secret flags and known secrets redacted. */
  describe(args: readonly string[]): string {
    return redact(shellCommandLine(redactArgv(this.argv(args))), this.o.secrets);
  }

  private failure(args: readonly string[], exitCode: number, stderr: string): VirshError {
    return new VirshError(this.describe(args), exitCode, redact(stderr, this.o.secrets), { target: this.o.target });
  }

  /** `virsh -c URI args…` → stdout; a failure throws a classified VirshError. */
  async run(args: readonly string[], opts: { stdin?: string | Buffer | NodeJS.ReadableStream; onProgress?: (n: number) => void } = {}): Promise<string> {
    if (args.length === 0 || !COMMAND_NAME.test(args[0])) {
      throw new InputError("virsh args", `must start with a virsh command name, got ${JSON.stringify(args[0] ?? "")}`);
    }
    // `/dev/stdin` as an argument means the command reads our stream: never inside a session.
    const line = opts.stdin === undefined && !args.includes("/dev/stdin") ? virshSessionLine(args) : undefined;
    if (line === undefined) return this.oneShot(args, opts);
    return this.o.conn.busy(
      () =>
        new Promise<string>((resolve, reject) => {
          this.queue.push({ args, line, resolve, reject });
          this.dispatch();
        }),
    );
  }

  private async oneShot(args: readonly string[], opts: { stdin?: string | Buffer | NodeJS.ReadableStream; onProgress?: (n: number) => void }): Promise<string> {
    const r = await this.o.conn.exec(remoteCommandLine(this.argv(args), { sudo: this.o.sudo }), {
      stdin: opts.stdin as never,
      onProgress: opts.onProgress,
      timeoutMs: this.o.commandTimeoutMs,
    });
    if (r.code !== 0) throw this.failure(args, r.code, r.stderr);
    return r.stdout;
  }

  private dispatch(): void {
    this.sessions = this.sessions.filter((s) => s.state !== "dead");
    this.yieldIdleChannels();
    for (;;) {
      const job = this.queue[0];
      if (!job) return;
      this.sessions = this.sessions.filter((s) => s.state !== "dead");
      const idle = this.sessions.find((s) => s.state === "idle");
      if (idle) {
        this.queue.shift();
        void this.runJob(idle, job);
        continue;
      }
      const starting = this.sessions.filter((s) => s.state === "starting").length;
      // Grow only into free channels, keeping one for one-shot execs.
      const canGrow = this.sessions.length === 0 || (this.sessions.length < MAX_SESSIONS && this.o.conn.freeChannels() > 1);
      if (starting >= this.queue.length || !canGrow) return;
      this.startSession();
    }
  }

  /**
   * Callers wait for a channel on this connection (execs, other runners): idle sessions
   * give theirs back, except the last one while jobs are queued for it. The pressure
   * signal alone would miss sessions that were starting or busy when it fired.
   */
  private yieldIdleChannels(): void {
    if (!this.o.conn.channelWanted()) return;
    for (const s of this.sessions) {
      const live = this.sessions.filter((x) => x.state !== "dead").length;
      if (s.state === "idle" && (this.queue.length === 0 || live > 1)) s.die();
    }
    this.sessions = this.sessions.filter((s) => s.state !== "dead");
  }

  private startSession(): void {
    const session = new VirshSession(this.o.target);
    this.sessions.push(session);
    const commandLine = remoteCommandLine(this.argv([]), { sudo: this.o.sudo });
    session.start(this.o.conn, commandLine, this.o.startTimeoutMs).then(
      () => this.dispatch(),
      (err) => {
        session.die();
        this.sessions = this.sessions.filter((s) => s !== session);
        /*
         * Fail every queued job with the reason (a VirshError when virsh itself refused):
         * a connection that failed (refused, unreachable, auth, host key, lost) fails all
         * of them after its one bounded round, instead of the next job redialling. Only a
         * session that timed out alone (waiting for a channel, or for virsh) leaves its
         * jobs to live sessions.
         */
        const live = this.sessions.some((s) => s.state === "idle" || s.state === "busy");
        if (!live || !(err instanceof SshError && err.kind === "timeout")) {
          const reason = err instanceof VirshSessionStartError ? this.failure([], err.exitCode, err.stderr) : err;
          for (const job of this.queue.splice(0)) job.reject(reason);
        }
        this.dispatch();
      },
    );
  }

  private async runJob(session: VirshSession, job: Job): Promise<void> {
    try {
      const r = await session.run(job.line, this.o.commandTimeoutMs);
      if (sessionCommandFailed(r.stderr)) job.reject(this.failure(job.args, 1, r.stderr));
      else job.resolve(r.stdout);
    } catch (err) {
      job.reject(err as Error);
    } finally {
      this.dispatch();
    }
  }

  /** Close every session (the SSH connection stays open for others). */
  close(): void {
    for (const s of this.sessions) s.die();
    this.sessions = [];
  }
}
