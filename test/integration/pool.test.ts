import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { closeAllHosts } from "../../provider/host";
import { glusterPool, type PoolOutputs } from "../../provider/pool";
import type { Unchecked } from "../../provider/resource";
import { cloneLabDomain, dropDomain } from "../helpers/domain";
import { getLab, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, isMounted, labConnection, tryVirsh, uniqueName, virsh } from "../helpers/local";

let lab: LabInfo;
let volume: ReturnType<typeof createGlusterVolume>;
before(async () => {
  lab = await getLab();
  volume = createGlusterVolume(lab, uniqueName("itpool").replace(/-/g, "_"));
});
after(() => {
  closeAllHosts();
  volume?.remove();
});

function inputs(over: Unchecked = {}): Unchecked {
  return {
    connection: labConnection(lab),
    name: uniqueName("itpool"),
    volume: volume.name,
    servers: lab.gluster.servers,
    ...over,
  };
}

/** check() exactly as the engine calls it, failing the test on any CheckFailure. */
async function checked(news: Unchecked) {
  const r = await glusterPool.check({}, news);
  assert.deepEqual(r.failures ?? [], []);
  return r.inputs!;
}

async function create(over: Unchecked = {}): Promise<PoolOutputs> {
  const r = await glusterPool.create(await checked(inputs(over)));
  return r.outs as PoolOutputs;
}

function poolInfo(name: string): Record<string, string> {
  return Object.fromEntries(
    virsh("pool-info", name).split("\n").map((l) => l.split(/:\s+/, 2)).filter((kv) => kv.length === 2),
  );
}

