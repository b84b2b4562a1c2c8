/**
 * The SSH transport against real sshd: the lab's, plus throwaway ones started here
 * (extra keys, MaxSessions, restarts, a two-hop jump chain through network namespaces).
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { SshError } from "../../provider/errors";
import { closeAllHosts, getHost, getConnectionStats, setTransportLogger } from "../../provider/host";
import { getLab, type LabInfo } from "../helpers/lab";
import { commandLines } from "../helpers/local";
import { LOGIN_USER, type Sshd, makeKey, makeNetns, startSshd } from "../helpers/sshd";
import { waitFor } from "../helpers/wait";

let lab: LabInfo;
const keys = mkdtempSync(join(tmpdir(), "glv-ssh-keys-"));
const plainKey = makeKey(keys, "plain");
const passKey = makeKey(keys, "pass", "open sesame");
const agentKey = makeKey(keys, "agent");
const pub = (k: string) => readFileSync(`${k}.pub`, "utf8").trim();
const knownHosts = (...lines: string[]) => {
  const f = join(mkdtempSync(join(tmpdir(), "glv-kh-")), "known_hosts");
  writeFileSync(f, lines.map((l) => `${l}\n`).join(""));
  return f;
};
/** Handshakes made while `fn` runs. */
async function handshakesDuring(fn: () => Promise<void>): Promise<number> {
  const before = getConnectionStats().handshakes;
  await fn();
  return getConnectionStats().handshakes - before;
}

const warnings: string[] = [];
const cleanups: Array<() => void> = [];
let extra: Sshd; // 127.0.0.2: accepts the three test keys
let agentSock: string;
let agentProc: ChildProcess;

before(async () => {
  lab = await getLab();
  setTransportLogger({ warn: (m) => warnings.push(m), debug: () => {} });
  extra = await startSshd({ address: "127.0.0.2", port: 2301, authorizedKeys: [plainKey, passKey, agentKey].map(pub) });
  cleanups.push(() => extra.stop());
  agentSock = join(keys, "agent.sock");
  agentProc = spawn("ssh-agent", ["-D", "-a", agentSock], { stdio: "ignore" });
  cleanups.push(() => agentProc.kill());
  await waitFor("ssh-agent's socket", () => existsSync(agentSock), 10_000, 20);
  execFileSync("ssh-add", [agentKey], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: "ignore" });
});

after(() => {
  closeAllHosts();
  for (const c of cleanups.reverse()) c();
});

const labConn = () => ({ host: lab.ssh.host, port: lab.ssh.port, user: lab.ssh.user, knownHostsFile: lab.ssh.knownHostsFile, agent: "" });
const extraConn = () => ({ host: extra.address, port: extra.port, user: LOGIN_USER, knownHostsFile: knownHosts(extra.knownHostsLine), agent: "" });

describe("authentication", () => {
  it("key (lab): runs as the lab user over one handshake", async () => {
    const h = getHost({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath });
    const n = await handshakesDuring(async () => {
      assert.equal((await h.exec(["id", "-un"])).stdout, `${lab.ssh.user}\n`);
      assert.equal((await h.exec(["true"])).code, 0);
    });
    assert.equal(n, 1);
  });

  it("passphrase-protected key", async () => {
    const h = getHost({ ...extraConn(), privateKeyPath: passKey, passphrase: "open sesame" });
    assert.equal((await h.exec(["id", "-un"])).stdout, `${LOGIN_USER}\n`);
  });

  it("ssh-agent, with no key file given", async () => {
    const h = getHost({ ...extraConn(), agent: agentSock });
    assert.equal((await h.exec(["id", "-un"])).stdout, `${LOGIN_USER}\n`);
  });

  it("password (lab), which never shows up in any process's argv on this machine", async () => {
    const password = readFileSync(lab.ssh.passwordFile, "utf8").trim();
    const h = getHost({ ...labConn(), password });
    // a command line of its own, so the scan below starts once the login is done and the command runs
    const marker = `glv-pw-${process.pid}-${Date.now()}`;
    const running = h.exec(["sh", "-c", "sleep 2; true", marker]);
    await waitFor(`the remote command ${marker} to run`, () => commandLines().some((p) => p.cmdline.includes(marker)), 30_000);
    for (const { pid, cmdline } of commandLines()) assert.ok(!cmdline.includes(password), `password in argv of pid ${pid}`);
    assert.equal((await running).code, 0);
  });

  it("a wrong password is an auth SshError that does not contain it", async () => {
    const h = getHost({ ...labConn(), password: "wrong-Pa55word!" });
    await assert.rejects(h.exec(["true"]), (e: SshError) => {
      assert.ok(e instanceof SshError && e.kind === "auth", String(e));
      assert.ok(!JSON.stringify({ ...e, m: e.message, d: e.details }).includes("wrong-Pa55word!"));
      return true;
    });
  });
});

