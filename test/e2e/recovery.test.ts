import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DiskAttachment, GlusterPool, ImageVolume } from "../../sdk";
import { cloneLabDomain, dropDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, tryVirsh, uniqueName, virsh } from "../helpers/local";
import { changes, labCredentials, newStack, type TestStack, upConverged } from "../helpers/stack";

/*
 * A run cut short after create did its work on the host but before the engine recorded
 * it (the CLI SIGKILLed, a laptop closed) leaves objects that state does not know. The
 * next `up` must recognise them as this stack's own — by the stamp create recorded on
 * the host — and take them over or make them anew, and must never take over an object
 * someone else made under the same name. The cut is made exact by dropping the
 * resources from the state file after an `up` (what the engine never got to write).
 */

let lab: LabInfo;
let t: TestStack;
let gluster: ReturnType<typeof createGlusterVolume>;
let domain: string;
const poolName = uniqueName("e2erec");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-recovery-"));
const image = path.join(tmp, "image.raw");
const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

function program(): Promise<Record<string, unknown>> {
  const connection = { host: lab.ssh.host };
  const pool = new GlusterPool("pool", { connection, name: poolName, volume: gluster.name, servers: lab.gluster.servers });
  const empty = new ImageVolume("empty", { connection, pool: pool.name, name: "empty.img", capacity: "1MiB" });
  const uploaded = new ImageVolume("uploaded", { connection, pool: pool.name, name: "uploaded.img", source: { path: image } });
  const disk = new DiskAttachment("disk", { connection, domain, pool: pool.name, volume: empty.name, target: "sdb", access: "fuse" });
  return Promise.resolve({ uploaded: uploaded.path, disk: disk.domainUuid });
}

/** Removes the program's custom resources from the state, as if the run had died before writing them. */
async function forgetState(types: RegExp): Promise<void> {
  const state = await t.stack.exportStack();
  state.deployment.resources = state.deployment.resources.filter((r: { type: string }) => !types.test(r.type));
  await t.stack.importStack(state);
}

before(async () => {
  lab = await getLab();
  gluster = createGlusterVolume(lab, uniqueName("e2erec").replace(/-/g, "_"));
  domain = cloneLabDomain(lab, "stopped");
  fs.writeFileSync(image, randomBytes(2 << 20));
  t = await newStack("recovery", program, labCredentials(lab));
});

after(async () => {
  await t?.cleanup().catch(() => undefined);
  dropDomain(domain);
  for (const v of ["empty.img", "uploaded.img"]) tryVirsh("vol-delete", "--pool", poolName, v);
  tryVirsh("pool-destroy", poolName);
  tryVirsh("pool-undefine", poolName);
  gluster?.remove();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("recovery from a run cut short", () => {
  test("objects a cut run created are taken over (a half-written upload made anew); the stack converges", async () => {
    assert.equal((await upConverged(t)).summary.result, "succeeded");
    const mount = virsh("pool-dumpxml", poolName).match(/<path>([^<]+)<\/path>/)![1];
    await forgetState(/gluster-libvirt:(GlusterPool|ImageVolume|DiskAttachment)$/);
    // the upload was cut: the file holds less than the image
    fs.truncateSync(path.join(mount, "uploaded.img"), 4096);

    const up = await upConverged(t);
    assert.equal(up.summary.result, "succeeded");
    assert.deepEqual(changes(up.summary.resourceChanges), { create: 4 });
    assert.equal(sha256(path.join(mount, "uploaded.img")), sha256(image), "the cut upload was made anew");
    assert.match(virsh("dumpxml", "--inactive", domain), /<target dev='sdb'/);
  });

  test("an object of that name that this stack did not create is never taken over", async () => {
    await t.stack.destroy();
    virsh("pool-create-as", poolName, "dir", "--target", tmp);

    try {
      // someone else's pool of that name (here not even a Gluster one) is refused, not taken over
      await assert.rejects(t.stack.up(), new RegExp(`pool '${poolName}' is of type 'dir', not a Gluster pool`));
      assert.match(virsh("pool-dumpxml", poolName), /<pool type='dir'>/, "the pool someone else made is untouched");
    } finally {
      tryVirsh("pool-destroy", poolName);
      tryVirsh("pool-undefine", poolName);
    }
  });
});
