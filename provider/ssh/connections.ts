/**
 * The process-wide SSH connections. All dynamic resources of a Pulumi run share one
 * provider process, so one connection per (hop chain, credentials) serves every
 * resource: a handshake costs ~6 round trips, a channel on an open connection ~2.
 *
 * Every wait here ends, and its error names the host and what was awaited:
 * - Connecting: each attempt is bounded by `timeouts.connect` (TCP, handshake and
 *   authentication per hop, and each jump-host tunnel). A round is at most
 *   CONNECT_ATTEMPTS attempts with backoff, shared by every caller that wants the
 *   connection meanwhile; its failure fails all of them. Nothing redials by itself:
 *   the next round starts when an operation asks for the connection again.
 * - Channels per connection are capped below OpenSSH's MaxSessions (10) and handed out
 *   in arrival order; if a server allows fewer, the cap shrinks to what it accepted.
 *   A caller waiting for a channel fails once no channel has been freed for
 *   `timeouts.command`: every holder is a command bounded by it, or an idle virsh
 *   session, which gives its channel back while callers wait (`onPressure`).
 * - Opening a channel is bounded by `timeouts.connect`, a command by `timeouts.command`.
 * - A dropped connection is re-established on next use. Commands are never retried
 *   (a channel that could not be opened never ran anything, so that may be).
 * - Idle connections close after `timeouts.idle`, so a process can exit by itself (never,
 *   by default, in the engine's dynamic-provider process: the engine ends it).
 * - `abortAllConnections` (the Pulumi engine went away) kills the remote commands,
 *   fails everything in flight and refuses all later work.
 */
import type { Readable } from "node:stream";
import { Client, type ClientChannel, type ConnectConfig } from "ssh2";
import { SshError, type SshErrorKind } from "../errors";
import { watchEngineOnce } from "../engineWatchdog";
import { type HostKeyCheck, preferredHostKeyAlgorithms, verifyHostKey } from "./knownHosts";
import { type Endpoint, type ResolvedConnection, boundedWaitMs } from "./settings";

/** Below OpenSSH's default MaxSessions of 10, leaving room for a user's own multiplexed sessions. */
const MAX_CHANNELS = 8;
const CONNECT_ATTEMPTS = 3;
const BACKOFF_MS = 500;

export interface TransportLogger {
  warn(message: string): void;
  debug(message: string): void;
}

let logger: TransportLogger = {
  warn: (m) => console.warn(`gluster-libvirt: ${m}`),
  debug: () => {},
};

/** Where transport warnings (insecure host keys, recorded keys, reconnects) go. */
export function setTransportLogger(l: TransportLogger): void {
  logger = l;
}

const stats = { handshakes: 0 };

/** Counters for tests and the benchmark: `handshakes` = SSH connections established (every hop). */
export function getConnectionStats(): { handshakes: number; openConnections: number } {
  return { handshakes: stats.handshakes, openConnections: [...connections.values()].filter((c) => c.isConnected()).length };
}

export interface RawExecOptions {
  stdin?: string | Buffer | Readable;
  onProgress?: (bytesSent: number) => void;
  /** 0 = no limit. */
  timeoutMs?: number;
}

export interface RawExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

const seconds = (ms: number) => `${ms / 1000} s`;

/**
 * `p`, or the error `onTimeout` makes once `ms` have passed. A value that arrives
 * after that goes to `late` (to close what nobody will use).
 */
function withDeadline<T>(p: Promise<T>, ms: number, onTimeout: () => Error, late?: (value: T) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      reject(onTimeout());
    }, ms);
    p.then(
      (v) => (expired ? late?.(v) : (clearTimeout(timer), resolve(v))),
      (e) => expired || (clearTimeout(timer), reject(e)),
    );
  });
}

// ---------------------------------------------------------------------------------------
// Establishing one connection (through its jump hosts)

// ssh2 ships this list but does not type it.
const SUPPORTED_HOST_KEY_ALGORITHMS: string[] = require("ssh2/lib/protocol/constants").DEFAULT_SERVER_HOST_KEY;

