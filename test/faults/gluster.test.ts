import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { getLab, type LabInfo } from "../helpers/lab";
import { gluster, tryVirsh } from "../helpers/local";
import { labCredentials } from "../helpers/stack";
import {
  assertClearError, assertConverges, assertImagesIntact, assertStateMatchesHost, brickFiles, hashBrick, report, runBounded,
  stateView, type FaultRun,
  forceExitWhenDone,
} from "./harness";
import { volumesStack, type VolumesStack, dropHost1Pool } from "./fixtures";

/*
 * Scenario 3 of issue 11 §5, on host 1 with Gluster volumes of the test's own (labvol is
 * shared and never stopped): the volume stopped before a pool's create (clean rollback),
 * and stopped under a running pool that has volumes (refresh, then repair).
 */

let lab: LabInfo;
before(async () => {
  lab = await getLab();
});

const poolsOnHost1 = () =>
  tryVirsh("pool-list", "--all", "--name").stdout.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("flt-"));
const dropPool = (s: () => VolumesStack) => async () => {
  dropHost1Pool(s().poolName);
};

describe("3a. the Gluster volume stopped before a pool's create", () => {
  let s: VolumesStack;
  let run: FaultRun;
  before(async () => {
    s = await volumesStack(lab, "g-stopped", () => ({ host: lab.ssh.host }), labCredentials(lab), { keep: 0, dropPool: dropPool(() => s) });
    gluster("volume", "stop", s.gluster.name, "force");
    run = await runBounded((onEvent) => s.t.stack.up({ onEvent }), 180_000);
    report("3a", {}, run);
  });
  after(async () => {
    await s?.remove();
  });

  test("(a) a clear error naming the host and the cause, in bounded time", () => {
    // the cause: the Gluster volume is not started / the mount failed — not merely "failed"
    assertClearError(run, lab.ssh.host, /not started|Transport endpoint|failed to mount|mount(?:ing)? failed|mount\.glusterfs|no such volume/i);
  });

  test("(c) clean rollback: no pool, no mount point left on the host, nothing in state", async () => {
    const st = await stateView(s.t.stack);
    assertStateMatchesHost("pools", poolsOnHost1().filter((p) => p === s.poolName), st.pools);
    assert.equal(fs.existsSync(`/var/lib/libvirt/gluster/${s.poolName}`), false, "the pool's mount point was left behind");
    assert.deepEqual(st.pools, []);
  });

  test("(d) after the volume is started, up converges and preview shows no changes", async () => {
    gluster("volume", "start", s.gluster.name);
    const c = await assertConverges(s.t);
    report("3a", { convergeUpSeconds: c.upSeconds });
  });
});

describe("3b. the Gluster volume stopped under a running pool with volumes", () => {
  let s: VolumesStack;
  let images: Map<string, string>;
  let inStateBefore: Awaited<ReturnType<typeof stateView>>;
  let run: FaultRun;
  before(async () => {
    s = await volumesStack(lab, "g-running", () => ({ host: lab.ssh.host }), labCredentials(lab), { keep: 3, dropPool: dropPool(() => s) });
    const up = await s.t.stack.up();
    assert.equal(up.summary.result, "succeeded");
    images = hashBrick(s.brick);
    assert.equal(images.size, 3);
    inStateBefore = await stateView(s.t.stack);
    gluster("volume", "stop", s.gluster.name, "force");
    run = await runBounded((onEvent) => s.t.stack.refresh({ onEvent }), 180_000);
    report("3b", {}, run);
  });
  after(async () => {
    // started again for the cleanup's destroy, whatever the tests did
    tryGlusterStart(s?.gluster.name);
    await s?.remove();
  });

  test("(a) refresh fails with a clear error naming the host and the cause, in bounded time", () => {
    assertClearError(run, lab.ssh.host, /Transport endpoint is not connected/);
  });

  test("(b) nothing lost: images intact and the refresh forgot no resource", async () => {
    assertImagesIntact(images, hashBrick(s.brick));
    const st = await stateView(s.t.stack);
    assert.deepEqual(st.volumes, inStateBefore.volumes, "refresh dropped volumes from state while the Gluster volume was stopped");
    assert.deepEqual(st.pools, inStateBefore.pools, "refresh dropped the pool from state");
  });

  test("(c) nothing on the host that state does not know", async () => {
    const st = await stateView(s.t.stack);
    assertStateMatchesHost("volumes", brickFiles(s.brick), st.volumes);
  });

  test("(d) after the volume is started again, up converges and preview shows no changes", async () => {
    gluster("volume", "start", s.gluster.name);
    const c = await assertConverges(s.t);
    report("3b", { convergeUpSeconds: c.upSeconds });
    assertImagesIntact(images, hashBrick(s.brick));
  });
});

function tryGlusterStart(name: string | undefined): void {
  if (!name) return;
  try {
    gluster("volume", "start", name);
  } catch {
    // already started
  }
}

// last, so that it runs after every other hook of this file
forceExitWhenDone();
