/**
 * The fault suite's harness (issue 11, section 5): run a Pulumi operation through the real
 * CLI, inject a fault when an observable event says the operation is at the point the
 * scenario is about, measure the time to the error, and check what the issue asks of every
 * scenario:
 *   (a) a clear error within a bounded time, naming the host and the cause;
 *   (b) nothing lost: every image that existed before is byte-identical, no VM lost a disk;
 *   (c) nothing left that state does not know;
 *   (d) after the repair, `up` converges and `preview --expect-no-changes` passes.
 * Observers are independent of the transport under test: bricks are hashed on this machine,
 * domains read with the local virsh (host 1) or over OpenSSH (hypervisor 2).
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { parseDomainDisks } from "../../provider/xml/disk";
import { after } from "node:test";
import { changes, passphrase, type TestStack } from "../helpers/stack";
import { sleep } from "../helpers/wait";

/** Seconds since `t0`, for messages and the reliability table. */
export const secondsSince = (t0: number) => Number(((Date.now() - t0) / 1000).toFixed(1));

/** Operator-readable line for the test log (and docs/reliability.md). */
export function report(scenario: string, fields: Record<string, unknown>, run?: FaultRun): void {
  if (run) {
    fields = {
      ...fields,
      hung: run.hung,
      secondsToFault: run.secondsToFault,
      secondsToEnd: run.secondsToEnd,
      firstLine: run.error === undefined ? "(succeeded)" : run.diagnostics.firstLine(run.error),
      diagnostics: run.diagnostics.errors.slice(0, 3).map((m) => m.slice(0, 800)),
    };
  }
  process.stderr.write(`faults: ${scenario}: ${JSON.stringify(fields)}\n`);
}

// ---------------------------------------------------------------------------------------
// Running an operation with a fault

/** Error diagnostics the engine reported, collected through `onEvent`. */
export class Diagnostics {
  readonly errors: string[] = [];
  /** The same errors with the URN of the resource each is about (none for the engine's own). */
  readonly resourceErrors: { urn: string; message: string }[] = [];
  readonly onEvent = (e: EngineEvent) => {
    const d = e.diagnosticEvent;
    if (d && d.severity === "error") {
      this.errors.push(d.message.trim());
      if (d.urn) this.resourceErrors.push({ urn: d.urn, message: d.message.trim() });
    }
  };
  /** The errors about the resource named `name` (the last part of its URN). */
  about(name: string): string {
    return this.resourceErrors.filter((e) => e.urn.endsWith(`::${name}`)).map((e) => e.message).join("\n");
  }
  /**
   * What the user reads as the errors: the engine's error diagnostics (the CLI's whole
   * output, with program source and stack lines, is not "a clear error"); the operation's
   * own error only when the engine reported none (e.g. a killed CLI).
   */
  text(err?: unknown): string {
    const own = this.errors.filter((m) => !/^(update|preview|refresh|destroy) failed$/.test(m));
    return own.length > 0 ? own.join("\n") : err === undefined ? "" : String((err as Error)?.message ?? err);
  }
  /** The first line of the first resource error (not the engine's closing "update failed"). */
  firstLine(err?: unknown): string {
    const pick = this.errors.find((m) => !/^update failed$|^preview failed$|^refresh failed$/.test(m)) ?? String((err as Error)?.message ?? err ?? "");
    return pick.split("\n").map((l) => l.trim()).find((l) => l && !/^error:\s*$/.test(l)) ?? "";
  }
}

export interface FaultRun {
  /** what the operation threw, or undefined if it succeeded */
  error?: unknown;
  /** the operation had not settled `settleMs` after the fault: it was killed */
  hung: boolean;
  /** seconds from the fault to the operation's end (its error, usually) */
  secondsToEnd: number;
  /** seconds from the start of the operation to the fault */
  secondsToFault: number;
  diagnostics: Diagnostics;
}

/**
 * Runs `op` (an Automation API call given `onEvent`); when `trigger` resolves, runs `inject`;
 * waits at most `settleMs` after the fault for the operation to end, else SIGKILLs the CLI
 * processes of this test (so nothing keeps running) and reports it as hung.
 */
