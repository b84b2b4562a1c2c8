/**
 * `gluster-libvirt doctor`: what our resources need, read from each hypervisor and Gluster
 * volume and judged by the pure checks of ./checks. Only reads: every command here is a
 * query (virsh version/capabilities, gluster volume info/status/heal info/get, a TCP
 * connect from the hypervisor). Connections are the resources' own (`connection` inputs
 * with the stack-config defaults of ssh/settings), so what the doctor reaches is what
 * `pulumi up` reaches.
 */
import {
  checkAllowInsecure,
  checkBricksOnline,
  checkFreeSpace,
  checkFuseClient,
  checkGlusterReachable,
  checkPendingHeals,
  checkPoolBackends,
  checkQemuGlusterDriver,
  checkQemuOwner,
  checkRpcAuthAllowInsecure,
  checkSharedPools,
  checkSsh,
  checkVirsh,
  checkVolumeStarted,
  glusterEndpoints,
  type CheckId,
  type Finding,
} from "./checks";
import { InputError } from "./errors";
import { inspectVolume, readGlusterdVol, volumeHealSummary, volumeOption, volumeStatusDetail } from "./gluster/volumes";
import { getHost, type Host } from "./host";
import { probeFuseClient, probeReachability, qemuHasGlusterDriver, readPoolBackends, readQemuDacLabel, readVirshVersion } from "./libvirt/facts";
import { resolveConnection } from "./ssh/settings";
import { GLUSTER_DEFAULT_PORT } from "./xml/disk";
import type { BrickStatus, GlusterVolumeInfo } from "./xml/gluster";

/** What to check. Connections are `connection` inputs, resolved against the defaults set with setConnectionDefaults. */
export interface DoctorPlan {
  hypervisors: readonly unknown[];
  /** a server of the trusted storage pool (the gluster CLI runs there as root: a root login or sudo) */
  gluster?: unknown;
  volumes: readonly string[];
  /** Gluster servers to try from the hypervisors when no `gluster` server is given (glusterd's port only). */
  glusterServers?: readonly string[];
}

/** One finding about one subject (`hypervisor gllab@kvm1:22`, `volume images`, `gluster server gllab@gs1:22`). */
export interface DoctorResult extends Finding {
  subject: string;
}

/** A volume as read from the Gluster side (status detail and heals only for a started one). */
interface VolumeFacts {
  name: string;
  info?: GlusterVolumeInfo;
  bricks?: BrickStatus[];
}

const why = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** A check whose facts could not be read: a failure naming what could not be read. */
function unreadable(check: CheckId, what: string, err: unknown): Finding {
  return { check, status: "failure", message: `could not read ${what}: ${why(err)}`, fix: "see the message; the doctor only reads, so a failure here is the host's answer" };
}

/** Connect and run `true`: the ssh check, and the Host when it worked. */
async function connect(input: unknown): Promise<{ finding: Finding; label: string; host?: Host }> {
  let settings;
  try {
    settings = resolveConnection(input);
  } catch (err) {
    const field = err instanceof InputError ? err.field : "connection";
    const host = (input as { host?: string })?.host ?? "?";
    return { label: host, finding: { check: "ssh", status: "failure", message: why(err), fix: `give a usable ${field.replace(/^connection\./, "")} (flag or gluster-libvirt:${field.replace(/^connection\./, "")} in stack config)` } };
  }
  const target = { label: settings.label, knownHostsFile: settings.knownHostsFile, policy: settings.hostKeyPolicy, pinned: settings.target.pin !== undefined };
  const host = getHost(input);
  try {
    await host.exec(["true"]);
    return { label: settings.label, finding: checkSsh(undefined, target), host };
  } catch (err) {
    return { label: settings.label, finding: checkSsh(err, target) };
  }
}

