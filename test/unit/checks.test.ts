import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  checkAllowInsecure,
  checkBricksOnline,
  checkFreeSpace,
  checkFuseClient,
  checkGlusterReachable,
  checkPendingHeals,
  checkPoolBackends,
  checkQemuGlusterDriver,
  checkQemuOwner,
  checkRpcAuthAllowInsecure,
  checkSharedPools,
  checkSsh,
  checkVirsh,
  checkVolumeStarted,
  describeProblems,
  glusterEndpoints,
  parseFuseProbe,
  parseReachability,
  parseVirshVersion,
} from "../../provider/checks";
import { CommandError, SshError } from "../../provider/errors";
import { parsePoolCapabilities, parseQemuDacLabel } from "../../provider/xml/capabilities";
import { parseHealSummary, parseVolumeGet, parseVolumeInfo, parseVolumeStatusDetail } from "../../provider/xml/gluster";
import { XmlError } from "../../provider/xml/markup";

/*
 * The doctor's checks on output captured from the lab (test/unit/fixtures/README.md): each
 * judged ok as captured, and each failure the check exists for, from a captured broken
 * state (a brick killed, a volume stopped, heals pending) or the captured text changed in
 * the one place that matters.
 */
const fixture = (name: string) => readFileSync(resolve(__dirname, "../../../test/unit/fixtures", name), "utf8");

test("virsh version: libvirt and QEMU versions; a refused connection names its fix", () => {
  const text = fixture("virsh-version.txt");
  assert.deepEqual(parseVirshVersion(text), { libvirt: "9.0.0", hypervisor: { name: "QEMU", version: "7.2.22" } });
  assert.deepEqual(checkVirsh(text, "qemu:///system"), { check: "virsh", status: "ok", message: "libvirt 9.0.0 at qemu:///system, QEMU 7.2.22" });
  const denied = checkVirsh(new CommandError("virsh version", 1, "error: failed to connect to the hypervisor\nerror: authentication unavailable: no polkit agent available to authenticate action 'org.libvirt.unix.manage'"), "qemu:///system");
  assert.equal(denied.status, "failure");
  assert.match(denied.fix!, /group libvirt/);
  const down = checkVirsh(new CommandError("virsh version", 1, "error: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"), "qemu:///system");
  assert.match(down.fix!, /start libvirtd/);
  assert.equal(checkVirsh("Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\n", "test:///default").status, "failure");
});

test("pool capabilities: netfs with glusterfs and the native gluster backend; each missing one", () => {
  const xml = fixture("virsh-pool-capabilities.xml");
  const backends = parsePoolCapabilities(xml);
  assert.deepEqual(backends, { netfs: true, netfsGlusterfs: true, gluster: true });
  assert.deepEqual(checkPoolBackends(backends).map((f) => f.status), ["ok", "ok"]);

  const noGlusterBackend = parsePoolCapabilities(xml.replace("<pool type='gluster' supported='yes'>", "<pool type='gluster' supported='no'>"));
  const [netfs, gluster] = checkPoolBackends(noGlusterBackend);
  assert.equal(netfs.status, "ok");
  assert.equal(gluster.status, "warning", "only type: gluster pools need it");
  assert.match(gluster.fix!, /libvirt-daemon-driver-storage-gluster/);

  const noGlusterfsFormat = checkPoolBackends(parsePoolCapabilities(xml.replace("<value>glusterfs</value>", "")))[0];
  assert.equal(noGlusterfsFormat.status, "failure");
  assert.match(noGlusterfsFormat.message, /cannot mount glusterfs/);
  assert.equal(checkPoolBackends(parsePoolCapabilities(xml.replace("<pool type='netfs' supported='yes'>", "<pool type='netfs' supported='no'>")))[0].status, "failure");
  assert.equal(checkPoolBackends(new Error("unknown command: 'pool-capabilities'"))[0].status, "warning", "old libvirt: cannot tell");
});