export async function runWithFault(
  op: (onEvent: (e: EngineEvent) => void) => Promise<unknown>,
  trigger: () => Promise<void>,
  inject: () => Promise<void> | void,
  settleMs: number,
): Promise<FaultRun> {
  const diagnostics = new Diagnostics();
  const t0 = Date.now();
  let ended: number | undefined;
  let error: unknown;
  const running = op(diagnostics.onEvent).then(
    () => void (ended = Date.now()),
    (e: unknown) => {
      ended = Date.now();
      error = e;
    },
  );
  // the trigger may never come if the operation ends first: that is an outcome too
  const fired = await Promise.race([trigger().then(() => true), running.then(() => false)]);
  if (!fired) throw new Error(`the operation ended before the fault could be injected (error: ${String(error)})`);
  const tFault = Date.now();
  await inject();
  const settled = await Promise.race([running.then(() => true), sleep(settleMs).then(() => false)]);
  if (!settled) {
    // the CLI and its plugins: an orphaned provider with hung connections was seen to live on for 15 minutes
    const clis = pulumiProcesses();
    const plugins = clis.flatMap((p) => descendants(p, /./));
    for (const pid of [...clis, ...plugins]) killPid(pid, "SIGKILL");
    await Promise.race([running, sleep(30_000)]);
  }
  return {
    error,
    hung: !settled,
    secondsToEnd: Number((((ended ?? Date.now()) - tFault) / 1000).toFixed(1)),
    secondsToFault: Number(((tFault - t0) / 1000).toFixed(1)),
    diagnostics,
  };
}

/** (a): the run failed within `settleMs`, and what the user read names the host and the cause. */
export function assertClearError(run: FaultRun, host: string, cause: RegExp): void {
  assert.equal(run.hung, false, `no error within the bound: the operation was still running ${run.secondsToEnd} s after the fault`);
  assert.ok(run.error !== undefined, "the operation succeeded despite the fault");
  const text = run.diagnostics.text(run.error);
  assert.ok(text.includes(host), `the error does not name the host ${host}:\n${text.slice(0, 3000)}`);
  assert.match(text, cause, `the error does not name the cause:\n${text.slice(0, 3000)}`);
}

// ---------------------------------------------------------------------------------------
// Processes

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
}

function processTable(): Proc[] {
  return execFileSync("ps", ["-e", "-o", "pid=,ppid=,comm="], { encoding: "utf8" })
    .split("\n").filter(Boolean).map((l) => l.trim().split(/\s+/)).map(([pid, ppid, comm]) => ({ pid: Number(pid), ppid: Number(ppid), comm }));
}

/** Pids of processes under `root` (not itself) whose command name matches. */
export function descendants(root: number, comm: RegExp): number[] {
  const rows = processTable();
  const under = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows) if (under.has(r.ppid) && !under.has(r.pid)) (under.add(r.pid), (grew = true));
  }
  return rows.filter((r) => r.pid !== root && under.has(r.pid) && comm.test(r.comm)).map((r) => r.pid);
}

/** The Pulumi CLI processes this test process started (through the Automation API). */
export function pulumiProcesses(): number[] {
  return descendants(process.pid, /^pulumi$/);
}

export function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids whose full command line matches (pgrep -f), for processes on host 1 / in hypervisor 2's namespace. */
export function pgrep(pattern: string): number[] {
  const r = spawnSync("pgrep", ["-f", pattern], { encoding: "utf8" });
  return r.stdout.split("\n").filter(Boolean).map(Number).filter((p) => p !== process.pid);
}

// ---------------------------------------------------------------------------------------
// (b) nothing lost

/** sha256 of every file in a brick directory (Gluster's own `.glusterfs` excluded), by name. */
export function hashBrick(brick: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!fs.existsSync(brick)) return out;
  const r = spawnSync("sh", ["-c", `cd "$1" && find . -path ./.glusterfs -prune -o -type f -print0 | xargs -0 -r sha256sum`, "sh", brick], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`hashing ${brick}: ${r.stderr}`);
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    const [hash, file] = [line.slice(0, 64), line.slice(66)];
    out.set(file.replace(/^\.\//, ""), hash);
  }
  return out;
}

