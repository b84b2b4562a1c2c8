import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { LocalWorkspace, type ConfigMap, type PulumiFn, type Stack, type UpOptions, type UpResult } from "@pulumi/pulumi/automation";
import { repoRoot, type LabInfo } from "./lab";

/** The repository root (this file runs from dist/test/helpers). */
const e2eRoot = path.join(repoRoot, ".e2e");
export const passphrase = "e2e-test-passphrase";

/**
 * Stacks live under .e2e/, whose node_modules links the package by name: the
 * dynamic-provider process resolves `require("pulumi-gluster-libvirt/provider")`
 * from its working directory exactly as it would in a user's project, and finds
 * `@pulumi/pulumi` (for the shim) in the repository's node_modules above.
 */
function ensureE2eRoot(): void {
  const link = path.join(e2eRoot, "node_modules", "pulumi-gluster-libvirt");
  fs.mkdirSync(path.dirname(link), { recursive: true });
  try {
    if (fs.realpathSync(link) === repoRoot) return;
    fs.rmSync(link, { force: true });
  } catch {
    // missing link: created below
  }
  fs.symlinkSync(repoRoot, link, "dir");
}

export interface TestStack {
  stack: Stack;
  workDir: string;
  /** The file:// backend's directory (state files live here). */
  backendDir: string;
  /** Destroys what is left and removes the stack's files. */
  cleanup(): Promise<void>;
}

/** A fresh stack with a file:// backend, running `program` inline through the real CLI. */
export async function newStack(name: string, program: PulumiFn, config: ConfigMap = {}): Promise<TestStack> {
  ensureE2eRoot();
  const workDir = path.join(e2eRoot, `${name}-${randomBytes(4).toString("hex")}`);
  const backendDir = path.join(workDir, "state");
  fs.mkdirSync(backendDir, { recursive: true });
  const projectName = `gl-e2e-${name}`;
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName: "test", projectName, program },
    {
      workDir,
      projectSettings: { name: projectName, runtime: "nodejs", backend: { url: `file://${backendDir}` } },
      envVars: { PULUMI_CONFIG_PASSPHRASE: passphrase, PULUMI_SKIP_UPDATE_CHECK: "true" },
    },
  );
  await stack.setAllConfig(config);
  return {
    stack,
    workDir,
    backendDir,
    async cleanup() {
      try {
        await stack.destroy();
      } finally {
        fs.rmSync(workDir, { recursive: true, force: true });
      }
    },
  };
}

/** Every file under `dir`, concatenated: for greps over a backend's state. */
export function readTree(dir: string): string {
  let out = "";
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out += fs.readFileSync(path.join(entry.parentPath, entry.name), "utf8");
  }
  return out;
}

/**
 * `pulumi stack export` as a user runs it (the Automation API's exportStack adds
 * --show-secrets, which decrypts): secrets must come out encrypted here.
 */
export function exportStackRaw(t: TestStack): string {
  return execFileSync("pulumi", ["stack", "export", "--stack", "test", "--cwd", t.workDir], {
    encoding: "utf8",
    env: { ...process.env, PULUMI_CONFIG_PASSPHRASE: passphrase },
  });
}

/** Stack config that points the provider's default credentials at the lab. */
export function labCredentials(lab: LabInfo): ConfigMap {
  return {
    "gluster-libvirt:user": { value: lab.ssh.user },
    "gluster-libvirt:port": { value: String(lab.ssh.port) },
    "gluster-libvirt:privateKeyPath": { value: lab.ssh.privateKeyPath },
    "gluster-libvirt:knownHostsFile": { value: lab.ssh.knownHostsFile },
  };
}

/** An engine change summary without the unchanged count: `{ update: 1 }`, `{}` for none. A missing summary is an error, not "no changes". */
export function changes(summary: Record<string, number | undefined> | undefined): Record<string, number> {
  assert.ok(summary, "the engine reported no change summary");
  return Object.fromEntries(Object.entries(summary).filter(([op, n]) => op !== "same" && n)) as Record<string, number>;
}

/**
 * `pulumi up`, which must succeed and leave the stack converged, as terraform-plugin-testing
 * checks after every apply: then `pulumi refresh --yes` and `pulumi preview
 * --expect-no-changes` (with the diff), failing with the preview's output when it still plans
 * a change. Returns the up's result. `opts` go to the up alone.
 */
export async function upConverged(t: TestStack, opts: UpOptions = {}): Promise<UpResult> {
  const up = await t.stack.up(opts);
  await t.stack.refresh();
  await t.stack.preview({ expectNoChanges: true, diff: true }).catch((e: unknown) => {
    assert.fail(`not converged: after up and refresh, \`pulumi preview --expect-no-changes\` failed:\n${String((e as Error)?.message ?? e)}`);
  });
  return up;
}
