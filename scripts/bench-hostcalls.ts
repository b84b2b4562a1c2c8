/**
 * Benchmark: what the host pays, per call and per volume, for the work bench-scale times.
 *   calls    each kind of host call the provider makes, N times one after another on the
 *            lab's host 1: a command in the virsh session, an exec channel, a one-shot
 *            `virsh` (a command with stdin): wall time, and CPU time of this process
 *            (client) and of the rest of the machine (the lab's sshd, virsh, libvirtd and
 *            Gluster: host)
 *   volumes  N ImageVolume creates, reads (a refresh's) and deletes through the provider's
 *            CRUD, 8 at a time as the engine's --parallel runs them, in a pool of its own:
 *            the host calls each made per volume (counted by wrapping the Host's virsh and
 *            exec) and the CPU both sides spent per volume
 * Client and lab share this machine's cores, so host CPU here is CPU the engine does not
 * get (docs/benchmarks.md, run M). Other work on the machine counts as host: run it quiet.
 * Usage (lab up, built): node dist/scripts/bench-hostcalls.js [N=100]
 * Timing belongs here, never in tests. Results: docs/benchmarks.md.
 */
import { closeAllHosts, getHost, type Host } from "../provider/host";
import { imageVolume } from "../provider/volume";
import type { VolumeOutputs } from "../provider/volume";
import { getLab } from "../test/helpers/lab";
import { labConnection, virsh } from "../test/helpers/local";
import { createOwnPool } from "../test/helpers/ownPool";
import { cpuSince, cpuSoFar } from "./cpuTime";

const n = Number(process.argv[2] ?? 100);
const PARALLEL = 8;

/** Runs `work`; wall and CPU milliseconds per `count`. */
async function measured(count: number, work: () => Promise<void>): Promise<{ wall: number; client: number; host: number }> {
  const cpu0 = cpuSoFar();
  const t0 = process.hrtime.bigint();
  await work();
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = cpuSince(cpu0);
  return { wall: wall / count, client: (cpu.client * 1000) / count, host: (cpu.other * 1000) / count };
}

const ms = (x: number) => `${x.toFixed(2)} ms`;

/** Host calls by kind (`virsh vol-dumpxml`, `exec sh`), counted on every Host of this process. */
function countCalls(host: Host): Map<string, number> {
  const counts = new Map<string, number>();
  const proto = Object.getPrototypeOf(host) as Host;
  const { virsh: runVirsh, exec } = proto;
  const bump = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
  proto.virsh = function (this: Host, args, opts) {
    bump(`virsh ${args[0]}${opts?.stdin !== undefined ? " (stdin: one-shot virsh)" : ""}`);
    return runVirsh.call(this, args, opts);
  };
  proto.exec = function (this: Host, argv, opts) {
    bump(`exec ${argv[0]}`);
    return exec.call(this, argv, opts);
  };
  return counts;
}

async function inParallel(count: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < count) await fn(next++);
  }));
}

async function main(): Promise<void> {
  const lab = await getLab();
  const connection = labConnection(lab);
  const host = getHost(connection);
  const pool = await createOwnPool(lab, "bhc", { by: "root" });
  const lines: string[] = [];
  try {
    virsh("vol-create-as", pool.name, "probe.img", "1M");
    await host.virsh(["uri"]);
    const calls: [string, () => Promise<unknown>][] = [
      ["session: list --all", () => host.virsh(["list", "--all"])],
      ["session: dumpxml (running domain)", () => host.virsh(["dumpxml", lab.domains.running])],
      ["session: pool-info", () => host.virsh(["pool-info", pool.name])],
      ["session: pool-dumpxml", () => host.virsh(["pool-dumpxml", pool.name])],
      ["session: vol-dumpxml (netfs)", () => host.virsh(["vol-dumpxml", "--pool", pool.name, "probe.img"])],
      ["exec: true", () => host.exec(["true"])],
      ["exec: sh -c :", () => host.exec(["sh", "-c", ":"])],
      ["one-shot virsh (stdin): version", () => host.virsh(["version"], { stdin: "" })],
    ];
    lines.push(`| host call (x${n}, one at a time) | wall | client CPU | host CPU |`, "|---|---|---|---|");
    for (const [what, call] of calls) {
      const r = await measured(n, async () => {
        for (let i = 0; i < n; i++) await call();
      });
      lines.push(`| ${what} | ${ms(r.wall)} | ${ms(r.client)} | ${ms(r.host)} |`);
    }

    const counts = countCalls(host);
    const outs: VolumeOutputs[] = [];
    const steps: [string, (i: number) => Promise<void>][] = [
      ["create", async (i) => {
        const checked = await imageVolume.check({}, { connection, pool: pool.name, name: `b${i}.img`, capacity: "1MiB", __stamp: `bench/hostcalls/ImageVolume/b${i}` });
        if (checked.failures?.length) throw new Error(`check: ${JSON.stringify(checked.failures)}`);
        outs[i] = (await imageVolume.create(checked.inputs!)).outs as VolumeOutputs;
      }],
      ["read", async (i) => void (await imageVolume.read!(outs[i].key, outs[i]))],
      ["delete", async (i) => imageVolume.delete!(outs[i].key, outs[i])],
    ];
    lines.push("", `| ImageVolume (x${n}, ${PARALLEL} at a time) | wall | client CPU | host CPU | host calls per volume |`, "|---|---|---|---|---|");
    for (const [step, fn] of steps) {
      counts.clear();
      // as in a Pulumi run, whose steps are seconds apart: the delete's overlay scan reads files changed in the last 2 s again
      if (step === "delete") await new Promise((r) => setTimeout(r, 3000));
      const r = await measured(n, () => inParallel(n, fn));
      const per = [...counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${(v / n).toFixed(2)} ${k}`).join(", ");
      lines.push(`| ${step} | ${ms(r.wall)} | ${ms(r.client)} | ${ms(r.host)} | ${per} |`);
    }
  } finally {
    closeAllHosts();
    await pool.remove();
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-hostcalls: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