/** What went wrong before `ready`, in words that say what was awaited. */
function describeConnectError(err: Error & { level?: string; code?: string }, connectMs: number): { kind: SshErrorKind; what: string } {
  if (err.level === "client-authentication") return { kind: "auth", what: "authentication failed" };
  // ssh2's readyTimeout runs from the TCP connect to the end of authentication.
  if (err.level === "client-timeout") return { kind: "connect", what: `SSH handshake did not complete within ${seconds(connectMs)}` };
  if (err.code === "ECONNREFUSED") return { kind: "connect", what: `connection refused (${err.message})` };
  return { kind: "connect", what: `cannot connect: ${err.message}` };
}

/** One SSH handshake + authentication to `e`, over `sock` when tunnelled through a jump host. */
function connectHop(e: Endpoint, s: ResolvedConnection, sock?: NodeJS.ReadableStream & NodeJS.WritableStream): Promise<Client> {
  const check: HostKeyCheck = { host: e.host, port: e.port, label: e.label, pin: e.pin, knownHostsFile: s.knownHostsFile, policy: s.hostKeyPolicy };
  const client = new Client();
  let refusal: string | undefined;
  const authHandler = e.auth.flatMap((m): Array<{ type: string; username: string; [k: string]: unknown }> => {
    if (m.type !== "password") return [{ ...m, username: e.user }];
    // Servers often offer only keyboard-interactive for passwords (PAM): answer every prompt with it.
    const prompt = (_n: string, _i: string, _l: string, prompts: unknown[], finish: (answers: string[]) => void) => finish(prompts.map(() => m.password));
    return [{ ...m, username: e.user }, { type: "keyboard-interactive", username: e.user, prompt }];
  });
  const config: ConnectConfig = {
    host: e.host,
    port: e.port,
    username: e.user,
    sock: sock as ConnectConfig["sock"],
    readyTimeout: s.timeouts.connectMs,
    keepaliveInterval: s.timeouts.keepaliveMs,
    keepaliveCountMax: 3,
    authHandler: authHandler as ConnectConfig["authHandler"],
    algorithms: { serverHostKey: preferredHostKeyAlgorithms(check, SUPPORTED_HOST_KEY_ALGORITHMS) as never },
    hostVerifier: (key: Buffer) => {
      refusal = verifyHostKey(check, key, logger.warn);
      return refusal === undefined;
    },
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: SshError) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(err);
    };
    // Kept for the client's life: ssh2 may emit several errors, and one without a listener would crash the process.
    client.on("error", (err: Error & { level?: string }) => {
      if (settled) return logger.debug(`${e.label}: ${err.message}`);
      if (refusal) return fail(new SshError("host-key", e.label, refusal));
      const { kind, what } = describeConnectError(err, s.timeouts.connectMs);
      const tried = kind === "auth" ? ` (tried: ${[...new Set(authHandler.map((a) => a.type))].join(", ")})` : "";
      fail(new SshError(kind, e.label, what + tried, { cause: err }));
    });
    // A server that closes the connection during the handshake ends it without an error (and ssh2 stops its readyTimeout).
    client.once("close", () => fail(new SshError("connect", e.label, "the server closed the connection during the SSH handshake")));
    client.once("ready", () => {
      if (settled) return void client.end();
      settled = true;
      // Commands and their answers are small packets: Nagle would hold each for a delayed ACK.
      if (!sock) client.setNoDelay(true);
      stats.handshakes++;
      resolve(client);
    });
    client.connect(config);
  });
}

/** Open a tunnel through `via` to the next hop. */
function forward(via: Client, e: Endpoint, connectMs: number): Promise<ClientChannel> {
  const tunnel = new Promise<ClientChannel>((resolve, reject) => {
    via.forwardOut("127.0.0.1", 0, e.host, e.port, (err, stream) =>
      err ? reject(new SshError("connect", e.label, `jump host could not reach it: ${err.message}`, { cause: err })) : resolve(stream),
    );
  });
  return withDeadline(tunnel, connectMs, () => new SshError("connect", e.label, `jump host opened no tunnel to it within ${seconds(connectMs)}`), (late) => late.close());
}

