/**
 * Benchmark: uploading local image files to the lab host, ours vs OpenSSH, in one run.
 *   ours      ImageVolume upload over the pooled ssh2 connection, per data extent
 *             (holes skipped), two ways: "direct" (`sudo: true`: `dd` straight into the
 *             volume's file on the FUSE mount) and "vol-upload" (the plain login:
 *             `virsh vol-upload --offset`, through libvirtd); "transfer" is the upload
 *             alone, "create" the whole resource create (plus host-side sha256 verify).
 *   digest    what `pulumi preview` pays per uploaded volume: the local file's content
 *             digest (holes skipped), next to a whole-file sha256 of it for comparison
 *   ssh cat   `ssh host 'cat > FILE' < file` into the same Gluster FUSE mount
 *   scp       `scp file host:FILE` into the same mount
 * Files: 1 GiB of random data, a 4 GiB sparse file holding 64 MiB of data (64 x 1 MiB
 * spread evenly), and 64 MiB of random data (the reference for the sparse goal).
 * Peak RSS of this process (where our upload runs) is sampled every 20 ms.
 * Usage (as root, lab up): node dist/scripts/bench-upload.js [workdir=/var/tmp]
 * Timing belongs here, never in tests. Results: docs/benchmarks.md.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { closeAllHosts, getHost } from "../provider/host";
import { glusterPool, type PoolOutputs } from "../provider/pool";
import { imageVolume, type VolumeOutputs } from "../provider/volume";
import { fileSha256, localContentDigest } from "../provider/localImage";
import { directFile, uploadFile } from "../provider/volumeContent";
import { buildVolumeXml } from "../provider/xml/volume";

interface Lab {
  ssh: { host: string; port: number; user: string; privateKeyPath: string; knownHostsFile: string };
  gluster: { servers: string[] };
  stateDir: string;
}

const MiB = 1024 * 1024;
const lab: Lab = JSON.parse(execFileSync("bash", [`${__dirname}/../../scripts/lab.sh`, "status"], { encoding: "utf8" }));
const workDir = fs.mkdtempSync(path.join(process.argv[2] ?? "/var/tmp", "bench-upload-"));
const connection = { host: lab.ssh.host, port: lab.ssh.port, user: lab.ssh.user, privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: lab.ssh.knownHostsFile, agent: "" };
/** The same login through sudo: may write the volume's file, so uploads take the direct path. */
const sudoConnection = { ...connection, sudo: true };
const sshArgs = ["-p", String(lab.ssh.port), "-i", lab.ssh.privateKeyPath, "-o", `UserKnownHostsFile=${lab.ssh.knownHostsFile}`,
  "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none"];
const glusterVolume = `benchup_${process.pid}`;

