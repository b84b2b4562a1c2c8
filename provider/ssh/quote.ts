/**
 * Quoting. sshd hands the remote login shell one string (`sh -c "<string>"`), so every
 * argument we send must come out of that shell as exactly one literal word. Nothing
 * else in the project builds a remote command line: callers pass argv arrays.
 */
import { InputError } from "../errors";

/** Characters that mean nothing to a POSIX shell (nor to virsh's tokenizer) when unquoted. */
const PLAIN = /^[A-Za-z0-9_\/.,:=@%+-]+$/;

/**
 * Quote one argument for a POSIX shell: single quotes keep everything literal (`$()`,
 * backticks, `;`, newlines, unicode); an embedded `'` becomes `'\''`.
 * NUL cannot travel in an argv at all, so it is refused rather than silently truncated.
 */
export function shellQuote(arg: string): string {
  if (arg.includes("\0")) throw new InputError("argument", "contains a NUL byte, which no command line can carry");
  if (PLAIN.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** argv -> one command line for the remote login shell. */
export function shellCommandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new InputError("argv", "is empty");
  return argv.map(shellQuote).join(" ");
}

/*
 * virsh's interactive shell has its own tokenizer (vshCommandStringGetArg): blanks and
 * `;` separate, `'…'` is literal, `"…"` and bare `\` escape, `#` starts a comment. The
 * POSIX quoting above yields the same words under that grammar, but the line is read
 * by readline, which acts on control characters (TAB completes, ^U erases the line),
 * may mangle bytes >= 0x80 depending on the remote locale, and a newline would end the
 * command. So only printable ASCII is typed into a session; anything else runs as a
 * one-shot `virsh` exec whose argv goes through the POSIX shell, which carries it all.
 */
const SESSION_SAFE = /^[\x20-\x7e]*$/;
/** Without readline, virsh reads lines with fgets into a 1024-byte buffer. */
export const MAX_SESSION_LINE = 1000;

/**
 * The line to type into a `virsh` interactive session for these arguments, or
 * undefined when the arguments cannot be carried faithfully that way.
 */
export function virshSessionLine(args: readonly string[]): string | undefined {
  if (args.length === 0 || !args.every((a) => SESSION_SAFE.test(a))) return undefined;
  const line = shellCommandLine(args);
  return line.length <= MAX_SESSION_LINE ? line : undefined;
}

/**
 * The command line sshd runs for `argv`: the one place that decides it. Messages are
 * pinned to English (`LC_MESSAGES=C`, which gettext honours over `LANGUAGE`) because
 * errors are classified by their text. The character set is UTF-8 (`LC_CTYPE=C.UTF-8`;
 * a host without that locale falls back to C): in the C locale virsh prints every
 * non-ASCII byte of a name in its tables as `\xNN`, and a volume named `ünï.img` could
 * not be read back from a listing. With `sudo`,
 * the command runs through `sudo -n`: non-interactive, so a missing sudo rule fails at
 * once instead of waiting for a password nobody types (none is ever put in argv).
 */
export function remoteCommandLine(argv: readonly string[], opts: { sudo: boolean }): string {
  return `LC_MESSAGES=C LC_CTYPE=C.UTF-8 ${shellCommandLine(opts.sudo ? ["sudo", "-n", ...argv] : argv)}`;
}
