import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import { GlusterPool } from "../../sdk";
import { getLab, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, tryVirsh, uniqueName } from "../helpers/local";
import { startSshd, type Sshd } from "../helpers/sshd";
import { newStack, labCredentials, type TestStack } from "../helpers/stack";
import { dropHost1Pool } from "./fixtures";
import { assertClearError, assertConverges, freePort, report, runBounded, stateView, type FaultRun, forceExitWhenDone } from "./harness";

/*
 * Scenario 6 of issue 11 §5: the host unreachable — a closed port, and a port that accepts
 * TCP and never answers (a silent server in this process, on 127.0.0.1). The repair is a
 * real sshd (a throwaway one, logging in to host 1) on that same port; the stack then
 * converges. The stack holds one GlusterPool on a Gluster volume of the test's own.
 */

let lab: LabInfo;
before(async () => {
  lab = await getLab();
});

function scenario(title: string, makeFault: (port: number) => Promise<() => Promise<void>>, cause: RegExp) {
  describe(title, () => {
    let port: number;
    let stopFault: (() => Promise<void>) | undefined;
    let sshd: Sshd | undefined;
    let hostKey: string | undefined;
    let gluster: ReturnType<typeof createGlusterVolume>;
    let t: TestStack;
    const poolName = uniqueName("flt-unreach");
    let run: FaultRun;
    before(async () => {
      port = await freePort();
      gluster = createGlusterVolume(lab, uniqueName("flt-unreach"));
      t = await newStack("flt-unreach", async () => {
        new GlusterPool("pool", { connection: { host: "127.0.0.1", port, hostKey }, name: poolName, volume: gluster.name, servers: lab.gluster.servers });
        return {};
      }, labCredentials(lab));
      stopFault = await makeFault(port);
      run = await runBounded((onEvent) => t.stack.up({ onEvent }), 180_000);
      report(title, {}, run);
    });
    after(async () => {
      await stopFault?.();
      try {
        await t?.cleanup();
      } catch (e) {
        process.stderr.write(`faults: cleanup: ${String(e).slice(0, 300)}\n`);
      }
      sshd?.stop();
      if (sshd) fs.rmSync(sshd.dir, { recursive: true, force: true });
      dropHost1Pool(poolName);
      gluster?.remove();
    });

    test("(a) a clear error naming the host and the cause, in bounded time", () => {
      assertClearError(run, `127.0.0.1:${port}`, cause);
    });

    test("(c) nothing on the host, nothing in state", async () => {
      assert.equal(tryVirsh("pool-info", poolName).code === 0, false, "a pool was defined");
      assert.equal(fs.existsSync(`/var/lib/libvirt/gluster/${poolName}`), false);
      assert.deepEqual((await stateView(t.stack)).pools, []);
    });

    test("(d) with a real sshd on that port, up converges and preview shows no changes", async () => {
      await stopFault?.();
      stopFault = undefined;
      sshd = await startSshd({ address: "127.0.0.1", port, authorizedKeys: [fs.readFileSync(`${lab.ssh.privateKeyPath}.pub`, "utf8").trim()] });
      hostKey = sshd.fingerprint;
      const c = await assertConverges(t);
      report(title, { convergeUpSeconds: c.upSeconds });
      assert.equal(tryVirsh("pool-info", poolName).code, 0);
    });
  });
}

scenario("6a. the host unreachable: a closed port", async () => async () => undefined, /ECONNREFUSED|refused/i);

scenario(
  "6b. the host unreachable: a port that accepts TCP and never answers",
  async (port) => {
    const sockets = new Set<net.Socket>();
    const srv = net.createServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    });
    await new Promise<void>((r) => srv.listen(port, "127.0.0.1", r));
    return async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    };
  },
  /timed? ?out|timeout|handshake|no answer|banner/i,
);

// last, so that it runs after every other hook of this file
forceExitWhenDone();
