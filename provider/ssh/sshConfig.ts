/**
 * ~/.ssh/config lookup (ssh_config(5)), limited to what makes a host alias usable:
 * HostName, User, Port, IdentityFile and ProxyJump. As in OpenSSH the first value
 * obtained for a keyword wins (IdentityFile accumulates), `Host` patterns take `*`, `?`
 * and `!negation`, and `Include` is followed. `Match` blocks cannot be evaluated
 * faithfully here, so they never apply: better a missing default than a wrong one.
 */
import { readdirSync, readFileSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { basename, dirname, isAbsolute, join } from "node:path";
import { hostPatternsMatch } from "./knownHosts";

export interface SshConfigValues {
  hostName?: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  /** Raw ProxyJump value (`none` already mapped to undefined). */
  proxyJump?: string;
}

type Scope = { kind: "all" } | { kind: "host"; patterns: string[] } | { kind: "match" };

export interface SshConfigDirective {
  keyword: string; // lowercased
  args: string[];
  scope: Scope;
}

/** Reads the files an `Include` argument names (already `~`-expanded and absolute). */
export type IncludeReader = (pattern: string) => string[];

/** Split a config line into keyword and arguments: `Key value`, `Key=value`, `"quoted args"`. */
function tokenize(line: string): { keyword: string; args: string[] } | undefined {
  const m = /^\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)$/.exec(line);
  if (!m) return undefined;
  const args: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let t; (t = re.exec(m[2])); ) args.push(t[1] ?? t[2]);
  return { keyword: m[1].toLowerCase(), args };
}

export function parseSshConfig(text: string, include?: IncludeReader, initialScope: Scope = { kind: "all" }, depth = 0): SshConfigDirective[] {
  const out: SshConfigDirective[] = [];
  let scope = initialScope;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const tok = tokenize(line);
    if (!tok) continue;
    if (tok.keyword === "host") scope = { kind: "host", patterns: tok.args };
    else if (tok.keyword === "match") scope = { kind: "match" };
    else if (tok.keyword === "include") {
      // OpenSSH limits nesting to 16; included files continue in the current scope.
      if (!include || depth >= 16) continue;
      for (const arg of tok.args) for (const t of include(arg)) out.push(...parseSshConfig(t, include, scope, depth + 1));
    } else out.push({ ...tok, scope });
  }
  return out;
}

function applies(scope: Scope, alias: string): boolean {
  return scope.kind === "all" || (scope.kind === "host" && hostPatternsMatch(scope.patterns, alias));
}

/** Expand ssh_config tokens (`%h %r %u %d %p %%`) and a leading `~`. */
function expandTokens(value: string, t: { h: string; r: string; p: number }): string {
  const home = homedir();
  const expanded = value.replace(/%([%hrudpn])/g, (_, c: string) =>
    ({ "%": "%", h: t.h, r: t.r, u: userInfo().username, d: home, p: String(t.p), n: t.h })[c] ?? "",
  );
  return expanded.startsWith("~/") ? join(home, expanded.slice(2)) : expanded;
}

/** The values ~/.ssh/config gives for `alias`; pure over the parsed directives. */
export function lookupSshConfig(directives: readonly SshConfigDirective[], alias: string): SshConfigValues {
  const first = new Map<string, string[]>();
  const identityFiles: string[] = [];
  for (const d of directives) {
    if (!applies(d.scope, alias) || d.args.length === 0) continue;
    if (d.keyword === "identityfile") identityFiles.push(d.args[0]);
    else if (!first.has(d.keyword)) first.set(d.keyword, d.args);
  }
  const hostName = first.get("hostname")?.[0];
  const user = first.get("user")?.[0];
  const portText = first.get("port")?.[0];
  const port = portText && /^\d+$/.test(portText) ? Number(portText) : undefined;
  const proxyJump = first.get("proxyjump")?.[0];
  const tokens = { h: hostName ? expandTokens(hostName, { h: alias, r: "", p: 22 }) : alias, r: user ?? userInfo().username, p: port ?? 22 };
  return {
    hostName: hostName === undefined ? undefined : tokens.h,
    user,
    port,
    identityFiles: identityFiles.filter((f) => f.toLowerCase() !== "none").map((f) => expandTokens(f, tokens)),
    proxyJump: proxyJump && proxyJump.toLowerCase() !== "none" ? proxyJump : undefined,
  };
}

/** Include reader over the real filesystem: relative paths are under ~/.ssh; `*` in the last component. */
export function fileIncludeReader(pattern: string): string[] {
  const home = homedir();
  let path = pattern.startsWith("~/") ? join(home, pattern.slice(2)) : pattern;
  if (!isAbsolute(path)) path = join(home, ".ssh", path);
  const dir = dirname(path);
  const name = basename(path);
  let files = [path];
  if (/[*?]/.test(name)) {
    try {
      files = readdirSync(dir).filter((f) => hostPatternsMatch([name], f)).sort().map((f) => join(dir, f));
    } catch {
      return [];
    }
  }
  return files.flatMap((f) => {
    try {
      return [readFileSync(f, "utf8")];
    } catch {
      return [];
    }
  });
}

/** Values for `alias` from the user's ~/.ssh/config (empty when there is none). */
export function readUserSshConfig(alias: string, path = join(homedir(), ".ssh", "config")): SshConfigValues {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return { identityFiles: [] };
  }
  return lookupSshConfig(parseSshConfig(text, fileIncludeReader), alias);
}
