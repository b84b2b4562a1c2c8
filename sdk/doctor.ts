/**
 * `gluster-libvirt doctor`: the command line around provider/doctor.ts. What to check comes
 * from flags and/or a Pulumi stack directory: its `gluster-libvirt:*` config (the same
 * connection defaults the resources read) and, once it has been deployed, the hosts and
 * volumes its resources use. Parsing is pure (unit-tested); the provider is loaded only
 * when the doctor runs.
 */
import { spawnSync } from "node:child_process";
import type { DoctorPlan, DoctorResult } from "../provider/doctor";

export const DOCTOR_USAGE = `usage: gluster-libvirt doctor [options]

Checks what the resources need, per hypervisor and per Gluster volume, and prints one line
per check (ok / warning / FAILURE, with the fix). Exit status 1 when a check fails.

  --host HOST            a hypervisor (repeat for several)
  --volume NAME          a Gluster volume (repeat for several)
  --gluster-host HOST    a server of the volume's trusted storage pool (the gluster CLI runs
                         there as root: through sudo -n unless the login is root)
  --gluster-server HOST  without --gluster-host: a Gluster server the hypervisors must reach
  --port N, --user NAME, --key PATH (-i PATH), --known-hosts FILE, --host-key SHA256:…,
  --host-key-policy strict|accept-new|insecure, --proxy-jump SPEC, --sudo, --libvirt-uri URI,
  --connect-timeout SECONDS
                         connection settings for every host (as gluster-libvirt:* stack config)
  --gluster-port N, --gluster-user NAME, --gluster-sudo, --no-gluster-sudo
                         settings of the Gluster server's connection that differ
  --stack-dir DIR        a Pulumi project directory: its stack's gluster-libvirt:* config are the
                         defaults, and the hosts and volumes its resources use are checked
                         (\`pulumi config\` and \`pulumi stack export\` there, secrets included)
  --stack NAME           the stack in --stack-dir (default: the selected one)
  --json                 one JSON document instead of lines`;

export interface DoctorArgs {
  hosts: string[];
  volumes: string[];
  glusterHost?: string;
  glusterServers: string[];
  /** connection defaults by stack-config key (`port`, `user`, `privateKeyPath`, …) */
  defaults: Record<string, unknown>;
  /** what differs for the Gluster server's connection */
  gluster: { port?: number; user?: string; sudo?: boolean };
  stackDir?: string;
  stack?: string;
  json: boolean;
}

/** Flags that set one connection default: flag → stack-config key. */
const DEFAULT_FLAGS: Readonly<Record<string, string>> = {
  "--port": "port",
  "--user": "user",
  "--key": "privateKeyPath",
  "--identity": "privateKeyPath",
  "-i": "privateKeyPath",
  "--known-hosts": "knownHostsFile",
  "--host-key": "hostKey",
  "--host-key-policy": "hostKeyPolicy",
  "--proxy-jump": "proxyJump",
  "--libvirt-uri": "libvirtUri",
};

export class UsageError extends Error {}

