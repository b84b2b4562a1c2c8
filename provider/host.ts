import type { Readable } from "node:stream";
import { CommandError, redact, redactArgv } from "./errors";
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
    return this.runner.run(args, opts);
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