test("QEMU's user from libvirt's DAC label (not `id -g`, which says kvm on Debian)", () => {
  assert.deepEqual(parseQemuDacLabel(fixture("virsh-capabilities.xml")), { uid: 64055, gid: 64055 });
  assert.equal(parseQemuDacLabel("<capabilities><host><secmodel><model>none</model></secmodel></host></capabilities>"), undefined);
});

test("FUSE client: mount.glusterfs and /dev/fuse, each missing", () => {
  const fuse = parseFuseProbe(fixture("probe-fuse.txt"));
  assert.deepEqual(fuse, { mountGlusterfs: "/sbin/mount.glusterfs", devFuse: true });
  assert.deepEqual(checkFuseClient(fuse).map((f) => [f.check, f.status]), [["mount-glusterfs", "ok"], ["dev-fuse", "ok"]]);
  const [client, dev] = checkFuseClient(parseFuseProbe("mount.glusterfs=\ndev-fuse=no\n"));
  assert.equal(client.status, "failure");
  assert.match(client.fix!, /glusterfs-client/);
  assert.equal(dev.status, "failure");
  assert.match(dev.fix!, /modprobe fuse/);
});

test("QEMU's gluster driver: present; missing before 11.1 (install it) and from 11.1 on (fuse only)", () => {
  assert.equal(checkQemuGlusterDriver(true, "7.2.22").status, "ok");
  const missing = checkQemuGlusterDriver(false, "7.2.22");
  assert.equal(missing.status, "warning");
  assert.match(missing.fix!, /qemu-block-extra/);
  for (const v of ["11.1.0", "11.2.1", "12.0.0"]) {
    const gone = checkQemuGlusterDriver(false, v);
    assert.equal(gone.status, "warning", v);
    assert.match(gone.message, /removed after QEMU 11\.0/, v);
    assert.match(gone.fix!, /access fuse/, v);
  }
  assert.doesNotMatch(checkQemuGlusterDriver(false, "11.0.2").message, /removed/);
});

test("QEMU's uid/gid against the volume's storage.owner-uid/gid", () => {
  const [labvol] = parseVolumeInfo(fixture("gluster-volume-info-labvol.xml"));
  const qemu = { uid: 64055, gid: 64055 };
  assert.equal(checkQemuOwner(qemu, labvol).status, "ok");
  const rhel = checkQemuOwner({ uid: 107, gid: 107 }, labvol);
  assert.equal(rhel.status, "failure");
  assert.match(rhel.message, /gives its files to 64055:64055, but QEMU here runs as 107:107/);
  assert.equal(rhel.fix, "gluster volume set labvol storage.owner-uid 107; gluster volume set labvol storage.owner-gid 107 (GlusterVolume: qemuOwner: { uid: 107, gid: 107 })");
  const [stopped] = parseVolumeInfo(fixture("gluster-volume-info-stopped.xml"));
  assert.equal(checkQemuOwner(qemu, stopped).status, "failure", "a volume that never set them");
  assert.equal(checkQemuOwner(undefined, labvol).status, "warning");
});