function run(cmd: string, args: string[], input?: number): void {
  const r = spawnSync(cmd, args, { stdio: [input ?? "ignore", "ignore", "pipe"], encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
}

function writeRandom(file: string, size: number): void {
  const fd = fs.openSync(file, "w");
  const buf = Buffer.alloc(MiB);
  for (let done = 0; done < size; done += MiB) fs.writeSync(fd, randomFillSync(buf));
  fs.fsyncSync(fd); // else the first way measured pays for writing the file back to disk
  fs.closeSync(fd);
}

/** `size` bytes, `chunks` x 1 MiB of random data spread evenly, holes elsewhere. */
function writeSparse(file: string, size: number, chunks: number): void {
  const fd = fs.openSync(file, "w");
  fs.ftruncateSync(fd, size);
  const buf = Buffer.alloc(MiB);
  for (let i = 0; i < chunks; i++) fs.writeSync(fd, randomFillSync(buf), 0, MiB, Math.floor((i * size) / chunks / MiB) * MiB);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

/** Runs `fn`, sampling this process's RSS; returns seconds and peak RSS. */
async function measure(fn: () => Promise<unknown> | unknown): Promise<{ s: number; peakRss: number }> {
  let peakRss = process.memoryUsage.rss();
  const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20);
  const t = performance.now();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return { s: (performance.now() - t) / 1000, peakRss: Math.max(peakRss, process.memoryUsage.rss()) };
}

async function main(): Promise<void> {
  // A Gluster volume and netfs pool of the benchmark's own; a directory in the mount for OpenSSH.
  const brick = path.join(lab.stateDir, "bricks", glusterVolume);
  fs.mkdirSync(brick, { recursive: true });
  for (const args of [["create", glusterVolume, `${lab.gluster.servers[0]}:${brick}`, "force"], ["set", glusterVolume, "server.allow-insecure", "on"], ["start", glusterVolume]]) {
    run("gluster", ["--mode=script", "volume", ...args]);
  }
  let pool: PoolOutputs | undefined;
  const volumes: VolumeOutputs[] = [];
  try {
    const created = await glusterPool.create((await glusterPool.check({}, { connection, name: glusterVolume, volume: glusterVolume, servers: lab.gluster.servers })).inputs!);
    pool = created.outs as PoolOutputs;
    const sshDir = path.join(pool.targetPath!, "openssh");
    fs.mkdirSync(sshDir);
    fs.chownSync(sshDir, Number(execFileSync("id", ["-u", lab.ssh.user], { encoding: "utf8" })), 0);

    const files = [
      { label: "dense 1 GiB", file: path.join(workDir, "dense-1g.bin"), size: 1024 * MiB, data: 1024 * MiB },
      { label: "sparse 4 GiB / 64 MiB data", file: path.join(workDir, "sparse-4g.bin"), size: 4096 * MiB, data: 64 * MiB },
      { label: "dense 64 MiB", file: path.join(workDir, "dense-64m.bin"), size: 64 * MiB, data: 64 * MiB },
    ];
    writeRandom(files[0].file, files[0].size);
    writeSparse(files[1].file, files[1].size, 64);
    writeRandom(files[2].file, files[2].size);

    const ways = [["direct", sudoConnection], ["vol-upload", connection]] as const;
    for (const [, conn] of ways) await getHost(conn).virsh(["pool-list"]); // connect before timing
    const rows: { label: string; way: string; s: number; mibs: number; peakRss?: number }[] = [];
    const baseRss = process.memoryUsage.rss();
    for (const f of files) {
      const row = (way: string, m: { s: number; peakRss?: number }) => rows.push({ label: f.label, way, s: m.s, mibs: f.size / MiB / m.s, peakRss: m.peakRss });
      for (const [way, conn] of ways) {
        const host = getHost(conn);
        // Transfer alone, into a volume created sparse at full size (what create does first).
        const name = `transfer-${way}-${path.basename(f.file)}`;
        await host.virsh(["vol-create", pool.name, "/dev/stdin"], { stdin: buildVolumeXml({ name, capacity: f.size, format: "raw" }) });
        const file = await directFile(host, path.join(pool.targetPath!, name));
        if ((file !== undefined) !== (way === "direct")) throw new Error(`${way}: expected ${way === "direct" ? "a writable file" : "no file access"} for ${name}`);
        row(`ours ${way}: transfer`, await measure(() => uploadFile({ host, pool: pool!.name, volume: name, file }, f.file, f.size)));
        await host.virsh(["vol-delete", "--pool", pool.name, name]);
        // The whole resource create: define, upload, host-side sha256 verify, format check.
        const inputs = (await imageVolume.check({}, { connection: conn, pool: pool.name, name: `create-${way}-${path.basename(f.file)}`, source: { path: f.file } })).inputs!;
        let outs: VolumeOutputs | undefined;
        row(`ours ${way}: create (+verify)`, await measure(async () => (outs = (await imageVolume.create(inputs)).outs as VolumeOutputs)));
        volumes.push(outs!);
      }
      row("ours: content digest (diff)", await measure(() => localContentDigest(f.file)));
      row("whole-file sha256 (comparison)", await measure(() => fileSha256(f.file, f.size)));
      const dest = path.join(sshDir, path.basename(f.file));
      const input = fs.openSync(f.file, "r");
      row("OpenSSH ssh cat", await measure(() => run("ssh", [...sshArgs, `${lab.ssh.user}@${lab.ssh.host}`, `cat > ${dest}`], input)));
      fs.closeSync(input);
      fs.rmSync(dest);
      row("OpenSSH scp", await measure(() => run("scp", ["-q", "-P", String(lab.ssh.port), "-i", lab.ssh.privateKeyPath, "-o", `UserKnownHostsFile=${lab.ssh.knownHostsFile}`, "-o", "BatchMode=yes", f.file, `${lab.ssh.user}@${lab.ssh.host}:${dest}`])));
      fs.rmSync(dest);
    }

    console.log(`upload to ${lab.ssh.user}@${lab.ssh.host}:${lab.ssh.port}, netfs pool on Gluster volume ${glusterVolume} (FUSE); MiB/s over the file's full size`);
    for (const r of rows) {
      const rss = r.peakRss !== undefined ? `  peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB (+${((r.peakRss - baseRss) / MiB).toFixed(0)})` : "";
      console.log(`${r.label.padEnd(28)} ${r.way.padEnd(34)} ${r.s.toFixed(2).padStart(7)} s ${r.mibs.toFixed(0).padStart(6)} MiB/s${r.way.startsWith("ours") ? rss : ""}`);
    }
    const get = (label: string, way: string) => rows.find((r) => r.label === label && r.way === way)!.s;
    const dense = files[0].label;
    for (const [way] of ways) {
      const t = `ours ${way}: transfer`, c = `ours ${way}: create (+verify)`;
      console.log(`dense, ${way}: transfer / ssh cat throughput = ${(get(dense, "OpenSSH ssh cat") / get(dense, t)).toFixed(2)}x (goal >= 0.9x); / scp = ${(get(dense, "OpenSSH scp") / get(dense, t)).toFixed(2)}x; create+verify / ssh cat = ${(get(dense, "OpenSSH ssh cat") / get(dense, c)).toFixed(2)}x`);
      console.log(`sparse, ${way}: 4 GiB sparse / 64 MiB dense time, transfer = ${(get(files[1].label, t) / get(files[2].label, t)).toFixed(2)}x (goal <= 2x); create+verify = ${(get(files[1].label, c) / get(files[2].label, c)).toFixed(2)}x`);
    }
    for (const f of [files[1], files[2]]) {
      console.log(`${f.label}: content digest ${get(f.label, "ours: content digest (diff)").toFixed(2)} s vs whole-file sha256 ${get(f.label, "whole-file sha256 (comparison)").toFixed(2)} s`);
    }
    console.log(`peak RSS of this process: ${(Math.max(...rows.filter((r) => r.peakRss).map((r) => r.peakRss!)) / MiB).toFixed(0)} MiB (baseline ${(baseRss / MiB).toFixed(0)} MiB)`);
  } finally {
    for (const v of volumes) await imageVolume.delete(v.key, v).catch((err) => console.error(`cleanup: ${err.message}`));
    if (pool) {
      fs.rmSync(path.join(pool.targetPath!, "openssh"), { recursive: true, force: true });
      await glusterPool.delete(pool.uuid, pool).catch((err) => console.error(`cleanup: ${err.message}`));
    }
    closeAllHosts();
    spawnSync("gluster", ["--mode=script", "volume", "stop", glusterVolume, "force"]);
    spawnSync("gluster", ["--mode=script", "volume", "delete", glusterVolume]);
    fs.rmSync(brick, { recursive: true, force: true });
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
