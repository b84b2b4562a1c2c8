/**
 * Benchmark: whole Pulumi runs of many resources, in one run, for each N given:
 *   floor    N dynamic resources that do nothing (same CLI, same engine, same
 *            dynamic-provider process): what the engine itself costs
 *   ours     a GlusterPool + N empty 1 MiB ImageVolumes on one host (a Gluster volume of
 *            the benchmark's own): create, no-op preview, refresh, no-op up, destroy
 *   ansible  the same layout with Debian's ansible: community.libvirt.virt_pool for the
 *            pool, volumes through `command: virsh vol-create-as` (`creates:` makes it
 *            idempotent), OpenSSH with ControlPersist and pipelining; preview is `--check`
 *   hosts    (with `--hosts H`, on a lab of H hypervisors) one stack of H pools + H x N
 *            volumes, N on each host: create, preview, refresh, up, destroy
 * SSH connections are counted from the lab sshds' logs: the benchmark logs in with a key
 * of its own (added to the lab's authorized_keys for the run, under the lab lock), so
 * other people's tests on the shared lab do not count. Each step also prints the CPU
 * seconds it took: the Pulumi processes' (`client`) + the rest of the machine's (the lab's
 * daemons, which share the cores): a step whose two add up to cores x seconds was CPU-bound.
 * Usage (lab up, built): node dist/scripts/bench-scale.js [N…=100 500] [--on K] [--hosts H] [--floor-pad B] [--sudo] [--gluster-defaults] [--no-floor] [--no-ours] [--no-ansible]
 * (`--on K`: the lab hypervisor for ours and Ansible, default the last one. `--sudo`: ours
 * runs every remote command through `sudo -n`, as a user whose login is not root would
 * configure it, so it reads the pool's files that libvirt made 0600 root. Ours runs on a
 * Gluster volume with GlusterVolume.sharedPools' options; `--gluster-defaults`: without.)
 * Timing belongs here, never in tests. Results: docs/benchmarks.md.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { SHARED_POOL_OPTIONS } from "../provider/gluster/options";
import { cpuSince, cpuSoFar, type Cpu } from "./cpuTime";
import { GlusterPool, ImageVolume } from "../sdk";
import { getLab, type LabHypervisor, type LabInfo } from "../test/helpers/lab";
import { createGlusterVolume, uniqueName } from "../test/helpers/local";
import { runOnHypervisor } from "../test/helpers/hypervisors";
import { newStack, type TestStack } from "../test/helpers/stack";

const args = process.argv.slice(2);
const flag = (f: string) => args.includes(f);
const hostsArg = args.indexOf("--hosts");
const hostCount = hostsArg >= 0 ? Number(args[hostsArg + 1]) : 0;
const onArg = args.indexOf("--on");
const sizes = args.filter((a, i) => /^\d+$/.test(a) && !["--hosts", "--on", "--floor-pad"].includes(args[i - 1])).map(Number);
const Ns = sizes.length ? sizes : [100, 500];
const PREFIX = "x16b";
const sudo = flag("--sudo");

interface Row {
  what: string;
  n: number;
  step: string;
  seconds: number;
  load: number;
  ssh?: number;
  cpu: Cpu;
}
const rows: Row[] = [];

function load1(): number {
  return Number(os.loadavg()[0].toFixed(2));
}

// ---------------------------------------------------------------------------------------
// SSH connections, from the lab sshds' logs, by the benchmark's own key

let benchKey = "";
let benchFingerprint = "";
let sshLogs: string[] = [];

function setUpKey(lab: LabInfo, dir: string): void {
  benchKey = path.join(dir, "id_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${PREFIX}-bench-${process.pid}`, "-f", benchKey]);
  benchFingerprint = execFileSync("ssh-keygen", ["-l", "-f", `${benchKey}.pub`], { encoding: "utf8" }).split(" ")[1];
  ensureKey(lab);
  sshLogs = [path.join(path.dirname(lab.ssh.privateKeyPath), "sshd.log")];
  for (const h of lab.hypervisors.slice(1)) sshLogs.push(path.join(path.dirname(h.ssh.knownHostsFile), "sshd.log"));
}

/** The benchmark's key in the lab's authorized_keys (again: `lab up` rewrites the file). */
function ensureKey(lab: LabInfo): void {
  const pub = fs.readFileSync(`${benchKey}.pub`, "utf8").trim();
  const authorized = path.join(path.dirname(lab.ssh.privateKeyPath), "authorized_keys");
  execFileSync("flock", ["/tmp/gl-lab.lock", "sh", "-c", 'grep -qxF -- "$1" "$2" || printf "%s\\n" "$1" >> "$2"', "sh", pub, authorized]);
}

