/**
 * The `connection` input every resource takes, and its resolution into what the
 * transport needs. Precedence, field by field: the resource's input, then the stack
 * config defaults (`gluster-libvirt:*`, handed over by the provider's `configure`),
 * then ~/.ssh/config for the host alias, then built-ins.
 *
 * Secrets (privateKey, passphrase, password) are never put in messages; resolved
 * settings carry keys and passwords only in non-enumerable properties.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { join } from "node:path";
import { type ParsedKey, utils as ssh2Utils } from "ssh2";
import { z } from "zod";
import { isDynamicProviderProcess } from "../engineWatchdog";
import { InputError, attachHidden } from "../errors";
import { libvirtUri, loginName, sshHost, UNKNOWN } from "../fields";
import { type PinnedHostKey, parsePinnedHostKey } from "./knownHosts";
import { type SshConfigValues, readUserSshConfig } from "./sshConfig";
export { UNKNOWN };

/** An optional field that also tolerates the preview placeholder (read as "not set yet"). */
function optional<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === UNKNOWN ? undefined : v), schema.optional());
}

const text = z.string().min(1, "must not be empty");
const port = z.number().int().min(1).max(65535);
/** Node's timers hold at most 2^31−1 ms: a longer delay fires after ~1 ms instead. */
const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
/** z.number() already refuses NaN and ±Infinity. */
const seconds = z
  .number()
  .nonnegative()
  .max(MAX_TIMEOUT_SECONDS, `must be at most ${MAX_TIMEOUT_SECONDS} seconds (about 24.8 days, what a timer can hold)`);

/** A public host key (`ssh-ed25519 AAAA…`) or a fingerprint (`SHA256:…`), as `ssh-keygen -lf` prints it. */
const hostKey = text.refine((v) => v === UNKNOWN || parsePinnedHostKey(v) !== undefined, {
  message: "expected a public key (`ssh-ed25519 AAAA…`) or a fingerprint (`SHA256:…`)",
});

/** One jump host given as an object: its own address and, optionally, its own credentials and pin. */
const jumpHostSchema = z.strictObject({
  host: sshHost,
  port: optional(port),
  user: optional(loginName),
  hostKey: optional(hostKey),
  privateKey: optional(text),
  privateKeyPath: optional(text),
  passphrase: optional(z.string()),
  password: optional(z.string()),
  agent: optional(z.string()),
});

/** Why `spec` (`[user@]host[:port]`) is not a usable jump host, or undefined. */
function jumpSpecProblem(spec: string): string | undefined {
  const parsed = parseJumpSpecOrUndefined(spec);
  if (!parsed) return `cannot parse jump host "${spec}" (expected [user@]host[:port])`;
  const host = sshHost.safeParse(parsed.host);
  if (!host.success) return `jump host "${spec}": ${host.error.issues[0].message}`;
  if (parsed.user !== undefined && !loginName.safeParse(parsed.user).success) return `jump host "${spec}": the user name has a leading '-', whitespace or shell characters`;
  if (parsed.port !== undefined && !port.safeParse(parsed.port).success) return `jump host "${spec}": the port must be 1-65535`;
  return undefined;
}

/** One jump host as a string, `[user@]host[:port]`. */
const jumpSpec = text.superRefine((v, ctx) => {
  const problem = v === UNKNOWN ? undefined : jumpSpecProblem(v);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});
/** OpenSSH's `ProxyJump` form: comma-separated jump hosts, first hop first. */
const jumpList = text.superRefine((v, ctx) => {
  for (const hop of v === UNKNOWN ? [] : v.split(",").filter(Boolean)) {
    const problem = jumpSpecProblem(hop);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }
});