/** Files directly in a brick (the pool's volumes), without Gluster's metadata. */
export function brickFiles(brick: string): string[] {
  if (!fs.existsSync(brick)) return [];
  return fs.readdirSync(brick).filter((f) => !f.startsWith(".")).sort();
}

export function assertImagesIntact(before: Map<string, string>, after: Map<string, string>): void {
  const lost: string[] = [];
  for (const [file, hash] of before) {
    const now = after.get(file);
    if (now !== hash) lost.push(`${file}: ${now === undefined ? "gone" : `sha256 ${hash.slice(0, 12)}… is now ${now.slice(0, 12)}…`}`);
  }
  assert.deepEqual(lost, [], "images that existed before the fault changed or vanished");
}

/** `target=source` of every disk in a domain's live and persistent definitions. */
export type DomainDisks = Record<string, { live: string[]; persistent: string[] }>;

export async function domainDisks(dumpxml: (domain: string, inactive: boolean) => Promise<string | undefined>, domains: readonly string[]): Promise<DomainDisks> {
  const out: DomainDisks = {};
  const fmt = (xml: string | undefined) =>
    xml === undefined ? [] : parseDomainDisks(xml).map((d) => `${d.target}=${d.source?.file ?? d.source?.name ?? "?"}`).sort();
  for (const d of domains) out[d] = { live: fmt(await dumpxml(d, false)), persistent: fmt(await dumpxml(d, true)) };
  return out;
}

/** No domain lost a disk it had (persistently; live too unless the domain was deliberately stopped). */
export function assertNoDiskLost(before: DomainDisks, after: DomainDisks, opts: { liveToo?: boolean; removing?: string[] } = {}): void {
  const lost: string[] = [];
  for (const [dom, all] of Object.entries(before)) {
    // the disks the run was asked to remove (`domain:target`) are not lost when they go
    const asked = (d: string) => (opts.removing ?? []).includes(`${dom}:${d.split("=")[0]}`);
    const b = { live: all.live.filter((d) => !asked(d)), persistent: all.persistent.filter((d) => !asked(d)) };
    const a = after[dom] ?? { live: [], persistent: [] };
    for (const d of b.persistent) if (!a.persistent.includes(d)) lost.push(`${dom} (persistent): ${d}`);
    if (opts.liveToo !== false) for (const d of b.live) if (!a.live.includes(d)) lost.push(`${dom} (live): ${d}`);
  }
  assert.deepEqual(lost, [], "VMs lost disks they had");
}

// ---------------------------------------------------------------------------------------
// (c) nothing left that state does not know

export interface StateView {
  pools: string[];
  volumes: string[];
  /** `domain:target` */
  disks: string[];
  pendingOperations: string[];
}

export async function stateView(stack: Stack): Promise<StateView> {
  const dep = (await stack.exportStack()).deployment as {
    resources?: { type: string; urn: string; outputs?: Record<string, unknown>; inputs?: Record<string, unknown> }[];
    pending_operations?: { type: string; resource: { urn: string } }[];
  };
  const of = (kind: string) => (dep.resources ?? []).filter((r) => r.type.endsWith(kind));
  return {
    pools: of("GlusterPool").map((r) => String(r.outputs?.name ?? r.inputs?.name)).sort(),
    volumes: of("ImageVolume").map((r) => String(r.outputs?.name ?? r.inputs?.name)).sort(),
    disks: of("DiskAttachment").map((r) => `${String(r.outputs?.domain ?? r.inputs?.domain)}:${String(r.outputs?.target ?? r.inputs?.target)}`).sort(),
    pendingOperations: (dep.pending_operations ?? []).map((p) => `${p.type} ${p.resource.urn.split("::").pop()}`),
  };
}

/** (c): nothing of `kind` exists on the host that state does not know. */
export function assertStateMatchesHost(kind: string, onHost: readonly string[], inState: readonly string[]): void {
  const unknown = onHost.filter((x) => !inState.includes(x));
  assert.deepEqual(unknown, [], `${kind} on the host that state does not know`);
}

// ---------------------------------------------------------------------------------------
// (d) converge after the repair

export interface Convergence {
  upSeconds: number;
}

