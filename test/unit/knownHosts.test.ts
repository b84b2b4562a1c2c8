import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  checkKnownHosts,
  fingerprint,
  formatKnownHostsLine,
  knownHostsName,
  parseKnownHosts,
  parsePinnedHostKey,
  preferredHostKeyAlgorithms,
  verifyHostKey,
} from "../../provider/ssh/knownHosts";

// Real keys (ssh-keygen), with fingerprints as `ssh-keygen -lf` printed them.
const ED = "AAAAC3NzaC1lZDI1NTE5AAAAIHdxJPPZv5cZ3ojhHQCDixJkL+Pm9mPYVqNOH3oVPSHz";
const ED_FP = "SHA256:ByizUMfLc+mOT21KNMJsn4cx+L5JK0B7D49y8F9/b+o";
const EC = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEsYGU8mDeaz3K1Ce3fyEFTZIQzZsMglKPuXN3wsXB22aYaGQDHQ6APjF4Z69ne9zfpPVUO36i5xUN90XesK15g=";
const EC_FP = "SHA256:tqjzgxFjQHlw9B36iwG4LcB/CQVD1OTg7QRgCPnKvRg";
const ed = Buffer.from(ED, "base64");
const ec = Buffer.from(EC, "base64");

// `ssh-keygen -H` output for "example.com" (ed25519) and "[10.0.0.1]:2222" (ecdsa).
const HASHED = `|1|41GftM0CI/SM3mkdy16axtIn1u4=|pHTFORIvjkeOC22uRqk9r+2Ce5Y= ssh-ed25519 ${ED}
|1|vjaWY0S37LCb8FVmxuuGOsmGNiI=|OXDP/WgIrj1/Xo2pqiFHzonv5Nc= ecdsa-sha2-nistp256 ${EC}
`;

describe("known_hosts parsing", () => {
  it("reads plain lines, skips comments, blanks, cert authorities and garbage", () => {
    const entries = parseKnownHosts(`# comment

host1,host2 ssh-ed25519 ${ED} comment here
@cert-authority *.example.com ssh-ed25519 ${ED}
@revoked * ecdsa-sha2-nistp256 ${EC}
not-a-line
`);
    assert.equal(entries.length, 2);
    assert.deepEqual([entries[0].hosts, entries[0].keyType, entries[0].line, entries[0].marker], ["host1,host2", "ssh-ed25519", 3, undefined]);
    assert.deepEqual([entries[1].marker, entries[1].line], ["revoked", 5]);
    assert.ok(entries[0].key.equals(ed));
  });

  it("names non-22 ports as [host]:port", () => {
    assert.equal(knownHostsName("h", 22), "h");
    assert.equal(knownHostsName("127.0.0.1", 2222), "[127.0.0.1]:2222");
  });

  it("lowercases host names as ssh does, and keeps addresses as they are (ssh -G prints `hostname FD00::AB`)", () => {
    assert.equal(knownHostsName("KVM1.Example.NET", 22), "kvm1.example.net");
    assert.equal(knownHostsName("KVM1", 2222), "[kvm1]:2222");
    assert.equal(knownHostsName("FD00::AB", 22), "FD00::AB");
    assert.equal(knownHostsName("10.0.0.1", 2222), "[10.0.0.1]:2222");
  });
});