describe("GlusterPool on the lab", () => {
  test("netfs: create mounts through FUSE, update flips autostart, delete unmounts and keeps the data", async () => {
    const outs = await create();
    try {
      assert.equal(outs.state, "running");
      assert.equal(outs.type, "netfs");
      assert.match(outs.uuid, /^[0-9a-f-]{36}$/);
      assert.ok(outs.capacity > 0, "a mounted Gluster volume reports its capacity");
      assert.equal(outs.glusterUrl, `gluster://${lab.gluster.servers[0]}/${volume.name}`);
      assert.ok(isMounted(outs.targetPath!), "the volume is mounted at the target path");
      assert.match(fs.readFileSync("/proc/mounts", "utf8"), new RegExp(`${outs.targetPath} fuse.glusterfs`));
      assert.deepEqual(poolInfo(outs.name)["Autostart"], "yes");
      assert.equal(outs.effectivePermissions?.owner, lab.qemu.uid, "mount point defaults to the QEMU user");

      // A file written through the pool lands on the Gluster volume.
      virsh("vol-create-as", outs.name, "keep.img", "1M", "--format", "raw");

      const news = await checked({ ...inputs({ name: outs.name }), autostart: false });
      const diff = await glusterPool.diff(outs.uuid, outs, news);
      assert.deepEqual(diff.replaces, []);
      assert.equal(diff.changes, true);
      const updated = (await glusterPool.update(outs.uuid, outs, news)).outs as PoolOutputs;
      assert.equal(updated.autostart, false);
      assert.equal(poolInfo(outs.name)["Autostart"], "no");
    } finally {
      await glusterPool.delete(outs.uuid, outs);
    }
    assert.notEqual(tryVirsh("pool-info", outs.name).code, 0, "pool undefined");
    assert.equal(isMounted(outs.targetPath!), false, "unmounted");
    // Deleting twice is fine (already gone = success).
    await glusterPool.delete(outs.uuid, outs);

    // The data is still on the Gluster volume: a new pool over it sees the file.
    const again = await create({ name: outs.name });
    try {
      assert.match(virsh("vol-list", again.name), /keep\.img/);
      virsh("vol-delete", "--pool", again.name, "keep.img");
    } finally {
      await glusterPool.delete(again.uuid, again);
    }
  });

  test("native gluster pool: create, read, delete", async () => {
    const outs = await create({ type: "gluster" });
    try {
      assert.equal(outs.type, "gluster");
      assert.equal(outs.state, "running");
      assert.equal(outs.targetPath, undefined);
      assert.match(virsh("pool-dumpxml", outs.name), /<pool type='gluster'>/);
      const read = await glusterPool.read(outs.uuid, outs);
      assert.equal((read.props as PoolOutputs).state, "running");
    } finally {
      await glusterPool.delete(outs.uuid, outs);
    }
    assert.notEqual(tryVirsh("pool-info", outs.name).code, 0);
  });

  test("an existing pool is refused unless adopted, and adopted only when it matches", async () => {
    const args = await checked(inputs());
    const name = args.name as string;
    const target = args.targetPath as string;
    virsh("pool-define-as", name, "netfs", "--source-host", lab.gluster.servers[0], "--source-path", `/${volume.name}`,
      "--source-format", "glusterfs", "--target", target);
    try {
      await assert.rejects(glusterPool.create(args), /already exists.*adopt/);
      await assert.rejects(
        glusterPool.create(await checked({ ...inputs({ name }), adopt: true, targetPath: "/var/lib/libvirt/gluster/elsewhere" })),
        /another definition/,
      );
      const uuidBefore = poolInfo(name)["UUID"];
      const adopted = (await glusterPool.create({ ...args, adopt: true })).outs as PoolOutputs;
      assert.equal(adopted.uuid, uuidBefore, "the same pool, taken over");
      assert.equal(adopted.state, "running", "adoption starts it");
      await glusterPool.delete(adopted.uuid, adopted);
    } finally {
      tryVirsh("pool-destroy", name);
      tryVirsh("pool-undefine", name);
    }
  });

  test("create rolls back when the Gluster volume is stopped: nothing defined, nothing mounted", async () => {
    const stopped = createGlusterVolume(lab, uniqueName("stopped").replace(/-/g, "_"), { start: false });
    try {
      const args = await checked(inputs({ volume: stopped.name }));
      await assert.rejects(glusterPool.create(args), (err: Error) => {
        assert.match(err.message, /nothing was left defined/);
        // the host's own words (virsh's and mount's) in the message a user reads, not only with --debug
        assert.match(err.message, /failed: .*(mount|Mount)/, err.message);
        assert.match((err as { details?: string }).details ?? "", /mount|glusterfs|failed/i, "the cause from virsh/mount is carried");
        // the hypervisor passes the doctor's checks: the hint points at the volume's
        assert.match(err.message, new RegExp(`\n  hint: the Gluster side \\(volume started, .*\\): gluster-libvirt doctor --gluster-host ${lab.gluster.servers[0]} --volume ${stopped.name}$`), err.message);
        assert.doesNotMatch(err.message, /doctor check \S+ fails/, err.message);
        return true;
      });
      assert.notEqual(tryVirsh("pool-info", args.name as string).code, 0, "pool undefined again");
      assert.equal(isMounted(args.targetPath as string), false);
      assert.equal(fs.existsSync(args.targetPath as string), false, "the mount point it made is removed");
    } finally {
      stopped.remove();
    }
  });

  test("a pool whose server the hypervisor cannot reach: the error names the doctor check and its fix", async () => {
    // glusterd here listens on IPv4 only (transport.address-family inet): ::1 refuses, no traffic leaves the machine
    const args = await checked(inputs({ servers: ["::1"] }));
    await assert.rejects(glusterPool.create(args), (err: Error) => {
      assert.match(err.message, /nothing was left defined/);
      assert.match(err.message, /\n  hint: doctor check gluster-reachable fails: \S+ cannot connect to ::1:24007 \(glusterd\); fix: open TCP 24007 on ::1 to /, err.message);
      return true;
    });
    assert.notEqual(tryVirsh("pool-info", args.name as string).code, 0, "pool undefined again");
  });

  test("delete is refused while a VM uses a volume of the pool, then succeeds", async () => {
    const outs = await create();
    const domain = cloneLabDomain(lab, "stopped"); // never the shared one: a failed detach would follow every later clone
    try {
      virsh("vol-create-as", outs.name, "inuse.img", "1M", "--format", "raw");
      virsh("attach-disk", domain, `${outs.targetPath}/inuse.img`, "vdz", "--config", "--targetbus", "virtio");
      try {
        await assert.rejects(glusterPool.delete(outs.uuid, outs), new RegExp(`in use by ${domain} \\(vdz, persistent\\)`));
        assert.equal(poolInfo(outs.name)["State"], "running", "refusal changed nothing");
      } finally {
        virsh("detach-disk", domain, "vdz", "--config");
      }
      virsh("vol-delete", "--pool", outs.name, "inuse.img");
    } finally {
      dropDomain(domain);
      await glusterPool.delete(outs.uuid, outs);
    }
    assert.notEqual(tryVirsh("pool-info", outs.name).code, 0);
  });

  test("read shows drift done by hand; update repairs it; an undefined pool leaves state", async () => {
    const outs = await create();
    try {
      virsh("pool-destroy", outs.name);
      virsh("pool-autostart", "--disable", outs.name);
      const drifted = (await glusterPool.read(outs.uuid, outs)).props as PoolOutputs;
      assert.equal(drifted.state, "inactive");
      assert.equal(drifted.autostart, false);

      const news = await checked(inputs({ name: outs.name }));
      const diff = await glusterPool.diff(outs.uuid, drifted, news);
      assert.equal(diff.changes, true);
      assert.deepEqual(diff.replaces, []);
      const repaired = (await glusterPool.update(outs.uuid, drifted, news)).outs as PoolOutputs;
      assert.equal(repaired.state, "running");
      assert.equal(repaired.autostart, true);
      assert.equal(poolInfo(outs.name)["Autostart"], "yes");

      virsh("pool-destroy", outs.name);
      virsh("pool-undefine", outs.name);
      assert.deepEqual(await glusterPool.read(outs.uuid, outs), {});
    } finally {
      await glusterPool.delete(outs.uuid, outs);
    }
  });
});
