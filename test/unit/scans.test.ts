import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { VirshError } from "../../provider/errors";
import type { ExecResult, Host } from "../../provider/host";
import { FreshScan, sharedScan } from "../../provider/libvirt/scans";
import { backingIndexOf, canReuse, HEADER_SCRIPT, onlyVanishedEntries, parseHeaders, parseStoredFiles, RECENT_S, type StoredFile } from "../../provider/libvirt/backingIndex";

/** A promise with its resolve/reject outside. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

/** A FreshScan whose every scan the test settles by hand: `scans[i]` is the i-th scan started. */
function controlledScan<T>() {
  const scans: ReturnType<typeof deferred<T>>[] = [];
  const s = new FreshScan(() => {
    const d = deferred<T>();
    scans.push(d);
    return d.promise;
  });
  return { s, scans };
}

test("FreshScan: a caller never gets a scan that started before it called; callers meanwhile share the next one", async () => {
  const { s, scans } = controlledScan<number>();
  const a = s.get(); // starts scan 0
  assert.equal(scans.length, 1);
  const b = s.get(); // scan 0 started before b: b waits for scan 1
  const c = s.get(); // shares scan 1 with b
  assert.equal(scans.length, 1, "scan 1 starts only once scan 0 is over");
  scans[0].resolve(0);
  assert.equal(await a, 0);
  await tick();
  assert.equal(scans.length, 2);
  const d = s.get(); // scan 1 is running: d waits for scan 2
  scans[1].resolve(1);
  assert.deepEqual(await Promise.all([b, c]), [1, 1]);
  await tick();
  assert.equal(scans.length, 3);
  scans[2].resolve(2);
  assert.equal(await d, 2);
  // Nothing settled is served again: a later caller scans anew.
  const e = s.get();
  assert.equal(scans.length, 4);
  scans[3].resolve(3);
  assert.equal(await e, 3);
});

test("FreshScan: a failed scan fails every caller sharing it, and the next caller scans again", async () => {
  const { s, scans } = controlledScan<string>();
  const a = s.get();
  const b = s.get();
  const c = s.get();
  scans[0].reject(new Error("listing failed"));
  await assert.rejects(a, /listing failed/);
  await tick();
  scans[1].reject(new Error("dumpxml failed"));
  await assert.rejects(b, /dumpxml failed/);
  await assert.rejects(c, /dumpxml failed/);
  const d = s.get();
  assert.equal(scans.length, 3);
  scans[2].resolve("ok");
  assert.equal(await d, "ok");
});

test("sharedScan: one per scope and kind; without a scope every call scans", async () => {
  let n = 0;
  const scan = async () => ++n;
  assert.deepEqual(await Promise.all([sharedScan(undefined, "k", scan), sharedScan(undefined, "k", scan)]), [1, 2]);
  const scope = {};
  const other = {};
  const [x, y, z] = await Promise.all([sharedScan(scope, "k", scan), sharedScan(scope, "k", scan), sharedScan(other, "k", scan)]);
  assert.equal(x, 3);
  assert.equal(y, 5, "the second caller waits for a scan of its own time (after scope's first and other's)");
  assert.equal(z, 4);
});

test("parseStoredFiles reads the host's time and every entry, names with blanks and newlines included", () => {
  const text = "1796156945.500000000\nf 12 1048576 1796156000.1234567890 a.img\0f 13 0 1796156001.0000000000 my vm\nx.qcow2\0d 14 4096 1796156002.5000000000 sub\0";
  const { now, files } = parseStoredFiles(text);
  assert.equal(now, 1796156945.5);
  assert.deepEqual(files.map((f) => [f.type, f.name, f.identity]), [
    ["f", "a.img", "12 1048576 1796156000.1234567890"],
    ["f", "my vm\nx.qcow2", "13 0 1796156001.0000000000"],
    ["d", "sub", "14 4096 1796156002.5000000000"],
  ]);
  assert.throws(() => parseStoredFiles("not a time\n"), /unexpected directory listing/);
  assert.throws(() => parseStoredFiles("1.5\ngarbage\0"), /unexpected directory listing entry/);
});

test("canReuse: only an unchanged regular file, not changed in the last RECENT_S seconds", () => {
  const file: StoredFile = { name: "a", type: "f", identity: "12 100 1000.5", ctime: 1000.5 };
  const cached = { identity: "12 100 1000.5", backing: "/b" };
  const now = 1000.5 + RECENT_S + 0.1;
  assert.ok(canReuse(cached, file, now));
  assert.ok(!canReuse(undefined, file, now), "never read");
  assert.ok(!canReuse({ ...cached, identity: "12 100 1001.5" }, file, now), "ctime changed (any write)");
  assert.ok(!canReuse({ ...cached, identity: "99 100 1000.5" }, file, now), "another file at the path");
  assert.ok(!canReuse({ ...cached, identity: "12 200 1000.5" }, file, now), "size changed");
  assert.ok(!canReuse(cached, file, 1000.5 + RECENT_S - 0.1), "changed too recently");
  assert.ok(!canReuse(cached, { ...file, type: "l" }, now), "a symlink's target can change without its ctime");
});