/** Reads and judges the Gluster side: glusterd's config and each volume. */
async function glusterSide(plan: DoctorPlan, report: (subject: string, f: Finding) => void): Promise<VolumeFacts[]> {
  if (plan.gluster === undefined) return plan.volumes.map((name) => ({ name }));
  const { finding, label, host } = await connect(plan.gluster);
  const server = `gluster server ${label}`;
  report(server, finding);
  if (!host) return plan.volumes.map((name) => ({ name }));
  report(server, checkRpcAuthAllowInsecure(label, await readGlusterdVol(host).catch(() => undefined)));
  const facts: VolumeFacts[] = [];
  for (const name of plan.volumes) {
    const subject = `volume ${name}`;
    let info: GlusterVolumeInfo | undefined;
    try {
      info = await inspectVolume(host, name);
    } catch (err) {
      report(subject, unreadable("volume-started", `volume ${name} on ${label}`, err));
      facts.push({ name });
      continue;
    }
    report(subject, checkVolumeStarted(name, info));
    if (!info) {
      facts.push({ name });
      continue;
    }
    const setInsecure = info.options["server.allow-insecure"];
    const effective = setInsecure ?? (await volumeOption(host, name, "server.allow-insecure").catch(() => undefined));
    report(subject, checkAllowInsecure(name, setInsecure, effective));
    report(subject, checkSharedPools(name, info.options));
    let bricks: BrickStatus[] | undefined;
    if (info.status === "Started") {
      try {
        bricks = await volumeStatusDetail(host, name);
        report(subject, checkBricksOnline(name, bricks));
        report(subject, checkFreeSpace(name, bricks));
      } catch (err) {
        report(subject, unreadable("bricks-online", `the status of volume ${name}`, err));
      }
      try {
        report(subject, checkPendingHeals(name, await volumeHealSummary(host, name)));
      } catch (err) {
        report(subject, unreadable("pending-heals", `the heal summary of volume ${name}`, err));
      }
    }
    facts.push({ name, info, bricks });
  }
  return facts;
}

/** Reads and judges one hypervisor, and what it needs of each volume. */
async function hypervisorSide(input: unknown, volumes: readonly VolumeFacts[], plan: DoctorPlan, report: (subject: string, f: Finding) => void): Promise<void> {
  const { finding, label, host } = await connect(input);
  const subject = `hypervisor ${label}`;
  report(subject, finding);
  if (!host) return;
  let qemuVersion: string | undefined;
  try {
    const v = await readVirshVersion(host);
    qemuVersion = v.version.hypervisor?.version;
    report(subject, checkVirsh(v.text, host.libvirtUri));
  } catch (err) {
    report(subject, checkVirsh(err as Error, host.libvirtUri));
    return; // the remaining libvirt questions would only repeat this
  }
  for (const f of checkPoolBackends(await readPoolBackends(host).catch((err: unknown) => err as Error))) report(subject, f);
  try {
    for (const f of checkFuseClient(await probeFuseClient(host))) report(subject, f);
  } catch (err) {
    report(subject, unreadable("mount-glusterfs", "the FUSE client", err));
  }
  report(subject, checkQemuGlusterDriver(await qemuHasGlusterDriver(host).catch(() => false), qemuVersion));
  const qemu = await readQemuDacLabel(host).catch(() => undefined);
  for (const v of volumes) {
    if (v.info) report(subject, checkQemuOwner(qemu, v.info));
    const endpoints = v.info
      ? glusterEndpoints(v.info, v.bricks)
      : (plan.glusterServers ?? []).map((server) => ({ host: server, port: GLUSTER_DEFAULT_PORT, what: "glusterd" }));
    if (!endpoints.length) continue;
    try {
      report(subject, checkGlusterReachable(label, endpoints, await probeReachability(host, endpoints)));
    } catch (err) {
      report(subject, unreadable("gluster-reachable", `TCP connects from ${label}`, err));
    }
  }
}

/**
 * Runs every check of the plan: the Gluster side first (what the hypervisors must then
 * reach and match), then each hypervisor. `onResult` sees each result as it is found.
 */
export async function runDoctor(plan: DoctorPlan, onResult?: (r: DoctorResult) => void): Promise<DoctorResult[]> {
  const results: DoctorResult[] = [];
  const report = (subject: string, f: Finding) => {
    const r = { subject, ...f };
    results.push(r);
    onResult?.(r);
  };
  const volumes = await glusterSide(plan, report);
  for (const h of plan.hypervisors) await hypervisorSide(h, volumes, plan, report);
  return results;
}

/** One line per result: `FAILURE volume images: allow-insecure: server.allow-insecure is off: … — fix: …`. */
export function formatResult(r: DoctorResult): string {
  const tag = { ok: "ok     ", warning: "warning", failure: "FAILURE" }[r.status];
  // messages name their subject (resource errors show them alone): not twice on a line
  const named = [`${r.subject}: `, `${r.subject.replace(/^(gluster server|hypervisor) /, "")}: `].find((p) => r.message.startsWith(p));
  const message = named ? r.message.slice(named.length) : r.message;
  return `${tag} ${r.subject}: ${r.check}: ${message}${r.fix && r.status !== "ok" ? ` — fix: ${r.fix}` : ""}`;
}
