/**
 * The one error module of the project. Every error we throw is a `GlusterLibvirtError`:
 * `name` is set, `message` is short (one line, what a user reads in `pulumi up`, plus one
 * line per doctor hint: see withHints), and
 * `details` carries the long form (stderr, hints). Context that could hold secrets
 * (connection settings, keys) is attached non-enumerably, so loggers and
 * `JSON.stringify` never print it; all text is redacted before it gets here.
 */

export class GlusterLibvirtError extends Error {
  /** The full explanation: the message plus stderr, hints and causes. */
  readonly details: string;

  constructor(message: string, opts: { details?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.details = opts.details ? `${message}\n${opts.details}` : message;
  }
}

/**
 * `err` with hints: what the doctor's checks found wrong on the host where it happened
 * (provider/libvirt/hints.ts), one line each under the message, so `pulumi up` shows
 * which check fails and its fix next to the host's own words. No hints: `err` itself.
 */
export function withHints(err: unknown, hints: readonly string[]): unknown {
  if (!hints.length) return err;
  const message = err instanceof Error ? err.message : String(err);
  const details = err instanceof GlusterLibvirtError ? err.details.slice(err.message.length).replace(/^\n/, "") : undefined;
  const lines = hints.map((h) => `  hint: ${h}`).join("\n");
  return new GlusterLibvirtError(`${message}\n${lines}`, { cause: err, details });
}

/** XML that cannot be built (unrepresentable value) or parsed (malformed, not what libvirt prints). */
export class XmlError extends GlusterLibvirtError {}

/**
 * A check that guards data (is this image in use? does this file exist?) could not be
 * completed. Safety fails closed: the operation it guarded was not done.
 */
export class SafetyCheckError extends GlusterLibvirtError {}

/** A resource input is wrong; `field` is the dotted path of the input (`connection.port`). */
export class InputError extends GlusterLibvirtError {
  constructor(
    readonly field: string,
    /** what is wrong, without the field (the message is `<field>: <reason>`) */
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

export type SshErrorKind =
  /** TCP connect failed or timed out, or the handshake did not finish. Retried with backoff. */
  | "connect"
  /** The server refused every credential we offered. Never retried. */
  | "auth"
  /** The server's host key is unknown, changed or revoked. Never retried. */
  | "host-key"
  /** The connection dropped while a command was running: it may or may not have run. */
  | "connection-lost"
  /** A wait exceeded its bound: a command (`timeouts.command`), a free channel, a channel opening. */
  | "timeout"
  /** The provider stopped all SSH work because the Pulumi engine went away. */
  | "aborted";

/** Anything that went wrong in the SSH transport itself (not in the remote command). */
export class SshError extends GlusterLibvirtError {
  constructor(
    readonly kind: SshErrorKind,
    /** `user@host:port` (through jump hosts: `a -> b`); never credentials. */
    readonly target: string,
    /** What happened, without the target (the message is `SSH <target>: <reason>`). */
    readonly reason: string,
    opts: { details?: string; cause?: unknown } = {},
  ) {
    super(`SSH ${target}: ${reason}`, opts);
  }
}

/**
 * What went wrong in a remote command, in the terms resource code branches on.
 * Kept deliberately few: each is something a caller does differently.
 */
export type CommandErrorKind =
  | "not-found-pool"
  | "not-found-volume"
  | "not-found-domain"
  /** a Gluster volume (gluster CLI: "Volume X does not exist") */
  | "not-found-gluster-volume"
  | "already-exists"
  /** still active, busy, in use by a domain or mount */
  | "in-use"
  /** the domain is not running / the pool is not active */
  | "not-running"
  /** libvirt socket, polkit, sudo or file permissions */
  | "permission-denied"
  | "unknown";

/** A remote command exited non-zero. `command` is the (redacted) command line as run. */
export class CommandError extends GlusterLibvirtError {
  readonly kind: CommandErrorKind;

  constructor(
    readonly command: string,
    readonly exitCode: number,
    readonly stderr: string,
    opts: { target?: string } = {},
  ) {
    const firstError = summarizeStderr(stderr);
    const where = opts.target ? ` on ${opts.target}` : "";
    super(`${command}${where} failed (exit ${exitCode})${firstError ? `: ${firstError}` : ""}`, {
      details: stderr.trim() ? `stderr:\n${stderr.trimEnd()}` : undefined,
    });
    this.kind = classifyCommandError(stderr);
  }
}

/** A virsh command failed; `kind` classifies libvirt's message. */
export class VirshError extends CommandError {}

/**
 * A `gluster --mode=script --xml` command failed. The CLI exits 0 with `--xml` even when
 * the operation failed: `stderr` here is its `<opErrstr>` (or its plain output when it
 * printed no XML), classified like any command's.
 */
export class GlusterError extends CommandError {}

/*
 * Classification: the one place that knows libvirt's wording. Patterns are checked in
 * order; the first match wins. A missing pool is checked before a missing volume because
 * `vol-* --pool P` reports only the pool when P is absent. Texts are virsh 9.x; older
 * and newer releases use the same error codes (VIR_ERR_NO_STORAGE_POOL, …).
 */
const CLASSIFICATION: ReadonlyArray<readonly [CommandErrorKind, RegExp]> = [
  ["permission-denied", /permission denied|operation forbidden|authentication (failed|unavailable)|access denied|not authorized|a password is required|unable to get system bus connection|read-only access prohibited/i],
  ["not-found-pool", /storage pool not found|failed to get pool|no storage pool with matching/i],
  ["not-found-volume", /storage volume not found|failed to get vol|no storage vol with matching/i],
  ["not-found-domain", /domain not found|failed to get domain|no domain with matching/i],
  ["not-found-gluster-volume", /^volume (\S+ )?does not exist/im],
  ["already-exists", /already exists|exists already|already in use by another|name .* is already taken/i],
  ["not-running", /is not running|domain not running|not active|is not started|not in the started state/i],
  ["in-use", /is still active|device or resource busy|\bin use\b|\bbusy\b|has active domains/i],
];

/** Classify a failed command from its stderr (pure; tested against real virsh messages). */
export function classifyCommandError(stderr: string): CommandErrorKind {
  for (const [kind, pattern] of CLASSIFICATION) if (pattern.test(stderr)) return kind;
  return "unknown";
}

/** The most specific `error:` line of virsh's stderr (the last one), else the first line. */
function summarizeStderr(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => l.startsWith("error:"));
  const line = errors.length ? errors[errors.length - 1].slice("error:".length).trim() : lines[0] ?? "";
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

export type NotFoundObject = "pool" | "volume" | "domain" | "gluster-volume";

/** True when `err` says the object (any of them, or the one named) does not exist. */
export function isNotFound(err: unknown, what?: NotFoundObject): boolean {
  if (!(err instanceof CommandError) || !err.kind.startsWith("not-found-")) return false;
  return what === undefined || err.kind === `not-found-${what}`;
}

/** True when `err` is a failed remote command of the given kind. */
export function isCommandError(err: unknown, kind: CommandErrorKind): err is CommandError {
  return err instanceof CommandError && err.kind === kind;
}

/** Attach `value` to `target` under `key` without making it enumerable (never logged). */
export function attachHidden<T extends object>(target: T, key: string, value: unknown): T {
  Object.defineProperty(target, key, { value, enumerable: false, writable: false, configurable: true });
  return target;
}

const REDACTED = "***";
/** Flags whose following argument is a secret (libvirt secrets, passwords). */
const SECRET_FLAGS = new Set(["--base64", "--password", "--passphrase", "--secret", "--passwd"]);

/**
 * Replace every occurrence of a known secret, and every value following a secret-bearing
 * flag, before text reaches an error or a log. Secrets shorter than 4 characters are
 * still replaced: a leaked short password is still a leaked password.
 */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  // Longest first: a secret that contains another is replaced whole.
  const ordered = secrets.filter((s): s is string => !!s).sort((a, b) => b.length - a.length);
  for (const s of ordered) out = out.split(s).join(REDACTED);
  return out;
}

/**
 * The rule for download URLs: any userinfo (`user:password@`) and any query string
 * count as credentials (signed URLs and tokens travel in the query). Such a URL is
 * kept off every command line, shown as `displayUrl` gives it, and made a secret by
 * the SDK.
 */
export function hasUrlCredentials(url: string): boolean {
  const parts = urlParts(url);
  return parts !== undefined && (parts.userinfo !== "" || parts.query !== "");
}

function urlParts(url: string): { userinfo: string; query: string } | undefined {
  // By hand rather than with `new URL`, which re-encodes: the raw text is what leaks.
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)([^?#]*)(\?[^#]*)?/.exec(url);
  if (!m) return undefined;
  const at = m[1].lastIndexOf("@");
  return { userinfo: at >= 0 ? m[1].slice(0, at) : "", query: m[3] ?? "" };
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The credential parts of a URL, raw and percent-decoded, for `redact`. */
export function urlSecrets(url: string): string[] {
  const parts = urlParts(url);
  if (!parts) return [];
  const out = new Set<string>();
  if (parts.userinfo) {
    out.add(parts.userinfo);
    const colon = parts.userinfo.indexOf(":");
    const password = colon >= 0 ? parts.userinfo.slice(colon + 1) : "";
    for (const s of [password, decoded(password), decoded(parts.userinfo)]) if (s) out.add(s);
  }
  if (parts.query.length > 1) {
    out.add(parts.query.slice(1));
    for (const pair of parts.query.slice(1).split("&")) {
      const value = pair.slice(pair.indexOf("=") + 1);
      // Values of a few characters ("1", "yes") would blank out unrelated text: the whole query covers them.
      for (const s of [value, decoded(value)]) if (s.length >= 4) out.add(s);
    }
  }
  return [...out];
}

/** `url` as messages may show it: userinfo and query string replaced by `***`. */
export function displayUrl(url: string): string {
  const parts = urlParts(url);
  if (!parts) return url;
  let out = url;
  if (parts.userinfo) out = out.replace(`${parts.userinfo}@`, `${REDACTED}@`);
  if (parts.query.length > 1) out = out.replace(parts.query, `?${REDACTED}`);
  return out;
}

/** argv with values of secret flags (`--base64 V`, `--password=V`) replaced. */
export function redactArgv(argv: readonly string[]): string[] {
  return argv.map((arg, i) => {
    if (i > 0 && SECRET_FLAGS.has(argv[i - 1])) return REDACTED;
    const eq = arg.indexOf("=");
    if (eq > 0 && SECRET_FLAGS.has(arg.slice(0, eq))) return `${arg.slice(0, eq)}=${REDACTED}`;
    return arg;
  });
}
