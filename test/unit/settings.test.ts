import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterEach, describe, it } from "node:test";
import { utils } from "ssh2";
import { InputError } from "../../provider/errors";
import type { SshConfigValues } from "../../provider/ssh/sshConfig";
import { UNKNOWN, connectionSchema, parseJumpSpec, resolveConnection, setConnectionDefaults } from "../../provider/ssh/settings";

const dir = mkdtempSync(join(tmpdir(), "glv-settings-"));
const plainKey = utils.generateKeyPairSync("ed25519").private;
const encryptedKey = utils.generateKeyPairSync("ed25519", { passphrase: "correct horse", cipher: "aes256-ctr", rounds: 4 }).private;
const keyPath = join(dir, "id_test");
writeFileSync(keyPath, plainKey, { mode: 0o600 });

const noSshConfig = () => ({ identityFiles: [] });
const sshConfig = (v: Record<string, SshConfigValues>) => (alias: string) => v[alias] ?? { identityFiles: [] };
/** Resolve with no agent from the environment and no ~/.ssh/config, unless given. */
const resolve = (input: Record<string, unknown>, readSshConfig: (a: string) => SshConfigValues = noSshConfig) =>
  resolveConnection({ agent: "", ...input }, { readSshConfig });

afterEach(() => setConnectionDefaults({}));

describe("connectionSchema", () => {
  it("accepts a full connection", () => {
    const r = connectionSchema.safeParse({
      host: "kvm1", port: 2222, user: "ops", privateKey: plainKey, passphrase: "x", password: "y", agent: "/run/agent.sock",
      hostKey: "SHA256:ByizUMfLc+mOT21KNMJsn4cx+L5JK0B7D49y8F9/b+o", knownHostsFile: "~/.ssh/kh", hostKeyPolicy: "accept-new",
      proxyJump: ["j1", { host: "j2", port: 22, user: "jump" }], sudo: true, libvirtUri: "qemu:///system",
      timeouts: { connect: 5, command: 60, keepalive: 10, idle: 2 },
    });
    assert.ok(r.success, JSON.stringify(r.error?.issues));
  });

  it("tolerates the preview placeholder in every field and as the whole object", () => {
    assert.ok(connectionSchema.safeParse(UNKNOWN).success);
    for (const field of ["port", "user", "privateKey", "hostKey", "hostKeyPolicy", "proxyJump", "sudo", "timeouts", "libvirtUri"]) {
      const r = connectionSchema.safeParse({ host: "h", [field]: UNKNOWN });
      assert.ok(r.success, `${field}: ${JSON.stringify(r.error?.issues)}`);
    }
    assert.ok(connectionSchema.safeParse({ host: UNKNOWN, timeouts: { connect: UNKNOWN } }).success);
  });

  it("reports the failing field, never the value, and refuses unknown keys", () => {
    const r = connectionSchema.safeParse({ host: "h", port: 70000, hostKeyPolicy: "yolo", privateKeyFile: "x", password: 12345 });
    assert.ok(!r.success);
    const paths = r.error.issues.map((i) => i.path.join(".") || i.code).sort();
    assert.deepEqual(paths, ["hostKeyPolicy", "password", "port", "unrecognized_keys"]);
    assert.ok(!JSON.stringify(r.error.issues).includes("12345"));
    assert.ok(!connectionSchema.safeParse({ host: "h", hostKey: "not a key" }).success);
  });
});

