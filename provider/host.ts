import { AsyncLocalStorage } from "node:async_hooks";
import type { Readable } from "node:stream";
import { CommandError, isCommandError, redact, redactArgv } from "./errors";
import { closeAllConnections, getConnection } from "./ssh/connections";
import { remoteCommandLine, shellCommandLine } from "./ssh/quote";
import { type ResolvedConnection, boundedWaitMs, resolveConnection } from "./ssh/settings";
import { VirshRunner } from "./virsh";

/** Result of a command run on a hypervisor. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Fed to the remote command's stdin; a stream is piped without buffering. */
  stdin?: string | Buffer | Readable;
  /** Throw a classified CommandError when the command exits non-zero. Default true; pass false to inspect `code`. */
  check?: boolean;
  /** Called with the number of stdin bytes sent so far (uploads report progress). */
  onProgress?: (bytesSent: number) => void;
}

/**
 * One hypervisor, reached over the process-wide shared SSH connection. Resource code talks to
 * hosts only through this interface: every argument is shell-quoted by the
 * implementation, and XML goes on stdin, never in argv.
 */
export interface Host {
  /**
   * `virsh -q -c <libvirtUri> ...args` (through `sudo -n` when configured); resolves
   * stdout; throws a classified VirshError on failure. Note `-q`: table headers and
   * "Pool x started"-style chatter are not printed. Without stdin the command runs in
   * a persistent virsh session; failures are then reported with exit code 1.
   */
  virsh(args: readonly string[], opts?: Pick<ExecOptions, "stdin" | "onProgress">): Promise<string>;
  /** Any other command (`qemu-img`, `sha256sum`, …); argv[0] is the program. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** A short label for messages: `user@host:port`. Never contains credentials. */
  readonly label: string;
  /** The libvirt URI every `virsh` here connects to, for scripts that run virsh themselves. */
  readonly libvirtUri: string;
  /**
   * The same for every Host of one libvirt seen through one login (its virsh runner):
   * what scans shared between the resources of a run are keyed by (libvirt/scans.ts).
   * Absent: nothing is shared.
   */
  readonly scope?: object;
}

class SshHost implements Host {
  readonly label: string;
  readonly libvirtUri: string;
  readonly scope: object;

  constructor(
    private readonly settings: ResolvedConnection,
    private readonly runner: VirshRunner,
  ) {
    this.label = settings.target.label;
    this.libvirtUri = settings.libvirtUri;
    this.scope = runner;
  }

  virsh(args: readonly string[], opts: Pick<ExecOptions, "stdin" | "onProgress"> = {}): Promise<string> {
    const run = () => this.runner.run(args, opts);
    // A streamed stdin (an upload) cannot be sent twice: such a command is never run again.
    const replayable = opts.stdin === undefined || typeof opts.stdin === "string" || Buffer.isBuffer(opts.stdin);
    return replayable ? stopsOf(this.scope).around(run) : run();
  }

  async exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const s = this.settings;
    const r = await getConnection(s).exec(remoteCommandLine(argv, { sudo: s.sudo }), {
      stdin: opts.stdin,
      onProgress: opts.onProgress,
      timeoutMs: s.timeouts.commandMs,
    });
    if (r.code !== 0 && opts.check !== false) {
      throw new CommandError(redact(shellCommandLine(redactArgv(argv)), s.secrets), r.code, redact(r.stderr, s.secrets), { target: this.label });
    }
    return r;
  }
}

/** A command that failed on a pool stopped by a step of ours is tried this often in all. */
const POOL_STOP_ATTEMPTS = 3;

/**
 * The steps of ours that may stop a storage pool for a moment, on one libvirt (a Host's
 * scope): a `pool-refresh` that fails makes libvirt stop the pool, and refreshPool starts
 * it again (libvirt/volumes.ts). Such steps run one at a time. A virsh command of any other
 * resource that fails with "not active" (CommandError `not-running`) while one ran, or
 * whose run overlapped one, is run again once it has ended: it failed on our own window,
 * not on the host's state. A command that failed did nothing, so running it again is
 * safe; one that still fails after POOL_STOP_ATTEMPTS, or that overlapped no such step,
 * fails as it did. Commands of the step itself are not retried (the step decides). A read
 * that succeeds in the window (a pool listed inactive) is taken again the same way where
 * its caller says so (readPastPoolStops).
 */
