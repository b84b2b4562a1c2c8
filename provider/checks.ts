/**
 * The doctor's checks: what our resources need of a hypervisor and of a Gluster volume,
 * each a small pure function over what was read from the host (command output, parsed),
 * returning one finding with the exact fix when something is wrong. The doctor
 * (provider/doctor.ts) reads and runs them all; resource errors (a pool that does not
 * start, a libgfapi disk that does not attach) run the ones that explain the failure; a
 * preview can run the cheap ones. No I/O here; unit-tested on captured output
 * (test/unit/checks.test.ts).
 */
import { SshError, isCommandError } from "./errors";
import { SHARED_POOL_OPTIONS, sameOptionValue } from "./gluster/options";
import { type PoolBackends } from "./xml/capabilities";
import { GLUSTER_DEFAULT_PORT } from "./xml/disk";
import type { BrickHeal, BrickStatus, GlusterVolumeInfo } from "./xml/gluster";

export type CheckStatus = "ok" | "warning" | "failure";

/** Every check, by a stable id (the doctor's `--json` and resource hints name them). */
export type CheckId =
  | "ssh"
  | "virsh"
  | "netfs-pool"
  | "gluster-pool"
  | "mount-glusterfs"
  | "dev-fuse"
  | "qemu-gluster-driver"
  | "qemu-owner"
  | "allow-insecure"
  | "shared-pools"
  | "rpc-auth-allow-insecure"
  | "gluster-reachable"
  | "volume-started"
  | "bricks-online"
  | "pending-heals"
  | "free-space";

/** What one check found: `fix` says exactly what to do for a warning or failure. */
export interface Finding {
  check: CheckId;
  status: CheckStatus;
  message: string;
  fix?: string;
}

const ok = (check: CheckId, message: string): Finding => ({ check, status: "ok", message });
const warning = (check: CheckId, message: string, fix: string): Finding => ({ check, status: "warning", message, fix });
const failure = (check: CheckId, message: string, fix: string): Finding => ({ check, status: "failure", message, fix });

// ---------------------------------------------------------------------------------------
// SSH and libvirt

/**
 * The SSH connection: `error` is what connecting (and running `true`) threw, undefined
 * when it worked. `policy`: the connection's hostKeyPolicy, `pinned`: a hostKey was given.
 */
export function checkSsh(error: unknown, target: { label: string; knownHostsFile: string; policy: string; pinned: boolean }): Finding {
  if (error === undefined) {
    if (target.policy === "insecure" && !target.pinned) {
      return warning("ssh", `reachable, but the host key is not verified (hostKeyPolicy insecure)`, `add its key to ${target.knownHostsFile} (\`ssh-keyscan\`, compared with the fingerprint the host shows) or pin it with hostKey, and drop hostKeyPolicy insecure`);
    }
    return ok("ssh", `reachable, host key verified (${target.pinned ? "pinned hostKey" : target.knownHostsFile})`);
  }
  const message = (error as Error).message ?? String(error);
  if (error instanceof SshError) {
    if (error.kind === "host-key") {
      return failure("ssh", message, `check the fingerprint on the host (\`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\`), then add the key to ${target.knownHostsFile} or pin it (hostKey / --host-key SHA256:…)`);
    }
    if (error.kind === "auth") {
      return failure("ssh", message, "authorize the key on the host (`ssh-copy-id`, or append the public key to ~/.ssh/authorized_keys of the login user), or give the right one (privateKeyPath / --key)");
    }
    if (error.kind === "connect" || error.kind === "timeout") {
      return failure("ssh", message, "check the host name and port, that sshd runs there and that the port is open to this machine");
    }
  }
  return failure("ssh", message, "see the message; run `ssh -v` with the same host, port, user and key");
}

/** `virsh version` of a hypervisor: its libvirt and the hypervisor it drives. */
export interface VirshVersion {
  libvirt?: string;
  /** `QEMU`, and its version (`7.2.22`) */
  hypervisor?: { name: string; version: string };
}

/** `virsh version` text (`Using library: libvirt 9.0.0`, `Running hypervisor: QEMU 7.2.22`). */
export function parseVirshVersion(textOut: string): VirshVersion {
  const lib = /^Using library: libvirt (\S+)/m.exec(textOut);
  const hv = /^Running hypervisor: (\S+) (\S+)/m.exec(textOut);
  return { libvirt: lib?.[1], hypervisor: hv ? { name: hv[1], version: hv[2] } : undefined };
}