/** Connect the whole chain: first hop over TCP, each next one through the previous. */
async function connectChain(s: ResolvedConnection): Promise<Client[]> {
  const clients: Client[] = [];
  try {
    for (const e of [...s.jumps, s.target]) {
      const prev = clients[clients.length - 1];
      clients.push(await connectHop(e, s, prev ? await forward(prev, e, s.timeouts.connectMs) : undefined));
    }
    return clients;
  } catch (err) {
    for (const c of clients) c.end();
    throw err;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One bounded round of attempts. */
async function connectWithRetry(s: ResolvedConnection): Promise<Client[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectChain(s);
    } catch (err) {
      // Refused credentials or host keys will not improve by asking again.
      if (!(err instanceof SshError) || err.kind !== "connect") throw err;
      if (attempt >= CONNECT_ATTEMPTS) throw new SshError(err.kind, err.target, `${err.reason} (gave up after ${attempt} attempts)`, { cause: err });
      const delay = BACKOFF_MS * 2 ** (attempt - 1) * (0.75 + Math.random() / 2);
      logger.debug(`connect to ${s.label} failed (${err.message}); retry ${attempt}/${CONNECT_ATTEMPTS - 1} in ${Math.round(delay)} ms`);
      await sleep(delay);
    }
  }
}

// ---------------------------------------------------------------------------------------
// A shared connection

/** How each exec channel ended, recorded as soon as the channel exists. */
export const exitStatus = new WeakMap<ClientChannel, { code?: number; signal?: string }>();

/** Why we closed a channel ourselves (timeout, abort): what its users report instead of a lost connection. */
export const closeReasons = new WeakMap<ClientChannel, SshError>();

/** ssh2 reports channel-open refusals (MaxSessions reached) this way. */
function isChannelOpenFailure(err: unknown): boolean {
  return err instanceof Error && /Channel open failure/i.test(err.message);
}

/** The connection was gone before the channel could be opened: nothing ran. */
function isNotConnected(err: unknown): boolean {
  return err instanceof Error && /Not connected|No response from server|socket.*(closed|ended)|write after end/i.test(err.message);
}

function execOn(client: Client, command: string): Promise<ClientChannel> {
  return new Promise<ClientChannel>((resolve, reject) => {
    try {
      client.exec(command, (err, ch) => {
        if (err) return reject(err);
        // A quick command's exit status can arrive in the same read as the exec reply:
        // record it now, before any await lets the event pass unheard.
        ch.once("exit", (code: number | null, signal?: string) => exitStatus.set(ch, { code: code ?? undefined, signal }));
        resolve(ch);
      });
    } catch (err) {
      reject(err);
    }
  });
}

/** The parts of ssh2's Channel that `signal()` uses. */
interface ChannelInternals {
  outgoing?: { id: number; state: string };
  _client?: { _protocol?: { signal(id: number, name: string): void } };
}

/**
 * Close a channel we give up on, killing its remote command: closing alone leaves it
 * running (sshd does not signal a session's command when the channel closes, without a pty).
 * ssh2's `channel.signal()` silently sends nothing once our side of stdin is ended, as it
 * is for every command without stdin, so the request goes through its protocol object
 * the way `signal()` sends it. OpenSSH ≥ 7.9 delivers it to the session's login shell.
 */
function killChannel(channel: ClientChannel, reason: SshError): void {
  closeReasons.set(channel, reason);
  const c = channel as unknown as ChannelInternals;
  try {
    // "eof": we ended stdin; the channel is still open for requests.
    if (c.outgoing && ["open", "eof"].includes(c.outgoing.state)) c._client?._protocol?.signal(c.outgoing.id, "KILL");
  } catch {
    // the connection is already gone
  }
  channel.close();
}

/** Set once the engine went away: every connection, existing or new, refuses work with it. */
let abortReason: string | undefined;