const timeoutsSchema = z.strictObject({
  /** Seconds to establish a connection (TCP + handshake + auth, per hop), per attempt; also bounds opening a channel. Must be > 0. Default 15. */
  connect: optional(seconds.positive()),
  /**
   * Seconds one remote command may run; 0 = no limit. Default 1800. Also bounds waiting
   * for a free SSH channel (none freed for this long) and a virsh session's start; with
   * 0, those waits keep the default.
   */
  command: optional(seconds),
  /** Seconds between SSH keepalives on a connection; 0 = off. Default 15. */
  keepalive: optional(seconds),
  /**
   * Seconds an idle connection stays open before it is closed (lets a process of the SDK's
   * exit by itself); 0 = never closed while the process lives. Default 5, and 0 inside the
   * engine's dynamic-provider process, which the engine ends itself once the run is over:
   * one login per host and run however long a host waits for the engine's next operation.
   */
  idle: optional(seconds),
});

const connectionObject = z.strictObject({
  /** Host name, address or ~/.ssh/config alias of the hypervisor. */
  host: sshHost,
  /** SSH port. Default: ~/.ssh/config `Port`, else 22. */
  port: optional(port),
  /** Login user. Default: ~/.ssh/config `User`, else the local user name. */
  user: optional(loginName),
  /** Private key text (OpenSSH or PEM; ed25519, rsa, ecdsa). Prefer a secret stack config. */
  privateKey: optional(text),
  /** Path of a private key file on the machine running Pulumi (`~/` allowed). */
  privateKeyPath: optional(text),
  /** Passphrase of an encrypted private key. */
  passphrase: optional(z.string()),
  /** Password (password or keyboard-interactive authentication). */
  password: optional(z.string()),
  /** ssh-agent socket path. Default `$SSH_AUTH_SOCK`; empty string disables the agent. */
  agent: optional(z.string()),
  /** Pinned host key or `SHA256:` fingerprint of the target; when set, known_hosts is not consulted and `hostKeyPolicy` does not apply: the pin always wins. */
  hostKey: optional(hostKey),
  /** known_hosts file for verification (and where `accept-new` records keys). Default ~/.ssh/known_hosts. */
  knownHostsFile: optional(text),
  /** `strict` (default): only known or pinned keys. `accept-new`: record unknown hosts, refuse changed keys. `insecure`: accept any key (warns). */
  hostKeyPolicy: optional(z.enum(["strict", "accept-new", "insecure"])),
  /** Jump hosts, first hop first: `"user@jump1:22,jump2"` (OpenSSH syntax) or a list of strings/objects. Each hop is verified. */
  proxyJump: optional(z.union([jumpList, z.array(z.union([jumpSpec, jumpHostSchema])).min(1)])),
  /** Run every remote command through `sudo -n` (for a non-root login with passwordless sudo). Default false. */
  sudo: optional(z.boolean()),
  /** libvirt URI virsh connects to on the host. Default `qemu:///system`. */
  libvirtUri: optional(libvirtUri),
  /** Timeouts, in seconds. */
  timeouts: optional(timeoutsSchema),
});

/**
 * The zod schema of the `connection` input; resource schemas embed it. During preview
 * any field, or the whole object, may be the unknown placeholder: that validates.
 */
export const connectionSchema = z.preprocess((v) => (v === UNKNOWN ? { host: UNKNOWN } : v), connectionObject);

export type ConnectionArgs = z.output<typeof connectionObject>;
export type JumpHostArgs = z.output<typeof jumpHostSchema>;
export type HostKeyPolicy = NonNullable<ConnectionArgs["hostKeyPolicy"]>;

// ---------------------------------------------------------------------------------------
// Stack-config defaults

let stackDefaults: Partial<ConnectionArgs> = {};

/** Stack config values arrive as strings; turn the non-string fields back into their types. */
function coerceConfigValue(key: string, value: unknown): unknown {
  if (typeof value !== "string") return value;
  if (key === "port" && /^\d+$/.test(value)) return Number(value);
  if (key === "sudo" && /^(true|false)$/.test(value)) return value === "true";
  if ((key === "timeouts" || key === "proxyJump") && /^\s*[[{]/.test(value)) {
    try {
      return JSON.parse(value);
    } catch {
      return value; // let the schema report it
    }
  }
  return value;
}

/**
 * Defaults for every resource's `connection`, from the `gluster-libvirt:*` stack config
 * (the provider's `configure` calls this). Replaces earlier defaults. Values may be
 * strings as config delivers them. Throws InputError naming `gluster-libvirt:<key>`.
 */
export function setConnectionDefaults(partial: Record<string, unknown>): void {
  const coerced = Object.fromEntries(
    Object.entries(partial).filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => [k, coerceConfigValue(k, v)]),
  );
  const parsed = connectionObject.partial().safeParse(coerced);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(`gluster-libvirt:${issue.path.join(".") || "config"}`, issue.message);
  }
  stackDefaults = Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined));
}

