import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { DiskAttachment } from "../../sdk";
import { dropDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { labCredentials } from "../helpers/stack";
import { Diagnostics, assertConverges, assertStateMatchesHost, brickFiles, report, secondsSince, stateView, forceExitWhenDone } from "./harness";
import { cloneDomain, host1Disks, volumesStack, type VolumesStack, dropHost1Pool } from "./fixtures";

/*
 * Scenario 8 of issue 11 §5: load — 60 volumes and 20 disk attachments on 4 running VMs in
 * one run, at the engine's default parallelism and again with `--parallel 64`: 0 failures.
 * Attachments are FUSE disks on the lab's virtio-scsi bus (~0.1 s each), plus two gfapi ones
 * (~20 s each here) on one VM: they hold that domain's job lock long enough that anything
 * else sent to it meanwhile fails on libvirt's 30 s lock wait unless the provider queues
 * work per domain.
 */

const VMS = 4;
const PER_VM = 5;
// both gfapi disks on the same VM: ~40 s of hot-plug on one domain, longer than libvirt's
// 30 s wait for the domain's job lock — the other three disks of that VM must be queued
const GFAPI = new Set(["0:sdb", "0:sdc"]);

let lab: LabInfo;
before(async () => {
  lab = await getLab();
});

/** 4 running VMs and a stack of a pool, 60 volumes and 20 attachments on them. */
async function loadSet(): Promise<{ s: VolumesStack; domains: string[]; remove(): Promise<void> }> {
  const domains = Array.from({ length: VMS }, () => cloneDomain(lab, "running", "flt-load"));
  const s = await volumesStack(lab, "load", () => ({ host: lab.ssh.host }), labCredentials(lab), {
    keep: 0,
    dropPool: async () => {
      dropHost1Pool(s.poolName);
    },
  });
  s.count = 60;
  s.extra = (pool, connection, volumes) => {
    const names = Object.keys(volumes).sort();
    for (let vm = 0; vm < VMS; vm++) {
      for (let i = 0; i < PER_VM; i++) {
        const target = `sd${String.fromCharCode(98 + i)}`;
        const volume = volumes[names[vm * PER_VM + i]];
        new DiskAttachment(`d${vm}-${target}`, {
          connection, domain: domains[vm], pool: pool.name, volume: volume.name, target, bus: "scsi",
          access: GFAPI.has(`${vm}:${target}`) ? "gfapi" : "fuse",
        });
      }
    }
  };
  return {
    s,
    domains,
    async remove() {
      // the VMs first: nothing then uses the images when the pool and its volume go
      for (const d of domains) dropDomain(d);
      await s.removeWithoutDestroy();
    },
  };
}

async function loadRun(label: string, s: VolumesStack, domains: string[], parallel: number | undefined) {
  const d = new Diagnostics();
  const t0 = Date.now();
  try {
    await s.t.stack.up({ onEvent: d.onEvent, parallel });
  } catch (e) {
    const failures = d.errors.filter((m) => m !== "update failed");
    report(label, { upSeconds: secondsSince(t0), failures: failures.length, error: d.firstLine(e) });
    assert.fail(`up failed with ${failures.length} resource error(s); first: ${d.firstLine(e)}\n${failures.slice(0, 8).join("\n---\n").slice(0, 4000)}`);
  }
  report(label, { upSeconds: secondsSince(t0), failures: 0 });
  assert.equal(brickFiles(s.brick).length, 60);
  const st = await stateView(s.t.stack);
  assertStateMatchesHost("volumes", brickFiles(s.brick), st.volumes);
  const disks = await host1Disks(domains);
  const live = domains.flatMap((dom) => disks[dom].live.map((x) => `${dom}:${x.split("=")[0]}`));
  assert.equal(live.length, VMS * PER_VM, `disks live in the VMs: ${live.join(" ")}`);
  assert.deepEqual(st.disks, [...live].sort());
}

for (const parallel of [undefined, 64]) {
  const label = parallel ? `--parallel ${parallel}` : "the default parallelism";
  describe(`8. load: 60 volumes + 20 disk attachments on 4 VMs in one run, at ${label}`, () => {
    let set: Awaited<ReturnType<typeof loadSet>> | undefined;
    after(async () => {
      await set?.remove();
    });
    test("0 failures; then refresh and preview show it converged", async () => {
      set = await loadSet();
      await loadRun(`8 ${label}`, set.s, set.domains, parallel);
      const c = await assertConverges(set.s.t, { parallel });
      report(`8 ${label}`, { secondUpSeconds: c.upSeconds });
    });
  });
}

// last, so that it runs after every other hook of this file
forceExitWhenDone();