describe("known_hosts matching", () => {
  it("matches plain host lists, wildcards and negation", () => {
    const e = parseKnownHosts(`a.example,b.example ssh-ed25519 ${ED}\n*.lab,!bad.lab ecdsa-sha2-nistp256 ${EC}\n[10.1.1.1]:2222 ssh-ed25519 ${ED}\n`);
    assert.equal(checkKnownHosts(e, "b.example", 22, ed).status, "match");
    assert.equal(checkKnownHosts(e, "B.EXAMPLE", 22, ed).status, "match");
    assert.equal(checkKnownHosts(e, "x.lab", 22, ec).status, "match");
    assert.equal(checkKnownHosts(e, "bad.lab", 22, ec).status, "unknown");
    assert.equal(checkKnownHosts(e, "10.1.1.1", 2222, ed).status, "match");
    // the port matters: the same address on 22 is another host to OpenSSH
    assert.equal(checkKnownHosts(e, "10.1.1.1", 22, ed).status, "unknown");
    assert.equal(checkKnownHosts(e, "a.example", 2222, ed).status, "unknown");
  });

  it("matches hashed entries written by ssh-keygen -H", () => {
    const e = parseKnownHosts(HASHED);
    assert.equal(checkKnownHosts(e, "example.com", 22, ed).status, "match");
    assert.equal(checkKnownHosts(e, "10.0.0.1", 2222, ec).status, "match");
    assert.equal(checkKnownHosts(e, "example.org", 22, ed).status, "unknown");
  });

  it("matches a hashed entry whatever the case the host name is typed in, so another key is a change, not new", () => {
    const e = parseKnownHosts(HASHED);
    assert.equal(checkKnownHosts(e, "EXAMPLE.com", 22, ed).status, "match");
    assert.deepEqual(checkKnownHosts(e, "Example.COM", 22, ec), { status: "changed", lines: [1], knownTypes: ["ssh-ed25519"] });
  });

  it("reports a changed key with the lines and types recorded", () => {
    const e = parseKnownHosts(`h ssh-ed25519 ${ED}\n`);
    assert.deepEqual(checkKnownHosts(e, "h", 22, ec), { status: "changed", lines: [1], knownTypes: ["ssh-ed25519"] });
  });

  it("refuses a revoked key even when another line trusts it", () => {
    const e = parseKnownHosts(`h ssh-ed25519 ${ED}\n@revoked * ssh-ed25519 ${ED}\n`);
    assert.deepEqual(checkKnownHosts(e, "h", 22, ed), { status: "revoked", line: 2 });
    // a revoked key is not "the" key of the host: another key is then merely unknown
    assert.equal(checkKnownHosts(parseKnownHosts(`@revoked h ssh-ed25519 ${ED}\n`), "h", 22, ec).status, "unknown");
  });
});

describe("fingerprints and pins", () => {
  it("computes OpenSSH's SHA256 fingerprint", () => {
    assert.equal(fingerprint(ed), ED_FP);
    assert.equal(fingerprint(ec), EC_FP);
  });

  it("parses pins as fingerprints or public keys, and rejects junk", () => {
    assert.deepEqual(parsePinnedHostKey(ED_FP), { fingerprint: ED_FP });
    assert.deepEqual(parsePinnedHostKey(`${ED_FP}=`), { fingerprint: ED_FP });
    const pin = parsePinnedHostKey(`ssh-ed25519 ${ED} root@vm`);
    assert.ok(pin && "key" in pin && pin.key.equals(ed) && pin.keyType === "ssh-ed25519");
    assert.equal(parsePinnedHostKey(`ssh-rsa ${ED}`), undefined, "type must match the blob");
    assert.equal(parsePinnedHostKey("MD5:aa:bb"), undefined);
  });

  it("formats the line accept-new records", () => {
    assert.equal(formatKnownHostsLine("127.0.0.1", 2222, ed), `[127.0.0.1]:2222 ssh-ed25519 ${ED}`);
  });
});