interface SlotWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class SshConnection {
  private clients: Client[] | undefined;
  private connecting: Promise<Client> | undefined;
  private cap = MAX_CHANNELS;
  /** Slots taken: channels open or being opened. */
  private channels = 0;
  /** Channels the server accepted and has not closed: what it demonstrably allows. */
  private readonly open = new Set<ClientChannel>();
  private slotWaiters: SlotWaiter[] = [];
  /** Runs while callers wait for a channel; restarts whenever one is freed. */
  private stallTimer: NodeJS.Timeout | undefined;
  private busyCount = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private pressureListeners = new Set<() => void>();
  private aborted: SshError | undefined;

  constructor(private readonly settings: ResolvedConnection) {
    if (abortReason) this.aborted = this.abortError(abortReason);
  }

  get label(): string {
    return this.settings.label;
  }

  isConnected(): boolean {
    return this.clients !== undefined;
  }

  /** Called while callers wait for a channel: holders of idle channels should let go. */
  onPressure(listener: () => void): () => void {
    this.pressureListeners.add(listener);
    return () => this.pressureListeners.delete(listener);
  }

  /** True while callers wait for a channel (a session going idle should give its channel back). */
  channelWanted(): boolean {
    return this.slotWaiters.length > 0;
  }

  /** Channels that could be opened right now without waiting. */
  freeChannels(): number {
    return this.slotWaiters.length > 0 ? 0 : Math.max(0, this.cap - this.channels);
  }

  /** Mark work in progress around `fn`: the connection is not idle-closed meanwhile. */
  async busy<T>(fn: () => Promise<T>): Promise<T> {
    this.busyCount++;
    clearTimeout(this.idleTimer);
    try {
      return await fn();
    } finally {
      if (--this.busyCount === 0) this.armIdleTimer();
    }
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    if ((!this.clients && !this.connecting) || this.settings.timeouts.idleMs === 0) return;
    this.idleTimer = setTimeout(() => {
      if (this.busyCount === 0) this.close();
    }, this.settings.timeouts.idleMs);
  }

  /** The connection's last hop, connecting (one shared, bounded round) when there is none. */
  private client(): Promise<Client> {
    if (this.aborted) return Promise.reject(this.aborted);
    if (this.clients) return Promise.resolve(this.clients[this.clients.length - 1]);
    this.connecting ??= connectWithRetry(this.settings).then(
      (clients) => {
        this.connecting = undefined;
        if (this.aborted) {
          for (const c of clients) c.end();
          throw this.aborted;
        }
        this.adopt(clients);
        return clients[clients.length - 1];
      },
      (err) => {
        this.connecting = undefined;
        throw err;
      },
    );
    return this.connecting;
  }

  private adopt(clients: Client[]): void {
    this.clients = clients;
    const target = clients[clients.length - 1];
    const lost = () => this.dropClients(clients);
    // Any hop going away takes the chain with it. Errors after 'ready' are followed by 'close'.
    for (const c of clients) c.on("close", lost);
    target.on("end", lost);
    if (this.busyCount === 0) this.armIdleTimer();
  }

  /** How long a caller may wait for a channel without any being freed. */
  private get slotWaitMs(): number {
    return boundedWaitMs(this.settings.timeouts);
  }

