import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { DiskAttachment, ImageVolume } from "../../sdk";
import { dropDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { tryVirsh, virsh } from "../helpers/local";
import { labCredentials } from "../helpers/stack";
import {
  assertConverges, assertImagesIntact, assertNoDiskLost, hashBrick, pgrep, report, runWithFault, stateView, waitFor,
  type DomainDisks, type FaultRun,
  forceExitWhenDone,
} from "./harness";
import { cloneDomain, host1Disks, volumesStack, type VolumesStack } from "./fixtures";

/*
 * Scenario 5 of issue 11 §5: the VM destroyed (`virsh destroy`, QEMU killed) while its disk
 * is being attached, and while it is being detached — on a running copy of the lab's
 * domain on host 1, with a gfapi disk (its hot-plug takes ~20 s here, a window wide enough
 * to land in). The VM already has a FUSE disk (sdb) that must survive. The attach is seen
 * in flight as the `virsh attach-device <domain>` process on the host; the detach as the
 * engine starting the attachment's delete (the provider's detach runs in its long-lived
 * virsh session, no process of its own).
 */

let lab: LabInfo;
let domain: string;
let s: VolumesStack;
let images: Map<string, string>;
const phase = { gfapi: false };

before(async () => {
  lab = await getLab();
  domain = cloneDomain(lab, "running");
  s = await volumesStack(lab, "vm", () => ({ host: lab.ssh.host }), labCredentials(lab), {
    keep: 1,
    dropPool: async () => {
      tryVirsh("pool-destroy", s.poolName);
      tryVirsh("pool-undefine", s.poolName);
    },
  });
  s.extra = (pool, connection, volumes) => {
    const att = new ImageVolume("flt-att.img", { connection, pool: pool.name, name: "flt-att.img", capacity: "1MiB" });
    new DiskAttachment("sdb", { connection, domain, pool: pool.name, volume: volumes["flt-keep-0.img"].name, target: "sdb", access: "fuse" });
    if (phase.gfapi) new DiskAttachment("sdc", { connection, domain, pool: pool.name, volume: att.name, target: "sdc", bus: "scsi", access: "gfapi" });
  };
  const up = await s.t.stack.up();
  assert.equal(up.summary.result, "succeeded");
  images = hashBrick(s.brick);
});
after(async () => {
  if (domain && tryVirsh("domstate", domain).stdout.includes("shut off")) tryVirsh("start", domain);
  await s?.remove();
  if (domain) dropDomain(domain);
});

const ourDisks = (d: DomainDisks) => d[domain].persistent.filter((x) => x.includes(s.poolName) || x.includes(s.gluster.name)).map((x) => `${domain}:${x.split("=")[0]}`).sort();

function scenario(title: string, gfapiAfter: boolean, trigger: (events: EngineEvent[]) => boolean, todo: { error?: string; unknown?: string; converge?: string }) {
  describe(title, () => {
    let disks: DomainDisks;
    let run: FaultRun;
    before(async () => {
      disks = await host1Disks([domain]);
      phase.gfapi = gfapiAfter;
      const events: EngineEvent[] = [];
      run = await runWithFault(
        (onEvent) => s.t.stack.up({ onEvent: (e) => (events.push(e), onEvent(e)) }),
        () => waitFor("the disk operation in flight", () => trigger(events), 180_000, 20).then(() => undefined),
        () => void virsh("destroy", domain),
        180_000,
      );
      report(title, {}, run);
    });

    test("(a) the run ends in bounded time with a clear error naming the host and the VM", { todo: todo.error }, () => {
      assert.equal(run.hung, false, `still running ${run.secondsToEnd} s after the VM was destroyed`);
      assert.ok(run.error !== undefined, "the run succeeded although the VM died under it");
      const text = run.diagnostics.text(run.error);
      assert.ok(text.includes(lab.ssh.host), `the error does not name the host:\n${text.slice(0, 2000)}`);
      assert.match(text, new RegExp(`${domain}[\\s\\S]*(not running|shut off|destroyed|no (?:domain|longer)|gone|closed)|(not running|shut off|domain is not running)`, "i"));
    });

    test("(b) nothing lost: the image is intact, the VM keeps sdb in its definition", async () => {
      assertImagesIntact(images, hashBrick(s.brick));
      assertNoDiskLost(disks, await host1Disks([domain]), { liveToo: false });
    });

    test("(c) no disk in the VM's definition that state does not know", { todo: todo.unknown }, async () => {
      const st = await stateView(s.t.stack);
      const onHost = ourDisks(await host1Disks([domain]));
      report(title, { onHost, inState: st.disks });
      assert.deepEqual(onHost.filter((d) => !st.disks.includes(d)), [], "disks in the VM that state does not know");
    });

    test("(d) after the VM is started again, up converges and preview shows no changes", { todo: todo.converge }, async () => {
      if (tryVirsh("domstate", domain).stdout.includes("shut off")) virsh("start", domain);
      const c = await assertConverges(s.t);
      report(title, { convergeUpSeconds: c.upSeconds });
      const target = ourDisks(await host1Disks([domain]));
      assert.equal(target.includes(`${domain}:sdc`), gfapiAfter, `sdc in the definition: ${target.join(" ")}`);
    });
  });
}

scenario(
  "5a. the VM destroyed while its disk is being attached",
  true,
  () => pgrep(`attach-device ${domain}`).length > 0,
  {},
);

scenario(
  "5b. the VM destroyed while its disk is being detached",
  false,
  (events) => events.some((e) => e.resourcePreEvent?.metadata.op === "delete" && e.resourcePreEvent.metadata.urn.endsWith("::sdc")),
  {},
);

// last, so that it runs after every other hook of this file
forceExitWhenDone();