/** virsh at the libvirt URI: `result` is `virsh version`'s output, or what it threw. */
export function checkVirsh(result: string | Error, uri: string): Finding {
  if (typeof result !== "string") {
    if (isCommandError(result, "permission-denied")) {
      return failure("virsh", `virsh cannot connect to ${uri}: ${result.message}`, "add the login user to group libvirt (and, without polkit, set unix_sock_group/unix_sock_rw_perms in libvirtd.conf), or use a root login or sudo: true (--sudo)");
    }
    return failure("virsh", `virsh cannot connect to ${uri}: ${result.message}`, "install libvirt-daemon-system and libvirt-clients, start libvirtd, and check the libvirt URI (libvirtUri / --libvirt-uri)");
  }
  const v = parseVirshVersion(result);
  if (!v.hypervisor) return failure("virsh", `libvirt at ${uri} drives no hypervisor (virsh version names none)`, "install the QEMU driver (libvirt-daemon-driver-qemu, qemu-system-x86) and restart libvirtd");
  return ok("virsh", `libvirt ${v.libvirt ?? "?"} at ${uri}, ${v.hypervisor.name} ${v.hypervisor.version}`);
}

/** The pool backends our pools need: netfs with the glusterfs format (failure), the native gluster backend (warning: only `type: gluster` pools need it). */
export function checkPoolBackends(backends: PoolBackends | Error): Finding[] {
  if (backends instanceof Error) {
    return [warning("netfs-pool", `cannot tell which pool backends libvirt has: ${backends.message}`, "libvirt ≥ 5.2 answers `virsh pool-capabilities`; on older releases check that `virsh pool-define-as x netfs --source-format glusterfs …` is accepted")];
  }
  return [
    !backends.netfs
      ? failure("netfs-pool", "libvirt has no netfs pool backend", "install libvirt's storage drivers (Debian: libvirt-daemon-system; RHEL: libvirt-daemon-driver-storage-core) and restart libvirtd")
      : !backends.netfsGlusterfs
        ? failure("netfs-pool", "libvirt's netfs pools cannot mount glusterfs (no glusterfs source format)", "install a libvirt built with glusterfs support for netfs pools and glusterfs-client, then restart libvirtd")
        : ok("netfs-pool", "netfs pools with the glusterfs format (FUSE mounts)"),
    backends.gluster
      ? ok("gluster-pool", "native gluster pools (libgfapi)")
      : warning("gluster-pool", "libvirt has no native gluster pool backend: only netfs pools (the default) work", "for GlusterPool type: gluster install libvirt-daemon-driver-storage-gluster and restart libvirtd"),
  ];
}

/** What the FUSE probe saw: where mount.glusterfs is (undefined: not found), whether /dev/fuse is a character device. */
export interface FuseClient {
  mountGlusterfs?: string;
  devFuse: boolean;
}

/** The FUSE probe's output: `mount.glusterfs=PATH` (empty when missing) and `dev-fuse=yes|no` lines. */
export function parseFuseProbe(textOut: string): FuseClient {
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, "m").exec(textOut)?.[1]?.trim();
  return { mountGlusterfs: value("mount\\.glusterfs") || undefined, devFuse: value("dev-fuse") === "yes" };
}

export function checkFuseClient(fuse: FuseClient): Finding[] {
  return [
    fuse.mountGlusterfs
      ? ok("mount-glusterfs", `Gluster's FUSE client: ${fuse.mountGlusterfs}`)
      : failure("mount-glusterfs", "mount.glusterfs is not installed: netfs pools cannot mount the volume", "install glusterfs-client (Debian/Ubuntu) or glusterfs-fuse (RHEL/Fedora)"),
    fuse.devFuse
      ? ok("dev-fuse", "/dev/fuse present")
      : failure("dev-fuse", "/dev/fuse is missing: no FUSE mounts", "load the fuse module (`modprobe fuse`, and `echo fuse > /etc/modules-load.d/fuse.conf` for boots); in a container, pass /dev/fuse in"),
  ];
}