  private acquireSlot(): Promise<void> {
    if (this.aborted) return Promise.reject(this.aborted);
    if (this.slotWaiters.length === 0 && this.channels < this.cap) {
      this.channels++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.slotWaiters.push({ resolve, reject });
      this.stallTimer ??= setTimeout(() => this.stalled(), this.slotWaitMs);
      for (const l of [...this.pressureListeners]) l();
    });
  }

  /** Hand free slots to waiters, first come first served. Called whenever a slot may have been freed. */
  private wakeWaiters(): void {
    while (this.slotWaiters.length > 0 && this.channels < this.cap) {
      this.channels++;
      this.slotWaiters.shift()!.resolve();
    }
    if (this.slotWaiters.length === 0) {
      clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
    }
  }

  private releaseSlot(): void {
    this.channels--;
    // A freed channel is progress: waiters get a fresh bound.
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.wakeWaiters();
    if (this.slotWaiters.length > 0) this.stallTimer = setTimeout(() => this.stalled(), this.slotWaitMs);
  }

  private stalled(): void {
    this.stallTimer = undefined;
    const err = new SshError(
      "timeout",
      this.label,
      `waiting for a free SSH channel: none of the ${this.channels} in use was freed within ${seconds(this.slotWaitMs)} (at most ${this.cap} at a time on this connection)`,
    );
    for (const w of this.slotWaiters.splice(0)) w.reject(err);
  }

  /**
   * Open an exec channel for `command` (a complete, quoted command line), holding one
   * channel slot until the channel closes. Retries only what provably did not run:
   * a connection found dead before the channel opened, a channel the server refused.
   */
  async openChannel(command: string): Promise<ClientChannel> {
    for (let reconnects = 0, refusals = 0; ; ) {
      const client = await this.client();
      await this.acquireSlot();
      let channel: ClientChannel;
      try {
        if (this.aborted) throw this.aborted;
        const connectMs = this.settings.timeouts.connectMs;
        channel = await withDeadline(
          execOn(client, command),
          connectMs,
          () => new SshError("timeout", this.label, `opening an SSH channel: no answer within ${seconds(connectMs)}`),
          (late) => killChannel(late, new SshError("timeout", this.label, "channel opened too late")),
        );
      } catch (err) {
        this.releaseSlot();
        if (err instanceof SshError) throw err;
        if (isChannelOpenFailure(err) && refusals++ < 20) {
          // The server allows fewer sessions than we assumed (MaxSessions): remember what it
          // accepted and queue. It also frees a session a moment after its channel closes,
          // so with nothing open, wait briefly before asking again.
          this.cap = Math.max(1, Math.min(this.cap, this.open.size));
          logger.debug(`${this.label}: server refused a channel with ${this.open.size} open; capping at ${this.cap}`);
          if (this.open.size === 0) await sleep(20 * refusals);
          continue;
        }
        if ((isNotConnected(err) || !this.clients) && reconnects++ < 1) {
          // Drop the connection this attempt used, not one another caller opened since.
          if (this.clients?.[this.clients.length - 1] === client) this.dropClients();
          continue;
        }
        throw new SshError(isNotConnected(err) ? "connection-lost" : "connect", this.label, `cannot open a channel: ${(err as Error).message}`, { cause: err });
      }
      this.open.add(channel);
      // Opens in flight when the server refused one may still succeed: what it accepted is its limit.
      if (this.open.size > this.cap) {
        this.cap = this.open.size;
        this.wakeWaiters();
      }
      channel.once("close", () => {
        this.open.delete(channel);
        this.releaseSlot();
      });
      return channel;
    }
  }

  /** Ends `clients` (default: the current chain) if they are still the current chain. */
  private dropClients(clients = this.clients): void {
    if (!clients || this.clients !== clients) return;
    this.clients = undefined;
    for (const c of clients) c.end();
  }

  /** Run a command line to completion; stdin is streamed with backpressure. */
  exec(command: string, opts: RawExecOptions = {}): Promise<RawExecResult> {
    return this.busy(async () => runChannel(await this.openChannel(command), this.label, opts));
  }

  /** Close the connection now (sessions included). It reconnects if used again. */
  close(): void {
    clearTimeout(this.idleTimer);
    this.dropClients();
  }

  private abortError(why: string): SshError {
    return new SshError("aborted", this.label, `stopped: ${why}; a command in flight may or may not have run`);
  }

  /**
   * Stop for good: kill every remote command, fail every waiter and everything in flight,
   * refuse all later work. Resolves once the connection's sockets are closed.
   */
  abort(why: string): Promise<void> {
    this.aborted ??= this.abortError(why);
    clearTimeout(this.idleTimer);
    clearTimeout(this.stallTimer);
    for (const w of this.slotWaiters.splice(0)) w.reject(this.aborted);
    for (const ch of this.open) killChannel(ch, this.aborted);
    const clients = this.clients ?? [];
    this.dropClients();
    // end() flushes the KILL signals first; a peer that never closes its side gets destroyed.
    const closed = (c: Client) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => (c.destroy(), resolve()), 2000);
        c.once("close", () => (clearTimeout(timer), resolve()));
      });
    return Promise.all(clients.map(closed)).then(() => {});
  }
}