/** The stack-config keys `configure` should read (`gluster-libvirt:<key>`). */
export const CONNECTION_CONFIG_KEYS = Object.keys(connectionObject.shape) as (keyof ConnectionArgs)[];

// ---------------------------------------------------------------------------------------
// Resolution

/** An authentication method in the form ssh2's `authHandler` list takes (minus username). */
export type AuthMethod =
  | { type: "publickey"; key: ParsedKey; source: string }
  | { type: "agent"; agent: string }
  | { type: "password"; password: string };

/** One SSH hop, fully resolved. `auth` is non-enumerable (keys and passwords). */
export interface Endpoint {
  host: string;
  port: number;
  user: string;
  /** `user@host:port`: for messages and pool keys, never credentials. */
  label: string;
  pin?: PinnedHostKey;
  readonly auth: readonly AuthMethod[];
}

export interface ResolvedTimeouts {
  connectMs: number;
  commandMs: number;
  keepaliveMs: number;
  idleMs: number;
}

const DEFAULT_COMMAND_SECONDS = 1800;

/** The bound of waits that are not commands but wait on them (a free channel, a virsh start). */
export function boundedWaitMs(t: ResolvedTimeouts): number {
  return t.commandMs || DEFAULT_COMMAND_SECONDS * 1000;
}

export interface ResolvedConnection {
  target: Endpoint;
  /** Jump hosts, first hop first. */
  jumps: Endpoint[];
  knownHostsFile: string;
  hostKeyPolicy: HostKeyPolicy;
  sudo: boolean;
  libvirtUri: string;
  timeouts: ResolvedTimeouts;
  /** `a -> b -> user@host:port`, for messages. */
  label: string;
  /** Connections are shared between equal keys: the hop chain plus a digest of credentials and host-key settings. */
  poolKey: string;
  /** Every secret string, for redaction (non-enumerable). */
  readonly secrets: readonly string[];
}

const DEFAULT_IDENTITY_FILES = ["id_ed25519", "id_ecdsa", "id_rsa"];

function expandHome(path: string): string {
  return path === "~" ? homedir() : path.startsWith("~/") ? join(homedir(), path.slice(2)) : path;
}

function rejectUnknown(field: string, value: unknown): void {
  if (value === UNKNOWN || (typeof value === "string" && value.includes(UNKNOWN))) {
    throw new InputError(field, "is not known yet (an unresolved Output); it must be known before commands run");
  }
}

/** Parse a private key; explicit keys fail loudly, discovered ones (config, defaults) are skipped. */
function loadKey(field: string, keyText: string, passphrase: string | undefined, source: string, explicit: boolean): AuthMethod | undefined {
  const key = ssh2Utils.parseKey(keyText, passphrase);
  if (key instanceof Error) {
    if (!explicit) return undefined;
    // ssh2's messages name the problem (encrypted, bad passphrase, unsupported) without key material.
    const why = key.message;
    const hint = /encrypted|passphrase|decrypt/i.test(why) ? " (set connection.passphrase)" : "";
    throw new InputError(field, `cannot use this private key: ${why}${hint}`);
  }
  if (!key.isPrivateKey()) {
    if (!explicit) return undefined;
    throw new InputError(field, "is a public key; a private key is needed");
  }
  return { type: "publickey", key, source };
}

