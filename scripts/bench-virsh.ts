/**
 * Benchmark: N read-only virsh commands on the lab host, three ways, in one run.
 *   (a) our runner: one shared ssh2 connection + persistent virsh session
 *   (b) one OpenSSH `ssh` process per command (what a naive tool does)
 *   (c) all commands in one `virsh` invocation over one `ssh` channel (the floor)
 * Usage (as root, lab up): node dist/scripts/bench-virsh.js [N=100]
 * Timing belongs here, never in tests. Results: docs/benchmarks.md.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { closeAllHosts, getHost, getConnectionStats } from "../provider/host";
import { remoteCommandLine, virshSessionLine } from "../provider/ssh/quote";

interface Lab {
  ssh: { host: string; port: number; user: string; privateKeyPath: string; knownHostsFile: string };
  domains: { running: string; stopped: string };
  libvirtUri: string;
}

const lab: Lab = JSON.parse(execFileSync("bash", [`${__dirname}/../../scripts/lab.sh`, "status"], { encoding: "utf8" }));
const n = Number(process.argv[2] ?? 100);
const { running, stopped } = lab.domains;
// Outputs are compared between (a) and (b), so nothing whose output changes by itself (CPU time of a running domain).
const mix = [["dominfo", stopped], ["dumpxml", running], ["domstate", stopped], ["list", "--all", "--name"], ["domblklist", running], ["dumpxml", "--inactive", stopped]];
const commands = Array.from({ length: n }, (_, i) => mix[i % mix.length]);

const sshArgs = ["-p", String(lab.ssh.port), "-i", lab.ssh.privateKeyPath, "-o", `UserKnownHostsFile=${lab.ssh.knownHostsFile}`,
  "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none", `${lab.ssh.user}@${lab.ssh.host}`];
const virshArgv = (args: string[]) => ["virsh", "-q", "-c", lab.libvirtUri, ...args];

function ssh(remote: string, input?: string): string {
  const r = spawnSync("ssh", [...sshArgs, remote], { input, encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`ssh failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

async function main(): Promise<void> {
  const results: Array<{ name: string; ms: number; handshakes: number }> = [];

  closeAllHosts();
  const before = getConnectionStats().handshakes;
  let t = performance.now();
  const host = getHost({ host: lab.ssh.host, port: lab.ssh.port, user: lab.ssh.user, privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: lab.ssh.knownHostsFile, agent: "" });
  const ours: string[] = [];
  for (const c of commands) ours.push(await host.virsh(c));
  results.push({ name: "(a) runner: shared ssh2 connection + persistent virsh", ms: performance.now() - t, handshakes: getConnectionStats().handshakes - before });
  closeAllHosts();

  t = performance.now();
  const naive = commands.map((c) => ssh(remoteCommandLine(virshArgv(c), { sudo: false })));
  results.push({ name: "(b) one OpenSSH ssh process per command", ms: performance.now() - t, handshakes: n });

  t = performance.now();
  ssh(remoteCommandLine(virshArgv([]), { sudo: false }), commands.map((c) => virshSessionLine(c)).join("\n") + "\n");
  results.push({ name: "(c) one virsh, all commands on one channel", ms: performance.now() - t, handshakes: 1 });

  const mismatches = ours.filter((out, i) => out !== naive[i]).length;
  const [a, b, c] = results;
  console.log(`N=${n} read-only virsh commands (${[...new Set(mix.map((m) => m[0]))].join(", ")}) on ${lab.ssh.user}@${lab.ssh.host}:${lab.ssh.port}, ${lab.libvirtUri}`);
  for (const r of results) console.log(`${r.name.padEnd(46)} ${r.ms.toFixed(0).padStart(7)} ms  ${String(r.handshakes).padStart(3)} SSH handshake(s)  ${(r.ms / n).toFixed(2)} ms/command`);
  console.log(`(b)/(a) = ${(b.ms / a.ms).toFixed(1)}x faster than naive (goal >= 20x)`);
  console.log(`(a)/(c) = ${(a.ms / c.ms).toFixed(2)}x the floor (goal <= 2x)`);
  console.log(`outputs of (a) identical to (b): ${mismatches === 0 ? "yes" : `NO, ${mismatches} differ`}`);
  if (mismatches) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  closeAllHosts();
  process.exitCode = 1;
});