describe("host keys", () => {
  it("strict: an unknown host is refused with its fingerprint and how to pin it", async () => {
    const h = getHost({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: knownHosts() });
    await assert.rejects(h.exec(["true"]), (e: SshError) => {
      assert.equal(e.kind, "host-key");
      assert.ok(e.message.includes(lab.ssh.hostKeyFingerprint), e.message);
      assert.ok(e.message.includes(`hostKey = "${lab.ssh.hostKeyFingerprint}"`));
      return true;
    });
  });

  it("a changed key (known_hosts holds another key for the host) is refused", async () => {
    const h = getHost({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: knownHosts(`[${lab.ssh.host}]:${lab.ssh.port} ${extra.hostKey}`) });
    await assert.rejects(h.exec(["true"]), (e: SshError) => e.kind === "host-key" && /HOST KEY CHANGED/.test(e.message) && e.message.includes(lab.ssh.hostKeyFingerprint));
  });

  it("a pinned fingerprint admits the right key and refuses another, whatever known_hosts says", async () => {
    const right = getHost({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: knownHosts(), hostKey: lab.ssh.hostKeyFingerprint });
    assert.equal((await right.exec(["true"])).code, 0);
    const wrong = getHost({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath, hostKey: extra.fingerprint });
    await assert.rejects(wrong.exec(["true"]), (e: SshError) => e.kind === "host-key" && /mismatch/.test(e.message));
  });

  it("accept-new records a first key, then refuses a different one", async () => {
    const file = knownHosts();
    const h = getHost({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: file, hostKeyPolicy: "accept-new" });
    assert.equal((await h.exec(["true"])).code, 0);
    assert.equal(readFileSync(file, "utf8"), `[${lab.ssh.host}]:${lab.ssh.port} ${readFileSync(lab.ssh.knownHostsFile, "utf8").trim().split(/\s+/).slice(1, 3).join(" ")}\n`);
    const changed = knownHosts(`[${lab.ssh.host}]:${lab.ssh.port} ${extra.hostKey}`);
    const h2 = getHost({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: changed, hostKeyPolicy: "accept-new" });
    await assert.rejects(h2.exec(["true"]), (e: SshError) => e.kind === "host-key");
    assert.equal(readFileSync(changed, "utf8").split("\n").filter(Boolean).length, 1, "nothing recorded");
  });

  it("insecure connects to an unknown host but warns", async () => {
    warnings.length = 0;
    const h = getHost({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: knownHosts(), hostKeyPolicy: "insecure" });
    assert.equal((await h.exec(["true"])).code, 0);
    assert.ok(warnings.some((w) => /NOT verified/.test(w) && w.includes(lab.ssh.hostKeyFingerprint)), warnings.join("\n"));
  });
});

describe("jump hosts", () => {
  let jump1: Sshd;
  let jump2: Sshd;
  let final: Sshd;
  const tag = `g${process.pid % 10000}`;
  const nsJump = `${tag}j`;
  const nsFinal = `${tag}f`;
  const net = 200 + (process.pid % 50);

  before(async () => {
    // root ns --veth-- nsJump (10.<net>.1.2) --veth-- nsFinal (10.<net>.2.2): the final host has no route to or from us.
    cleanups.push(makeNetns(nsJump, { localIp: `10.${net}.1.2`, peerIp: `10.${net}.1.1` }));
    cleanups.push(makeNetns(nsFinal, { peer: nsJump, localIp: `10.${net}.2.2`, peerIp: `10.${net}.2.1` }));
    const keys = [pub(plainKey)];
    jump1 = await startSshd({ address: "127.0.0.3", port: 2302, authorizedKeys: keys });
    jump2 = await startSshd({ address: `10.${net}.1.2`, port: 22, authorizedKeys: keys, netns: nsJump });
    final = await startSshd({ address: `10.${net}.2.2`, port: 22, authorizedKeys: keys, netns: nsFinal });
    cleanups.push(() => [final, jump2, jump1].forEach((s) => s.stop()));
  });

  const chainConn = (kh: string) => ({
    host: final.address, user: LOGIN_USER, privateKeyPath: plainKey, knownHostsFile: kh, agent: "",
    proxyJump: `${LOGIN_USER}@${jump1.address}:${jump1.port},${LOGIN_USER}@${jump2.address}`,
    timeouts: { connect: 5 },
  });

  it("reaches a host only routable through two jump hosts, verifying each", async () => {
    const h = getHost(chainConn(knownHosts(jump1.knownHostsLine, jump2.knownHostsLine, final.knownHostsLine)));
    const n = await handshakesDuring(async () => {
      const r = await h.exec(["sh", "-c", 'echo "$SSH_CONNECTION"']);
      const [clientIp, , serverIp] = r.stdout.trim().split(" ");
      assert.deepEqual([clientIp, serverIp], [`10.${net}.2.1`, final.address]);
    });
    assert.equal(n, 3, "one handshake per hop");
    // and directly, the final host is unreachable
    const direct = getHost({ host: final.address, user: LOGIN_USER, privateKeyPath: plainKey, agent: "", hostKey: final.fingerprint, timeouts: { connect: 2 } });
    await assert.rejects(direct.exec(["true"]), (e: SshError) => e.kind === "connect");
  });

  it("refuses the chain when a middle hop presents an unknown key, naming that hop", async () => {
    const h = getHost(chainConn(knownHosts(jump1.knownHostsLine, final.knownHostsLine)));
    await assert.rejects(h.exec(["true"]), (e: SshError) => e.kind === "host-key" && e.target === `${LOGIN_USER}@${jump2.address}:22` && e.message.includes(jump2.fingerprint));
  });
});