class PoolStops {
  /** Changes when a step starts and when it ends: a command that saw it change overlapped one. */
  private epoch = 0;
  /** The step running now, or the last one (settled). */
  private last: Promise<unknown> = Promise.resolve();
  private running = false;
  private static readonly inStep = new AsyncLocalStorage<true>();

  async step<T>(fn: () => Promise<T>): Promise<T> {
    const prior = this.last;
    const run = prior.then(async () => {
      this.running = true;
      this.epoch++;
      try {
        return await PoolStops.inStep.run(true, fn);
      } finally {
        this.running = false;
        this.epoch++;
      }
    });
    this.last = run.catch(() => undefined);
    return run;
  }

  /** `read` again (after the step) while it fails with, or (`stopped`) returns, what a step's window shows, and overlapped one. */
  async around<T>(read: () => Promise<T>, stopped: (result: T) => boolean = () => false): Promise<T> {
    if (PoolStops.inStep.getStore()) return read();
    for (let attempt = 1; ; attempt++) {
      const seen = this.epoch;
      const overlapped = () => this.running || this.epoch !== seen;
      let result: T;
      try {
        result = await read();
      } catch (err) {
        if (!overlapped() || !isCommandError(err, "not-running") || attempt >= POOL_STOP_ATTEMPTS) throw err;
        await this.last;
        continue;
      }
      if (!overlapped() || !stopped(result) || attempt >= POOL_STOP_ATTEMPTS) return result;
      await this.last;
    }
  }
}

const poolStops = new WeakMap<object, PoolStops>();

function stopsOf(scope: object): PoolStops {
  let stops = poolStops.get(scope);
  if (!stops) poolStops.set(scope, (stops = new PoolStops()));
  return stops;
}

/**
 * Runs `fn`, a step that may stop a storage pool of `host` for a moment and start it
 * again, so that the other resources' commands on that libvirt ride out the window (see
 * PoolStops). A Host without a scope (a test's fake) shares nothing: `fn` just runs.
 */
export function mayStopPool<T>(host: Host, fn: () => Promise<T>): Promise<T> {
  return host.scope ? stopsOf(host.scope).step(fn) : fn();
}

/**
 * `read` (of which pools are active), taken again once a step of `mayStopPool` has ended
 * when it overlapped one and `stopped(result)` says it saw a pool stopped: that may have
 * been our own window, not the host's state (PoolStops).
 */
export function readPastPoolStops<T>(host: Host, read: () => Promise<T>, stopped: (result: T) => boolean): Promise<T> {
  return host.scope ? stopsOf(host.scope).around(read, stopped) : read();
}

const runners = new Map<string, VirshRunner>();

/**
 * The Host for a resource's `connection` input (validated and resolved against stack
 * defaults and ~/.ssh/config; throws InputError naming the field). Synchronous and
 * cheap: nothing connects until the first command, and every Host with the same
 * endpoint shares one SSH connection and its virsh sessions.
 */
export function getHost(connection: unknown): Host {
  const s = resolveConnection(connection);
  const key = JSON.stringify([s.poolKey, s.libvirtUri, s.sudo, s.timeouts.commandMs]);
  let runner = runners.get(key);
  if (!runner) {
    const conn = getConnection(s);
    runner = new VirshRunner({
      conn,
      libvirtUri: s.libvirtUri,
      sudo: s.sudo,
      commandTimeoutMs: s.timeouts.commandMs,
      startTimeoutMs: boundedWaitMs(s.timeouts),
      target: s.target.label,
      secrets: s.secrets,
    });
    runners.set(key, runner);
  }
  return new SshHost(s, runner);
}

/** Close every virsh session and SSH connection now (tests; idle connections also close by themselves). */
export function closeAllHosts(): void {
  for (const r of runners.values()) r.close();
  runners.clear();
  closeAllConnections();
}

export { abortAllConnections, getConnectionStats, setTransportLogger } from "./ssh/connections";
