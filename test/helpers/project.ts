/**
 * Examples run as a user runs them: the package packed into a tarball, an example
 * directory with `npm install`, and the real `pulumi` CLI (language host and all) in it,
 * with a file:// backend. Copies live in a temp dir so nothing lands in the repository.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./lab";

const execFileAsync = promisify(execFile);
export const passphrase = "e2e-example-passphrase";

let packed: Promise<string> | undefined;

/** `scripts/pack.sh` once per process (needs a fresh `npm run build`): the tarball's absolute path. */
export function packPackage(): Promise<string> {
  packed ??= execFileAsync("bash", [path.join(repoRoot, "scripts", "pack.sh")], { encoding: "utf8" }).then(({ stdout }) => stdout.trim());
  return packed;
}

export interface PulumiResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What the engine's "Resources:" summary says, without the unchanged count: `{ create: 1 }`, `{}` for none. */
export function summaryCounts(output: string): Record<string, number> {
  const at = output.lastIndexOf("Resources:");
  if (at < 0) throw new Error(`no "Resources:" summary in the output:\n${output}`);
  const block = output.slice(at);
  const counts: Record<string, number> = {};
  for (const m of block.matchAll(/^\s*[-+~]*\s*(\d+) (?:to )?(create|update|replace|delete)d?\b/gm)) {
    counts[m[2]] = (counts[m[2]] ?? 0) + Number(m[1]);
  }
  return counts;
}

export interface PulumiOptions {
  /** default true: a non-zero exit throws */
  check?: boolean;
  timeoutMs?: number;
  /**
   * Run the TypeScript program without type-checking it (`PULUMI_NODEJS_TRANSPILE_ONLY`),
   * for runs after one that checked it: saves seconds of CPU per run.
   */
  transpileOnly?: boolean;
}

export interface ExampleProject {
  /** the copy of the example */
  dir: string;
  stack: string;
  /** runs `pulumi <args>` in the copy, non-interactive; throws on a non-zero exit unless `check: false` */
  pulumi(args: readonly string[], opts?: PulumiOptions): Promise<PulumiResult>;
  /**
   * `pulumi <upArgs>` (an up that must succeed), then `pulumi refresh --yes` and `pulumi preview
   * --expect-no-changes --diff`, which fails with its output unless the stack converged, as
   * terraform-plugin-testing checks after every apply. Returns the up's result; `opts` go to all three.
   */
  upConverged(upArgs: readonly string[], opts?: PulumiOptions): Promise<PulumiResult>;
  /** the stack's config file, Pulumi.<stack>.yaml */
  stackFile: string;
  remove(): void;
}

/**
 * A copy of examples/<name> in a temp dir, its `file:` dependency on the tarball rewritten
 * to an absolute path, `npm install`ed, with a fresh stack `e2e` on a file:// backend.
 */
export async function exampleProject(name: string): Promise<ExampleProject> {
  const tarball = await packPackage();
  const src = path.join(repoRoot, "examples", name);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `example-${name}-`));
  fs.cpSync(src, dir, {
    recursive: true,
    // what a user's checkout would not have: installed modules, state, other stacks' config
    filter: (from) => {
      const rel = path.relative(src, from);
      return !/^(node_modules|\.pulumi-state|package-lock\.json)(\/|$)/.test(rel) && !/^Pulumi\.[^/]+\.yaml$/.test(rel);
    },
  });
  const pkgFile = path.join(dir, "package.json");
  const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8"));
  pkg.dependencies["pulumi-gluster-libvirt"] = `file:${tarball}`;
  fs.writeFileSync(pkgFile, JSON.stringify(pkg, null, 2));
  await execFileAsync("npm", ["install", "--no-package-lock", "--no-audit", "--no-fund", "--prefer-offline", "--silent"], {
    cwd: dir,
    encoding: "utf8",
    timeout: 5 * 60_000,
  });

  const backend = path.join(dir, ".pulumi-state");
  fs.mkdirSync(backend);
  const env = {
    ...process.env,
    PULUMI_BACKEND_URL: `file://${backend}`,
    PULUMI_CONFIG_PASSPHRASE: passphrase,
    PULUMI_SKIP_UPDATE_CHECK: "true",
  };
  const stack = "e2e";
  const pulumi: ExampleProject["pulumi"] = (args, opts = {}) =>
    new Promise((resolve, reject) => {
      const child = spawn("pulumi", [...args, "--non-interactive", "--color", "never"], {
        cwd: dir,
        env: opts.transpileOnly ? { ...env, PULUMI_NODEJS_TRANSPILE_ONLY: "true" } : env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on("close", (status, signal) => {
        clearTimeout(timer);
        const code = status ?? (signal ? 128 : -1);
        if (code !== 0 && opts.check !== false) {
          reject(new Error(`pulumi ${args.join(" ")} (in ${dir}) exited ${code}${signal ? ` (${signal})` : ""}:\n${stdout}\n${stderr}`));
        } else {
          resolve({ code, stdout, stderr });
        }
      });
    });
  const upConverged: ExampleProject["upConverged"] = async (upArgs, opts = {}) => {
    const up = await pulumi(upArgs, { ...opts, check: true });
    await pulumi(["refresh", "--yes", "--skip-preview"], { ...opts, check: true });
    const preview = await pulumi(["preview", "--expect-no-changes", "--diff"], { ...opts, check: false });
    if (preview.code !== 0) {
      assert.fail(`not converged: after \`pulumi ${upArgs.join(" ")}\` and refresh, \`pulumi preview --expect-no-changes\` exited ${preview.code}:\n${preview.stdout}\n${preview.stderr}`);
    }
    return up;
  };
  await pulumi(["stack", "init", stack]);
  return {
    dir,
    stack,
    pulumi,
    upConverged,
    stackFile: path.join(dir, `Pulumi.${stack}.yaml`),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