describe("pooling", () => {
  it("50 concurrent commands share one connection under MaxSessions 10, all succeed", async () => {
    const s = await startSshd({ address: "127.0.0.4", port: 2303, authorizedKeys: [pub(plainKey)], config: ["MaxSessions 10"] });
    cleanups.push(() => s.stop());
    const h = getHost({ host: s.address, port: s.port, user: LOGIN_USER, privateKeyPath: plainKey, knownHostsFile: knownHosts(s.knownHostsLine), agent: "" });
    const n = await handshakesDuring(async () => {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => h.exec(["sh", "-c", 'sleep 0.2; echo "$1"', "sh", String(i)])));
      assert.deepEqual(results.map((r) => r.stdout), Array.from({ length: 50 }, (_, i) => `${i}\n`));
    });
    assert.equal(n, 1);
  });

  it("adapts to a server allowing fewer sessions (MaxSessions 3) instead of failing", async () => {
    const s = await startSshd({ address: "127.0.0.4", port: 2304, authorizedKeys: [pub(plainKey)], config: ["MaxSessions 3"] });
    cleanups.push(() => s.stop());
    const h = getHost({ host: s.address, port: s.port, user: LOGIN_USER, privateKeyPath: plainKey, knownHostsFile: knownHosts(s.knownHostsLine), agent: "" });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => h.exec(["echo", String(i)])));
    assert.deepEqual(results.map((r) => r.stdout), Array.from({ length: 20 }, (_, i) => `${i}\n`));
  });

  it("reconnects transparently after sshd restarts between commands", async () => {
    const s = await startSshd({ address: "127.0.0.4", port: 2305, authorizedKeys: [pub(plainKey)] });
    cleanups.push(() => s.stop());
    closeAllHosts(); // the earlier tests' idle connections: this host's is then the only one
    const h = getHost({ host: s.address, port: s.port, user: LOGIN_USER, privateKeyPath: plainKey, knownHostsFile: knownHosts(s.knownHostsLine), agent: "" });
    const n = await handshakesDuring(async () => {
      assert.equal((await h.exec(["echo", "before"])).stdout, "before\n");
      assert.equal(getConnectionStats().openConnections, 1);
      await s.restart(); // kills the connection's sshd processes too
      // "between commands": the client has seen its connection go before the next one
      await waitFor("the client to see its connection closed by the restart", () => getConnectionStats().openConnections === 0, 10_000);
      assert.equal((await h.exec(["echo", "after"])).stdout, "after\n");
    });
    assert.equal(n, 2);
  });

  it("lets the process exit by itself once idle (no closeAllHosts)", () => {
    const script = `
      const { getHost } = require(${JSON.stringify(join(__dirname, "../../provider/host.js"))});
      getHost(${JSON.stringify({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath, timeouts: { idle: 1 } })})
        .virsh(["list", "--name"]).then(() => console.log("done"));`;
    // A hang guard, not a timing assertion: the child must end on its own.
    const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 60_000 });
    assert.equal(out, "done\n");
  });
});

describe("arguments", () => {
  it("arbitrary strings arrive as exactly one literal argument and never execute", async () => {
    const marker = join(mkdtempSync(join(tmpdir(), "glv-inject-")), "pwned");
    const h = getHost({ ...labConn(), privateKeyPath: lab.ssh.privateKeyPath });
    const attacks = [`$(touch ${marker})`, `\`touch ${marker}\``, `; touch ${marker}`, `'; touch ${marker}; '`, `"$(touch ${marker})"`, `\ntouch ${marker}\n`, `| touch ${marker}`, `&& touch ${marker}`];
    const arg = fc.oneof(
      fc.constantFrom(...attacks),
      fc.string({ unit: "binary", maxLength: 30 }).filter((s) => !s.includes("\0") && s.isWellFormed()),
      fc.string({ unit: fc.constantFrom(..."'\"`$();\n\\ é😀|&"), maxLength: 20 }),
    );
    await fc.assert(
      fc.asyncProperty(arg, async (s) => {
        const r = await h.exec(["printf", "%s\\0", s, "END"]);
        assert.deepEqual(r.stdout.split("\0").slice(0, -1), [s, "END"]);
      }),
      { numRuns: 120, examples: attacks.map((a) => [a]) },
    );
    assert.ok(!existsSync(marker), "an argument was executed");
  });
});
