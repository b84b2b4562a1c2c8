import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type CommandErrorKind,
  CommandError,
  GlusterLibvirtError,
  InputError,
  SshError,
  VirshError,
  attachHidden,
  displayUrl,
  hasUrlCredentials,
  urlSecrets,
  classifyCommandError,
  isCommandError,
  isNotFound,
  redact,
  redactArgv,
} from "../../provider/errors";

/** stderr exactly as virsh 9.0 printed it against a real libvirtd (qemu:///system). */
const REAL: Array<[string, CommandErrorKind]> = [
  ["error: failed to get pool 'nosuchpool'\nerror: Storage pool not found: no storage pool with matching name 'nosuchpool'\n", "not-found-pool"],
  // vol-info --pool <missing pool>: only the pool is reported
  ["error: failed to get pool 'nosuchpool'\nerror: Storage pool not found: no storage pool with matching name 'nosuchpool'\n", "not-found-pool"],
  ["error: failed to get vol 'nosuchvol'\nerror: Storage volume not found: no storage vol with matching path 'nosuchvol'\n", "not-found-volume"],
  ["error: failed to get domain 'nosuchdom'\n", "not-found-domain"],
  ["error: Failed to create vol v1\nerror: storage volume 'v1' exists already\n", "already-exists"],
  ["error: Failed to define pool glv-errtest\nerror: operation failed: pool 'glv-errtest' already exists with uuid d0eb0af4-8e18-4e6e-bafb-fbec55ebccb9\n", "already-exists"],
  ["error: Failed to attach disk\nerror: operation failed: target vdb already exists\n", "already-exists"],
  ["error: Failed to undefine pool glv-errtest\nerror: Requested operation is not valid: storage pool 'glv-errtest' is still active\n", "in-use"],
  ["error: Failed to delete pool glv-errtest\nerror: Requested operation is not valid: storage pool 'glv-errtest' is still active\n", "in-use"],
  ["error: Failed to destroy pool p\nerror: cannot unmount '/mnt/p': Device or resource busy\n", "in-use"],
  ["error: Failed to destroy domain 'lab-stopped'\nerror: Requested operation is not valid: domain is not running\n", "not-running"],
  ["error: Failed to list volumes\nerror: Requested operation is not valid: storage pool 'glv-errtest' is not active\n", "not-running"],
  ["error: Failed to destroy pool glv-errtest\nerror: Requested operation is not valid: storage pool 'glv-errtest' is not active\n", "not-running"],
  ["error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied\n", "permission-denied"],
  ["error: Failed to define pool x\nerror: operation forbidden: read only access prevents virStoragePoolDefineXML\n", "permission-denied"],
  ["sudo: a password is required\n", "permission-denied"],
  ["error: failed to connect to the hypervisor\nerror: Unable to get system bus connection: Could not connect: No such file or directory\n", "permission-denied"],
  ["error: Failed to start pool glv-errtest\nerror: Requested operation is not valid: storage pool 'glv-errtest' is already active\n", "unknown"],
  ["error: invalid argument: invalid path vdz not assigned to domain\n", "unknown"],
];

describe("classifyCommandError", () => {
  for (const [stderr, kind] of REAL) {
    it(`${kind}: ${stderr.split("\n").filter(Boolean).pop()}`, () => assert.equal(classifyCommandError(stderr), kind));
  }
});

