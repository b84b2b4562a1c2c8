/**
 * known_hosts, as OpenSSH reads it (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain and
 * hashed (`|1|salt|hmac`) host patterns, `[host]:port` for non-22 ports, `*`/`?`
 * wildcards, `!` negation, and the `@revoked` marker. `@cert-authority` lines are
 * skipped: we do not verify host certificates. Pure functions over text, then the one
 * function that reads (and for `accept-new` appends to) the file.
 */
import { createHash, createHmac } from "node:crypto";
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname } from "node:path";

export interface KnownHostEntry {
  marker?: "revoked";
  /** The raw host field: comma-separated patterns, or one `|1|…` hash. */
  hosts: string;
  keyType: string;
  /** The key blob (SSH wire format), base64-decoded. */
  key: Buffer;
  /** 1-based line number, for messages. */
  line: number;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const fields = raw.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith("#")) return;
    let marker: KnownHostEntry["marker"];
    if (fields[0].startsWith("@")) {
      if (fields[0] !== "@revoked") return; // @cert-authority and unknown markers
      marker = "revoked";
      fields.shift();
    }
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64 || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return;
    entries.push({ marker, hosts, keyType, key: Buffer.from(b64, "base64"), line: index + 1 });
  });
  return entries;
}

/**
 * The name OpenSSH looks up and records: `host` on port 22, else `[host]:port`. Like
 * `ssh`, a host name is lowercased first (hashed entries compare exact bytes, so
 * `KVM1` must hash as `kvm1` does); an address is kept as it is, as `ssh` keeps it.
 */
export function knownHostsName(host: string, port: number): string {
  const name = isIP(host) === 0 ? host.toLowerCase() : host;
  return port === 22 ? name : `[${name}]:${port}`;
}

/** OpenSSH's glob (match.c): `*` any run, `?` one character; case-insensitive like hostnames. */
function globMatch(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`, "i").test(name);
}

/**
 * OpenSSH's pattern-list rule, shared by known_hosts host fields and ssh_config `Host`
 * lines: some positive pattern matches and no `!negated` one does.
 */
export function hostPatternsMatch(patterns: readonly string[], name: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith("!")) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) matched = true;
  }
  return matched;
}

/** Does a known_hosts host field match `name` (already in `[host]:port` form)? */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt, hash] = field.split("|");
    if (!salt || !hash) return false;
    const digest = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return digest === hash;
  }
  return hostPatternsMatch(field.split(","), name);
}

export type KnownHostsVerdict =
  /** A non-revoked line for this host carries exactly this key. */
  | { status: "match"; line: number }
  /** A matching `@revoked` line carries this key: refuse whatever else says. */
  | { status: "revoked"; line: number }
  /** The host is known, with other keys: the key changed (or is of a type never seen). */
  | { status: "changed"; lines: number[]; knownTypes: string[] }
  | { status: "unknown" };

/** Check a presented key blob against parsed known_hosts entries for `host:port`. */
export function checkKnownHosts(entries: readonly KnownHostEntry[], host: string, port: number, key: Buffer): KnownHostsVerdict {
  const name = knownHostsName(host, port);
  const forHost = entries.filter((e) => hostFieldMatches(e.hosts, name));
  const revoked = forHost.find((e) => e.marker === "revoked" && e.key.equals(key));
  if (revoked) return { status: "revoked", line: revoked.line };
  const valid = forHost.filter((e) => e.marker !== "revoked");
  const match = valid.find((e) => e.key.equals(key));
  if (match) return { status: "match", line: match.line };
  if (valid.length === 0) return { status: "unknown" };
  return { status: "changed", lines: valid.map((e) => e.line), knownTypes: [...new Set(valid.map((e) => e.keyType))] };
}

/** Key types recorded for a host, so the client can ask the server for one of them first. */
export function knownKeyTypes(entries: readonly KnownHostEntry[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  return [...new Set(entries.filter((e) => e.marker !== "revoked" && hostFieldMatches(e.hosts, name)).map((e) => e.keyType))];
}

/** The key type named inside an SSH wire-format key blob (`ssh-ed25519`, …). */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) return "unknown";
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString("latin1");
}

/** OpenSSH's fingerprint format: `SHA256:` + unpadded base64 of the blob's SHA-256. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** A known_hosts line recording `blob` for `host:port` (what accept-new appends). */
export function formatKnownHostsLine(host: string, port: number, blob: Buffer): string {
  return `${knownHostsName(host, port)} ${keyTypeOfBlob(blob)} ${blob.toString("base64")}`;
}

/**
 * A pinned `hostKey`: either `SHA256:<base64>` (padding optional) or a public key
 * `<type> <base64> [comment]` (a bare base64 blob is accepted too).
 */
export type PinnedHostKey = { fingerprint: string } | { key: Buffer; keyType: string };

export function parsePinnedHostKey(text: string): PinnedHostKey | undefined {
  const t = text.trim();
  const fp = /^SHA256:([A-Za-z0-9+/]+)=*$/.exec(t);
  if (fp) return { fingerprint: `SHA256:${fp[1]}` };
  const fields = t.split(/\s+/);
  const b64 = fields.length >= 2 ? fields[1] : fields[0];
  if (!/^[A-Za-z0-9+/]+=*$/.test(b64)) return undefined;
  const key = Buffer.from(b64, "base64");
  const keyType = keyTypeOfBlob(key);
  if (fields.length >= 2 && fields[0] !== keyType) return undefined;
  if (!/^[a-z0-9@.-]+$/.test(keyType)) return undefined;
  return { key, keyType };
}

/** Does a presented blob satisfy a pin? */
export function matchesPin(pin: PinnedHostKey, blob: Buffer): boolean {
  return "fingerprint" in pin ? pin.fingerprint === fingerprint(blob) : pin.key.equals(blob);
}

// ---------------------------------------------------------------------------------------
// Verification against the filesystem: the only impure part of this module.

export type HostKeyPolicyName = "strict" | "accept-new" | "insecure";

export interface HostKeyCheck {
  host: string;
  port: number;
  /** `user@host:port`, for messages. */
  label: string;
  pin?: PinnedHostKey;
  knownHostsFile: string;
  policy: HostKeyPolicyName;
}

function readKnownHosts(file: string): KnownHostEntry[] {
  try {
    return parseKnownHosts(readFileSync(file, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** How to trust a key by hand: shown in every refusal, with the presented fingerprint. */
function pinHint(fp: string, c: HostKeyCheck): string {
  const name = knownHostsName(c.host, c.port);
  return (
    `Compare it with the host's own key (on the host: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub). ` +
    `If it is right, pin it: connection.hostKey = "${fp}" ` +
    `(or add it to ${c.knownHostsFile}: ssh-keyscan -p ${c.port} ${c.host} >> ${c.knownHostsFile}, ` +
    `or let hostKeyPolicy "accept-new" record it on first use). Known_hosts name: ${name}.`
  );
}

