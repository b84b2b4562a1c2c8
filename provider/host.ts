import type { Readable } from "node:stream";

/** Result of a command run on a hypervisor. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Fed to the remote command's stdin; a stream is piped without buffering. */
  stdin?: string | Buffer | Readable;
  /** Throw a classified error when the command exits non-zero (default true for virsh). */
  check?: boolean;
  /** Called with the number of stdin bytes sent so far (uploads report progress). */
  onProgress?: (bytesSent: number) => void;
}

/**
 * One hypervisor, reached over the shared connection pool. Resource code talks to
 * hosts only through this interface: every argument is shell-quoted by the
 * implementation, and XML goes on stdin, never in argv.
 */
export interface Host {
  /** `virsh -c <libvirtUri> ...args`; resolves stdout; throws a classified VirshError on failure. */
  virsh(args: readonly string[], opts?: Pick<ExecOptions, "stdin" | "onProgress">): Promise<string>;
  /** Any other command (`qemu-img`, `sha256sum`, …); argv[0] is the program. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** A short label for messages: `user@host:port`. Never contains credentials. */
  readonly label: string;
}