describe("connectionSchema: values that would reach a command line or a message are refused", () => {
  const failing = (input: Record<string, unknown>) => {
    const r = connectionSchema.safeParse({ host: "kvm1", ...input });
    return r.success ? [] : r.error.issues.map((i) => i.path.join("."));
  };

  it("hosts that look like options or hold shell characters", () => {
    for (const host of ["-oProxyCommand=id", "kvm1;id", "kvm 1", "kvm1\n", "$(id)", "`id`", "a|b", ".hidden", "[::1]", "x".repeat(254)]) {
      assert.deepEqual(failing({ host }), ["host"], JSON.stringify(host));
    }
    for (const host of ["kvm1", "KVM1.example.net", "10.0.0.1", "fd00::1", "my_alias", UNKNOWN]) assert.deepEqual(failing({ host }), [], host);
  });

  it("users and jump hosts in either form", () => {
    assert.deepEqual(failing({ user: "-oProxyCommand=id" }), ["user"]);
    assert.deepEqual(failing({ user: "ops;id" }), ["user"]);
    assert.deepEqual(failing({ proxyJump: "jump1,u@-oProxyCommand=id" }), ["proxyJump"]);
    assert.deepEqual(failing({ proxyJump: "jump1:70000" }), ["proxyJump"]);
    assert.deepEqual(failing({ proxyJump: ["ok", "-x"] }), ["proxyJump.1"]);
    assert.deepEqual(failing({ proxyJump: [{ host: "$(id)" }] }), ["proxyJump.0.host"]);
    assert.deepEqual(failing({ proxyJump: "ops@jump1:2222,[fd00::1]:22" }), []);
  });

  it("libvirt URIs: driver[+transport]://[user@][host][:port]/path[?query], nothing a shell or virsh acts on", () => {
    for (const uri of ["qemu:///system", "qemu:///session", "qemu+ssh://root@kvm1/system", "qemu+tls://kvm1.example:16514/system", "qemu+unix:///system?socket=/run/libvirt/libvirt-sock", "qemu+tcp://[fd00::1]/system", "test:///default"]) {
      assert.deepEqual(failing({ libvirtUri: uri }), [], uri);
    }
    for (const uri of ["qemu:///system;id", "qemu:///system id", "qemu:///$(id)", "qemu:///`id`", "qemu:///system\n", "qemu:///'x'", "-c", "system", "qemu://h/system?x=\"y\"", "qemu:///system|id"]) {
      assert.deepEqual(failing({ libvirtUri: uri }), ["libvirtUri"], JSON.stringify(uri));
    }
  });
});