const POOL_UUID = "11111111-2222-3333-4444-555555555555";
const poolXml = `<pool type='netfs'><name>p</name><uuid>${POOL_UUID}</uuid><source><host name='gs'/><dir path='/vol'/><format type='glusterfs'/></source><target><path>/mnt/p</path></target></pool>`;
const volXml = (name: string, backing?: string) =>
  `<volume type='file'><name>${name}</name><key>/mnt/p/${name}</key><capacity unit='bytes'>1048576</capacity><allocation unit='bytes'>0</allocation>` +
  `<target><path>/mnt/p/${name}</path><format type='${backing ? "qcow2" : "raw"}'/></target>${backing ? `<backingStore><path>${backing}</path><format type='raw'/></backingStore>` : ""}</volume>`;

/** A host with one netfs pool whose directory (`files`) and libvirt listing (`listed`) the test changes; records virsh and exec calls. */
function storageHost() {
  const state = {
    now: 5000,
    files: new Map<string, { ino: number; ctime: string; backing?: string }>(),
    listed: new Set<string>(),
    findFails: false,
    /** entries find lists by name but whose stat fails: deleted by another host between its readdir and its stat */
    findVanished: new Set<string>(),
    /** files libvirt lists whose header it cannot read any more: deleted meanwhile */
    staleInLibvirt: new Set<string>(),
    /** files qemu-img cannot open as the login; files that vanish between the listing and qemu-img */
    unreadable: new Set<string>(),
    vanishing: new Set<string>(),
    calls: [] as string[],
  };
  const host: Host = {
    label: "fake",
    libvirtUri: "qemu:///system",
    scope: {},
    async exec(argv, opts): Promise<ExecResult> {
      state.calls.push(`exec ${argv[0]}`);
      if (argv[3] === HEADER_SCRIPT) {
        state.calls.push("qemu-img info");
        const paths = String(opts?.stdin).split("\0").slice(0, -1);
        const out = paths.map((p) => {
          const name = p.replace(/^\/mnt\/p\//, "");
          const f = state.files.get(name);
          const failed = (why: string) => `qemu-img: Could not open '${p}': Could not open '${p}': ${why}\n\x001\0`;
          if (!f || state.vanishing.has(name)) return failed("No such file or directory");
          if (state.unreadable.has(name)) return failed("Permission denied");
          return `${JSON.stringify({ filename: p, format: f.backing ? "qcow2" : "raw", ...(f.backing ? { "full-backing-filename": f.backing } : {}) })}\n\x000\0`;
        });
        return { code: 0, stdout: out.join(""), stderr: "" };
      }
      if (state.findFails) return { code: 1, stdout: "", stderr: "find: '/mnt/p': Permission denied" };
      const entries = [...state.files].map(([name, f]) => `f ${f.ino} 1048576 ${f.ctime} ${name}\0`).join("");
      const vanished = [...state.findVanished].map((name) => `find: '/mnt/p/${name}': No such file or directory\n`).join("");
      return { code: vanished ? 1 : 0, stdout: `${state.now}.000000000\n${entries}`, stderr: vanished };
    },
    async virsh(args) {
      state.calls.push(args.join(" "));
      if (args[0] === "pool-list") return `${POOL_UUID}\n`;
      if (args[0] === "pool-info") return "Name: p\nState: running\n";
      if (args[0] === "pool-dumpxml") return poolXml;
      if (args[0] === "pool-refresh") {
        state.listed = new Set(state.files.keys());
        return "";
      }
      if (args[0] === "vol-list") return [...state.listed].map((n) => ` ${n}  /mnt/p/${n}\n`).join("");
      if (args[0] === "vol-dumpxml") {
        const name = args[args.length - 1].replace(/^\/mnt\/p\//, "");
        const f = state.files.get(name);
        if (state.staleInLibvirt.has(name)) throw new VirshError(`virsh ${args.join(" ")}`, 1, `error: cannot read header '/mnt/p/${name}': Stale file handle\n`);
        if (!f || !state.listed.has(name)) throw new VirshError(`virsh ${args.join(" ")}`, 1, `error: failed to get vol '${name}'\nerror: Storage volume not found: no storage vol with matching name '${name}'\n`);
        return volXml(name, f.backing);
      }
      throw new Error(`unexpected virsh ${args.join(" ")}`);
    },
  };
  return { host, state };
}

const dumps = (calls: string[]) => calls.filter((c) => c.startsWith("vol-dumpxml")).length;

test("backingIndexOf: files read once, then again only when their identity changes or libvirt has not listed them", async () => {
  const { host, state } = storageHost();
  for (const [i, name] of ["a.img", "b.img", "c.qcow2"].entries()) state.files.set(name, { ino: 10 + i, ctime: "1000.5", backing: name === "c.qcow2" ? "/mnt/p/a.img" : undefined });
  state.listed = new Set(state.files.keys());

  let index = await backingIndexOf(host);
  assert.deepEqual(index.entries.map((e) => [e.volume, e.backing]), [["a.img", undefined], ["b.img", undefined], ["c.qcow2", "/mnt/p/a.img"]]);
  assert.equal(dumps(state.calls), 3, "first scan reads every file");

  state.calls = [];
  index = await backingIndexOf(host);
  assert.equal(dumps(state.calls), 0, "nothing changed: nothing read");
  assert.equal(index.entries.find((e) => e.volume === "c.qcow2")?.backing, "/mnt/p/a.img");

  // b is rewritten in place as an overlay of a (same inode, new ctime): read again, and seen.
  state.files.set("b.img", { ino: 11, ctime: "4000.25", backing: "/mnt/p/a.img" });
  state.calls = [];
  index = await backingIndexOf(host);
  assert.equal(dumps(state.calls), 1);
  assert.equal(index.entries.find((e) => e.volume === "b.img")?.backing, "/mnt/p/a.img");

  // A new overlay made elsewhere (not in libvirt's listing yet): its header is read on the storage, no pool-refresh; then it is cached.
  state.files.set("d.qcow2", { ino: 20, ctime: "4100.5", backing: "/mnt/p/a.img" });
  state.calls = [];
  index = await backingIndexOf(host);
  assert.ok(state.calls.includes("qemu-img info"));
  assert.ok(!state.calls.includes(`pool-refresh ${POOL_UUID}`), "no refresh of a pool other hosts share");
  assert.equal(dumps(state.calls), 0, "libvirt's listing lacks it: libvirt is not asked for it");
  assert.equal(index.entries.find((e) => e.volume === "d.qcow2")?.backing, "/mnt/p/a.img");
  state.calls = [];
  await backingIndexOf(host);
  assert.ok(!state.calls.includes("qemu-img info"), "unchanged: not read again");

  // One deleted between the listing and qemu-img is gone (no refresh); one the login cannot read is read by libvirt after a refresh.
  state.files.set("e.img", { ino: 21, ctime: "4100.5" });
  state.vanishing.add("e.img");
  state.files.set("f.qcow2", { ino: 22, ctime: "4100.5", backing: "/mnt/p/b.img" });
  state.unreadable.add("f.qcow2");
  state.calls = [];
  index = await backingIndexOf(host);
  assert.equal(state.calls.filter((c) => c === `pool-refresh ${POOL_UUID}`).length, 1, "one refresh, for the unreadable file");
  assert.equal(index.entries.find((e) => e.volume === "f.qcow2")?.backing, "/mnt/p/b.img");
  assert.equal(index.entries.find((e) => e.volume === "e.img"), undefined, "gone");
  assert.equal(index.unchecked.length, 0);
  state.files.delete("e.img");
  state.files.delete("f.qcow2");

  // A file changed within RECENT_S of the host's clock is read again even with an identity seen before.
  state.files.set("a.img", { ino: 10, ctime: String(state.now - 1) });
  state.calls = [];
  await backingIndexOf(host);
  await backingIndexOf(host);
  assert.equal(dumps(state.calls), 2, "a.img twice, the others not at all");

  // Deleted files drop out; a listing the login cannot make falls back to libvirt's full refresh and read.
  state.files.delete("c.qcow2");
  state.findFails = true;
  state.calls = [];
  index = await backingIndexOf(host);
  assert.ok(state.calls.includes(`pool-refresh ${POOL_UUID}`));
  assert.equal(dumps(state.calls), state.files.size);
  assert.deepEqual(index.entries.map((e) => e.volume).sort(), [...state.files.keys()].sort());
});

test("backingIndexOf: entries that vanish under find or under libvirt's read are gone, not a reason to refresh or to stop", async () => {
  const { host, state } = storageHost();
  for (const [i, name] of ["a.img", "o.qcow2", "s.img"].entries()) state.files.set(name, { ino: 10 + i, ctime: "1000.5", backing: name === "o.qcow2" ? "/mnt/p/a.img" : undefined });
  state.listed = new Set(state.files.keys());
  state.findVanished.add("deleted.img");
  state.staleInLibvirt.add("s.img");
  state.vanishing.add("s.img"); // gone from the storage too by the time qemu-img looks
  const index = await backingIndexOf(host);
  assert.deepEqual(index.unchecked, []);
  assert.ok(!state.calls.some((c) => c.startsWith("pool-refresh")), "the listing stood: no fallback to a full refresh");
  assert.deepEqual(index.entries.map((e) => [e.volume, e.backing]), [["a.img", undefined], ["o.qcow2", "/mnt/p/a.img"]]);
});

test("onlyVanishedEntries: find's complaints about entries of the directory that are gone, nothing else", () => {
  assert.ok(onlyVanishedEntries("find: '/mnt/p/x.img': No such file or directory\n", "/mnt/p"));
  assert.ok(onlyVanishedEntries("find: \u2018/mnt/p/x.img\u2019: Stale file handle\nfind: '/mnt/p/y': No such file or directory\n", "/mnt/p"));
  assert.ok(!onlyVanishedEntries("", "/mnt/p"), "exit 1 without a reason");
  assert.ok(!onlyVanishedEntries("find: '/mnt/p': No such file or directory\n", "/mnt/p"), "the directory itself");
  assert.ok(!onlyVanishedEntries("find: '/mnt/pq/x': No such file or directory\n", "/mnt/p"), "another directory");
  assert.ok(!onlyVanishedEntries("find: '/mnt/p/x': Permission denied\n", "/mnt/p"));
  assert.ok(!onlyVanishedEntries("find: '/mnt/p/x.img': No such file or directory\nfind: read error\n", "/mnt/p"), "one other complaint");
});

test("HEADER_SCRIPT in a real shell: a file gone since the listing says so, a symlink or a directory is left to libvirt", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hdr-"));
  try {
    fs.symlinkSync("/etc/hostname", path.join(dir, "link"));
    fs.mkdirSync(path.join(dir, "sub"));
    const paths = [path.join(dir, "gone.img"), path.join(dir, "link"), path.join(dir, "sub")];
    // as remoteCommandLine runs it: C messages, UTF-8 quotes
    const r = spawnSync("sh", ["-c", 'exec xargs -0 sh -c "$0" sh', HEADER_SCRIPT], {
      input: paths.map((p) => `${p}\0`).join(""), encoding: "utf8", env: { ...process.env, LC_ALL: "", LC_MESSAGES: "C", LC_CTYPE: "C.UTF-8" },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual([...parseHeaders(paths, r.stdout).values()], ["gone", "unreadable", "unreadable"], JSON.stringify(r.stdout));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("parseHeaders: a backing file, none, gone only when qemu-img says so of that very file, anything else unreadable", () => {
  const paths = ["/mnt/p/o.qcow2", "/mnt/p/r.img", "/mnt/p/gone.img", "/mnt/p/probe-gone.img", "/mnt/p/stale.img", "/mnt/p/n-gone.img", "/mnt/p/back.img", "/mnt/p/denied.img", "/mnt/p/link", "/mnt/p/odd.qcow2", "/mnt/p/base-gone.qcow2"];
  const text = [
    `${JSON.stringify({ format: "qcow2", "backing-filename": "r.img", "full-backing-filename": "/mnt/p/r.img" })}\n\x000\0`,
    `${JSON.stringify({ format: "raw" })}\n\x000\0`,
    "qemu-img: Could not open '/mnt/p/gone.img': Could not open '/mnt/p/gone.img': No such file or directory\n\x001\0",
    // as qemu-img 7.2 says it of a file whose data Gluster no longer has (seen on the lab)
    "qemu-img: Could not open '/mnt/p/probe-gone.img': Could not read image for determining its format: No such file or directory\n\x001\0",
    "qemu-img: Could not open '/mnt/p/stale.img': Stale file handle\n\x001\0",
    // stat's error of a file deleted before qemu-img got to it; then one of a file that is back
    "stat: cannot statx \u2018/mnt/p/n-gone.img\u2019: No such file or directory\n\0n\0",
    "1234\n\0n\0",
    "qemu-img: Could not open '/mnt/p/denied.img': Could not open '/mnt/p/denied.img': Permission denied\n\x001\0",
    "\0x\0",
    "WARNING: something\nnot json\n\x000\0",
    // a failure naming another file (its backing file, say) proves nothing about this one
    "qemu-img: Could not open '/mnt/p/other': No such file or directory\n\x001\0",
  ].join("");
  const h = parseHeaders(paths, text);
  assert.deepEqual([...h.values()], [{ backing: "/mnt/p/r.img" }, { backing: undefined }, "gone", "gone", "gone", "gone", "unreadable", "unreadable", "unreadable", "unreadable", "unreadable"]);
  assert.throws(() => parseHeaders(paths, text.slice(0, -1)), /unexpected output of qemu-img info for 11 files/);
});
