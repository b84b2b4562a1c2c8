/**
 * Hosts that fail with operations in flight (issue 11): every operation must settle
 * with an error naming the host and the cause, and nothing may redial by itself
 * afterwards. Faults come from throwaway sshds and TCP servers of our own on loopback,
 * never from the lab's daemons. Time limits here are hang guards, not assertions.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { type Server, type Socket, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SshError } from "../../provider/errors";
import { closeAllHosts, getHost } from "../../provider/host";
import { getLab, type LabInfo } from "../helpers/lab";
import { LOGIN_USER, startSshd } from "../helpers/sshd";
import { settlesWithin, sleep, waitFor } from "../helpers/wait";

let lab: LabInfo;
const cleanups: Array<() => void> = [];
before(async () => {
  lab = await getLab();
});
after(() => {
  closeAllHosts();
  for (const c of cleanups.reverse()) c();
});

/** A TCP server on 127.0.0.1 we control: counts connections, does `onConnection` with each. */
async function tcpServer(onConnection: (s: Socket) => void): Promise<{ port: number; connections: () => number; close: () => void }> {
  let n = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    n++;
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const close = () => {
    for (const s of sockets) s.destroy();
    server.close();
  };
  cleanups.push(close);
  return { port: (server.address() as { port: number }).port, connections: () => n, close };
}

/** A port on 127.0.0.1 where nothing listens (taken from the kernel, then released). */
async function closedPort(): Promise<number> {
  const t = await tcpServer(() => {});
  t.close();
  return t.port;
}

const pubKey = () => readFileSync(`${lab.ssh.privateKeyPath}.pub`, "utf8").trim();
const connTo = (port: number, timeouts: Record<string, number> = {}) => ({
  host: "127.0.0.1", port, user: LOGIN_USER, privateKeyPath: lab.ssh.privateKeyPath, agent: "", hostKeyPolicy: "insecure" as const, timeouts,
});

/** Every result is a rejection with an SshError of one of `kinds` naming `label`; returns them. */
function assertAllFailed(results: PromiseSettledResult<unknown>[], kinds: string[], label: string): SshError[] {
  return results.map((r, i) => {
    assert.equal(r.status, "rejected", `operation ${i} succeeded`);
    const e = (r as PromiseRejectedResult).reason;
    assert.ok(e instanceof SshError, `operation ${i}: ${e}`);
    assert.ok(kinds.includes(e.kind), `operation ${i}: kind ${e.kind}: ${e.message}`);
    assert.ok(e.message.includes(label), `operation ${i} does not name ${label}: ${e.message}`);
    return e;
  });
}

/** Five virsh commands and two execs at once. */
const mixedOps = (h: ReturnType<typeof getHost>) => [
  ...Array.from({ length: 5 }, (_, i) => h.virsh(["echo", `tr-${i}`])),
  h.exec(["true"]),
  h.exec(["echo", "x"]),
];