function integer(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag}: expected a number, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** argv after `doctor` → what to check. Throws UsageError naming the flag. */
export function parseDoctorArgs(argv: readonly string[]): DoctorArgs {
  const out: DoctorArgs = { hosts: [], volumes: [], glusterServers: [], defaults: {}, gluster: {}, json: false };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let inline: string | undefined;
    const eq = flag.indexOf("=");
    if (flag.startsWith("--") && eq > 0) [flag, inline] = [flag.slice(0, eq), flag.slice(eq + 1)];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || (inline === undefined && v.startsWith("-"))) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    const key = DEFAULT_FLAGS[flag];
    if (key) out.defaults[key] = key === "port" ? integer(flag, value()) : value();
    else if (flag === "--host") out.hosts.push(value());
    else if (flag === "--volume") out.volumes.push(value());
    else if (flag === "--gluster-host") out.glusterHost = value();
    else if (flag === "--gluster-server") out.glusterServers.push(value());
    else if (flag === "--gluster-port") out.gluster.port = integer(flag, value());
    else if (flag === "--gluster-user") out.gluster.user = value();
    else if (flag === "--gluster-sudo") out.gluster.sudo = true;
    else if (flag === "--no-gluster-sudo") out.gluster.sudo = false;
    else if (flag === "--sudo") out.defaults.sudo = true;
    else if (flag === "--connect-timeout") out.defaults.timeouts = { connect: integer(flag, value()) };
    else if (flag === "--stack-dir") out.stackDir = value();
    else if (flag === "--stack") out.stack = value();
    else if (flag === "--json") out.json = true;
    else throw new UsageError(`unknown option ${JSON.stringify(argv[i])}`);
  }
  if (out.stack !== undefined && out.stackDir === undefined) throw new UsageError("--stack needs --stack-dir");
  if (!out.hosts.length && !out.volumes.length && out.stackDir === undefined) throw new UsageError("name what to check: --host, --volume (with --gluster-host) or --stack-dir");
  if (out.volumes.length && out.glusterHost === undefined && !out.glusterServers.length && out.stackDir === undefined) {
    throw new UsageError("--volume needs --gluster-host (a server of its pool), or --gluster-server for reachability only");
  }
  return out;
}

/** `pulumi config --json --show-secrets`: `{ "ns:key": { value, secret } }`. */
export type StackConfig = Record<string, { value?: unknown }>;

/** The part of `pulumi stack export` read here. */
export interface Deployment {
  deployment?: { resources?: { type?: string; outputs?: Record<string, unknown> }[] };
}

const NAMESPACE = "gluster-libvirt";
const TYPE_PREFIX = `pulumi-nodejs:dynamic/${NAMESPACE}:`;

/** A value of `stack export --show-secrets`: secrets are `{ "4dabf18193072939515e22adb298388d": …, plaintext: "<json>" }`. */
function revealed(value: unknown): unknown {
  if (value && typeof value === "object" && "plaintext" in value && typeof (value as { plaintext: unknown }).plaintext === "string") {
    try {
      return JSON.parse((value as { plaintext: string }).plaintext);
    } catch {
      return undefined;
    }
  }
  return value;
}

/** What a deployed stack uses: its hypervisors' connections, its GlusterVolume's connection, its volumes. */
export function targetsOfDeployment(d: Deployment): { hypervisors: unknown[]; gluster?: unknown; volumes: string[] } {
  const hypervisors = new Map<string, unknown>();
  const volumes = new Set<string>();
  let gluster: unknown;
  for (const r of d.deployment?.resources ?? []) {
    if (!r.type?.startsWith(TYPE_PREFIX) || !r.outputs) continue;
    const kind = r.type.slice(TYPE_PREFIX.length);
    const connection = revealed(r.outputs.connection);
    if (!connection || typeof connection !== "object" || typeof (connection as { host?: unknown }).host !== "string") continue;
    if (kind === "GlusterVolume") {
      gluster ??= connection;
      if (typeof r.outputs.name === "string") volumes.add(r.outputs.name);
      continue;
    }
    // one check per hypervisor endpoint: the first resource's connection of each host
    const host = (connection as { host: string }).host;
    if (!hypervisors.has(host)) hypervisors.set(host, connection);
    if (kind === "GlusterPool" && typeof r.outputs.volume === "string") volumes.add(r.outputs.volume);
  }
  return { hypervisors: [...hypervisors.values()], gluster, volumes: [...volumes] };
}

/** The `gluster-libvirt:*` keys of a stack's config, as connection defaults. */
export function defaultsOfStackConfig(config: StackConfig): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(config)
      .filter(([k, v]) => k.startsWith(`${NAMESPACE}:`) && v.value !== undefined)
      .map(([k, v]) => [k.slice(NAMESPACE.length + 1), v.value]),
  );
}