describe("resolveConnection", () => {
  it("fills built-ins: port 22, local user, qemu:///system, strict, timeouts", () => {
    const s = resolve({ host: "kvm1", privateKey: plainKey });
    assert.deepEqual([s.target.host, s.target.port, s.target.user], ["kvm1", 22, userInfo().username]);
    assert.deepEqual([s.libvirtUri, s.hostKeyPolicy, s.sudo], ["qemu:///system", "strict", false]);
    assert.deepEqual(s.timeouts, { connectMs: 15000, commandMs: 1800000, keepaliveMs: 15000, idleMs: 5000 });
    assert.equal(s.label, `${userInfo().username}@kvm1:22`);
  });

  it("merges input > stack defaults > ~/.ssh/config > built-ins", () => {
    setConnectionDefaults({ user: "from-stack", port: "2200", sudo: "true", privateKeyPath: keyPath });
    const cfg = sshConfig({ kvm1: { hostName: "10.0.0.11", user: "from-config", port: 2201, identityFiles: [], proxyJump: "bastion" } });
    const s = resolve({ host: "kvm1" }, cfg);
    assert.deepEqual([s.target.host, s.target.port, s.target.user, s.sudo], ["10.0.0.11", 2200, "from-stack", true]);
    assert.deepEqual(s.jumps.map((j) => j.host), ["bastion"]);
    const t = resolve({ host: "kvm1", user: "from-input", port: 2202, proxyJump: "j@other:2022" }, cfg);
    assert.deepEqual([t.target.port, t.target.user, t.jumps[0].label], [2202, "from-input", "j@other:2022"]);
  });

  it("coerces stack config strings and names the config key when one is wrong", () => {
    setConnectionDefaults({ timeouts: '{"connect": 3}', proxyJump: '["a", "b"]', privateKey: plainKey });
    const s = resolve({ host: "h" });
    assert.equal(s.timeouts.connectMs, 3000);
    assert.deepEqual(s.jumps.map((j) => j.host), ["a", "b"]);
    assert.throws(() => setConnectionDefaults({ port: "eighty" }), (e: InputError) => e instanceof InputError && e.field === "gluster-libvirt:port");
  });

  it("loads key files and the IdentityFile of ~/.ssh/config; explicit bad keys fail by field", () => {
    assert.equal(resolve({ host: "h", privateKeyPath: keyPath }).target.auth[0].type, "publickey");
    const viaConfig = resolve({ host: "h" }, sshConfig({ h: { identityFiles: [keyPath, join(dir, "missing")] } }));
    assert.deepEqual(viaConfig.target.auth.map((a) => a.type), ["publickey"]);
    assert.throws(() => resolve({ host: "h", privateKeyPath: join(dir, "missing") }), (e: InputError) => e.field === "connection.privateKeyPath");
    assert.throws(() => resolve({ host: "h", privateKey: "-----BEGIN NONSENSE-----" }), (e: InputError) => e.field === "connection.privateKey");
  });

  it("needs the passphrase of an encrypted key, and says so", () => {
    assert.throws(() => resolve({ host: "h", privateKey: encryptedKey }), /passphrase/);
    assert.throws(() => resolve({ host: "h", privateKey: encryptedKey, passphrase: "wrong" }), InputError);
    assert.equal(resolve({ host: "h", privateKey: encryptedKey, passphrase: "correct horse" }).target.auth[0].type, "publickey");
  });

  it("orders auth as keys, agent, password and refuses a connection without credentials", () => {
    const s = resolve({ host: "h", privateKey: plainKey, agent: "/tmp/agent.sock", password: "pw" });
    assert.deepEqual(s.target.auth.map((a) => a.type), ["publickey", "agent", "password"]);
    assert.throws(() => resolve({ host: "h" }), (e: InputError) => e.field === "connection" && /no credentials/.test(e.message));
  });

  it("keeps secrets out of enumeration, JSON and inspect, but lists them for redaction", () => {
    const s = resolve({ host: "h", privateKey: encryptedKey, passphrase: "correct horse", password: "hunter2" });
    for (const text of [JSON.stringify(s), inspect(s, { depth: 10 })]) {
      assert.ok(!text.includes("hunter2") && !text.includes("correct horse") && !text.includes("PRIVATE KEY"), text);
    }
    assert.deepEqual([...s.secrets].sort(), [encryptedKey, "correct horse", "hunter2"].sort());
  });

  it("refuses values still unknown at apply time", () => {
    assert.throws(() => resolve({ host: UNKNOWN, privateKey: plainKey }), (e: InputError) => e.field === "connection.host");
  });

  it("resolves jump hosts: OpenSSH syntax, objects with own credentials, each with its own pin", () => {
    const s = resolve({
      host: "10.0.0.3", user: "t", privateKey: plainKey,
      proxyJump: ["u1@10.0.0.1:2201", { host: "10.0.0.2", user: "u2", password: "pw2", hostKey: "SHA256:ByizUMfLc+mOT21KNMJsn4cx+L5JK0B7D49y8F9/b+o" }],
    });
    assert.equal(s.label, "u1@10.0.0.1:2201 -> u2@10.0.0.2:22 -> t@10.0.0.3:22");
    assert.deepEqual(s.jumps[0].auth.map((a) => a.type), ["publickey"], "a hop without credentials uses the target's");
    assert.deepEqual(s.jumps[1].auth.map((a) => a.type), ["publickey", "password"]);
    assert.ok(s.jumps[1].pin && !s.jumps[0].pin && !s.target.pin);
    assert.deepEqual(parseJumpSpec("ssh://me@[::1]:2222"), { user: "me", host: "::1", port: 2222 });
    assert.throws(() => parseJumpSpec("a b"), InputError);
  });

  it("shares a pool key only between equal endpoints, credentials and trust settings", () => {
    const a = resolve({ host: "h", privateKey: plainKey });
    assert.equal(resolve({ host: "h", privateKey: plainKey, libvirtUri: "qemu:///session" }).poolKey, a.poolKey);
    assert.notEqual(resolve({ host: "h", privateKey: plainKey, hostKeyPolicy: "insecure" }).poolKey, a.poolKey);
    assert.notEqual(resolve({ host: "h", privateKey: plainKey, port: 2222 }).poolKey, a.poolKey);
    assert.notEqual(resolve({ host: "h", privateKey: plainKey, password: "x" }).poolKey, a.poolKey);
    assert.ok(!a.poolKey.includes("PRIVATE"));
  });
});
