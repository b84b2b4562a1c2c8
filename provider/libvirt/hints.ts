/**
 * Which of the doctor's checks (../checks) fail on a hypervisor, asked when a resource's
 * step failed there: the hint a resource error carries. Read-only and cheap (a few
 * queries and TCP connects from the hypervisor, bounded); a hint that cannot be worked
 * out is left out, never in the way of the error it would explain.
 */
import {
  checkFuseClient,
  checkGlusterReachable,
  checkPoolBackends,
  checkQemuGlusterDriver,
  describeProblems,
  type Finding,
  type GlusterEndpoint,
} from "../checks";
import type { Host } from "../host";
import { GLUSTER_DEFAULT_PORT } from "../xml/disk";
import { probeFuseClient, probeReachability, qemuHasGlusterDriver, readPoolBackends, readVirshVersion } from "./facts";

/** What a pool names of its Gluster volume. */
export interface GlusterSource {
  type: "netfs" | "gluster";
  volume: string;
  servers: readonly string[];
  port?: number;
}

async function settled(work: () => Promise<Finding[]>): Promise<Finding[]> {
  return work().catch(() => []);
}

function glusterdEndpoints(source: GlusterSource): GlusterEndpoint[] {
  return source.servers.map((host) => ({ host, port: source.port ?? GLUSTER_DEFAULT_PORT, what: "glusterd" }));
}

async function reachability(host: Host, source: GlusterSource): Promise<Finding[]> {
  const endpoints = glusterdEndpoints(source);
  return [checkGlusterReachable(host.label, endpoints, await probeReachability(host, endpoints))];
}

/** The doctor command that checks what the hypervisor cannot see: the volume on its servers. */
function volumeHint(source: GlusterSource): string {
  return `the Gluster side (volume started, bricks online, server.allow-insecure, storage.owner-uid/gid): gluster-libvirt doctor --gluster-host ${source.servers[0] ?? "SERVER"} --volume ${source.volume}`;
}

/**
 * What a pool of `source` needs of `host`, as the doctor judges it: the pool backend for
 * its type, the FUSE client (netfs), the Gluster servers' glusterd reachable from the
 * hypervisor (bounded connects). Read concurrently, on the host's one connection. A fact
 * that could not be read gives no finding: `unread` names it and why.
 */
export async function poolPrerequisites(host: Host, source: GlusterSource): Promise<{ findings: Finding[]; unread: string[] }> {
  const read = (what: string, work: () => Promise<Finding[]>) =>
    work().then(
      (findings) => ({ findings, unread: [] as string[] }),
      (err: unknown) => ({ findings: [] as Finding[], unread: [`${what}: ${err instanceof Error ? err.message : String(err)}`] }),
    );
  const parts = await Promise.all([
    read("libvirt's pool backends (virsh pool-capabilities)", async () => checkPoolBackends(await readPoolBackends(host)).filter((f) => f.check === (source.type === "netfs" ? "netfs-pool" : "gluster-pool"))),
    ...(source.type === "netfs" ? [read("the FUSE client (mount.glusterfs, /dev/fuse)", async () => checkFuseClient(await probeFuseClient(host)))] : []),
    read(`TCP connects from ${host.label} to glusterd`, () => reachability(host, source)),
  ]);
  return { findings: parts.flatMap((p) => p.findings), unread: parts.flatMap((p) => p.unread) };
}

/** Why a pool of `source` may not start on `host`: the failing doctor checks, then where to look next. */
export async function poolStartHints(host: Host, source: GlusterSource): Promise<string[]> {
  return [...describeProblems((await poolPrerequisites(host, source)).findings), volumeHint(source)];
}

/** Why a libgfapi disk of `source` may not attach on `host`. */
export async function gfapiAttachHints(host: Host, source: GlusterSource): Promise<string[]> {
  const findings = [
    ...(await settled(async () => [checkQemuGlusterDriver(await qemuHasGlusterDriver(host), (await readVirshVersion(host)).version.hypervisor?.version)])),
    ...(await settled(() => reachability(host, source))),
  ];
  return [...describeProblems(findings), volumeHint(source)];
}