/**
 * A SIGKILLed CLI leaves the file:// backend's stack lock behind ("the stack is currently
 * locked … delete the lock file with `pulumi cancel`"): the repair a user makes, as they
 * would. Returns how many locks there were.
 */
export function releaseStaleLocks(t: TestStack): number {
  const dir = path.join(t.backendDir, ".pulumi", "locks");
  const locks = fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".json")) : [];
  if (locks.length === 0) return 0;
  const r = spawnSync("pulumi", ["cancel", "--yes", "--stack", "test", "--non-interactive"], {
    cwd: t.workDir,
    encoding: "utf8",
    env: { ...process.env, PULUMI_CONFIG_PASSPHRASE: passphrase },
    timeout: 60_000,
  });
  if (r.status !== 0) {
    // `pulumi cancel` does not serve every backend: remove the files it names
    process.stderr.write(`faults: pulumi cancel exited ${r.status}: ${(r.stderr || r.stdout).trim()}; removing ${locks.length} lock file(s)\n`);
    for (const f of locks) fs.rmSync(path.join(dir, f), { force: true });
  }
  return locks.length;
}

/**
 * Ends this test file's process shortly after its last hook: a CLI SIGKILLed mid-run leaves
 * the inline program's registrations waiting on a dead engine, and their gRPC channels would
 * keep the process (and the test run) alive forever.
 */
export function forceExitWhenDone(): void {
  after(() => {
    setTimeout(() => process.exit(), 5000).unref();
  });
}

/** up (must succeed), refresh, and a preview that must show no change. */
export async function assertConverges(t: TestStack, opts: { parallel?: number; refresh?: boolean } = {}): Promise<Convergence> {
  const locks = releaseStaleLocks(t);
  if (locks > 0) process.stderr.write(`faults: released ${locks} stale stack lock(s) left by a killed CLI\n`);
  const t0 = Date.now();
  const d = new Diagnostics();
  let up;
  try {
    up = await t.stack.up({ onEvent: d.onEvent, parallel: opts.parallel, refresh: opts.refresh });
  } catch (e) {
    assert.fail(`the next up after the repair failed: ${d.firstLine(e)}\n${d.text(e).slice(0, 3000)}`);
  }
  assert.equal(up.summary.result, "succeeded");
  const upSeconds = secondsSince(t0);
  const r = await t.stack.refresh({ onEvent: d.onEvent });
  assert.equal(r.summary.result, "succeeded");
  const planned: string[] = [];
  const p = await t.stack.preview({
    onEvent: (e) => {
      d.onEvent(e);
      const m = e.resourcePreEvent?.metadata;
      if (m && m.op !== "same") planned.push(`${m.op} ${m.urn.split("::").pop()}`);
    },
  });
  if (planned.length) {
    const state = await t.stack.exportStack();
    const named = planned.map((x) => x.split(" ")[1]);
    const props = state.deployment.resources.filter((r: { urn: string }) => named.includes(r.urn.split("::").pop()!)).map((r: { outputs: unknown; inputs: unknown }) => JSON.stringify({ outputs: r.outputs, inputs: r.inputs }));
    process.stderr.write(`faults: resources still planned after up + refresh:\n${props.join("\n")}\n`);
  }
  assert.deepEqual(changes(p.changeSummary), {}, `preview after up + refresh still plans changes: ${planned.join(", ")}`);
  return { upSeconds };
}

/** A random file of `bytes` in `dir`, written in 8 MiB chunks (fast enough for 512 MiB). */
export function randomFile(file: string, bytes: number): string {
  const fd = fs.openSync(file, "w");
  try {
    const chunk = 8 << 20;
    for (let done = 0; done < bytes; done += chunk) {
      fs.writeSync(fd, randomBytes(Math.min(chunk, bytes - done)));
    }
  } finally {
    fs.closeSync(fd);
  }
  return path.resolve(file);
}

/** An operation run against a fault already in place: bounded by `settleMs` like runWithFault. */
export function runBounded(op: (onEvent: (e: EngineEvent) => void) => Promise<unknown>, settleMs: number): Promise<FaultRun> {
  return runWithFault(op, () => Promise.resolve(), () => undefined, settleMs);
}

/** A TCP port on 127.0.0.1 nobody listens on right now (bound once by the kernel, then closed). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
