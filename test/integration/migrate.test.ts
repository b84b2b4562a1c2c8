import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { diskAttachment, type DiskOutputs } from "../../provider/disk";
import { SafetyCheckError } from "../../provider/errors";
import { closeAllHosts } from "../../provider/host";
import { pristineDomainXml } from "../helpers/domain";
import { getMultiHostLab, runOnHypervisor, virshOn } from "../helpers/hypervisors";
import type { LabHypervisor, LabInfo } from "../helpers/lab";
import { createGlusterVolume, uniqueName } from "../helpers/local";

/*
 * A DiskAttachment that names the hypervisors sharing its pool, against the lab's two real
 * libvirts (issue 14 §4): the domain is found on whichever has it, a domain defined on both
 * (what `virsh migrate` without --undefinesource leaves) is refused naming both, and a
 * hypervisor that cannot be asked stops refresh instead of reading as "gone". The domain
 * is shut off, so attach and detach touch its definition only (no guest, no gfapi wait).
 */

let lab: LabInfo;
let hv1: LabHypervisor;
let hv2: LabHypervisor;
let gluster: ReturnType<typeof createGlusterVolume>;
const poolName = uniqueName("m14itmig");
const domain = uniqueName("m14itmig");
const uuid = randomUUID();
const image = "disk.img";

const connectionOf = (h: LabHypervisor) => ({ host: h.ssh.host, port: h.ssh.port, user: h.ssh.user, privateKeyPath: h.ssh.privateKeyPath, knownHostsFile: h.ssh.knownHostsFile });
const virshSh = (h: LabHypervisor, script: string, stdin?: string) => runOnHypervisor(lab, h, ["sh", "-c", script], { stdin, check: false });

function defineDomain(h: LabHypervisor) {
  const xml = pristineDomainXml(lab, domain).replace("</name>", `</name>\n  <uuid>${uuid}</uuid>`);
  return runOnHypervisor(lab, h, ["virsh", "-q", "-c", lab.libvirtUri, "define", "/dev/stdin"], { stdin: xml });
}

async function persistentTargets(h: LabHypervisor): Promise<string> {
  return virshOn(lab, h, "domblklist", "--inactive", uuid);
}

before(async () => {
  lab = await getMultiHostLab(2);
  [hv1, hv2] = lab.hypervisors;
  gluster = createGlusterVolume(lab, uniqueName("m14itmig").replace(/-/g, "_"));
  for (const h of [hv1, hv2]) {
    const r = await virshSh(h,
      `virsh -q -c ${lab.libvirtUri} pool-define-as ${poolName} netfs --source-host ${lab.gluster.servers[0]} --source-path /${gluster.name} ` +
        `--source-format glusterfs --target /var/lib/libvirt/gluster/${poolName} >/dev/null && virsh -q -c ${lab.libvirtUri} pool-build ${poolName} >/dev/null && ` +
        `virsh -q -c ${lab.libvirtUri} pool-start ${poolName} >/dev/null`);
    assert.equal(r.code, 0, r.stderr);
  }
  await virshOn(lab, hv1, "vol-create-as", poolName, image, "1M", "--format", "raw");
  await virshOn(lab, hv2, "pool-refresh", poolName);
  for (const h of [hv1, hv2]) await defineDomain(h);
});

after(async () => {
  closeAllHosts();
  for (const h of lab?.hypervisors ?? []) {
    await virshSh(h, `virsh -q -c ${lab.libvirtUri} undefine ${domain}; virsh -q -c ${lab.libvirtUri} pool-destroy ${poolName}; virsh -q -c ${lab.libvirtUri} pool-undefine ${poolName}`);
  }
  gluster?.remove();
});

describe("DiskAttachment with hypervisors, on the lab's two libvirts", () => {
  const inputs = () => ({ hypervisors: [connectionOf(hv1), connectionOf(hv2)], domain, pool: poolName, volume: image, target: "sdb", access: "fuse" });
  let state: DiskOutputs;

  test("a domain defined on both hypervisors is refused, naming both, and neither is changed", async () => {
    const checked = await diskAttachment.check({}, inputs());
    assert.equal(checked.failures, undefined);
    await assert.rejects(diskAttachment.create(checked.inputs!), (e: Error) => {
      assert.match(e.message, new RegExp(`^domain '${domain}' is defined on 2 hypervisors: .*127\\.0\\.0\\.1:\\d+ \\(shut off\\), .*127\\.0\\.0\\.3:\\d+ \\(shut off\\); nothing was changed$`));
      return true;
    });
    for (const h of [hv1, hv2]) assert.doesNotMatch(await persistentTargets(h), /\bsdb\b/);
  });

  test("on one of them (the other's copy undefined), create attaches there", async () => {
    await virshOn(lab, hv1, "undefine", uuid);
    const checked = await diskAttachment.check({}, inputs());
    const r = await diskAttachment.create(checked.inputs!);
    assert.ok(r.outs);
    state = r.outs;
    assert.equal(r.id, `${uuid}/sdb`);
    assert.equal(state.domainUuid, uuid);
    assert.equal(state.attachedPersistent, true);
    assert.match(await persistentTargets(hv2), /\bsdb\b/);
  });

  test("refresh finds it there; the one-connection form pointed at host 1 would read it as gone", async () => {
    const read = await diskAttachment.read(`${uuid}/sdb`, state);
    assert.deepEqual(read.props, state);
    const { hypervisors: _h, ...single } = state;
    assert.deepEqual(await diskAttachment.read(`${uuid}/sdb`, { ...single, connection: connectionOf(hv1) }), {});
  });

  test("a hypervisor that cannot be asked stops refresh, naming it, instead of reading as gone", async () => {
    const unreachable = { ...connectionOf(hv1), port: 1, timeouts: { connect: 2 } };
    await assert.rejects(diskAttachment.read(`${uuid}/sdb`, { ...state, hypervisors: [unreachable, connectionOf(hv2)] }), (e: Error) => {
      assert.ok(e instanceof SafetyCheckError, String(e));
      assert.match(e.message, /^cannot tell which hypervisor has domain .* could not ask .*127\.0\.0\.1:1 /);
      return true;
    });
  });

  test("delete detaches on the hypervisor that has the domain", async () => {
    await diskAttachment.delete(`${uuid}/sdb`, state);
    assert.doesNotMatch(await persistentTargets(hv2), /\bsdb\b/);
  });
});