describe("verifyHostKey", () => {
  const dir = mkdtempSync(join(tmpdir(), "glv-kh-"));
  const base = { host: "10.9.9.9", port: 2222, label: "u@10.9.9.9:2222" } as const;
  const noWarn = () => assert.fail("no warning expected");

  it("strict: accepts a known key, refuses an unknown one with its fingerprint and a pin hint", () => {
    const file = join(dir, "strict");
    writeFileSync(file, `[10.9.9.9]:2222 ssh-ed25519 ${ED}\n`);
    assert.equal(verifyHostKey({ ...base, knownHostsFile: file, policy: "strict" }, ed, noWarn), undefined);
    const unknown = verifyHostKey({ ...base, host: "10.9.9.8", knownHostsFile: file, policy: "strict" }, ed, noWarn);
    assert.match(unknown!, /unknown host key/);
    assert.ok(unknown!.includes(ED_FP) && unknown!.includes(`hostKey = "${ED_FP}"`));
  });

  it("refuses a changed key under accept-new and leaves the file alone", () => {
    const file = join(dir, "changed");
    writeFileSync(file, `[10.9.9.9]:2222 ssh-ed25519 ${ED}\n`);
    const msg = verifyHostKey({ ...base, knownHostsFile: file, policy: "accept-new" }, ec, noWarn);
    assert.match(msg!, /HOST KEY CHANGED/);
    assert.ok(msg!.includes(EC_FP));
    assert.equal(readFileSync(file, "utf8"), `[10.9.9.9]:2222 ssh-ed25519 ${ED}\n`);
  });

  it("accept-new records a first key (creating the file), then trusts only it", () => {
    const file = join(dir, "sub", "new");
    const warnings: string[] = [];
    assert.equal(verifyHostKey({ ...base, knownHostsFile: file, policy: "accept-new" }, ed, (m) => warnings.push(m)), undefined);
    assert.equal(readFileSync(file, "utf8"), `[10.9.9.9]:2222 ssh-ed25519 ${ED}\n`);
    assert.equal(warnings.length, 1);
    assert.equal(verifyHostKey({ ...base, knownHostsFile: file, policy: "accept-new" }, ed, noWarn), undefined);
    assert.match(verifyHostKey({ ...base, knownHostsFile: file, policy: "accept-new" }, ec, noWarn)!, /HOST KEY CHANGED/);
  });

  it("a pin overrides known_hosts both ways", () => {
    const file = join(dir, "pinned");
    writeFileSync(file, `[10.9.9.9]:2222 ssh-ed25519 ${ED}\n`);
    const pinEc = parsePinnedHostKey(EC_FP)!;
    assert.equal(verifyHostKey({ ...base, pin: pinEc, knownHostsFile: file, policy: "strict" }, ec, noWarn), undefined);
    assert.match(verifyHostKey({ ...base, pin: pinEc, knownHostsFile: file, policy: "strict" }, ed, noWarn)!, /mismatch.*SHA256:ByizUM/);
  });

  it("accept-new refuses a new key for a hashed host typed in other case, and records names lowercased", () => {
    const file = join(dir, "hashed");
    writeFileSync(file, HASHED);
    const check = { host: "Example.COM", port: 22, label: "u@Example.COM:22", knownHostsFile: file, policy: "accept-new" } as const;
    assert.match(verifyHostKey(check, ec, noWarn)!, /HOST KEY CHANGED/);
    assert.equal(readFileSync(file, "utf8"), HASHED, "nothing recorded");
    const fresh = join(dir, "lowercased");
    verifyHostKey({ ...check, host: "KVM7.Example", knownHostsFile: fresh }, ed, () => undefined);
    assert.equal(readFileSync(fresh, "utf8"), `kvm7.example ssh-ed25519 ${ED}\n`);
    assert.equal(verifyHostKey({ ...check, host: "kvm7.EXAMPLE", knownHostsFile: fresh }, ec, noWarn)?.includes("HOST KEY CHANGED"), true);
  });

  it("a pin wins over hostKeyPolicy insecure (e.g. a stack-wide default): a wrong key is refused, the right one accepted without a warning", () => {
    const pinEd = parsePinnedHostKey(ED_FP)!;
    const insecure = { ...base, pin: pinEd, knownHostsFile: join(dir, "none"), policy: "insecure" } as const;
    assert.match(verifyHostKey(insecure, ec, noWarn)!, /host key mismatch.*every hostKeyPolicy/);
    assert.equal(verifyHostKey(insecure, ed, noWarn), undefined);
  });

  it("insecure accepts anything but warns with the fingerprint", () => {
    const warnings: string[] = [];
    assert.equal(verifyHostKey({ ...base, knownHostsFile: join(dir, "none"), policy: "insecure" }, ed, (m) => warnings.push(m)), undefined);
    assert.match(warnings[0], /NOT verified.*SHA256:ByizUM/);
  });

  it("offers the host-key algorithms known_hosts can verify first", () => {
    const file = join(dir, "algos");
    writeFileSync(file, `[10.9.9.9]:2222 ecdsa-sha2-nistp256 ${EC}\nother ssh-rsa AAAAB3NzaC1yc2E=\n`);
    const supported = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
    assert.deepEqual(preferredHostKeyAlgorithms({ ...base, knownHostsFile: file, policy: "strict" }, supported), [
      "ecdsa-sha2-nistp256", "ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa",
    ]);
    assert.deepEqual(preferredHostKeyAlgorithms({ ...base, host: "other", port: 22, knownHostsFile: file, policy: "strict" }, supported).slice(0, 3), [
      "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa",
    ]);
  });
});