/** [major, minor] of a version string (`11.1.0` → [11, 1]), undefined when it is none. */
function majorMinor(version: string | undefined): [number, number] | undefined {
  const m = version ? /^(\d+)\.(\d+)/.exec(version) : null;
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** QEMU releases from this one on have no gluster block driver (deprecated in 9.2, removed after 11.0). */
export const QEMU_WITHOUT_GLUSTER: readonly [number, number] = [11, 1];

/**
 * QEMU's gluster block driver (libgfapi disks): `hasDriver` from the module probe,
 * `qemuVersion` from `virsh version`. Missing is a warning, not a failure: `access:
 * auto` then attaches the FUSE file, which every QEMU can open.
 */
export function checkQemuGlusterDriver(hasDriver: boolean, qemuVersion: string | undefined): Finding {
  const v = majorMinor(qemuVersion);
  const removed = v !== undefined && (v[0] > QEMU_WITHOUT_GLUSTER[0] || (v[0] === QEMU_WITHOUT_GLUSTER[0] && v[1] >= QEMU_WITHOUT_GLUSTER[1]));
  if (hasDriver) return ok("qemu-gluster-driver", `QEMU ${qemuVersion ?? ""} has the gluster block driver: libgfapi disks work`.replace("  ", " "));
  if (removed) {
    return warning("qemu-gluster-driver", `QEMU ${qemuVersion} has no gluster block driver (removed after QEMU 11.0): disks are FUSE files only`, "use access fuse (or auto, which picks fuse here); access gfapi cannot work with this QEMU");
  }
  return warning("qemu-gluster-driver", `QEMU ${qemuVersion ?? "(version unknown)"} has no gluster block driver: access auto attaches FUSE files, access gfapi fails`, "for libgfapi disks install qemu-block-extra (Debian/Ubuntu) or qemu-block-gluster (Fedora); RHEL 9+ ships none: use access fuse");
}

// ---------------------------------------------------------------------------------------
// The Gluster volume

/**
 * The hypervisor's QEMU user (uid:gid from libvirt's DAC label) against the volume's
 * `storage.owner-uid/gid`: QEMU opens images through libgfapi as itself.
 */
export function checkQemuOwner(qemu: { uid: number; gid: number } | undefined, volume: Pick<GlusterVolumeInfo, "name" | "options">): Finding {
  const uid = volume.options["storage.owner-uid"];
  const gid = volume.options["storage.owner-gid"];
  if (!qemu) {
    return warning("qemu-owner", `cannot tell which uid:gid QEMU runs as (no DAC label in \`virsh capabilities\`); volume ${volume.name} has storage.owner-uid/gid ${uid ?? "unset"}:${gid ?? "unset"}`, "compare with `ps -o uid,gid -C qemu-system-x86_64` of a running VM");
  }
  const fix = `gluster volume set ${volume.name} storage.owner-uid ${qemu.uid}; gluster volume set ${volume.name} storage.owner-gid ${qemu.gid} (GlusterVolume: qemuOwner: { uid: ${qemu.uid}, gid: ${qemu.gid} })`;
  if (uid === undefined || gid === undefined) {
    return failure("qemu-owner", `volume ${volume.name} does not set storage.owner-uid/gid: its files are root's, QEMU runs as ${qemu.uid}:${qemu.gid}`, fix);
  }
  if (uid.trim() !== String(qemu.uid) || gid.trim() !== String(qemu.gid)) {
    return failure("qemu-owner", `volume ${volume.name} gives its files to ${uid}:${gid}, but QEMU here runs as ${qemu.uid}:${qemu.gid}`, fix);
  }
  return ok("qemu-owner", `volume ${volume.name}'s storage.owner-uid/gid ${uid}:${gid} is QEMU's user here`);
}

const ON = /^(on|yes|true|enable|1)$/i;

/**
 * `server.allow-insecure`: libgfapi clients connect from unprivileged ports. `set`: the
 * value set on the volume (volume info), `effective`: `volume get`'s value (the default when unset).
 */
export function checkAllowInsecure(volume: string, set: string | undefined, effective: string | undefined): Finding {
  const value = set ?? effective;
  if (value !== undefined && ON.test(value.trim())) {
    return ok("allow-insecure", `volume ${volume}: server.allow-insecure ${value}${set === undefined ? " (glusterd's default)" : ""}`);
  }
  return failure("allow-insecure", `volume ${volume}: server.allow-insecure is ${value ?? "unknown"}: clients on unprivileged ports are refused (QEMU's libgfapi; on glusterfs 10 the FUSE mounts too)`, `gluster volume set ${volume} server.allow-insecure on (GlusterVolume: allowInsecure: true)`);
}

/**
 * GlusterVolume.sharedPools' options: without them a pool refresh on one hypervisor fails
 * while another deletes a file of the volume's directory, and libvirt stops that pool
 * (docs/scale.md §5). `set`: the options set on the volume (unset is Gluster's default, on).
 * A warning: a volume that one hypervisor alone lists needs neither.
 */
export function checkSharedPools(volume: string, set: Readonly<Record<string, string>>): Finding {
  const missing = Object.entries(SHARED_POOL_OPTIONS).filter(([key, value]) => !sameOptionValue(set[key] ?? "on", value)).map(([key]) => key);
  if (missing.length === 0) return ok("shared-pools", `volume ${volume}: ${Object.entries(SHARED_POOL_OPTIONS).map(([key, value]) => `${key} ${value}`).join(", ")}`);
  return warning(
    "shared-pools",
    `volume ${volume}: ${missing.map((key) => `${key} ${set[key] ?? "on (Gluster's default)"}`).join(", ")}: where pools on several hypervisors list the volume, a refresh on one fails "Stale file handle" whenever another deletes a file meanwhile, and libvirt stops that pool`,
    `${missing.map((key) => `gluster volume set ${volume} ${key} ${SHARED_POOL_OPTIONS[key]}`).join("; ")} (GlusterVolume: sharedPools: true)`,
  );
}

/**
 * glusterd's own `rpc-auth-allow-insecure` (`/etc/glusterfs/glusterd.vol`), which the
 * GlusterVolume resource deliberately does not manage (README). `glusterdVol`: the file's
 * text, undefined when it could not be read.
 */
export function checkRpcAuthAllowInsecure(server: string, glusterdVol: string | undefined): Finding {
  const fix = "add `option rpc-auth-allow-insecure on` to /etc/glusterfs/glusterd.vol on every server of the pool and restart glusterd there, one server at a time";
  if (glusterdVol === undefined) return warning("rpc-auth-allow-insecure", `${server}: cannot read /etc/glusterfs/glusterd.vol`, `read it as root (--gluster-sudo); old releases need it to say: ${fix.slice(4)}`);
  const m = /^\s*option\s+rpc-auth-allow-insecure\s+(\S+)/m.exec(glusterdVol);
  if (!m) return ok("rpc-auth-allow-insecure", `${server}: glusterd.vol does not set rpc-auth-allow-insecure (current releases accept unprivileged clients without it; glusterfs 10.3 does)`);
  if (ON.test(m[1])) return ok("rpc-auth-allow-insecure", `${server}: glusterd.vol sets rpc-auth-allow-insecure ${m[1]}`);
  return warning("rpc-auth-allow-insecure", `${server}: glusterd.vol sets rpc-auth-allow-insecure ${m[1]}: glusterd may refuse QEMU's libgfapi, which connects from an unprivileged port`, fix);
}

/** One TCP endpoint the hypervisor must reach, and what it is. */
export interface GlusterEndpoint {
  host: string;
  port: number;
  /** `glusterd`, `brick 192.0.2.2:/data/b1` */
  what: string;
}

/** The endpoints of a volume a client needs: glusterd (24007) on each brick server, and each online brick's port. */
export function glusterEndpoints(volume: Pick<GlusterVolumeInfo, "bricks">, status: readonly BrickStatus[] | undefined, glusterdPort = GLUSTER_DEFAULT_PORT): GlusterEndpoint[] {
  const servers = [...new Set(volume.bricks.map((b) => b.host))];
  return [
    ...servers.map((host) => ({ host, port: glusterdPort, what: "glusterd" })),
    ...(status ?? []).filter((b) => b.port !== undefined).map((b) => ({ host: b.host, port: b.port!, what: `brick ${b.brick}` })),
  ];
}

/** The reachability probe's output: one `ok HOST PORT` or `fail HOST PORT` line per endpoint. */
export function parseReachability(textOut: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const m of textOut.matchAll(/^(ok|fail) (\S+) (\d+)$/gm)) out.set(`${m[2]} ${m[3]}`, m[1] === "ok");
  return out;
}

