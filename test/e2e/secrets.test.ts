import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { GlusterPool } from "../../sdk";
import { getLab, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, tryVirsh, uniqueName } from "../helpers/local";
import { exportStackRaw, labCredentials, newStack, readTree, type TestStack, upConverged } from "../helpers/stack";

let lab: LabInfo;
let volume: ReturnType<typeof createGlusterVolume>;
let key: string;
const stacks: TestStack[] = [];

before(async () => {
  lab = await getLab();
  volume = createGlusterVolume(lab, uniqueName("e2esecret").replace(/-/g, "_"));
  key = fs.readFileSync(lab.ssh.privateKeyPath, "utf8");
});
after(async () => {
  for (const s of stacks) await s.cleanup().catch(() => undefined);
  volume?.remove();
});

/** Pieces of the key that must never show: every base64 line of its body. */
function keyMaterial(): string[] {
  return key.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
}

function assertNoKey(where: string, text: string) {
  assert.doesNotMatch(text, /BEGIN [A-Z0-9 ]*PRIVATE KEY/, `${where} holds a private key header`);
  for (const line of keyMaterial()) assert.ok(!text.includes(line), `${where} holds private key material`);
}

/**
 * up + destroy, checking every place a credential could surface. `verbose` runs the
 * engine at -v=9 — only meaningful when no secret value crosses the engine (key
 * files, agent): Pulumi 3.260 itself prints the dynamic provider's decrypted
 * Configure inputs at -v=9 (docs/architecture.md, "Secrets").
 */
async function upAndInspect(
  name: string,
  program: () => Promise<Record<string, unknown>>,
  config: Record<string, { value: string; secret?: boolean }>,
  verbose = false,
): Promise<string> {
  // The lab's credentials, less the key: each test says how the key is given.
  const { "gluster-libvirt:privateKeyPath": _keyFile, ...credentials } = labCredentials(lab);
  const t = await newStack(name, program, { ...credentials, ...config });
  stacks.push(t);
  const logs = verbose ? { logVerbosity: 9, logToStdErr: true, debug: true } : {};
  let state = "";
  try {
    const up = await upConverged(t, logs);
    assert.equal(up.summary.result, "succeeded");
    assertNoKey("`pulumi up` output", up.stdout + up.stderr);
    const preview = await t.stack.preview({ diff: true, ...logs });
    assertNoKey("`pulumi preview --diff` output", preview.stdout + preview.stderr);
    state = exportStackRaw(t);
    assertNoKey("`pulumi stack export`", state);
    assertNoKey("the file:// backend", readTree(t.backendDir));
  } finally {
    const destroy = await t.stack.destroy(logs);
    assertNoKey("`pulumi destroy` output", destroy.stdout + destroy.stderr);
  }
  return state;
}

describe("credentials never reach state or logs", () => {
  test("a private key in secret stack config", async () => {
    const poolName = uniqueName("sec-cfg");
    await upAndInspect("secret-config", async () => {
      const pool = new GlusterPool("p", { connection: { host: lab.ssh.host }, name: poolName, volume: volume.name, servers: lab.gluster.servers });
      return { uuid: pool.uuid };
    }, { "gluster-libvirt:privateKey": { value: key, secret: true } });
    assert.notEqual(tryVirsh("pool-info", poolName).code, 0, "destroyed");
  });

  test("a private key given inline in `connection` is stored only encrypted", async () => {
    const poolName = uniqueName("sec-inline");
    const state = await upAndInspect("secret-inline", async () => {
      const pool = new GlusterPool("p", {
        connection: { host: lab.ssh.host, privateKey: key },
        name: poolName,
        volume: volume.name,
        servers: lab.gluster.servers,
      });
      return { connection: pool.connection };
    }, {});
    assert.match(state, /4dabf18193072939515e22adb298388d/, "the connection is kept as a Pulumi secret");
  });

  test("-v=9 engine logs hold no key material when the key comes from a file", async () => {
    const poolName = uniqueName("sec-file");
    await upAndInspect("secret-file", async () => {
      const pool = new GlusterPool("p", { connection: { host: lab.ssh.host }, name: poolName, volume: volume.name, servers: lab.gluster.servers });
      return { uuid: pool.uuid };
    }, { "gluster-libvirt:privateKeyPath": { value: lab.ssh.privateKeyPath } }, true);
    assert.notEqual(tryVirsh("pool-info", poolName).code, 0, "destroyed");
  });
});
