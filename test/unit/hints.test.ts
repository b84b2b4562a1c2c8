import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { GlusterLibvirtError, VirshError, withHints } from "../../provider/errors";
import type { ExecResult, Host } from "../../provider/host";
import { gfapiAttachHints, poolStartHints, type GlusterSource } from "../../provider/libvirt/hints";
import { predictPoolStart } from "../../provider/pool";

/*
 * The hints resource errors carry: the doctor's checks run over a fake hypervisor whose
 * answers are the lab's captured ones, with one thing broken each time.
 */
const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");

interface Broken {
  fuse?: string;
  reach?: (host: string, port: string) => boolean;
  driver?: boolean;
  /** libvirt's answer, or what virsh fails with */
  poolCapabilities?: string | Error;
}

let hosts = 0;
/** A hypervisor answering like the lab's, but for what `broken` says. */
function fakeHypervisor(broken: Broken = {}): Host {
  const answer = (r: Partial<ExecResult>): Promise<ExecResult> => Promise.resolve({ code: 0, stdout: "", stderr: "", ...r });
  return {
    label: `gllab@kvm${++hosts}:22`, // the driver probe is remembered per label
    libvirtUri: "qemu:///system",
    virsh: (args) => {
      if (args[0] === "pool-capabilities") {
        const caps = broken.poolCapabilities ?? fixture("virsh-pool-capabilities.xml");
        return typeof caps === "string" ? Promise.resolve(caps) : Promise.reject(caps);
      }
      if (args[0] === "version") return Promise.resolve(fixture("virsh-version.txt"));
      return Promise.reject(new Error(`unexpected virsh ${args.join(" ")}`));
    },
    exec: (argv) => {
      const script = argv[2] ?? "";
      if (script.includes("mount.glusterfs")) return answer({ stdout: broken.fuse ?? fixture("probe-fuse.txt") });
      if (script.includes("block-gluster")) return answer({ code: broken.driver === false ? 1 : 0 });
      if (script.includes("/dev/tcp")) {
        const pairs = argv.slice(4);
        const lines = [];
        for (let i = 0; i < pairs.length; i += 2) lines.push(`${(broken.reach ?? (() => true))(pairs[i], pairs[i + 1]) ? "ok" : "fail"} ${pairs[i]} ${pairs[i + 1]}`);
        return answer({ stdout: `${lines.join("\n")}\n` });
      }
      return Promise.reject(new Error(`unexpected exec ${argv.join(" ")}`));
    },
  };
}

const netfs = { type: "netfs" as const, volume: "images", servers: ["gs1", "gs2"] };

test("a pool that does not start on a healthy hypervisor: only where to look next (the volume, with the doctor command)", async () => {
  assert.deepEqual(await poolStartHints(fakeHypervisor(), netfs), [
    "the Gluster side (volume started, bricks online, server.allow-insecure, storage.owner-uid/gid): gluster-libvirt doctor --gluster-host gs1 --volume images",
  ]);
});

test("a pool that does not start: the FUSE client missing, a server unreachable from the hypervisor", async () => {
  const hints = await poolStartHints(fakeHypervisor({ fuse: "mount.glusterfs=\ndev-fuse=yes\n", reach: (h) => h !== "gs2" }), netfs);
  assert.equal(hints.length, 3, hints.join("\n"));
  assert.match(hints[0], /^doctor check mount-glusterfs fails: mount\.glusterfs is not installed.*; fix: install glusterfs-client/);
  assert.match(hints[1], /^doctor check gluster-reachable fails: gllab@kvm\d+:22 cannot connect to gs2:24007 \(glusterd\); fix: open TCP 24007 on gs2/);
});

test("a native gluster pool: the libvirt backend missing is what counts, not the FUSE client", async () => {
  const caps = fixture("virsh-pool-capabilities.xml").replace("<pool type='gluster' supported='yes'>", "<pool type='gluster' supported='no'>");
  const hints = await poolStartHints(fakeHypervisor({ poolCapabilities: caps, fuse: "mount.glusterfs=\ndev-fuse=no\n" }), { ...netfs, type: "gluster" });
  assert.equal(hints.length, 2, hints.join("\n"));
  assert.match(hints[0], /^doctor check gluster-pool warns: .*; fix: .*libvirt-daemon-driver-storage-gluster/);
});