/** The Gluster servers as the hypervisor reaches them (TCP from the hypervisor, not from here). */
export function checkGlusterReachable(hypervisor: string, endpoints: readonly GlusterEndpoint[], reached: ReadonlyMap<string, boolean>): Finding {
  const failed = endpoints.filter((e) => reached.get(`${e.host} ${e.port}`) !== true);
  const list = (es: readonly GlusterEndpoint[]) => es.map((e) => `${e.host}:${e.port} (${e.what})`).join(", ");
  if (!endpoints.length) return warning("gluster-reachable", `no Gluster endpoints known to try from ${hypervisor}`, "name the volume (--volume) and a server of its pool (--gluster-host)");
  if (failed.length) {
    return failure("gluster-reachable", `${hypervisor} cannot connect to ${list(failed)}`, `open TCP ${[...new Set(failed.map((e) => e.port))].join(", ")} on ${[...new Set(failed.map((e) => e.host))].join(", ")} to ${hypervisor} (glusterd 24007, bricks 49152-60999: \`firewall-cmd --add-service=glusterfs\`), and check that the names resolve on the hypervisor`);
  }
  return ok("gluster-reachable", `${hypervisor} reaches ${list(endpoints)}`);
}

/** The volume exists and is started. `info` undefined: no volume of that name. */
export function checkVolumeStarted(name: string, info: Pick<GlusterVolumeInfo, "status"> | undefined): Finding {
  if (!info) return failure("volume-started", `no Gluster volume named ${name}`, `create it (\`gluster volume create ${name} …\`, or a GlusterVolume resource) or fix the name`);
  if (info.status !== "Started") return failure("volume-started", `volume ${name} is ${info.status}, not started: pools cannot mount it`, `gluster volume start ${name} (GlusterVolume: started: true)`);
  return ok("volume-started", `volume ${name} is started`);
}