describe("error classes", () => {
  it("VirshError: short message from the last error line, details with stderr, classified", () => {
    const e = new VirshError("virsh -q -c qemu:///system pool-info p", 1, REAL[0][0], { target: "u@h:22" });
    assert.equal(e.name, "VirshError");
    assert.equal(e.kind, "not-found-pool");
    assert.equal(e.exitCode, 1);
    assert.ok(e instanceof CommandError && e instanceof GlusterLibvirtError && e instanceof Error);
    assert.equal(e.message, "virsh -q -c qemu:///system pool-info p on u@h:22 failed (exit 1): Storage pool not found: no storage pool with matching name 'nosuchpool'");
    assert.ok(e.details.includes("error: failed to get pool 'nosuchpool'"));
    assert.ok(!e.message.includes("\n"));
  });

  it("isNotFound / isCommandError answer only for command errors of that kind", () => {
    const pool = new VirshError("c", 1, REAL[0][0]);
    const vol = new VirshError("c", 1, REAL[2][0]);
    assert.ok(isNotFound(pool) && isNotFound(pool, "pool") && !isNotFound(pool, "volume"));
    assert.ok(isNotFound(vol, "volume") && !isNotFound(vol, "domain"));
    assert.ok(!isNotFound(new Error("Storage pool not found")));
    assert.ok(isCommandError(new CommandError("rm x", 1, "rm: x: Permission denied"), "permission-denied"));
    assert.ok(!isCommandError(new SshError("auth", "u@h:22", "nope"), "permission-denied"));
  });

  it("SshError and InputError name their target and field", () => {
    const s = new SshError("host-key", "u@h:2222", "unknown host key", { cause: new Error("inner") });
    assert.equal(s.name, "SshError");
    assert.equal(s.message, "SSH u@h:2222: unknown host key");
    assert.equal((s.cause as Error).message, "inner");
    const i = new InputError("connection.port", "must be at most 65535");
    assert.deepEqual([i.name, i.field, i.message], ["InputError", "connection.port", "connection.port: must be at most 65535"]);
  });
});

describe("secrets", () => {
  it("redacts known secrets anywhere and values of secret flags", () => {
    assert.equal(redact("login as x with hunter2, hunter2!", ["hunter2", undefined]), "login as x with ***, ***!");
    assert.deepEqual(redactArgv(["virsh", "secret-set-value", "s", "--base64", "c2VjcmV0", "--password=pw"]), [
      "virsh", "secret-set-value", "s", "--base64", "***", "--password=***",
    ]);
  });

  it("hidden context stays out of JSON, enumeration and util.inspect", async () => {
    const e = attachHidden(new GlusterLibvirtError("boom"), "connection", { password: "hunter2" });
    assert.equal((e as unknown as { connection: { password: string } }).connection.password, "hunter2");
    assert.ok(!JSON.stringify(e).includes("hunter2"));
    assert.ok(!Object.keys(e).includes("connection"));
    const { inspect } = await import("node:util");
    assert.ok(!inspect(e).includes("hunter2"));
  });
});

describe("download URL credentials", () => {
  it("any userinfo or query string counts as credentials", () => {
    assert.equal(hasUrlCredentials("https://mirror.example/img.qcow2"), false);
    assert.equal(hasUrlCredentials("https://mirror.example/img.qcow2#frag"), false);
    assert.equal(hasUrlCredentials("https://user:pw@mirror.example/img"), true);
    assert.equal(hasUrlCredentials("https://token@mirror.example/img"), true);
    assert.equal(hasUrlCredentials("https://mirror.example/img?X-Amz-Signature=abc"), true);
  });

  it("shows a URL without them, and redacts them raw and decoded, longest first", () => {
    const url = "https://ops:s%40cret-pw@mirror.example/img.raw?token=T0KEN-123&x=1";
    assert.equal(displayUrl(url), "https://***@mirror.example/img.raw?***");
    const text = `curl: failed for ${url} (password s@cret-pw, token T0KEN-123)`;
    const out = redact(text, urlSecrets(url));
    for (const secret of ["s%40cret-pw", "s@cret-pw", "T0KEN-123", "ops:"]) assert.ok(!out.includes(secret), `${secret} in ${out}`);
    assert.match(out, /mirror\.example\/img\.raw\?\*\*\*/);
    // a short value is covered by the whole query string, but does not blank out every "1" elsewhere
    assert.match(redact("exit 1", urlSecrets(url)), /exit 1/);
  });
});