/** Flags and stack together → the connection defaults and the plan (flags win; hosts and volumes add up). */
export function doctorPlan(args: DoctorArgs, stack?: { config: StackConfig; deployment: Deployment }): { defaults: Record<string, unknown>; plan: DoctorPlan } {
  const deployed = stack ? targetsOfDeployment(stack.deployment) : { hypervisors: [], volumes: [] as string[], gluster: undefined };
  const defaults = { ...(stack ? defaultsOfStackConfig(stack.config) : {}), ...args.defaults };
  const named = new Set(deployed.hypervisors.map((c) => (c as { host: string }).host));
  const hypervisors = [...deployed.hypervisors, ...args.hosts.filter((h) => !named.has(h)).map((host) => ({ host }))];
  const glusterOwn = Object.fromEntries(Object.entries(args.gluster).filter(([k, v]) => v !== undefined && k !== "sudo"));
  let gluster: unknown = args.glusterHost !== undefined ? { host: args.glusterHost, ...glusterOwn } : deployed.gluster;
  if (gluster !== undefined) {
    const user = (gluster as { user?: string }).user ?? (defaults.user as string | undefined);
    // the gluster CLI needs root: sudo unless told otherwise or the login is root
    const sudo = args.gluster.sudo ?? (gluster as { sudo?: boolean }).sudo ?? user !== "root";
    gluster = { ...(gluster as object), sudo };
  }
  return {
    defaults,
    plan: { hypervisors, gluster, volumes: [...new Set([...deployed.volumes, ...args.volumes])], glusterServers: args.glusterServers },
  };
}

/** `pulumi <args> --cwd DIR [--stack S]` → parsed JSON stdout. */
function pulumiJson(dir: string, stack: string | undefined, args: string[]): unknown {
  const r = spawnSync("pulumi", [...args, "--cwd", dir, ...(stack ? ["--stack", stack] : []), "--non-interactive"], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw new UsageError(`--stack-dir: cannot run pulumi: ${r.error.message}`);
  if (r.status !== 0) throw new UsageError(`--stack-dir: \`pulumi ${args.join(" ")}\` in ${dir} failed: ${(r.stderr || r.stdout).trim()}`);
  return JSON.parse(r.stdout || "{}");
}

function readStack(dir: string, stack: string | undefined): { config: StackConfig; deployment: Deployment } {
  return {
    config: pulumiJson(dir, stack, ["config", "--json", "--show-secrets"]) as StackConfig,
    deployment: pulumiJson(dir, stack, ["stack", "export", "--show-secrets"]) as Deployment,
  };
}

export function summarize(results: readonly DoctorResult[]): { ok: number; warning: number; failure: number } {
  const count = (s: DoctorResult["status"]) => results.filter((r) => r.status === s).length;
  return { ok: count("ok"), warning: count("warning"), failure: count("failure") };
}

/** Runs the doctor; the exit status: 0 (no failure), 1 (a check failed), 2 (bad usage). */
export async function doctorMain(argv: readonly string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  let args: DoctorArgs;
  let setup: ReturnType<typeof doctorPlan>;
  // loaded here: the provider (ssh2, zod) only when the doctor runs
  const doctor = require("../provider/doctor") as typeof import("../provider/doctor");
  const settings = require("../provider/ssh/settings") as typeof import("../provider/ssh/settings");
  const host = require("../provider/host") as typeof import("../provider/host");
  try {
    args = parseDoctorArgs(argv);
    setup = doctorPlan(args, args.stackDir === undefined ? undefined : readStack(args.stackDir, args.stack));
    settings.setConnectionDefaults(setup.defaults);
  } catch (e) {
    err(`gluster-libvirt doctor: ${(e as Error).message}`);
    if (e instanceof UsageError) err(DOCTOR_USAGE);
    return 2;
  }
  if (!setup.plan.hypervisors.length && setup.plan.gluster === undefined) {
    err("gluster-libvirt doctor: nothing to check (no --host, no --gluster-host, and the stack has no resources yet)");
    return 2;
  }
  try {
    const results = await doctor.runDoctor(setup.plan, args.json ? undefined : (r) => out(doctor.formatResult(r)));
    const summary = summarize(results);
    if (args.json) out(JSON.stringify({ results, summary }, null, 2));
    else out(`${summary.ok} ok, ${summary.warning} warning(s), ${summary.failure} failure(s)`);
    return summary.failure ? 1 : 0;
  } finally {
    host.closeAllHosts();
  }
}