function dropKey(lab: LabInfo): void {
  if (!benchKey) return;
  const authorized = path.join(path.dirname(lab.ssh.privateKeyPath), "authorized_keys");
  const marker = `${PREFIX}-bench-${process.pid}`;
  execFileSync("flock", ["/tmp/gl-lab.lock", "sh", "-c", 'grep -v -- " $1$" "$2" > "$2.tmp"; cat "$2.tmp" > "$2"; rm -f "$2.tmp"', "sh", marker, authorized]);
}

/** Logins with the benchmark's key so far, per sshd log. */
function logins(): number[] {
  return sshLogs.map((f) => {
    try {
      return fs.readFileSync(f, "utf8").split("\n").filter((l) => l.startsWith("Accepted publickey") && l.includes(benchFingerprint)).length;
    } catch {
      return 0;
    }
  });
}

let theLab: LabInfo;

async function timed(what: string, n: number, step: string, run: () => Promise<unknown> | unknown): Promise<void> {
  ensureKey(theLab);
  const before = logins();
  const load = load1();
  const cpu0 = cpuSoFar();
  const t0 = process.hrtime.bigint();
  await run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSince(cpu0);
  const after = logins();
  const ssh = what.startsWith("floor") ? undefined : after.reduce((s, a, i) => s + a - before[i], 0);
  rows.push({ what, n, step, seconds, load, ssh, cpu });
  process.stderr.write(`bench-scale: ${what} N=${n} ${step}: ${seconds.toFixed(2)} s (load ${load}${ssh === undefined ? "" : `, ${ssh} ssh`}; cpu ${cpuText(cpu)})\n`);
}

// ---------------------------------------------------------------------------------------
// Pulumi: the floor and ours

const nothing: pulumi.dynamic.ResourceProvider = {
  async create(inputs) {
    return { id: String(inputs.name), outs: inputs };
  },
};

class Nothing extends pulumi.dynamic.Resource {
  constructor(name: string, props: Record<string, unknown>) {
    super(nothing, name, props, undefined, "bench", "Nothing");
  }
}

async function lifecycle(what: string, n: number, t: TestStack): Promise<void> {
  try {
    await timed(what, n, "create", () => t.stack.up());
    await timed(what, n, "preview", () => t.stack.preview({ expectNoChanges: true }));
    await timed(what, n, "refresh", () => t.stack.refresh());
    await timed(what, n, "up", () => t.stack.up({ expectNoChanges: true }));
    await timed(what, n, "destroy", () => t.stack.destroy());
  } finally {
    await t.cleanup().catch((e: unknown) => process.stderr.write(`bench-scale: cleanup of ${what} N=${n}: ${String(e)}\n`));
  }
}

function credentials(lab: LabInfo) {
  return {
    "gluster-libvirt:user": { value: lab.ssh.user },
    "gluster-libvirt:port": { value: String(lab.ssh.port) },
    "gluster-libvirt:privateKeyPath": { value: benchKey },
    ...(sudo ? { "gluster-libvirt:sudo": { value: "true" } } : {}),
  };
}

