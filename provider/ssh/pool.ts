/**
 * The process-wide SSH connection pool. All dynamic resources of a Pulumi run share one
 * provider process, so one connection per (hop chain, credentials) serves every
 * resource: a handshake costs ~6 round trips, a channel on an open connection ~2.
 *
 * - Channels per connection are capped below OpenSSH's MaxSessions (10) and queued; if
 *   a server allows fewer, the cap shrinks to what it accepted.
 * - A connection that dropped is re-established on next use; connection failures are
 *   retried with backoff, commands never are (a channel that could not be opened never
 *   ran anything, so it may be retried).
 * - Idle connections close after `timeouts.idle`, so the provider process can exit.
 */
import type { Readable } from "node:stream";
import { Client, type ClientChannel, type ConnectConfig } from "ssh2";
import { SshError, type SshErrorKind } from "../errors";
import { type HostKeyCheck, preferredHostKeyAlgorithms, verifyHostKey } from "./knownHosts";
import type { Endpoint, ResolvedConnection } from "./settings";

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
export function getPoolStats(): { handshakes: number; openConnections: number } {
  return { handshakes: stats.handshakes, openConnections: [...pool.values()].filter((c) => c.isConnected()).length };
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

// ---------------------------------------------------------------------------------------
// Establishing one connection (through its jump hosts)

// ssh2 ships this list but does not type it.
const SUPPORTED_HOST_KEY_ALGORITHMS: string[] = require("ssh2/lib/protocol/constants").DEFAULT_SERVER_HOST_KEY;

function classifyConnectError(err: Error & { level?: string }): SshErrorKind {
  if (err.level === "client-authentication") return "auth";
  return "connect";
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
    readyTimeout: s.timeouts.connectMs || undefined,
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
    const onError = (err: Error & { level?: string }) => {
      client.removeListener("ready", onReady);
      client.end();
      if (refusal) reject(new SshError("host-key", e.label, refusal));
      else {
        const kind = classifyConnectError(err);
        const what = kind === "auth" ? `authentication failed (tried: ${[...new Set(authHandler.map((a) => a.type))].join(", ")})` : err.message;
        reject(new SshError(kind, e.label, what, { cause: err }));
      }
    };
    const onReady = () => {
      client.removeListener("error", onError);
      // Commands and their answers are small packets: Nagle would hold each for a delayed ACK.
      if (!sock) client.setNoDelay(true);
      stats.handshakes++;
      resolve(client);
    };
    client.once("ready", onReady);
    client.once("error", onError);
    client.connect(config);
  });
}

/** Open a tunnel through `via` to the next hop. */
function forward(via: Client, e: Endpoint): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    via.forwardOut("127.0.0.1", 0, e.host, e.port, (err, stream) =>
      err ? reject(new SshError("connect", e.label, `jump host could not reach it: ${err.message}`, { cause: err })) : resolve(stream),
    );
  });
}

/** Connect the whole chain: first hop over TCP, each next one through the previous. */
async function connectChain(s: ResolvedConnection): Promise<Client[]> {
  const clients: Client[] = [];
  try {
    for (const e of [...s.jumps, s.target]) {
      const prev = clients[clients.length - 1];
      clients.push(await connectHop(e, s, prev ? await forward(prev, e) : undefined));
    }
    return clients;
  } catch (err) {
    for (const c of clients) c.end();
    throw err;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connectWithRetry(s: ResolvedConnection): Promise<Client[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectChain(s);
    } catch (err) {
      // Refused credentials or host keys will not improve by asking again.
      if (!(err instanceof SshError) || err.kind !== "connect" || attempt >= CONNECT_ATTEMPTS) throw err;
      const delay = BACKOFF_MS * 2 ** (attempt - 1) * (0.75 + Math.random() / 2);
      logger.debug(`connect to ${s.label} failed (${err.message}); retry ${attempt}/${CONNECT_ATTEMPTS - 1} in ${Math.round(delay)} ms`);
      await sleep(delay);
    }
  }
}

// ---------------------------------------------------------------------------------------
// A pooled connection

/** How each exec channel ended, recorded as soon as the channel exists. */
export const exitStatus = new WeakMap<ClientChannel, { code?: number; signal?: string }>();

/** ssh2 reports channel-open refusals (MaxSessions reached) this way. */
function isChannelOpenFailure(err: unknown): boolean {
  return err instanceof Error && /Channel open failure/i.test(err.message);
}

/** The connection was gone before the channel could be opened: nothing ran. */
function isNotConnected(err: unknown): boolean {
  return err instanceof Error && /Not connected|No response from server|socket.*(closed|ended)|write after end/i.test(err.message);
}

export class PooledConnection {
  private clients: Client[] | undefined;
  private connecting: Promise<Client> | undefined;
  private cap = MAX_CHANNELS;
  /** Slots taken: channels open or being opened. */
  private channels = 0;
  /** Channels the server accepted and has not closed: what it demonstrably allows. */
  private openChannels = 0;
  private slotWaiters: Array<() => void> = [];
  private busyCount = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private pressureListeners = new Set<() => void>();

