/**
 * Benchmark: what the preview's predictions (issue 15 §3) cost. A stack of N new
 * ImageVolumes in one existing pool, previewed through the real Pulumi CLI with the
 * checks (default) and without (`gluster-libvirt:previewChecks false`), alternating, and
 * the SSH connections each preview opened, counted by a proxy in front of the lab's sshd.
 * Usage (as root, lab up): node dist/scripts/bench-preview.js [N…=1,10,30] [rounds=2]
 * `… bench-preview.js pool [rounds=2]`: one new GlusterPool instead, and the doctor's
 * checks a new pool's preview adds (predictPoolStart), timed in-process on a warm
 * connection with the lab's servers, ::1 (refused) and 192.0.2.99 (no answer).
 * Timing belongs here, never in tests. Results: docs/benchmarks.md.
 */
import * as pulumi from "@pulumi/pulumi";
import { closeAllHosts, getHost } from "../provider/host";
import { predictPoolStart } from "../provider/pool";
import { GlusterPool, ImageVolume } from "../sdk";
import { startCountingProxy, type CountingProxy } from "../test/helpers/countingProxy";
import { getLab, type LabInfo } from "../test/helpers/lab";
import { createOwnPool } from "../test/helpers/ownPool";
import { uniqueName } from "../test/helpers/local";
import { labCredentials, newStack, type TestStack } from "../test/helpers/stack";

const secs = (start: bigint) => (Number(process.hrtime.bigint() - start) / 1e9).toFixed(2);

/** `rounds` previews of `t` with the checks and without, alternating: one table row each, led by `label`. */
async function previewRounds(t: TestStack, proxy: CountingProxy, rounds: number, label: string): Promise<void> {
  const rows: Record<string, { secs: string[]; connections: number[] }> = { on: { secs: [], connections: [] }, off: { secs: [], connections: [] } };
  for (let r = 0; r < rounds; r++) {
    for (const mode of ["on", "off"] as const) {
      await t.stack.setConfig("gluster-libvirt:previewChecks", { value: mode === "on" ? "true" : "false" });
      const [before, start] = [proxy.connections, process.hrtime.bigint()];
      await t.stack.preview();
      rows[mode].secs.push(secs(start));
      rows[mode].connections.push(proxy.connections - before);
    }
  }
  for (const mode of ["on", "off"] as const) console.log(`| ${label} | ${mode} | ${rows[mode].secs.join(", ")} | ${rows[mode].connections.join(", ")} |`);
}

/** A new pool: its preview through the CLI with and without the checks, then the doctor's part alone. */
async function benchPool(lab: LabInfo, rounds: number): Promise<void> {
  const proxy = await startCountingProxy(lab);
  const name = uniqueName("bench-preview-pool");
  const t = await newStack("bench-preview-pool", async () => {
    const server = new pulumi.Config().get("server");
    new GlusterPool("pool", { connection: { host: "127.0.0.1" }, name, volume: lab.gluster.volume, servers: server ? [server] : lab.gluster.servers });
  }, { ...labCredentials(lab), "gluster-libvirt:port": { value: String(proxy.port) }, "gluster-libvirt:knownHostsFile": { value: proxy.knownHostsFile } });
  try {
    console.log("| 1 new GlusterPool | checks | preview (s), each round | SSH connections |");
    console.log("|---|---|---|---|");
    await previewRounds(t, proxy, rounds, "1");
    // The same pool with a server the hypervisor cannot reach: the failing preview, and what it says.
    await t.stack.setConfig("gluster-libvirt:previewChecks", { value: "true" });
    await t.stack.setConfig("server", { value: "::1" });
    const start = process.hrtime.bigint();
    const said = await t.stack.preview().then(() => "(passed)", (err: Error) => err.message);
    console.log(`| 1, server ::1 | on | ${secs(start)} (fails) | |\n\n${said.split("\n").filter((l) => /error:|doctor check|could not start/.test(l)).join("\n")}`);
  } finally {
    await t.cleanup();
    proxy.close();
  }
  const host = getHost({ host: "127.0.0.1", port: lab.ssh.port, user: lab.ssh.user, privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile: lab.ssh.knownHostsFile });
  await host.exec(["true"]); // the connection is the preview's already
  console.log("\n| predictPoolStart (netfs), servers | s, each round | result |\n|---|---|---|");
  for (const servers of [lab.gluster.servers, ["::1"], ["192.0.2.99"]]) {
    const times: string[] = [];
    let result = "passes";
    for (let r = 0; r < rounds; r++) {
      const start = process.hrtime.bigint();
      result = await predictPoolStart(host, { name, type: "netfs", volume: lab.gluster.volume, servers }).then(() => "passes", (err: Error) => `fails: ${err.message.split("\n")[1]?.trim().slice(0, 60)}…`);
      times.push(secs(start));
    }
    console.log(`| ${servers.join(", ")} | ${times.join(", ")} | ${result} |`);
  }
  closeAllHosts();
}

async function main(): Promise<void> {
  const lab = await getLab();
  if (process.argv[2] === "pool") return benchPool(lab, Number(process.argv[3] ?? 2));
  const sizes = (process.argv[2] ?? "1,10,30").split(",").map(Number);
  const rounds = Number(process.argv[3] ?? 2);
  const pool = await createOwnPool(lab, "bench-preview", { by: "root" });
  const proxy = await startCountingProxy(lab);
  try {
    console.log("| N new volumes | checks | preview (s), each round | SSH connections |");
    console.log("|---|---|---|---|");
    for (const n of sizes) {
      const t = await newStack(`bench-preview-${n}`, async () => {
        for (let i = 0; i < n; i++) new ImageVolume(`v${i}`, { connection: { host: "127.0.0.1" }, pool: pool.name, name: `v${i}.img`, capacity: "1MiB" });
      }, { ...labCredentials(lab), "gluster-libvirt:port": { value: String(proxy.port) }, "gluster-libvirt:knownHostsFile": { value: proxy.knownHostsFile } });
      try {
        await previewRounds(t, proxy, rounds, String(n));
      } finally {
        await t.cleanup();
      }
    }
  } finally {
    proxy.close();
    await pool.remove();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