/** Every hypervisor's known_hosts, one file (a stack has one knownHostsFile). */
function knownHosts(lab: LabInfo, dir: string): string {
  const file = path.join(dir, "known_hosts");
  fs.writeFileSync(file, lab.hypervisors.map((h) => fs.readFileSync(h.ssh.knownHostsFile, "utf8")).join(""));
  return file;
}

/** `--floor-pad B`: each floor resource also carries B bytes of inputs (and outputs), as ours carry their connection, paths and sizes. */
const padArg = args.indexOf("--floor-pad");
const floorPad = padArg >= 0 ? Number(args[padArg + 1]) : 0;

async function floor(n: number): Promise<void> {
  const t = await newStack(`${PREFIX}-floor`, async () => {
    for (let i = 0; i < n; i++) new Nothing(`r${i}`, { name: `r${i}`, capacity: 1048576, ...(floorPad ? { pad: "x".repeat(floorPad) } : {}) });
  });
  await lifecycle(floorPad ? `floor+${floorPad}B` : "floor", n, t);
}

async function ours(lab: LabInfo, hosts: readonly LabHypervisor[], n: number, dir: string, what: string): Promise<void> {
  // as GlusterVolume's sharedPools sets them, the README's advice for pools on several hypervisors (`--gluster-defaults`: not)
  const gluster = createGlusterVolume(lab, uniqueName(PREFIX).replace(/-/g, "_"), { options: flag("--gluster-defaults") ? {} : SHARED_POOL_OPTIONS });
  const poolName = uniqueName(PREFIX);
  try {
    const t = await newStack(
      `${PREFIX}-ours`,
      async () => {
        for (const h of hosts) {
          const connection = { host: h.ssh.host };
          const pool = new GlusterPool(`pool-${h.ssh.host}`, { connection, name: poolName, volume: gluster.name, servers: lab.gluster.servers });
          // One Gluster volume, one directory: each host its own names.
          const tag = hosts.length > 1 ? `${h.ssh.host.replace(/\./g, "_")}-` : "";
          for (let i = 0; i < n; i++) new ImageVolume(`v-${tag}${i}`, { connection, pool: pool.name, name: `${tag}v${i}.img`, capacity: "1MiB" });
        }
      },
      { ...credentials(lab), "gluster-libvirt:knownHostsFile": { value: knownHosts(lab, dir) } },
    );
    await lifecycle(what, n, t);
  } finally {
    for (const h of hosts) {
      // with the lab's own key: the benchmark's may be gone (`lab up` rewrites authorized_keys)
      await runOnHypervisor(lab, h, ["sh", "-c", `virsh -c ${lab.libvirtUri} pool-destroy ${poolName}; virsh -c ${lab.libvirtUri} pool-undefine ${poolName}`], { check: false });
    }
    gluster.remove();
  }
}

// ---------------------------------------------------------------------------------------
// Ansible

function haveAnsible(): string | undefined {
  const r = spawnSync("bash", [path.join(__dirname, "..", "..", "scripts", "install-ansible.sh")], { encoding: "utf8" });
  if (r.status !== 0) return `scripts/install-ansible.sh failed: ${(r.stderr || r.stdout).trim()}`;
  const v = spawnSync("ansible-playbook", ["--version"], { encoding: "utf8" });
  return v.status === 0 ? undefined : `ansible-playbook --version: ${v.stderr}`;
}

