/**
 * The virsh runner against the lab's libvirtd: persistent sessions, one-shot execs for
 * stdin, classification of real failures, argument fidelity, recovery.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { SshError, VirshError } from "../../provider/errors";
import { closeAllHosts, getHost, getConnectionStats } from "../../provider/host";
import { getLab, type LabInfo } from "../helpers/lab";
import { type Sshd, startSshd } from "../helpers/sshd";
import { settlesWithin, waitFor } from "../helpers/wait";

let lab: LabInfo;
const conn = (extra: Record<string, unknown> = {}) => ({
  host: lab.ssh.host, port: lab.ssh.port, user: lab.ssh.user, privateKeyPath: lab.ssh.privateKeyPath,
  knownHostsFile: lab.ssh.knownHostsFile, agent: "", ...extra,
});
/*
 * Tests that look at or kill the remote virsh process go through an sshd of their own
 * (same machine, same libvirtd), so they never touch other tests' lab sessions.
 */
let own: Sshd;
let ownConn: () => Record<string, unknown>;

before(async () => {
  lab = await getLab();
  own = await startSshd({ address: "127.0.0.6", port: 2310, authorizedKeys: [readFileSync(`${lab.ssh.privateKeyPath}.pub`, "utf8").trim()] });
  const kh = join(mkdtempSync(join(tmpdir(), "glv-kh-")), "known_hosts");
  writeFileSync(kh, `${own.knownHostsLine}\n`);
  ownConn = () => ({ ...conn(), host: own.address, port: own.port, knownHostsFile: kh });
});
after(() => {
  closeAllHosts();
  own?.stop();
});

/** Pipes among a process's open files (from /proc, as root). */
function pipesOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("pipe:");
    } catch {
      return false; // closed meanwhile
    }
  }).length;
}