/** Every brick's process is online (`volume status VOL detail`). */
export function checkBricksOnline(name: string, bricks: readonly BrickStatus[]): Finding {
  const offline = bricks.filter((b) => !b.online);
  if (!bricks.length) return failure("bricks-online", `volume ${name}: glusterd lists no bricks`, `gluster volume status ${name} detail`);
  if (offline.length) {
    return failure("bricks-online", `volume ${name}: ${offline.length} of ${bricks.length} bricks offline: ${offline.map((b) => b.brick).join(", ")}`, `check those servers and brick directories, then \`gluster volume start ${name} force\` (starts the missing brick processes only)`);
  }
  return ok("bricks-online", `volume ${name}: all ${bricks.length} bricks online`);
}

/** Pending heals and split-brain (`volume heal VOL info summary`). */
export function checkPendingHeals(name: string, heal: readonly BrickHeal[] | "not-replicated"): Finding {
  if (heal === "not-replicated") return ok("pending-heals", `volume ${name} is not replicated: nothing to heal`);
  const split = heal.reduce((n, b) => n + (b.splitBrain ?? 0), 0);
  const pending = heal.reduce((n, b) => n + (b.pending ?? 0) + (b.possiblyHealing ?? 0), 0);
  const unasked = heal.filter((b) => b.pending === undefined);
  if (split) return failure("pending-heals", `volume ${name}: ${split} entries in split-brain`, `gluster volume heal ${name} info split-brain, then resolve each (\`gluster volume heal ${name} split-brain latest-mtime FILE\`, or bigger-file / source-brick)`);
  if (pending) {
    return warning("pending-heals", `volume ${name}: ${pending} entries waiting to heal${unasked.length ? ` (bricks not answering: ${unasked.map((b) => b.brick).join(", ")})` : ""}`, `bring every brick online, then \`gluster volume heal ${name}\` and watch \`gluster volume heal ${name} info summary\` reach 0`);
  }
  if (unasked.length) return warning("pending-heals", `volume ${name}: cannot tell pending heals of ${unasked.map((b) => `${b.brick} (${b.status})`).join(", ")}`, `bring those bricks online (\`gluster volume start ${name} force\`)`);
  return ok("pending-heals", `volume ${name}: no pending heals`);
}

/** Free space below these fractions of a brick's file system is a warning / a failure. */
export const FREE_SPACE_WARNING = 0.1;
export const FREE_SPACE_FAILURE = 0.02;

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

/** Free space of each brick's file system; the fullest brick decides (a replica set fills evenly). */
export function checkFreeSpace(name: string, bricks: readonly BrickStatus[]): Finding {
  const sized = bricks.filter((b) => b.sizeTotal && b.sizeFree !== undefined);
  if (!sized.length) return warning("free-space", `volume ${name}: glusterd reports no brick sizes`, `gluster volume status ${name} detail`);
  const fullest = sized.reduce((a, b) => (b.sizeFree! / b.sizeTotal! < a.sizeFree! / a.sizeTotal! ? b : a));
  const fraction = fullest.sizeFree! / fullest.sizeTotal!;
  const said = `volume ${name}: ${gib(fullest.sizeFree!)} of ${gib(fullest.sizeTotal!)} free on ${fullest.brick} (${(fraction * 100).toFixed(0)}%)`;
  const fix = `free space on ${fullest.brick}'s file system or add bricks (\`gluster volume add-brick ${name} …\`)`;
  if (fraction < FREE_SPACE_FAILURE) return failure("free-space", said, fix);
  if (fraction < FREE_SPACE_WARNING) return warning("free-space", said, fix);
  return ok("free-space", said);
}

// ---------------------------------------------------------------------------------------

/** The findings that are not ok, as one line each for an error message: `dev-fuse: … — fix: …`. */
export function describeProblems(findings: readonly Finding[]): string[] {
  return findings.filter((f) => f.status !== "ok").map((f) => `doctor check ${f.check} ${f.status === "failure" ? "fails" : "warns"}: ${f.message}; fix: ${f.fix}`);
}