async function ansible(lab: LabInfo, target1: LabHypervisor, n: number, dir: string): Promise<void> {
  const gluster = createGlusterVolume(lab, uniqueName(PREFIX).replace(/-/g, "_"));
  const pool = uniqueName(PREFIX);
  const target = `/var/lib/libvirt/gluster/${pool}`;
  const work = fs.mkdtempSync(path.join(dir, "ansible-"));
  const h = target1.ssh;
  fs.writeFileSync(path.join(work, "inventory"), `lab ansible_host=${h.host} ansible_port=${h.port} ansible_user=${h.user} ansible_ssh_private_key_file=${benchKey} ansible_python_interpreter=/usr/bin/python3\n`);
  fs.writeFileSync(path.join(work, "ansible.cfg"),
    `[defaults]\ninventory = ${work}/inventory\nhost_key_checking = True\ngathering = explicit\nforks = 5\nlocal_tmp = ${work}/tmp\n` +
      `[ssh_connection]\npipelining = True\nssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=${h.knownHostsFile} -o ControlPath=${work}/cp-%%C\n`);
  const xml = `<pool type='netfs'><name>${pool}</name><source><host name='${lab.gluster.servers[0]}'/><dir path='/${gluster.name}'/><format type='glusterfs'/></source><target><path>${target}</path></target></pool>`;
  const vars = `  vars:\n    pool: ${pool}\n    n: ${n}\n    target: ${target}\n    uri: ${lab.libvirtUri}\n`;
  fs.writeFileSync(path.join(work, "up.yml"),
    `- hosts: lab\n  gather_facts: false\n${vars}  tasks:\n` +
      `    - community.libvirt.virt_pool: { command: define, name: "{{ pool }}", xml: "${xml}", uri: "{{ uri }}" }\n` +
      `    - command: virsh -q -c {{ uri }} pool-build {{ pool }}\n      args: { creates: "{{ target }}" }\n` +
      `    - community.libvirt.virt_pool: { state: active, name: "{{ pool }}", uri: "{{ uri }}" }\n` +
      `    - command: virsh -q -c {{ uri }} vol-create-as {{ pool }} v{{ item }}.img 1M --format raw\n` +
      `      args: { creates: "{{ target }}/v{{ item }}.img" }\n      loop: "{{ range(n) | list }}"\n`);
  fs.writeFileSync(path.join(work, "down.yml"),
    `- hosts: lab\n  gather_facts: false\n${vars}  tasks:\n` +
      `    - command: virsh -q -c {{ uri }} vol-delete --pool {{ pool }} v{{ item }}.img\n` +
      `      args: { removes: "{{ target }}/v{{ item }}.img" }\n      loop: "{{ range(n) | list }}"\n` +
      `    - community.libvirt.virt_pool: { state: inactive, name: "{{ pool }}", uri: "{{ uri }}" }\n` +
      `    - community.libvirt.virt_pool: { command: delete, name: "{{ pool }}", uri: "{{ uri }}" }\n` +
      `    - community.libvirt.virt_pool: { command: undefine, name: "{{ pool }}", uri: "{{ uri }}" }\n`);
  const play = (file: string, ...extra: string[]) => {
    const r = spawnSync("ansible-playbook", [...extra, path.join(work, file)], { cwd: work, encoding: "utf8", env: { ...process.env, ANSIBLE_CONFIG: path.join(work, "ansible.cfg") }, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`ansible-playbook ${file} ${extra.join(" ")}: exit ${r.status}\n${r.stdout.slice(-3000)}${r.stderr.slice(-2000)}`);
    const recap = /changed=(\d+)/.exec(r.stdout.split("PLAY RECAP").pop() ?? "");
    if ((file === "up.yml" && extra.length) || (file === "up.yml" && rows.some((x) => x.what === "ansible" && x.n === n && x.step === "create"))) {
      if (recap && recap[1] !== "0") throw new Error(`ansible ${file} ${extra.join(" ")} was not a no-op: changed=${recap[1]}`);
    }
  };
  try {
    await timed("ansible", n, "create", () => play("up.yml"));
    await timed("ansible", n, "preview", () => play("up.yml", "--check"));
    await timed("ansible", n, "up", () => play("up.yml"));
    await timed("ansible", n, "destroy", () => play("down.yml"));
  } finally {
    spawnSync("ssh", ["-O", "exit", "-o", `ControlPath=${work}/cp-*`, "x"], { stdio: "ignore" });
    await runOnHypervisor(lab, target1, ["sh", "-c", `virsh -c ${lab.libvirtUri} pool-destroy ${pool}; virsh -c ${lab.libvirtUri} pool-undefine ${pool}`], { check: false });
    gluster.remove();
  }
}

// ---------------------------------------------------------------------------------------

/** `client + other` CPU seconds. */
function cpuText(c: Cpu): string {
  return `${c.client.toFixed(1)} + ${c.other.toFixed(1)} s`;
}

function table(): string {
  const steps = ["create", "preview", "refresh", "up", "destroy"];
  const lines = ["| N | step | floor | ours | ours/floor | ansible | ssh ours / ansible | cpu floor / ours | load |", "|---|---|---|---|---|---|---|---|---|"];
  const get = (what: string, n: number, step: string) => rows.find((r) => r.what === what && r.n === n && r.step === step);
  const s = (r: Row | undefined) => (r ? `${r.seconds.toFixed(2)} s` : "—");
  for (const n of [...new Set(rows.map((r) => r.n))]) {
    for (const step of steps) {
      const f = get("floor", n, step);
      const o = get("ours", n, step);
      const a = get("ansible", n, step);
      const ratio = f && o ? `${(o.seconds / f.seconds).toFixed(2)}x` : "—";
      const loads = [f, o, a].filter(Boolean).map((r) => r!.load).join(" / ");
      const cpus = [f, o].map((r) => (r ? cpuText(r.cpu) : "—")).join(" / ");
      lines.push(`| ${n} | ${step} | ${s(f)} | ${s(o)} | ${ratio} | ${s(a)} | ${o?.ssh ?? "—"} / ${a?.ssh ?? "—"} | ${cpus} | ${loads} |`);
    }
  }
  const multi = rows.filter((r) => r.what.startsWith("hosts"));
  if (multi.length) {
    lines.push("", "| hosts x N | step | seconds | ssh connections | cpu | load |", "|---|---|---|---|---|---|");
    for (const r of multi) lines.push(`| ${r.what.slice(6)} x ${r.n} | ${r.step} | ${r.seconds.toFixed(2)} s | ${r.ssh} | ${cpuText(r.cpu)} | ${r.load} |`);
  }
  if (sudo) lines.push("", "(ours with `sudo: true`: every remote command through `sudo -n`)");
  return lines.join("\n");
}

async function main(): Promise<void> {
  const lab = (theLab = await getLab());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-bench-`));
  setUpKey(lab, dir);
  try {
    const noAnsible = flag("--no-ansible") ? "--no-ansible" : haveAnsible();
    if (noAnsible) process.stderr.write(`bench-scale: no Ansible row: ${noAnsible}\n`);
    // The last hypervisor unless told (--on 1 is host 1): on the shared lab, host 1 carries
    // the pools other people's tests make, some of them inactive on purpose, and an inactive
    // pool stops every volume delete on its host (it cannot be checked for overlays).
    const on = lab.hypervisors[onArg >= 0 ? Number(args[onArg + 1]) - 1 : lab.hypervisors.length - 1];
    if (!on) throw new Error(`--on ${args[onArg + 1]}: the lab has ${lab.hypervisors.length} hypervisors`);
    process.stderr.write(`bench-scale: ours and Ansible on ${on.ssh.host}; N = ${Ns.join(", ")}\n`);
    for (const n of Ns) {
      if (!flag("--no-floor")) await floor(n);
      if (!flag("--no-ours")) await ours(lab, [on], n, dir, "ours");
      if (!noAnsible) await ansible(lab, on, n, dir);
    }
    if (hostCount > 0) {
      if (lab.hypervisors.length < hostCount) throw new Error(`--hosts ${hostCount}: the lab has ${lab.hypervisors.length} hypervisors (GLUSTER_LIBVIRT_LAB_HOSTS=${hostCount} gluster-libvirt lab up)`);
      const n = Ns[0];
      await ours(lab, lab.hypervisors.slice(0, hostCount), n, dir, `hosts ${hostCount}`);
    }
  } finally {
    dropKey(lab);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${table()}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-scale: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
