import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { getLab, type LabInfo } from "../helpers/lab";
import { startSshd, type Sshd } from "../helpers/sshd";
import { labCredentials } from "../helpers/stack";
import { Diagnostics, assertConverges, freePort, assertStateMatchesHost, brickFiles, report, secondsSince, stateView, forceExitWhenDone } from "./harness";
import { volumesStack, type VolumesStack, dropHost1Pool } from "./fixtures";

/*
 * Scenario 7 of issue 11 §5: an sshd with `MaxSessions 2` (a throwaway one, logging in to
 * host 1) and 50 resources in one run — a pool and 49 volumes — must succeed: the provider
 * queues channels instead of failing when the server refuses a third session.
 */

let lab: LabInfo;
let sshd: Sshd;
let s: VolumesStack;
before(async () => {
  lab = await getLab();
  sshd = await startSshd({
    address: "127.0.0.1",
    port: await freePort(),
    authorizedKeys: [fs.readFileSync(`${lab.ssh.privateKeyPath}.pub`, "utf8").trim()],
    config: ["MaxSessions 2"],
  });
  s = await volumesStack(lab, "maxsess", () => ({ host: "127.0.0.1", port: sshd.port, hostKey: sshd.fingerprint }), labCredentials(lab), {
    keep: 1,
    dropPool: async () => {
      dropHost1Pool(s.poolName);
    },
  });
  s.count = 48;
});
after(async () => {
  await s?.remove();
  sshd?.stop();
  if (sshd) fs.rmSync(sshd.dir, { recursive: true, force: true });
});

describe("7. an sshd with MaxSessions 2 and 50 resources in one run", () => {
  test("up creates all 50 without a failure", async () => {
    const d = new Diagnostics();
    const t0 = Date.now();
    try {
      await s.t.stack.up({ onEvent: d.onEvent });
    } catch (e) {
      report("7", { error: d.firstLine(e), seconds: secondsSince(t0), failures: d.errors.length });
      assert.fail(`up failed (${d.errors.length} error diagnostics): ${d.firstLine(e)}\n${d.text(e).slice(0, 3000)}`);
    }
    report("7", { upSeconds: secondsSince(t0) });
    assert.equal(brickFiles(s.brick).length, 49);
  });

  test("nothing on the host that state does not know; preview shows no changes", async () => {
    assertStateMatchesHost("volumes", brickFiles(s.brick), (await stateView(s.t.stack)).volumes);
    const c = await assertConverges(s.t);
    report("7", { secondUpSeconds: c.upSeconds });
  });
});

// last, so that it runs after every other hook of this file
forceExitWhenDone();