test("a libgfapi disk that does not attach: QEMU's gluster driver missing", async () => {
  const hints = await gfapiAttachHints(fakeHypervisor({ driver: false }), { type: "gluster", volume: "images", servers: ["gs1"] });
  assert.match(hints[0], /^doctor check qemu-gluster-driver warns: QEMU 7\.2\.22 has no gluster block driver.*; fix: .*qemu-block-extra/);
  assert.equal(hints.length, 2);
});

/** A new pool's preview (issue 15 §3): the same checks, a failing one fails it, an unread fact warns. */
async function preview(host: Host, source: GlusterSource = netfs): Promise<{ error?: Error; warnings: string[] }> {
  const warnings: string[] = [];
  try {
    await predictPoolStart(host, { name: "p1", ...source }, (m) => warnings.push(m));
    return { warnings };
  } catch (error) {
    return { error: error as Error, warnings };
  }
}

test("preview of a new pool on a healthy hypervisor: passes, nothing to warn about", async () => {
  assert.deepEqual(await preview(fakeHypervisor()), { warnings: [] });
});

test("preview of a new pool: glusterd unreachable from the hypervisor and the FUSE client missing fail it, with the doctor's messages and fixes", async () => {
  const { error, warnings } = await preview(fakeHypervisor({ fuse: "mount.glusterfs=\ndev-fuse=no\n", reach: (h) => h !== "gs2" }));
  assert.ok(error instanceof GlusterLibvirtError, String(error));
  const lines = error.message.split("\n");
  assert.match(lines[0], /^pool 'p1' could not start on gllab@kvm\d+:22:$/);
  assert.match(lines[1], /^  doctor check mount-glusterfs fails: .*; fix: install glusterfs-client/);
  assert.match(lines[2], /^  doctor check dev-fuse fails: .*; fix: load the fuse module/);
  assert.match(lines[3], /^  doctor check gluster-reachable fails: gllab@kvm\d+:22 cannot connect to gs2:24007 \(glusterd\); fix: open TCP 24007 on gs2/);
  assert.equal(lines.length, 4, error.message);
  assert.deepEqual(warnings, []);
});

test("preview of a new native gluster pool: the missing gluster backend fails it; the FUSE client is not its business", async () => {
  const caps = fixture("virsh-pool-capabilities.xml").replace("<pool type='gluster' supported='yes'>", "<pool type='gluster' supported='no'>");
  const { error } = await preview(fakeHypervisor({ poolCapabilities: caps, fuse: "mount.glusterfs=\ndev-fuse=no\n" }), { ...netfs, type: "gluster" });
  assert.match(String(error?.message), /^pool 'p1' could not start on \S+:\n  doctor check gluster-pool warns: libvirt has no native gluster pool backend.*libvirt-daemon-driver-storage-gluster and restart libvirtd$/);
  assert.deepEqual(await preview(fakeHypervisor({ fuse: "mount.glusterfs=\ndev-fuse=no\n" }), { ...netfs, type: "gluster" }), { warnings: [] });
});

test("preview of a new pool: a fact that cannot be read warns, naming it, and blocks nothing; the other checks still count", async () => {
  const unreadable = new VirshError("virsh pool-capabilities", 1, "error: unknown command: 'pool-capabilities'");
  const { error, warnings } = await preview(fakeHypervisor({ poolCapabilities: unreadable }));
  assert.equal(error, undefined);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /^gluster-libvirt: the preview of pool 'p1' could not check libvirt's pool backends \(virsh pool-capabilities\): .*unknown command.*\(up tries the pool anyway\)$/);
  const both = await preview(fakeHypervisor({ poolCapabilities: unreadable, reach: () => false }));
  assert.match(String(both.error?.message), /doctor check gluster-reachable fails/);
});

test("withHints: the error's message keeps the host's words, one hint per line under it; details and cause kept", () => {
  const cause = new VirshError("virsh pool-start p", 1, "error: Failed to start pool p\nerror: internal error: Child process (/usr/bin/mount -t glusterfs gs1:/images /mnt) unexpected exit status 1");
  const err = withHints(cause, ["doctor check dev-fuse fails: x; fix: y"]) as GlusterLibvirtError;
  assert.ok(err instanceof GlusterLibvirtError);
  assert.equal(err.message, `${cause.message}\n  hint: doctor check dev-fuse fails: x; fix: y`);
  assert.match(err.details, /stderr:\nerror: Failed to start pool p/);
  assert.equal(err.cause, cause);
  assert.equal(withHints(cause, []), cause, "no hints: the error itself");
});
