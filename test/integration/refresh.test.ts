/*
 * Refreshes of a pool other hypervisors share. (1) A pool refresh that fails on one file. libvirt then stops the pool (storagePoolRefresh:
 * the backend's stopPool, then inactive) — on shared storage that happens whenever another
 * hypervisor deletes a file between libvirt's readdir and its read of that file (seen with
 * 10 hosts x 100 volumes, docs/benchmarks.md run F). refreshPool starts the pool again and
 * refreshes once more; a file that stays unreadable leaves its error standing.
 *
 * The unreadable file is made the way Gluster's client sees a file deleted under it: it is
 * listed (its name is on the brick) but its data is gone (its gfid link in the brick's
 * .glusterfs removed), so reading it fails "No such file or directory". It is written
 * through a FUSE mount of the test's own, so the pool's mount has nothing of it cached.
 *
 * Meanwhile the pool is stopped for every other resource on that libvirt too: their commands
 * that fail "not active" in that window wait for refreshPool and run again (host.ts, PoolStops).
 *
 * (2) The delete path's overlay scan does not refresh such a pool at all: a file libvirt
 * does not list yet (made through another client) has its header read on the storage,
 * and one that vanishes under the scan is gone, so no refresh can stop the pool.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { closeAllHosts, getHost, type Host } from "../../provider/host";
import { backingIndexOf } from "../../provider/libvirt/backingIndex";
import { lookUpVolume, refreshPool } from "../../provider/libvirt/volumes";
import { getLab, type LabInfo } from "../helpers/lab";
import { labConnection, tryVirsh, virsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";

let lab: LabInfo;
let pool: OwnPool;
let brick: string;

before(async () => {
  lab = await getLab();
  pool = await createOwnPool(lab, "rfr", { by: "root" });
  brick = `${lab.stateDir}/bricks/${pool.gluster.name}`;
  fs.writeFileSync(path.join(pool.targetPath!, "kept.img"), Buffer.alloc(4096));
});

after(async () => {
  closeAllHosts();
  await pool.remove();
});

/** Runs `write` with a FUSE mount of the pool's Gluster volume of its own (another client: the pool's mount has nothing of it cached). */
function throughOwnMount(write: (mnt: string) => void): void {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), "rfr-mnt-"));
  execFileSync("mount", ["-t", "glusterfs", `${lab.gluster.servers[0]}:/${pool.gluster.name}`, mnt]);
  try {
    write(mnt);
  } finally {
    execFileSync("umount", [mnt]);
    fs.rmdirSync(mnt);
  }
}

/** `name` in the pool, listed by the brick but unreadable through any fresh client. */
function unreadableFile(name: string): void {
  throughOwnMount((mnt) => fs.writeFileSync(path.join(mnt, name), Buffer.alloc(4096, 1)));
  const links = execFileSync("find", [path.join(brick, ".glusterfs"), "-samefile", path.join(brick, name)], { encoding: "utf8" }).split("\n").filter(Boolean);
  assert.equal(links.length, 1, `one gfid link of ${name} on the brick: ${links.join(", ")}`);
  fs.rmSync(links[0]!);
}

function poolState(): string {
  return /^State:\s*(.+)$/m.exec(virsh("pool-info", pool.name))?.[1]?.trim() ?? "unknown";
}

/** The lab host, with `beforeRestart` run when refreshPool first asks for the pool's state after a failed refresh. */
function hostDeletingOnRestart(beforeRestart: () => void | Promise<void>): { host: Host; seen: { failedRefresh: boolean } } {
  const real = getHost(labConnection(lab));
  const seen = { failedRefresh: false };
  const host = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop !== "virsh") {
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      }
      return async (args: readonly string[], opts?: unknown) => {
        if (args[0] === "pool-info" && !seen.failedRefresh) {
          seen.failedRefresh = true;
          assert.equal(poolState(), "inactive", "libvirt stopped the pool when its refresh failed");
          await beforeRestart();
        }
        return (target.virsh as (a: readonly string[], o?: unknown) => Promise<string>)(args, opts);
      };
    },
  });
  return { host, seen };
}

