import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SshError } from "../../provider/errors";
import type { SshConnection } from "../../provider/ssh/connections";
import { SessionProtocolError, VirshRunner, sessionCommandFailed, sessionInput, takeGreeting, takeStderr, takeStdout } from "../../provider/virsh";

/*
 * A real transcript: `virsh -q -c test:///default` (9.0, env -i so TERM is unset) fed
 * what sessionInput types for a greeting and four commands: a listing, a failing
 * lookup, a 150-character argument (readline redraws it with `\r<`), and output that
 * imitates our own marker lines.
 */
const LONG = "x".repeat(150);
const STDOUT =
  "virsh # echo glv_end_s_0\nglv_end_s_0virsh # glv_err_s_0\n" +
  "virsh # list --all --name\ntest\nvirsh # echo glv_end_s_1\nglv_end_s_1virsh # glv_err_s_1\n" +
  "virsh # pool-info nosuch\nvirsh # echo glv_end_s_2\nglv_end_s_2virsh # glv_err_s_2\n" +
  `virsh # \r<${LONG.slice(0, 51)}\n${LONG}virsh # echo glv_end_s_3\nglv_end_s_3virsh # glv_err_s_3\n` +
  "virsh # echo -- 'virsh # echo glv_end_s_4'\nvirsh # echo glv_end_s_4virsh # echo glv_end_s_4\nglv_end_s_4virsh # glv_err_s_4\nvirsh # \n";
const STDERR =
  "error: unknown command: 'glv_err_s_0'\nerror: unknown command: 'glv_err_s_1'\n" +
  "error: failed to get pool 'nosuch'\nerror: Storage pool not found: no storage pool with matching name 'nosuch'\n" +
  "error: unknown command: 'glv_err_s_2'\nerror: unknown command: 'glv_err_s_3'\nerror: unknown command: 'glv_err_s_4'\n";

const m = (n: number) => ({ end: `glv_end_s_${n}`, err: `glv_err_s_${n}` });

describe("virsh session transcript", () => {
  it("types the command, then the two markers", () => {
    assert.equal(sessionInput("list --name", m(1)), "list --name\necho glv_end_s_1\nglv_err_s_1\n");
    assert.equal(sessionInput(undefined, m(0)), "echo glv_end_s_0\nglv_err_s_0\n");
  });

  it("splits a real transcript into each command's stdout and stderr", () => {
    const g = takeGreeting("motd from a chatty login shell\n" + STDOUT, m(0).end, m(0).err)!;
    assert.equal(g.prompt, "virsh # ");
    let out = g.rest;
    let err = takeStderr(STDERR, m(0).err)!.rest;
    const results: Array<[string, string]> = [];
    for (let n = 1; n <= 4; n++) {
      const o = takeStdout(out, { prompt: g.prompt, ...m(n) })!;
      const e = takeStderr(err, m(n).err)!;
      results.push([o.output, e.stderr]);
      out = o.rest;
      err = e.rest;
    }
    assert.deepEqual(results, [
      ["test\n", ""],
      ["", "error: failed to get pool 'nosuch'\nerror: Storage pool not found: no storage pool with matching name 'nosuch'\n"],
      [LONG, ""],
      ["virsh # echo glv_end_s_4", ""],
    ]);
    assert.equal(out, "virsh # \n");
    assert.equal(err, "");
    assert.ok(sessionCommandFailed(results[1][1]) && !sessionCommandFailed(results[0][1]));
  });

  it("waits while a marker is incomplete", () => {
    const g = takeGreeting(STDOUT, m(0).end, m(0).err)!;
    const partial = g.rest.slice(0, g.rest.indexOf("glv_end_s_1\nglv_end_s_1") + 15);
    assert.equal(takeStdout(partial, { prompt: g.prompt, ...m(1) }), undefined);
    assert.equal(takeStderr("error: unknown command: 'glv_err_s_1'", m(1).err), undefined);
    assert.equal(takeGreeting("virsh # echo glv_end_s_0\nglv_end_s_0virsh # glv_er", m(0).end, m(0).err), undefined);
  });

  it("refuses a transcript that is out of step", () => {
    assert.throws(() => takeStdout("garbage\nvirsh # echo E\nEvirsh # R\n", { prompt: "virsh # ", end: "E", err: "R" }), SessionProtocolError);
  });
});

/*
 * The runner's queue against a fake connection (in addition to the real-sshd tests in
 * test/integration/faults.test.ts): what a failed connection does to queued jobs.
 */
describe("virsh runner queue, connection failing", () => {
  /** A connection whose every channel open fails after a tick, counting attempts. */
  const failingConnection = (err: Error) => {
    const conn = {
      opens: 0,
      busy: <T>(fn: () => Promise<T>) => fn(),
      onPressure: () => () => {},
      channelWanted: () => false,
      freeChannels: () => 8,
      openChannel: async () => {
        conn.opens++;
        await new Promise((r) => setTimeout(r, 5));
        throw err;
      },
    };
    return conn;
  };
  const runner = (conn: unknown) =>
    new VirshRunner({ conn: conn as SshConnection, libvirtUri: "qemu:///system", sudo: false, commandTimeoutMs: 1000, startTimeoutMs: 1000, target: "u@h:22", secrets: [] });

  it("fails every queued job with the connection's error, while other sessions were starting too, and does not start more", { timeout: 60_000 }, async () => {
    const err = new SshError("connect", "u@h:22", "connection refused (gave up after 3 attempts)");
    const conn = failingConnection(err);
    const r = runner(conn);
    const jobs = Array.from({ length: 10 }, (_, i) => r.run(["echo", `j${i}`]));
    const results = await Promise.allSettled(jobs);
    assert.deepEqual(results.map((x) => x.status === "rejected" && x.reason), Array(10).fill(err));
    const opens = conn.opens;
    assert.ok(opens <= 3, `one start per session slot, got ${opens}`);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(conn.opens, opens, "nothing starts again without a new job");
  });
});
