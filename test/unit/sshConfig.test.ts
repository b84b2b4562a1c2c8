import assert from "node:assert/strict";
import { homedir, userInfo } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { lookupSshConfig, parseSshConfig } from "../../provider/ssh/sshConfig";

const CONFIG = `
# global defaults come first only if written first: first value wins
Host kvm1
  HostName 10.0.0.11
  User admin
  Port 2201
  IdentityFile ~/.ssh/kvm_ed25519
  ProxyJump bastion

Host kvm* !kvm9
  User ops
  IdentityFile=%d/.ssh/%r-%h.key
  Port 2299

Host "quoted" q2
  HostName %h.example.net

Match host kvm2
  User never-used

Host *
  User default-user
  ServerAliveInterval 10
`;

describe("~/.ssh/config lookup", () => {
  const directives = parseSshConfig(CONFIG);

  it("takes the first value per keyword and accumulates IdentityFile", () => {
    const v = lookupSshConfig(directives, "kvm1");
    assert.deepEqual(v, {
      hostName: "10.0.0.11",
      user: "admin",
      port: 2201,
      identityFiles: [join(homedir(), ".ssh/kvm_ed25519"), join(homedir(), ".ssh/admin-10.0.0.11.key")],
      proxyJump: "bastion",
    });
  });

  it("applies wildcard blocks, honours negation, and never applies Match blocks", () => {
    assert.equal(lookupSshConfig(directives, "kvm2").user, "ops");
    assert.equal(lookupSshConfig(directives, "kvm2").port, 2299);
    assert.equal(lookupSshConfig(directives, "kvm9").user, "default-user");
    assert.equal(lookupSshConfig(directives, "kvm9").port, undefined);
  });

  it("expands %h in HostName to the alias and reads quoted patterns", () => {
    assert.equal(lookupSshConfig(directives, "q2").hostName, "q2.example.net");
    assert.equal(lookupSshConfig(directives, "quoted").hostName, "quoted.example.net");
  });

  it("gives nothing but global defaults for an unknown alias", () => {
    assert.deepEqual(lookupSshConfig(directives, "elsewhere"), { hostName: undefined, user: "default-user", port: undefined, identityFiles: [], proxyJump: undefined });
  });

  it("follows Include in the scope it appears in, and maps ProxyJump none away", () => {
    const included = new Map([["extra.conf", "HostName 192.0.2.7\nProxyJump none\n"]]);
    const d = parseSshConfig("Host lab\n  Include extra.conf\nHost other\n  User x\n", (p) => (included.has(p) ? [included.get(p)!] : []));
    assert.deepEqual(lookupSshConfig(d, "lab"), { hostName: "192.0.2.7", user: undefined, port: undefined, identityFiles: [], proxyJump: undefined });
    assert.equal(lookupSshConfig(d, "other").hostName, undefined);
  });

  it("uses the local user for %r when no User is configured", () => {
    const d = parseSshConfig("Host h\n  IdentityFile /keys/%r\n");
    assert.deepEqual(lookupSshConfig(d, "h").identityFiles, [`/keys/${userInfo().username}`]);
  });
});