/** Feed stdin, collect stdout/stderr, resolve on exit; a timeout or a lost connection rejects. */
function runChannel(channel: ClientChannel, label: string, opts: RawExecOptions): Promise<RawExecResult> {
  return new Promise((resolve, reject) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let stdinFailure: Error | undefined;
    channel.on("data", (d: Buffer) => stdout.push(d));
    channel.stderr.on("data", (d: Buffer) => stderr.push(d));
    // Settles at the deadline itself: a wedged connection may never deliver the channel's close.
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          const err = new SshError("timeout", label, `command did not finish within ${seconds(opts.timeoutMs!)}; it was killed and its channel closed`);
          killChannel(channel, err);
          reject(err);
        }, opts.timeoutMs)
      : undefined;
    channel.on("close", () => {
      clearTimeout(timer);
      if (opts.stdin && typeof opts.stdin === "object" && "unpipe" in opts.stdin) opts.stdin.unpipe(channel);
      const out = Buffer.concat(stdout).toString("utf8");
      const err = Buffer.concat(stderr).toString("utf8");
      const ours = closeReasons.get(channel);
      if (ours ?? stdinFailure) return reject(ours ?? stdinFailure);
      const { code, signal } = exitStatus.get(channel) ?? {};
      if (code === undefined) {
        const why = signal ? `the remote command was killed by SIG${signal}` : "the connection closed before the command finished; it may or may not have run";
        return reject(new SshError("connection-lost", label, why, { details: err ? `stderr:\n${err}` : undefined }));
      }
      resolve({ code, stdout: out, stderr: err });
    });
    writeStdin(channel, opts, (err) => {
      stdinFailure = err;
      channel.close();
    });
  });
}

function writeStdin(channel: ClientChannel, opts: RawExecOptions, fail: (err: Error) => void): void {
  const { stdin, onProgress } = opts;
  if (stdin === undefined) return void channel.end(); // EOF, so a command reading stdin cannot hang
  if (typeof stdin === "string" || Buffer.isBuffer(stdin)) {
    const data = typeof stdin === "string" ? Buffer.from(stdin) : stdin;
    channel.end(data);
    onProgress?.(data.length);
    return;
  }
  let sent = 0;
  if (onProgress) stdin.on("data", (chunk: Buffer) => onProgress((sent += chunk.length)));
  stdin.once("error", (err) => fail(err));
  stdin.pipe(channel);
}

// ---------------------------------------------------------------------------------------
// The registry

const connections = new Map<string, SshConnection>();

/** How long aborting may take before the provider exits anyway once the engine is gone. */
const ABORT_GRACE_MS = 3000;

/** The shared connection for these settings (created lazily; connects on first use). */
export function getConnection(s: ResolvedConnection): SshConnection {
  // Inside a dynamic-provider process: stop all of this if the engine goes away.
  watchEngineOnce((why) => {
    logger.warn(`${why}: stopping every SSH command and exiting`);
    const exit = () => process.exit(1);
    // Bounded: a channel that never closes (one mid-upload, seen with a 512 MiB image) must
    // not keep the provider working for a run nobody records.
    setTimeout(exit, ABORT_GRACE_MS);
    void abortAllConnections(why).then(exit, exit);
  });
  let conn = connections.get(s.poolKey);
  if (!conn) connections.set(s.poolKey, (conn = new SshConnection(s)));
  return conn;
}

/** Close every connection now (tests; shutdown). */
export function closeAllConnections(): void {
  for (const conn of connections.values()) conn.close();
  connections.clear();
}

/**
 * Stop all SSH work for good (the engine is gone): remote commands are killed, every
 * pending and later operation fails with an `aborted` SshError. Resolves once closed.
 */
export function abortAllConnections(why: string): Promise<void> {
  abortReason ??= why;
  return Promise.all([...connections.values()].map((c) => c.abort(why))).then(() => {});
}