function readKeyFile(field: string, path: string, explicit: boolean): string | undefined {
  try {
    return readFileSync(expandHome(path), "utf8");
  } catch (err) {
    if (!explicit) return undefined;
    throw new InputError(field, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

interface CredentialArgs {
  privateKey?: string;
  privateKeyPath?: string;
  passphrase?: string;
  password?: string;
  agent?: string;
}

/** Authentication methods in the order they are tried: keys, agent, password. */
function authMethods(field: string, creds: CredentialArgs, sshConfig: SshConfigValues): AuthMethod[] {
  const methods: AuthMethod[] = [];
  if (creds.privateKey !== undefined) {
    methods.push(loadKey(`${field}.privateKey`, creds.privateKey, creds.passphrase, "privateKey", true)!);
  } else if (creds.privateKeyPath !== undefined) {
    const keyText = readKeyFile(`${field}.privateKeyPath`, creds.privateKeyPath, true)!;
    methods.push(loadKey(`${field}.privateKeyPath`, keyText, creds.passphrase, creds.privateKeyPath, true)!);
  } else {
    // Like OpenSSH: IdentityFile entries, else the default identities that exist.
    const files = sshConfig.identityFiles.length
      ? sshConfig.identityFiles
      : DEFAULT_IDENTITY_FILES.map((f) => join(homedir(), ".ssh", f)); // missing ones are skipped by readKeyFile
    for (const file of files) {
      const keyText = readKeyFile(field, file, false);
      const method = keyText === undefined ? undefined : loadKey(field, keyText, creds.passphrase, file, false);
      if (method) methods.push(method);
    }
  }
  const agent = creds.agent ?? process.env.SSH_AUTH_SOCK;
  if (agent) methods.push({ type: "agent", agent: expandHome(agent) });
  if (creds.password !== undefined) methods.push({ type: "password", password: creds.password });
  return methods;
}

function makeEndpoint(host: string, port: number, user: string, auth: AuthMethod[], pin?: PinnedHostKey): Endpoint {
  const endpoint = { host, port, user, label: `${user}@${host}:${port}`, pin } as Endpoint;
  return attachHidden(endpoint, "auth", auth);
}

function parseJumpSpecOrUndefined(spec: string): { host: string; user?: string; port?: number } | undefined {
  const m = /^(?:ssh:\/\/)?(?:([^@\s]+)@)?(\[[^\]]+\]|[^:\s\/]+)(?::(\d+))?\/?$/.exec(spec.trim());
  return m ? { user: m[1], host: m[2].replace(/^\[|\]$/g, ""), port: m[3] ? Number(m[3]) : undefined } : undefined;
}

/** `[user@]host[:port]`, `ssh://user@host:port`, `user@[::1]:22`. */
export function parseJumpSpec(spec: string): { host: string; user?: string; port?: number } {
  const parsed = parseJumpSpecOrUndefined(spec);
  if (!parsed) throw new InputError("connection.proxyJump", `cannot parse jump host "${spec}" (expected [user@]host[:port])`);
  return parsed;
}

function resolveJump(
  index: number,
  hop: string | JumpHostArgs,
  inherited: CredentialArgs,
  readSshConfig: (alias: string) => SshConfigValues,
): Endpoint {
  const field = `connection.proxyJump[${index}]`;
  const spec = typeof hop === "string" ? parseJumpSpec(hop) : hop;
  const cfg = readSshConfig(spec.host);
  const own: Partial<JumpHostArgs> = typeof hop === "string" ? {} : hop;
  // A hop without credentials of its own uses the target's (as OpenSSH offers the same identities).
  const hasOwnKey = own.privateKey !== undefined || own.privateKeyPath !== undefined;
  const creds: CredentialArgs = {
    privateKey: hasOwnKey ? own.privateKey : inherited.privateKey,
    privateKeyPath: hasOwnKey ? own.privateKeyPath : inherited.privateKeyPath,
    passphrase: own.passphrase ?? inherited.passphrase,
    password: own.password ?? inherited.password,
    agent: own.agent ?? inherited.agent,
  };
  const pin = own.hostKey === undefined ? undefined : parsePinnedHostKey(own.hostKey);
  return makeEndpoint(cfg.hostName ?? spec.host, spec.port ?? cfg.port ?? 22, spec.user ?? cfg.user ?? userInfo().username, authMethods(field, creds, cfg), pin);
}

function digest(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}

/** What makes two connections interchangeable besides the address: who we are and whom we trust. */
function securityIdentity(e: Endpoint): unknown {
  return {
    pin: e.pin && ("fingerprint" in e.pin ? e.pin.fingerprint : e.pin.key.toString("base64")),
    auth: e.auth.map((a) =>
      a.type === "publickey" ? a.key.getPublicSSH().toString("base64") : a.type === "agent" ? a.agent : digest(a.password),
    ),
  };
}

/**
 * Validate a `connection` input and resolve it against stack defaults, ~/.ssh/config
 * and built-ins. Synchronous (reads key files); throws InputError naming the field.
 */
export function resolveConnection(
  input: unknown,
  opts: { readSshConfig?: (alias: string) => SshConfigValues } = {},
): ResolvedConnection {
  const parsed = connectionObject.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(["connection", ...issue.path].join("."), issue.message);
  }
  const own = Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined)) as ConnectionArgs;
  const merged: ConnectionArgs = { ...stackDefaults, ...own };
  // A key given on the resource replaces the default key, whichever form each uses.
  if (own.privateKey !== undefined || own.privateKeyPath !== undefined) {
    merged.privateKey = own.privateKey;
    merged.privateKeyPath = own.privateKeyPath;
  }
  for (const [k, v] of Object.entries(merged)) rejectUnknown(`connection.${k}`, typeof v === "object" ? JSON.stringify(v) : v);

  const readSshConfig = opts.readSshConfig ?? ((alias: string) => readUserSshConfig(alias));
  const cfg = readSshConfig(merged.host);
  const creds: CredentialArgs = merged;
  const target = makeEndpoint(
    cfg.hostName ?? merged.host,
    merged.port ?? cfg.port ?? 22,
    merged.user ?? cfg.user ?? userInfo().username,
    authMethods("connection", creds, cfg),
    merged.hostKey === undefined ? undefined : parsePinnedHostKey(merged.hostKey),
  );
  const jumpSpec = merged.proxyJump ?? cfg.proxyJump;
  const hops = jumpSpec === undefined ? [] : typeof jumpSpec === "string" ? jumpSpec.split(",").filter(Boolean) : jumpSpec;
  const jumps = hops.map((hop, i) => resolveJump(i, hop, creds, readSshConfig));
  for (const e of [...jumps, target]) {
    if (e.auth.length === 0) {
      throw new InputError("connection", `no credentials for ${e.label}: set privateKey, privateKeyPath, password or agent (or an IdentityFile in ~/.ssh/config)`);
    }
  }

  const t = merged.timeouts ?? {};
  const knownHostsFile = expandHome(merged.knownHostsFile ?? join(homedir(), ".ssh", "known_hosts"));
  const hostKeyPolicy = merged.hostKeyPolicy ?? "strict";
  const chain = [...jumps, target];
  const resolved = {
    target,
    jumps,
    knownHostsFile,
    hostKeyPolicy,
    sudo: merged.sudo ?? false,
    libvirtUri: merged.libvirtUri ?? "qemu:///system",
    timeouts: {
      connectMs: (t.connect ?? 15) * 1000,
      commandMs: (t.command ?? DEFAULT_COMMAND_SECONDS) * 1000,
      keepaliveMs: (t.keepalive ?? 15) * 1000,
      idleMs: (t.idle ?? (isDynamicProviderProcess() ? 0 : 5)) * 1000,
    },
    label: chain.map((e) => e.label).join(" -> "),
    poolKey: `${chain.map((e) => e.label).join(" -> ")}#${digest({ chain: chain.map(securityIdentity), knownHostsFile, hostKeyPolicy })}`,
  } as ResolvedConnection;
  const secrets = [merged.privateKey, merged.passphrase, merged.password, ...hops.flatMap((h) => (typeof h === "string" ? [] : [h.privateKey, h.passphrase, h.password]))];
  return attachHidden(resolved, "secrets", secrets.filter((s): s is string => typeof s === "string" && s.length > 0));
}