describe("unreachable host, operations in flight", () => {
  it("closed port: every operation fails with a connect error naming the host", async () => {
    const port = await closedPort();
    const h = getHost(connTo(port));
    const results = await settlesWithin(Promise.allSettled(mixedOps(h)), 60_000, "operations against a closed port");
    for (const e of assertAllFailed(results, ["connect"], `${LOGIN_USER}@127.0.0.1:${port}`)) assert.match(e.message, /connection refused.*gave up after 3 attempts/);
  });

  it("a port that accepts TCP and never speaks: every operation fails once the handshake times out; one round, no redial after", async () => {
    const silent = await tcpServer(() => {});
    const h = getHost(connTo(silent.port, { connect: 1 }));
    const results = await settlesWithin(Promise.allSettled(mixedOps(h)), 60_000, "operations against a silent server");
    for (const e of assertAllFailed(results, ["connect"], `${LOGIN_USER}@127.0.0.1:${silent.port}`)) assert.match(e.message, /SSH handshake did not complete within 1 s/);
    assert.equal(silent.connections(), 3, "one shared round of 3 attempts for all seven operations");
    // Time passing on purpose: a redial would show as a fourth connection (the round retried after ~0.5 s and ~1 s).
    await sleep(3000);
    assert.equal(silent.connections(), 3, "nothing redials once the round failed");
    // A new operation gets one new round.
    await assert.rejects(settlesWithin(h.virsh(["echo", "tr-later"]), 60_000, "a later operation"), (e: SshError) => e.kind === "connect");
    assert.equal(silent.connections(), 6);
  });

  it("a server that accepts TCP and closes at once: every operation fails, one round, no redial after", async () => {
    const rude = await tcpServer((s) => s.destroy());
    const h = getHost(connTo(rude.port));
    const results = await settlesWithin(Promise.allSettled(mixedOps(h)), 60_000, "operations against a server that hangs up");
    assertAllFailed(results, ["connect"], `${LOGIN_USER}@127.0.0.1:${rude.port}`);
    assert.equal(rude.connections(), 3);
    // Time passing on purpose: a redial would show as a fourth connection.
    await sleep(3000);
    assert.equal(rude.connections(), 3, "nothing redials once the round failed");
  });
});

describe("sshd killed in the middle of work", () => {
  it("fails every operation in flight or queued (12 of them), none hangs; after a restart, work resumes", async () => {
    const port = await closedPort();
    const s = await startSshd({ address: "127.0.0.1", port, authorizedKeys: [pubKey()] });
    cleanups.push(() => s.stop());
    const kh = join(mkdtempSync(join(tmpdir(), "glv-kh-")), "known_hosts");
    writeFileSync(kh, `${s.knownHostsLine}\n`);
    const h = getHost({ ...connTo(port), hostKeyPolicy: "strict", knownHostsFile: kh });
    assert.equal(await h.virsh(["echo", "tr-warm"]), "tr-warm");
    // Long commands in flight (execs, and virsh sessions waiting for events), more queued behind them.
    const ops = [
      ...Array.from({ length: 6 }, () => h.exec(["sleep", "60"])),
      ...Array.from({ length: 6 }, () => h.virsh(["event", "--loop", "--all", "--timeout", "60"])),
    ];
    await waitFor("4 of the `sleep 60` commands to run under the sshd", () => s.descendants("sleep").length >= 4, 10_000);
    s.stop(); // the listener and every session it serves
    const results = await settlesWithin(Promise.allSettled(ops), 60_000, "operations in flight when sshd was killed");
    assertAllFailed(results, ["connection-lost", "connect"], `${LOGIN_USER}@127.0.0.1:${port}`);
    await s.restart();
    assert.equal(await settlesWithin(h.virsh(["echo", "tr-after"]), 60_000, "virsh after the restart"), "tr-after");
    assert.equal((await settlesWithin(h.exec(["echo", "after"]), 60_000, "exec after the restart")).stdout, "after\n");
  });
});

describe("a server allowing few sessions", () => {
  it("MaxSessions 2: 50 concurrent virsh and exec operations all succeed", async () => {
    const port = await closedPort();
    const s = await startSshd({ address: "127.0.0.1", port, authorizedKeys: [pubKey()], config: ["MaxSessions 2"] });
    cleanups.push(() => s.stop());
    const h = getHost({ ...connTo(port), timeouts: { command: 60 } });
    const ops = Array.from({ length: 50 }, (_, i) =>
      i % 2 ? h.virsh(["echo", `tr-${i}`]) : h.exec(["sh", "-c", 'sleep 0.1; echo "$1"', "sh", `tr-${i}`]),
    );
    const results = await settlesWithin(Promise.all(ops), 120_000, "50 operations under MaxSessions 2");
    assert.deepEqual(
      results.map((r) => (typeof r === "string" ? r : r.stdout).trim()),
      Array.from({ length: 50 }, (_, i) => `tr-${i}`),
    );
  });
});
