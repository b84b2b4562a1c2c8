/**
 * CPU time for the benchmarks, on a machine where the client and the lab's hypervisors
 * share the cores: what the benchmark's side spent, and what the rest of the machine did.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";

const TICK = 1 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }));

export interface CpuMark {
  client: number;
  busy: number;
}

/**
 * CPU seconds so far: `client`, of this process (where the Automation API runs an inline
 * program) and of its finished children (the Pulumi CLI with its provider processes, which
 * it waited for; Ansible); `busy`, of the whole machine (every core, /proc/stat: all but
 * idle and iowait).
 */
export function cpuSoFar(): CpuMark {
  const stat = fs.readFileSync("/proc/self/stat", "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number); // f[0] is field 3 (state)
  const [, ...ticks] = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).map(Number);
  const idle = ticks[3] + ticks[4];
  return { client: (f[11] + f[12] + f[13] + f[14]) * TICK, busy: (ticks.slice(0, 8).reduce((a, b) => a + b, 0) - idle) * TICK };
}

/** CPU seconds since `before`: the client's, and the rest of the machine's (the lab's sshd, virsh, libvirtd and Gluster, and whatever else ran meanwhile). */
export interface Cpu {
  client: number;
  other: number;
}

export function cpuSince(before: CpuMark): Cpu {
  const now = cpuSoFar();
  const client = now.client - before.client;
  return { client, other: Math.max(0, now.busy - before.busy - client) };
}