test("a file deleted during the refresh: libvirt stops the pool, refreshPool starts it again and the refresh succeeds", { timeout: 120_000 }, async () => {
  unreadableFile("deleted-meanwhile.img");
  // what the other hypervisor's delete finishes with: the name goes too
  const { host, seen } = hostDeletingOnRestart(() => fs.rmSync(path.join(brick, "deleted-meanwhile.img")));
  await refreshPool(host, pool.name);
  assert.ok(seen.failedRefresh, "the first refresh failed on the unreadable file (else this test proves nothing)");
  assert.equal(poolState(), "running");
  const names = virsh("-q", "vol-list", pool.name).split("\n").map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean);
  assert.deepEqual(names.sort(), ["kept.img"]);
});

test("another resource's read while libvirt has the pool stopped waits for refreshPool to start it again, instead of failing", { timeout: 120_000 }, async () => {
  unreadableFile("deleted-meanwhile-2.img");
  // another resource's work, as the engine runs it: started outside refreshPool, it reads the pool once `go` is called
  let go!: () => void;
  const other = new Promise<void>((resolve) => (go = resolve)).then(() => lookUpVolume(getHost(labConnection(lab)), pool.name, "kept.img"));
  let early: string | undefined;
  const { host, seen } = hostDeletingOnRestart(async () => {
    // the pool is stopped now (asserted): a vol-dumpxml of it fails "not active" on the host
    go();
    early = await Promise.race([other.then(() => "read", (e: Error) => `failed: ${e.message}`), sleep(3000).then(() => "waiting")]);
    fs.rmSync(path.join(brick, "deleted-meanwhile-2.img"));
  });
  await refreshPool(host, pool.name);
  assert.ok(seen.failedRefresh, "the first refresh failed on the unreadable file (else this test proves nothing)");
  assert.equal(early, "waiting", "the read did not fail on (or read through) the stopped pool");
  assert.equal((await other)?.name, "kept.img");
  assert.equal(poolState(), "running");
});

test("a file that stays unreadable: the refresh's error stands, with why the pool could not be started again", { timeout: 120_000 }, async () => {
  unreadableFile("broken.img");
  const { host, seen } = hostDeletingOnRestart(() => {});
  await assert.rejects(refreshPool(host, pool.name), (err: Error) => {
    assert.match(err.message, new RegExp(`pool '${pool.name}' on .*: its refresh failed on a file that vanished meanwhile \\(.*broken\\.img.*No such file or directory.*\\), libvirt stopped the pool, and starting it again failed: `, "s"));
    return true;
  });
  assert.ok(seen.failedRefresh);
  // libvirt will not start a pool whose refresh fails: with the file gone it starts again
  fs.rmSync(path.join(brick, "broken.img"));
  assert.equal(tryVirsh("pool-start", pool.name).code, 0);
  assert.equal(poolState(), "running");
});

/** The names libvirt lists in the pool now. */
function listed(): string[] {
  return virsh("-q", "vol-list", pool.name).split("\n").map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean).sort();
}

test("the overlay scan reads an overlay made through another client on the storage, without refreshing the pool", { timeout: 120_000 }, async () => {
  virsh("vol-create-as", pool.name, "base.img", "1M", "--format", "raw");
  const base = path.join(pool.targetPath!, "base.img");
  throughOwnMount((mnt) => execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", path.join(mnt, "elsewhere.qcow2")]));
  assert.ok(!listed().includes("elsewhere.qcow2"), "libvirt does not list the overlay yet (else this test proves nothing)");
  const index = await backingIndexOf(getHost(labConnection(lab)));
  assert.deepEqual(index.unchecked, []);
  const entry = index.entries.find((e) => e.path === path.join(pool.targetPath!, "elsewhere.qcow2"));
  assert.equal(entry?.backing, base, "the overlay of base.img is seen");
  assert.ok(!listed().includes("elsewhere.qcow2"), "the pool was not refreshed");
  fs.rmSync(path.join(pool.targetPath!, "elsewhere.qcow2"));
  virsh("vol-delete", "--pool", pool.name, "base.img");
});

test("the overlay scan takes a file that vanishes under it as gone: no refresh, so libvirt never stops the pool", { timeout: 120_000 }, async () => {
  unreadableFile("vanishing.img");
  const index = await backingIndexOf(getHost(labConnection(lab)));
  assert.deepEqual(index.unchecked, [], "nothing left unchecked (a refresh would have failed on the file)");
  assert.equal(index.entries.find((e) => e.volume === "vanishing.img"), undefined);
  assert.equal(poolState(), "running");
  fs.rmSync(path.join(brick, "vanishing.img"));
});
