/*
 * GlusterVolume.sharedPools (SHARED_POOL_OPTIONS): with Gluster's FUSE defaults, libvirt's
 * refresh of a pool fails "Stale file handle" whenever another client deletes a file of
 * the directory while libvirt reads it, and libvirt then stops the pool; with the two
 * options off it does not. Shown on two pools of their own, each over a Gluster volume of
 * its own, while another FUSE client of the same volume writes a file and deletes an older
 * one, over and over (what hypervisors deleting and creating images at once do): the
 * volume with the options refreshes every time, the one without (the control, so that the
 * test can fail) does not. The options are set after the pool mounted the volume: glusterd
 * gives a changed option to clients already mounted, as it would to a user's running pools.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { SHARED_POOL_OPTIONS } from "../../provider/gluster/options";
import { getLab, type LabInfo } from "../helpers/lab";
import { gluster, tryVirsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";

const REFRESHES = 15;
/** Files the other client keeps in the directory while it churns. */
const KEPT = 200;

let lab: LabInfo;
const pools: OwnPool[] = [];

before(async () => {
  lab = await getLab();
});

after(async () => {
  for (const p of pools) await p.remove();
});

/** Refreshes of `pool` while another client of its volume churns files: how many failed, and one failure's message. */
async function refreshesDuringChurn(pool: OwnPool): Promise<{ failed: number; example?: string }> {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), "spo-mnt-"));
  try {
    execFileSync("mount", ["-t", "glusterfs", `${lab.gluster.servers[0]}:/${pool.gluster.name}`, mnt]);
  } catch (e) {
    fs.rmdirSync(mnt);
    throw e;
  }
  // bounded: the loop stops by itself after 5 minutes if this process dies
  const churn = spawn("timeout", ["300", "sh", "-c", `i=0; while :; do i=$((i+1)); head -c 65536 /dev/zero > "$1/c$i"; rm -f "$1/c$((i-${KEPT}))"; done`, "sh", mnt], { stdio: "ignore" });
  try {
    for (const deadline = Date.now() + 60_000; fs.readdirSync(mnt).length < KEPT / 2; await sleep(200)) {
      assert.ok(Date.now() < deadline && churn.exitCode === null, `the churn made ${fs.readdirSync(mnt).length} files in 60 s (exit ${churn.exitCode})`);
    }
    let failed = 0;
    let example: string | undefined;
    for (let i = 0; i < REFRESHES; i++) {
      const r = tryVirsh("pool-refresh", pool.name);
      if (r.code === 0) continue;
      failed++;
      example ??= r.stderr.trim();
      // libvirt stopped the pool: started again (its start refreshes too, so it may take a few tries)
      for (let t = 0; t < 10 && tryVirsh("pool-start", pool.name).code !== 0; t++) await sleep(300);
    }
    return { failed, example };
  } finally {
    if (churn.exitCode === null && churn.signalCode === null) {
      const exited = new Promise((r) => churn.once("exit", r));
      churn.kill();
      await exited;
    }
    execFileSync("umount", [mnt]);
    fs.rmdirSync(mnt);
  }
}

test("a pool over a volume with sharedPools' options refreshes while another client deletes files; with Gluster's defaults it fails", { timeout: 300_000 }, async () => {
  const shared = await createOwnPool(lab, "spo", { by: "root" });
  pools.push(shared);
  for (const [key, value] of Object.entries(SHARED_POOL_OPTIONS)) gluster("volume", "set", shared.gluster.name, key, value);
  const plain = await createOwnPool(lab, "spo", { by: "root" });
  pools.push(plain);

  const withOptions = await refreshesDuringChurn(shared);
  const defaults = await refreshesDuringChurn(plain);
  process.stderr.write(`sharedPools: ${withOptions.failed} of ${REFRESHES} refreshes failed with the options, ${defaults.failed} of ${REFRESHES} without (${defaults.example ?? "-"})\n`);
  assert.equal(withOptions.failed, 0, `refreshes failed with the options: ${withOptions.example}`);
  assert.ok(defaults.failed > 0, "without the options no refresh failed: the churn did not race the refreshes, so this test proves nothing");
  assert.match(defaults.example!, /Stale file handle|No such file or directory/);
});
