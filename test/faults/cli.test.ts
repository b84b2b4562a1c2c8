import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ImageVolume } from "../../sdk";
import { getLab, type LabInfo } from "../helpers/lab";
import { labCredentials } from "../helpers/stack";
import { waitFor } from "../helpers/wait";
import {
  Diagnostics, assertConverges, assertImagesIntact, assertStateMatchesHost, brickFiles, descendants, hashBrick, killPid, pidAlive,
  pulumiProcesses, randomFile, releaseStaleLocks, report, runWithFault, secondsSince, stateView, type FaultRun,
  forceExitWhenDone,
} from "./harness";
import { madeVolumes, volumesStack, type VolumesStack, dropHost1Pool } from "./fixtures";

/*
 * Scenario 4 of issue 11 §5: the Pulumi CLI itself SIGKILLed (an OOM kill, a CI job's
 * timeout) mid-upload of a 512 MiB image and mid-create of 40 volumes, on host 1 with a
 * Gluster volume of the test's own. The CLI is the `pulumi` process the Automation API
 * started under this test process; the dynamic provider is its child.
 */

let lab: LabInfo;
let bigDir: string;
let bigFile: string;
before(async () => {
  lab = await getLab();
  // dense random data: a sparse file would upload too fast to be caught mid-way
  bigDir = fs.mkdtempSync(path.join(os.tmpdir(), "flt-big-"));
  const t0 = Date.now();
  bigFile = randomFile(path.join(bigDir, "big.img"), 512 << 20);
  report("4", { wrote512MiBSeconds: secondsSince(t0) });
});
after(() => {
  if (bigDir) fs.rmSync(bigDir, { recursive: true, force: true });
});

const dropPool = (s: () => VolumesStack) => async () => {
  dropHost1Pool(s().poolName);
};

/** SIGKILL the CLI; returns its provider processes (re-parented once the CLI is gone). */
function killCli(): number[] {
  const clis = pulumiProcesses();
  assert.ok(clis.length > 0, "no pulumi CLI process under this test");
  const providers = clis.flatMap((p) => descendants(p, /./));
  for (const p of clis) killPid(p, "SIGKILL");
  return providers;
}

/**
 * The repair a user makes after a killed CLI: `pulumi cancel` for the lock it left, then
 * `pulumi refresh --clear-pending-creates` for the creates it kept as pending operations.
 */
async function repairAfterKill(s: VolumesStack): Promise<void> {
  const locks = releaseStaleLocks(s.t);
  report("4 repair", { staleLocksReleased: locks });
  const d = new Diagnostics();
  try {
    await s.t.stack.refresh({ clearPendingCreates: true, onEvent: d.onEvent });
  } catch (e) {
    assert.fail(`refresh --clear-pending-creates after the kill failed: ${d.firstLine(e)}\n${d.text(e).slice(0, 2000)}`);
  }
}

function scenario(title: string, setup: (s: VolumesStack) => void, trigger: (s: VolumesStack) => boolean, todo: { converge?: string; unknown?: string; stops?: string }) {
  describe(title, () => {
    let s: VolumesStack;
    let images: Map<string, string>;
    let run: FaultRun;
    let providers: number[] = [];
    let providersGoneSeconds: number | undefined;
    before(async () => {
      s = await volumesStack(lab, title.startsWith("4a") ? "kill-upload" : "kill-create", () => ({ host: lab.ssh.host }), labCredentials(lab), {
        keep: 1,
        dropPool: dropPool(() => s),
      });
      const up = await s.t.stack.up();
      assert.equal(up.summary.result, "succeeded");
      images = hashBrick(s.brick);
      setup(s);
      run = await runWithFault(
        (onEvent) => s.t.stack.up({ onEvent }),
        () => waitFor("the moment to kill the CLI", () => trigger(s), 180_000, 20).then(() => undefined),
        () => void (providers = killCli()),
        60_000,
      );
      const t0 = Date.now();
      await waitFor("the killed run's provider processes to exit", () => providers.every((p) => !pidAlive(p)), 30_000, 100).then(
        () => void (providersGoneSeconds = secondsSince(t0)),
        () => undefined,
      );
      const st = await stateView(s.t.stack);
      report(title, { providersGoneSeconds, onBrick: brickFiles(s.brick).length, inState: st.volumes.length, pending: st.pendingOperations }, run);
    });
    after(async () => {
      for (const p of providers) killPid(p, "SIGKILL");
      await s?.remove();
    });

    test("(a) the killed run's provider stops working on the host within 30 s", { todo: todo.stops }, () => {
      assert.equal(run.hung, false, "the CLI did not end after SIGKILL");
      assert.notEqual(providersGoneSeconds, undefined, `provider processes ${providers.join(", ")} still run 30 s after the CLI was killed`);
    });

    test("(b) nothing lost: the image that existed before is byte-identical", () => {
      assertImagesIntact(images, hashBrick(s.brick));
    });

    test("(d) after refresh --clear-pending-creates, up converges and preview shows no changes", { todo: todo.converge }, async () => {
      await repairAfterKill(s);
      const c = await assertConverges(s.t);
      report(title, { convergeUpSeconds: c.upSeconds });
    });

    test("(c) after the repair, nothing on the host that state does not know", { todo: todo.unknown }, async () => {
      const st = await stateView(s.t.stack);
      assertStateMatchesHost("volumes", brickFiles(s.brick), st.volumes);
      assert.deepEqual(st.pendingOperations, []);
    });
  });
}

const bigName = "flt-big.img";
scenario(
  "4a. the Pulumi CLI SIGKILLed mid-upload of a 512 MiB image",
  (s) => {
    s.extra = (pool, connection) => void new ImageVolume(bigName, { connection, pool: pool.name, name: bigName, source: { path: bigFile } });
  },
  (s) => {
    try {
      return fs.statSync(path.join(s.brick, bigName)).blocks * 512 >= 64 << 20;
    } catch {
      return false;
    }
  },
  {},
);

scenario(
  "4b. the Pulumi CLI SIGKILLed mid-create of 40 volumes",
  (s) => void (s.count = 40),
  (s) => madeVolumes(s).length >= 10,
  {},
);

// last, so that it runs after every other hook of this file
forceExitWhenDone();
