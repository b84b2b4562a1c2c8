import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { GlusterError, SafetyCheckError, isNotFound } from "../../provider/errors";
import type { ExecResult, Host } from "../../provider/host";
import { gluster } from "../../provider/gluster/cli";
import { inspectVolume, volumeUsers } from "../../provider/gluster/volumes";

const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");

/** A Host whose exec answers by the gluster subcommand (argv after the flags), recording each argv. */
function fakeHost(answers: Record<string, Partial<ExecResult>>) {
  const calls: string[][] = [];
  const host: Host = {
    label: "gllab@gs1:22",
    libvirtUri: "qemu:///system",
    virsh: () => Promise.reject(new Error("not used")),
    exec: (argv) => {
      calls.push([...argv]);
      const key = argv.filter((a) => !a.startsWith("--")).slice(1).join(" ");
      const answer = answers[key];
      if (!answer) return Promise.reject(new Error(`unexpected: ${key}`));
      return Promise.resolve({ code: 0, stdout: "", stderr: "", ...answer });
    },
  };
  return { host, calls };
}

test("gluster runs the CLI in script mode with XML, argv as given", async () => {
  const { host, calls } = fakeHost({ "volume info labvol": { stdout: fixture("gluster-volume-info-labvol.xml") } });
  const v = await inspectVolume(host, "labvol");
  assert.equal(v?.id, "4be5c31b-5e6b-4eca-9b47-dea2b704618a");
  assert.deepEqual(calls, [["gluster", "--mode=script", "--xml", "volume", "info", "labvol"]]);
});

test("success is read from <opRet>, not the exit code: a missing volume is undefined, other failures are GlusterErrors", async () => {
  const { host } = fakeHost({
    "volume info nosuchvol": { stdout: fixture("gluster-volume-info-missing.xml") },
    "volume start nosuchvol": { stdout: fixture("gluster-volume-status-missing.xml") },
    "volume info down": { code: 1, stdout: "Connection failed. Please check if gluster daemon is operational.\n" },
  });
  assert.equal(await inspectVolume(host, "nosuchvol"), undefined);
  const missing = await gluster(host, ["volume", "start", "nosuchvol"]).catch((e: unknown) => e);
  assert.ok(missing instanceof GlusterError && isNotFound(missing, "gluster-volume"));
  assert.match(missing.message, /^gluster --mode=script --xml volume start nosuchvol on gllab@gs1:22 failed .*: Volume nosuchvol does not exist$/);
  await assert.rejects(inspectVolume(host, "down"), (e: unknown) => e instanceof GlusterError && /daemon is operational/.test(e.message));
});

test("who is connected: a FUSE mount and QEMU count, a status that cannot be read stops the caller (fail closed)", async () => {
  const { host } = fakeHost({
    "volume status labvol clients": { stdout: fixture("gluster-volume-status-clients-labvol.xml") },
    "volume status labvol client-list": { stdout: fixture("gluster-client-list-labvol.txt") },
    "volume status gone clients": { stdout: fixture("gluster-volume-status-missing.xml") },
  });
  assert.match((await volumeUsers(host, "labvol")) ?? "", /^fuse ×1, gfapi\.qemu-system-x86 ×1 \(.*192\.0\.2\.2:49148, 192\.0\.2\.2:49139\)$/);
  await assert.rejects(volumeUsers(host, "gone"), SafetyCheckError);
});
