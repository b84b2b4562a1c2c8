import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { closeAllHosts, getHost } from "../../provider/host";
import { inspectVolume } from "../../provider/libvirt/volumes";
import { getMultiHostLab, runOnHypervisor, virshOn } from "../helpers/hypervisors";
import type { LabHypervisor, LabInfo } from "../helpers/lab";
import { createGlusterVolume, isMounted, tryVirsh, uniqueName, virsh } from "../helpers/local";

/*
 * The lab's hypervisor 2 (GLUSTER_LIBVIRT_LAB_HOSTS=2) is a separate hypervisor next to
 * host 1 on one machine: its own sshd, libvirtd, domains, pools and FUSE mounts, the same
 * glusterd — and host 1 keeps working while it runs. Checked with raw virsh over SSH and,
 * for host 1, locally as root.
 */

let lab: LabInfo;
let hv1: LabHypervisor;
let hv2: LabHypervisor;
let gluster: ReturnType<typeof createGlusterVolume>;
const poolName = uniqueName("itmh");
const target = `/var/lib/libvirt/gluster/${poolName}`;

function defineAndStart(h: LabHypervisor) {
  return runOnHypervisor(lab, h, [
    "sh", "-c",
    `virsh -q -c ${lab.libvirtUri} pool-define-as ${poolName} netfs --source-host ${lab.gluster.servers[0]} --source-path /${gluster.name} ` +
      `--source-format glusterfs --target ${target} >/dev/null && virsh -q -c ${lab.libvirtUri} pool-build ${poolName} >/dev/null && ` +
      `virsh -q -c ${lab.libvirtUri} pool-start ${poolName} >/dev/null`,
  ]);
}

function removePool(h: LabHypervisor) {
  return runOnHypervisor(lab, h, ["sh", "-c", `virsh -q -c ${lab.libvirtUri} pool-destroy ${poolName}; virsh -q -c ${lab.libvirtUri} pool-undefine ${poolName}`], { check: false });
}

before(async () => {
  lab = await getMultiHostLab(2);
  [hv1, hv2] = lab.hypervisors;
  gluster = createGlusterVolume(lab, uniqueName("itmh").replace(/-/g, "_"));
});

after(async () => {
  for (const h of lab?.hypervisors ?? []) await removePool(h);
  gluster?.remove();
});

describe("the lab's second hypervisor", () => {
  test("is listed in the lab JSON after host 1, which keeps the top-level keys", () => {
    assert.equal(lab.hypervisors.length, 2);
    assert.deepEqual(hv1.ssh, lab.ssh);
    assert.deepEqual(hv1.domains, lab.domains);
    assert.equal(hv2.ssh.host, "127.0.0.3");
    // its own known_hosts knows both hosts; host 1's keeps exactly host 1's key
    const knownHosts = fs.readFileSync(hv2.ssh.knownHostsFile, "utf8");
    assert.match(knownHosts, /^\[127\.0\.0\.3\]:\d+ ssh-ed25519 /m);
    assert.match(knownHosts, new RegExp(`^\\[${lab.ssh.host.replace(/\./g, "\\.")}\\]:${lab.ssh.port} ssh-ed25519 `, "m"));
    assert.equal(fs.readFileSync(lab.ssh.knownHostsFile, "utf8").trim().split("\n").length, 1);
  });

  test("answers with its own libvirt: own domains, own host UUID", async () => {
    assert.equal((await virshOn(lab, hv2, "domstate", hv2.domains.running)).trim(), "running");
    assert.equal((await virshOn(lab, hv2, "domstate", hv2.domains.stopped)).trim(), "shut off");
    const uuid = async (h: LabHypervisor) => /<uuid>([^<]+)<\/uuid>/.exec(await virshOn(lab, h, "capabilities"))?.[1];
    assert.notEqual(await uuid(hv1), await uuid(hv2));
    // host 1's libvirtd, asked locally as root in the main namespace, knows nothing of it
    assert.notEqual(tryVirsh("dominfo", hv2.domains.running).code, 0);
    assert.equal(virsh("domstate", lab.domains.running).trim(), "running");
  });

  test("holds no copies of host 1's FUSE mounts (they would shadow its own pools)", () => {
    // hypervisor 2's own pools sit on its /var/lib/libvirt bind mount; a copy made when its
    // namespace was created would sit on its root mount
    const holder = fs.readFileSync(`${lab.stateDir}/host2/ns.pid`, "utf8").trim();
    const mounts = fs.readFileSync(`/proc/${holder}/mountinfo`, "utf8").trim().split("\n").map((l) => l.split(" "));
    const root = mounts.find((m) => m[4] === "/")![0];
    const copied = mounts.filter((m) => m[1] === root && m.slice(m.indexOf("-") + 1)[0]!.startsWith("fuse"));
    assert.deepEqual(copied.map((m) => m[4]), []);
    assert.ok(mounts.some((m) => m[4] === "/run" && m.includes("gllab-host2-run")), "its /run is its own tmpfs");
  });

  test("reaches the same glusterd: both hosts mount one volume, each in its own mount table", async () => {
    await defineAndStart(hv2);
    const on2 = await runOnHypervisor(lab, hv2, ["findmnt", "-n", "-o", "FSTYPE", "--mountpoint", target]);
    assert.equal(on2.stdout.trim(), "fuse.glusterfs");
    assert.equal(isMounted(target), false, "hypervisor 2's FUSE mount leaked into host 1's namespace");
    // libvirt refuses a second netfs pool of one volume per host, not per machine
    await defineAndStart(hv1);
    assert.ok(isMounted(target), "host 1 mounted it too");
    await runOnHypervisor(lab, hv2, ["sudo", "-n", "sh", "-c", `echo from-hv2 > ${target}/hv2.txt`]);
    assert.equal((await runOnHypervisor(lab, hv1, ["sudo", "-n", "cat", `${target}/hv2.txt`])).stdout, "from-hv2\n");
    await removePool(hv2);
    assert.ok(isMounted(target), "removing hypervisor 2's pool left host 1's mount alone");
    assert.equal((await virshOn(lab, hv1, "pool-info", poolName)).match(/State:\s+(\S+)/)?.[1], "running");
    await removePool(hv1);
  });

  test("an image made through host 1 is found by host 2's lookup without a manual pool-refresh", async () => {
    await defineAndStart(hv1);
    await defineAndStart(hv2);
    try {
      // host 2's pool was refreshed (started) before the file existed
      await runOnHypervisor(lab, hv1, ["virsh", "-q", "-c", lab.libvirtUri, "vol-create-as", poolName, "shared.img", "1M"]);
      assert.doesNotMatch(await virshOn(lab, hv2, "vol-list", poolName), /shared\.img/, "host 2's libvirt does not list it yet");
      const host2 = getHost({ host: hv2.ssh.host, port: hv2.ssh.port, user: hv2.ssh.user, privateKeyPath: hv2.ssh.privateKeyPath, knownHostsFile: hv2.ssh.knownHostsFile });
      const found = await inspectVolume(host2, poolName, "shared.img");
      assert.equal(found?.path, `${target}/shared.img`);
      assert.equal(found?.capacity, 1024 * 1024);
      await runOnHypervisor(lab, hv1, ["virsh", "-q", "-c", lab.libvirtUri, "vol-delete", "--pool", poolName, "shared.img"]);
    } finally {
      closeAllHosts();
      await removePool(hv2);
      await removePool(hv1);
    }
  });
});