/**
 * Decide whether the key a server presented is trusted. Returns undefined when it is;
 * otherwise a refusal message. A pinned `hostKey` always decides, whatever the policy:
 * a stack-wide `insecure` default must not switch off a pin someone set on purpose.
 * Without a pin, `accept-new` appends a never-seen host's key to the known_hosts file;
 * a changed or revoked key is refused under every policy but `insecure`, which accepts
 * anything and says so through `warn`.
 */
export function verifyHostKey(c: HostKeyCheck, blob: Buffer, warn: (msg: string) => void): string | undefined {
  const fp = fingerprint(blob);
  const type = keyTypeOfBlob(blob);
  if (c.pin) {
    if (matchesPin(c.pin, blob)) return undefined;
    const pinned = "fingerprint" in c.pin ? c.pin.fingerprint : `${c.pin.keyType} ${fingerprint(c.pin.key)}`;
    return `host key mismatch: the server presented ${type} ${fp}, but connection.hostKey pins ${pinned}. Refused (possible man-in-the-middle; a pin is checked under every hostKeyPolicy, "insecure" included). If the host key really changed, update the pin to "${fp}".`;
  }
  if (c.policy === "insecure") {
    warn(`host key of ${c.label} NOT verified (hostKeyPolicy "insecure"): ${type} ${fp}`);
    return undefined;
  }
  const entries = readKnownHosts(c.knownHostsFile);
  const verdict = checkKnownHosts(entries, c.host, c.port, blob);
  switch (verdict.status) {
    case "match":
      return undefined;
    case "revoked":
      return `host key ${type} ${fp} is marked @revoked in ${c.knownHostsFile}:${verdict.line}. Refused.`;
    case "changed":
      return (
        `HOST KEY CHANGED: the server presented ${type} ${fp}, but ${c.knownHostsFile} (line ${verdict.lines.join(", ")}) ` +
        `records a different ${verdict.knownTypes.join("/")} key for ${knownHostsName(c.host, c.port)}. Refused (possible man-in-the-middle). ` +
        `If the host was reinstalled, remove the old entry (ssh-keygen -R '${knownHostsName(c.host, c.port)}' -f ${c.knownHostsFile}). ` +
        pinHint(fp, c)
      );
    case "unknown":
      if (c.policy === "accept-new") {
        mkdirSync(dirname(c.knownHostsFile), { recursive: true, mode: 0o700 });
        appendFileSync(c.knownHostsFile, `${formatKnownHostsLine(c.host, c.port, blob)}\n`, { mode: 0o600 });
        warn(`recorded new host key of ${c.label} in ${c.knownHostsFile}: ${type} ${fp}`);
        return undefined;
      }
      return `unknown host key: ${c.label} presented ${type} ${fp}, which is not in ${c.knownHostsFile} and no connection.hostKey is pinned. Refused (hostKeyPolicy "strict"). ${pinHint(fp, c)}`;
  }
}

/** Map a known_hosts key type to the host-key algorithms that produce it. */
function algorithmsFor(keyType: string): string[] {
  return keyType === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [keyType];
}

/**
 * Host-key algorithms to offer, the ones we can verify first (what OpenSSH does):
 * otherwise a server with several host keys may present a type known_hosts lacks.
 */
export function preferredHostKeyAlgorithms(c: HostKeyCheck, supported: readonly string[]): string[] {
  const pinnedType = c.pin && "keyType" in c.pin ? c.pin.keyType : undefined;
  const known = pinnedType ? [pinnedType] : c.pin ? [] : knownKeyTypes(readKnownHosts(c.knownHostsFile), c.host, c.port);
  const first = known.flatMap(algorithmsFor).filter((a) => supported.includes(a));
  return [...first, ...supported.filter((a) => !first.includes(a))];
}