test("server.allow-insecure: set on, glusterd's default on, and off", () => {
  const [labvol] = parseVolumeInfo(fixture("gluster-volume-info-labvol.xml"));
  assert.equal(checkAllowInsecure("labvol", labvol.options["server.allow-insecure"], undefined).status, "ok");
  const byDefault = parseVolumeGet(fixture("gluster-volume-get-allow-insecure-default.xml"), "server.allow-insecure");
  assert.equal(byDefault, "on");
  assert.match(checkAllowInsecure("v", undefined, byDefault).message, /glusterd's default/);
  const off = checkAllowInsecure("v", "off", undefined);
  assert.equal(off.status, "failure");
  assert.equal(off.fix, "gluster volume set v server.allow-insecure on (GlusterVolume: allowInsecure: true)");
  assert.equal(checkAllowInsecure("v", undefined, undefined).status, "failure", "unknown is not ok");
});

test("shared-pools: open-behind and stat-prefetch off, else a warning with the commands", () => {
  const [labvol] = parseVolumeInfo(fixture("gluster-volume-info-labvol.xml"));
  const defaults = checkSharedPools("labvol", labvol.options);
  assert.equal(defaults.status, "warning", "Gluster's defaults (both on)");
  assert.match(defaults.message, /performance\.open-behind on \(Gluster's default\), performance\.stat-prefetch on \(Gluster's default\)/);
  assert.equal(defaults.fix, "gluster volume set labvol performance.open-behind off; gluster volume set labvol performance.stat-prefetch off (GlusterVolume: sharedPools: true)");
  const set = checkSharedPools("v", { "performance.open-behind": "off", "performance.stat-prefetch": "false" });
  assert.equal(set.status, "ok");
  assert.equal(set.message, "volume v: performance.open-behind off, performance.stat-prefetch off");
  const one = checkSharedPools("v", { "performance.open-behind": "off", "performance.stat-prefetch": "on" });
  assert.equal(one.fix, "gluster volume set v performance.stat-prefetch off (GlusterVolume: sharedPools: true)");
});

test("rpc-auth-allow-insecure in glusterd.vol: reported, never required", () => {
  const vol = fixture("glusterd.vol");
  assert.match(checkRpcAuthAllowInsecure("gs1", vol).message, /does not set rpc-auth-allow-insecure/);
  assert.equal(checkRpcAuthAllowInsecure("gs1", vol).status, "ok");
  assert.equal(checkRpcAuthAllowInsecure("gs1", vol.replace("end-volume", "    option rpc-auth-allow-insecure on\nend-volume")).status, "ok");
  const off = checkRpcAuthAllowInsecure("gs1", vol.replace("end-volume", "    option rpc-auth-allow-insecure off\nend-volume"));
  assert.equal(off.status, "warning");
  assert.match(off.fix!, /restart glusterd/);
  assert.equal(checkRpcAuthAllowInsecure("gs1", undefined).status, "warning");
});

test("reachability from the hypervisor: glusterd and each brick's port", () => {
  const [labvol] = parseVolumeInfo(fixture("gluster-volume-info-labvol.xml"));
  const status = parseVolumeStatusDetail(fixture("gluster-volume-status-detail-labvol.xml"));
  const endpoints = glusterEndpoints(labvol, status);
  assert.deepEqual(endpoints.map((e) => `${e.host}:${e.port} ${e.what}`), ["192.0.2.2:24007 glusterd", "192.0.2.2:60174 brick 192.0.2.2:/var/lib/gluster-libvirt-lab/gluster/brick"]);
  const reached = parseReachability(fixture("probe-reachability.txt"));
  assert.deepEqual([...reached.entries()].sort(), [["192.0.2.2 24007", true], ["192.0.2.2 60174", true], ["192.0.2.2 9", false]]);
  assert.equal(checkGlusterReachable("kvm1", endpoints, reached).status, "ok");
  const blocked = checkGlusterReachable("kvm1", [...endpoints, { host: "192.0.2.2", port: 9, what: "brick x" }], reached);
  assert.equal(blocked.status, "failure");
  assert.match(blocked.message, /kvm1 cannot connect to 192\.0\.2\.2:9 \(brick x\)/);
  assert.match(blocked.fix!, /open TCP 9 on 192\.0\.2\.2 to kvm1/);
  assert.equal(checkGlusterReachable("kvm1", endpoints, new Map()).status, "failure", "no answer is not reachable");
  // a brick offline has no port to try
  const [own] = parseVolumeInfo(fixture("gluster-volume-info-stopped.xml"));
  assert.equal(glusterEndpoints(own, parseVolumeStatusDetail(fixture("gluster-volume-status-detail-brick-down.xml"))).length, 3, "glusterd and the two bricks online");
});

test("volume started; a stopped volume's status cannot be read", () => {
  const [labvol] = parseVolumeInfo(fixture("gluster-volume-info-labvol.xml"));
  assert.equal(checkVolumeStarted("labvol", labvol).status, "ok");
  const [stopped] = parseVolumeInfo(fixture("gluster-volume-info-stopped.xml"));
  const f = checkVolumeStarted(stopped.name, stopped);
  assert.equal(f.status, "failure");
  assert.equal(f.fix, `gluster volume start ${stopped.name} (GlusterVolume: started: true)`);
  assert.equal(checkVolumeStarted("nope", undefined).status, "failure");
  assert.throws(() => parseVolumeStatusDetail(fixture("gluster-volume-status-stopped.xml")), XmlError);
});

test("bricks online and free space from volume status detail; a killed brick", () => {
  const ok = parseVolumeStatusDetail(fixture("gluster-volume-status-detail-replica3.xml"));
  assert.equal(ok.length, 3);
  assert.ok(ok.every((b) => b.online && b.port !== undefined && b.sizeTotal! > 0));
  assert.equal(checkBricksOnline("v", ok).status, "ok");
  const down = parseVolumeStatusDetail(fixture("gluster-volume-status-detail-brick-down.xml"));
  const f = checkBricksOnline("v", down);
  assert.equal(f.status, "failure");
  assert.match(f.message, /1 of 3 bricks offline: 192\.0\.2\.2:\/var\/lib\/gluster-libvirt-lab\/bricks\/s15fix_\d+\/b3/);
  assert.match(f.fix!, /gluster volume start v force/);

  assert.equal(checkFreeSpace("v", ok).status, "ok");
  const full = ok.map((b, i) => (i === 1 ? { ...b, sizeFree: b.sizeTotal! * 0.05 } : b));
  assert.equal(checkFreeSpace("v", full).status, "warning");
  assert.match(checkFreeSpace("v", full).message, /on 192\.0\.2\.2:\S+\/b2 \(5%\)/, "the fullest brick");
  assert.equal(checkFreeSpace("v", full.map((b) => ({ ...b, sizeFree: b.sizeTotal! * 0.01 }))).status, "failure");
});

test("pending heals: none, pending with a brick down, not replicated, split-brain", () => {
  assert.equal(checkPendingHeals("v", parseHealSummary(fixture("gluster-heal-summary-replica3.xml"))).status, "ok");
  const pending = checkPendingHeals("v", parseHealSummary(fixture("gluster-heal-summary-pending.xml")));
  assert.equal(pending.status, "warning");
  assert.match(pending.message, /6 entries waiting to heal \(bricks not answering: \S+\/b3\)/);
  assert.equal(parseHealSummary(fixture("gluster-heal-summary-distribute.xml")), "not-replicated");
  assert.equal(checkPendingHeals("labvol", "not-replicated").status, "ok");
  const split = checkPendingHeals("v", [{ brick: "a:/b", status: "Connected", pending: 1, splitBrain: 1, possiblyHealing: 0 }]);
  assert.equal(split.status, "failure");
  assert.match(split.fix!, /info split-brain/);
});

test("ssh: verified, not verified, and each kind of failure with its fix", () => {
  const target = { label: "u@kvm1:22", knownHostsFile: "/k", policy: "strict", pinned: false };
  assert.equal(checkSsh(undefined, target).status, "ok");
  assert.equal(checkSsh(undefined, { ...target, policy: "insecure" }).status, "warning");
  assert.equal(checkSsh(undefined, { ...target, policy: "insecure", pinned: true }).status, "ok", "a pin always wins");
  assert.match(checkSsh(new SshError("host-key", "u@kvm1:22", "unknown host key SHA256:x"), target).fix!, /add the key to \/k or pin it/);
  assert.match(checkSsh(new SshError("auth", "u@kvm1:22", "all authentication methods failed"), target).fix!, /authorized_keys/);
  assert.match(checkSsh(new SshError("connect", "u@kvm1:22", "connection refused"), target).fix!, /sshd runs there/);
});

test("describeProblems: what a resource error appends, only the findings that are not ok", () => {
  const lines = describeProblems([...checkFuseClient({ devFuse: false, mountGlusterfs: "/sbin/mount.glusterfs" }), checkQemuGlusterDriver(true, "7.2")]);
  assert.deepEqual(lines, ["doctor check dev-fuse fails: /dev/fuse is missing: no FUSE mounts; fix: load the fuse module (`modprobe fuse`, and `echo fuse > /etc/modules-load.d/fuse.conf` for boots); in a container, pass /dev/fuse in"]);
});