  constructor(private readonly settings: ResolvedConnection) {}

  get label(): string {
    return this.settings.label;
  }

  isConnected(): boolean {
    return this.clients !== undefined;
  }

  /** Called when a channel is wanted and none is free: holders of idle channels should let go. */
  onPressure(listener: () => void): () => void {
    this.pressureListeners.add(listener);
    return () => this.pressureListeners.delete(listener);
  }

  /** Channels that could be opened right now without waiting. */
  freeChannels(): number {
    return Math.max(0, this.cap - this.channels);
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
    if (!this.clients && !this.connecting) return;
    this.idleTimer = setTimeout(() => {
      if (this.busyCount === 0) this.close();
    }, this.settings.timeouts.idleMs);
  }

  private async client(): Promise<Client> {
    if (this.clients) return this.clients[this.clients.length - 1];
    this.connecting ??= connectWithRetry(this.settings).then(
      (clients) => {
        this.connecting = undefined;
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
    for (const c of clients) {
      c.on("close", lost);
      c.on("error", (err) => logger.debug(`${this.label}: ${err.message}`));
    }
    target.on("end", lost);
    if (this.busyCount === 0) this.armIdleTimer();
  }

  private async acquireSlot(): Promise<void> {
    while (this.channels >= this.cap) {
      for (const l of [...this.pressureListeners]) l();
      await new Promise<void>((r) => this.slotWaiters.push(r));
    }
    this.channels++;
  }

  private releaseSlot(): void {
    this.channels--;
    this.slotWaiters.shift()?.();
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
      try {
        const channel = await new Promise<ClientChannel>((resolve, reject) => {
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
        // Opens in flight when the server refused one may still succeed: what it accepted is its limit.
        if (++this.openChannels > this.cap) this.cap = this.openChannels;
        channel.once("close", () => {
          this.openChannels--;
          this.releaseSlot();
        });
        return channel;
      } catch (err) {
        this.releaseSlot();
        if (isChannelOpenFailure(err) && refusals++ < 20) {
          // The server allows fewer sessions than we assumed (MaxSessions): remember what it
          // accepted and queue. It also frees a session a moment after its channel closes,
          // so with nothing open, wait briefly before asking again.
          this.cap = Math.max(1, Math.min(this.cap, this.openChannels));
          logger.debug(`${this.label}: server refused a channel with ${this.openChannels} open; capping at ${this.cap}`);
          if (this.openChannels === 0) await sleep(20 * refusals);
          continue;
        }
        if ((isNotConnected(err) || !this.clients) && reconnects++ < 1) {
          // Drop the connection this attempt used, not one another caller opened since.
          if (this.clients?.[this.clients.length - 1] === client) this.dropClients();
          continue;
        }
        throw new SshError(isNotConnected(err) ? "connection-lost" : "connect", this.label, `cannot open a channel: ${(err as Error).message}`, { cause: err });
      }
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
}

/** Feed stdin, collect stdout/stderr, resolve on exit; time out and connection loss reject. */
function runChannel(channel: ClientChannel, label: string, opts: RawExecOptions): Promise<RawExecResult> {
  return new Promise((resolve, reject) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let failure: Error | undefined;
    channel.on("data", (d: Buffer) => stdout.push(d));
    channel.stderr.on("data", (d: Buffer) => stderr.push(d));
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          failure = new SshError("timeout", label, `command did not finish within ${opts.timeoutMs! / 1000} s; its channel was closed`);
          channel.signal("KILL");
          channel.close();
        }, opts.timeoutMs)
      : undefined;
    channel.on("close", () => {
      clearTimeout(timer);
      if (opts.stdin && typeof opts.stdin === "object" && "unpipe" in opts.stdin) opts.stdin.unpipe(channel);
      const out = Buffer.concat(stdout).toString("utf8");
      const err = Buffer.concat(stderr).toString("utf8");
      if (failure) return reject(failure);
      const { code, signal } = exitStatus.get(channel) ?? {};
      if (code === undefined) {
        const why = signal ? `the remote command was killed by SIG${signal}` : "the connection closed before the command finished; it may or may not have run";
        return reject(new SshError("connection-lost", label, why, { details: err ? `stderr:\n${err}` : undefined }));
      }
      resolve({ code, stdout: out, stderr: err });
    });
    writeStdin(channel, opts, (err) => {
      failure = err;
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
// The pool

const pool = new Map<string, PooledConnection>();

/** The shared connection for these settings (created lazily; connects on first use). */
export function getConnection(s: ResolvedConnection): PooledConnection {
  let conn = pool.get(s.poolKey);
  if (!conn) pool.set(s.poolKey, (conn = new PooledConnection(s)));
  return conn;
}

/** Close every pooled connection now (tests; shutdown). */
export function closeAllConnections(): void {
  for (const conn of pool.values()) conn.close();
  pool.clear();
}
