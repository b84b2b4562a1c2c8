/**
 * Benchmark: what the preview's predictions (issue 15 §3) cost. A stack of N new
 * ImageVolumes in one existing pool, previewed through the real Pulumi CLI with the
 * checks (default) and without (`gluster-libvirt:previewChecks false`), alternating, and
 * the SSH connections each preview opened, counted by a proxy in front of the lab's sshd.
 * Usage (as root, lab up): node dist/scripts/bench-preview.js [N…=1,10,30] [rounds=2]
 * Timing belongs here, never in tests. Results: docs/benchmarks.md.
 */
import { ImageVolume } from "../sdk";
import { startCountingProxy } from "../test/helpers/countingProxy";
import { getLab } from "../test/helpers/lab";
import { createOwnPool } from "../test/helpers/ownPool";
import { labCredentials, newStack } from "../test/helpers/stack";

async function main(): Promise<void> {
  const sizes = (process.argv[2] ?? "1,10,30").split(",").map(Number);
  const rounds = Number(process.argv[3] ?? 2);
  const lab = await getLab();
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
        const rows: Record<string, { secs: string[]; connections: number[] }> = { on: { secs: [], connections: [] }, off: { secs: [], connections: [] } };
        for (let r = 0; r < rounds; r++) {
          for (const mode of ["on", "off"] as const) {
            await t.stack.setConfig("gluster-libvirt:previewChecks", { value: mode === "on" ? "true" : "false" });
            const [before, start] = [proxy.connections, process.hrtime.bigint()];
            await t.stack.preview();
            rows[mode].secs.push((Number(process.hrtime.bigint() - start) / 1e9).toFixed(1));
            rows[mode].connections.push(proxy.connections - before);
          }
        }
        for (const mode of ["on", "off"] as const) console.log(`| ${n} | ${mode} | ${rows[mode].secs.join(", ")} | ${rows[mode].connections.join(", ")} |`);
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