describe("virsh runner", () => {
  it("answers like a one-shot virsh, over one connection and one long-lived virsh", async () => {
    const h = getHost(ownConn());
    const handshakes = getConnectionStats().handshakes;
    const names = await h.virsh(["list", "--all", "--name"]);
    assert.ok(names.split("\n").includes(lab.domains.running) && names.split("\n").includes(lab.domains.stopped), names);
    const viaSession = await h.virsh(["dumpxml", "--inactive", lab.domains.stopped]);
    const oneShot = await h.exec(["virsh", "-q", "-c", lab.libvirtUri, "dumpxml", "--inactive", lab.domains.stopped]);
    assert.equal(viaSession, oneShot.stdout);
    assert.equal(await h.virsh(["uri"]), `${lab.libvirtUri}\n`);
    for (let i = 0; i < 20; i++) assert.equal(await h.virsh(["domstate", lab.domains.stopped]), "shut off\n");
    assert.equal(getConnectionStats().handshakes - handshakes, 1);
    assert.equal(own.descendants("virsh").length, 1, "one persistent virsh served every command");
  });

  it("classifies real failures, in the session and in one-shot execs alike", async () => {
    const h = getHost(conn());
    await assert.rejects(h.virsh(["dominfo", "glv-no-such-domain"]), (e: VirshError) => e instanceof VirshError && e.kind === "not-found-domain" && e.exitCode === 1);
    await assert.rejects(h.virsh(["pool-info", "glv-no-such-pool"]), (e: VirshError) => e.kind === "not-found-pool" && /failed to get pool/.test(e.stderr));
    // non-ASCII cannot be typed into the session: this one runs as its own virsh
    await assert.rejects(h.virsh(["vol-info", "--pool", "glv-no-such-pool", "vol-é"]), (e: VirshError) => e.kind === "not-found-pool" && e.command.includes("'vol-é'"));
    await assert.rejects(h.virsh(["destroy", lab.domains.stopped]), (e: VirshError) => e.kind === "not-running");
    // the session survives failures
    assert.equal(await h.virsh(["domstate", lab.domains.stopped]), "shut off\n");
  });

  it("passes XML on stdin (define from /dev/stdin), never in argv", async () => {
    const h = getHost(conn());
    const name = `glv-virsh-test-${process.pid}`;
    const dir = mkdtempSync(join(tmpdir(), "glv-pool-"));
    const xml = `<pool type='dir'><name>${name}</name><target><path>${dir}</path></target></pool>`;
    try {
      await h.virsh(["pool-define", "/dev/stdin"], { stdin: xml });
      assert.match(execFileSync("virsh", ["-c", lab.libvirtUri, "pool-dumpxml", name], { encoding: "utf8" }), new RegExp(`<path>${dir}</path>`));
      await assert.rejects(h.virsh(["pool-define", "/dev/stdin"], { stdin: xml.replace(dir, `${dir}2`) }), (e: VirshError) => e.kind === "already-exists");
    } finally {
      spawnSync("virsh", ["-c", lab.libvirtUri, "pool-undefine", name]);
    }
  });

  it("arbitrary strings reach virsh as one literal argument, whichever path they take", async () => {
    const h = getHost(conn());
    const marker = join(mkdtempSync(join(tmpdir(), "glv-inject-")), "pwned");
    const attacks = [`$(touch ${marker})`, `\`touch ${marker}\``, `x; touch ${marker}`, `x'; echo '`, `"a" 'b' \\c`, `# not a comment`, `a\nquit\nb`, `tab\there`, "ünïcødé 😀"];
    const arg = fc.oneof(
      fc.constantFrom(...attacks),
      fc.string({ unit: fc.constantFrom(..."'\"`$();#\\ ab-\n\té"), minLength: 1, maxLength: 25 }),
      fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 25 }),
    );
    await fc.assert(
      fc.asyncProperty(arg, async (s) => {
        // `echo --` prints its arguments joined by one space: two args make boundaries visible
        assert.equal(await h.virsh(["echo", "--", s, "END"]), `${s} END`);
      }),
      { numRuns: 150, examples: attacks.map((a) => [a]) },
    );
    assert.ok(!existsSync(marker), "an argument was executed");
  });

  it("serves 50 concurrent commands over one connection", async () => {
    closeAllHosts();
    const h = getHost(conn());
    const handshakes = getConnectionStats().handshakes;
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => h.virsh(["echo", "--", `n${i}`, i % 5 === 0 ? "é" : "a"])));
    assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => `n${i} ${i % 5 === 0 ? "é" : "a"}`));
    assert.equal(getConnectionStats().handshakes - handshakes, 1);
  });

  it("restarts a session whose virsh died, failing only the command in flight", async () => {
    // one session, of this test alone: the first test's may still be up on our sshd
    closeAllHosts();
    await waitFor("the earlier virsh sessions on our sshd to end", () => own.descendants("virsh").length === 0, 10_000);
    const h = getHost(ownConn());
    assert.equal(await h.virsh(["domstate", lab.domains.stopped]), "shut off\n");
    const [session, ...more] = own.descendants("virsh");
    assert.ok(session && more.length === 0, `one virsh session, found ${[session, ...more].join(" ")}`);
    // In flight: `event` blocks for 60 s whatever other lab users do. virsh opens a pipe of
    // its own (vshEventStart) when the command starts: seen on the host, it proves virsh is
    // running the command, not still reading it.
    const idlePipes = pipesOf(session);
    const inFlight = h.virsh(["event", "--loop", "--all", "--timeout", "60"]).then((stdout) => ({ stdout }), (err: unknown) => ({ err }));
    await waitFor(`virsh ${session} to run \`event\` (a pipe more than its ${idlePipes} when idle)`, () => pipesOf(session) > idlePipes, 10_000);
    // Queued behind it: the busy session takes nothing more; these wait for sessions that start for them.
    const queued = [h.virsh(["domstate", lab.domains.stopped]), h.virsh(["echo", "tr-queued"])];
    process.kill(session, "SIGKILL");
    const r = await settlesWithin(inFlight, 20_000, "the command in flight when its virsh was killed");
    assert.ok("err" in r, `the command in flight succeeded: ${JSON.stringify(r)}`);
    assert.ok(r.err instanceof SshError && r.err.kind === "connection-lost", String(r.err));
    assert.match(r.err.message, /virsh session ended while a command was running/);
    assert.deepEqual(await settlesWithin(Promise.all(queued), 30_000, "the commands queued when virsh was killed"), ["shut off\n", "tr-queued"]);
    assert.equal(await h.virsh(["domstate", lab.domains.stopped]), "shut off\n");
    const now = own.descendants("virsh");
    assert.ok(now.length > 0 && !now.includes(session), `the killed virsh ${session} gone, new sessions serve: ${now.join(" ")}`);
  });

  it("times a hung command out and keeps working", async () => {
    const h = getHost(conn({ timeouts: { command: 1 } }));
    // `event --loop --timeout 5` waits 5 s, whatever domain events other lab users cause: a stand-in for a hung operation
    await assert.rejects(h.virsh(["event", "--loop", "--all", "--timeout", "5"]), (e: SshError) => e instanceof SshError && e.kind === "timeout");
    assert.equal(await h.virsh(["domstate", lab.domains.stopped]), "shut off\n");
  });

  it("runs through sudo -n when asked", async () => {
    const h = getHost(conn({ sudo: true }));
    assert.equal((await h.exec(["id", "-u"])).stdout, "0\n");
    assert.equal(await h.virsh(["domstate", lab.domains.stopped]), "shut off\n");
    // messages stay English through sudo, so classification still works
    await assert.rejects(h.virsh(["dominfo", "glv-no-such-domain"]), (e: VirshError) => e.kind === "not-found-domain");
  });

  it("reports virsh itself failing to start as a VirshError with its stderr", async () => {
    const h = getHost(conn({ libvirtUri: "qemu:///system?socket=/nonexistent/libvirt-sock" }));
    await assert.rejects(h.virsh(["list"]), (e: VirshError) => e instanceof VirshError && /Failed to connect socket/.test(e.stderr));
  });

  it("refuses args that are not a virsh command, before anything runs", async () => {
    const h = getHost(conn());
    await assert.rejects(h.virsh(["-c", "test:///default", "list"]), /must start with a virsh command name/);
  });
});
