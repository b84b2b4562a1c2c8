/**
 * Which resource made an object on the host. A Pulumi run killed mid-create (SIGKILL, a
 * closed laptop) leaves an object that state does not know; the next run's create must
 * recognise it as its own — and only then take it over or replace it. Before create's
 * first change on the host, the resource's stamp (`project/stack/Kind/name`, sent by the
 * SDK) is written to a small file on the host, named by the object; delete removes it.
 *
 * The files live in the login user's state directory on the hypervisor
 * (`${XDG_STATE_HOME:-~/.local/state}/gluster-libvirt/created/`): libvirt keeps no
 * metadata on pools or volumes, and the host is where every machine running Pulumi for
 * the stack looks. A stamp that cannot be written costs only the recovery; a stamp that
 * cannot be read means "not ours".
 */
import { createHash } from "node:crypto";
import type { Host } from "../host";

/** Expanded by the host's shell; file names are hex digests, so nothing in the scripts comes from input. */
const DIR = "${XDG_STATE_HOME:-$HOME/.local/state}/gluster-libvirt/created";

/** `pool/NAME`, `volume/POOL/NAME`, `disk/DOMAIN-UUID/TARGET`: what an object is, as a file name. */
function fileOf(object: string): string {
  return createHash("sha256").update(object).digest("hex");
}

/** Records that `stamp` is creating `object` (no-op without a stamp; a failure is only logged). */
export async function recordCreation(host: Host, object: string, stamp: string | undefined): Promise<void> {
  if (stamp === undefined) return;
  const script = `umask 077; d="${DIR}"; mkdir -p "$d" && cat > "$d/$1"`;
  const r = await host.exec(["sh", "-c", script, "sh", fileOf(object)], { stdin: `${stamp}\n${object}\n`, check: false }).catch((err: Error) => ({ code: -1, stderr: err.message }));
  if (r.code !== 0) console.error(`gluster-libvirt: could not record on ${host.label} that this stack creates ${object} (${r.stderr.trim()}); an interrupted create of it will need adopt`);
}

/** True when `stamp` recorded creating `object` on this host. */
export async function createdBy(host: Host, object: string, stamp: string | undefined): Promise<boolean> {
  if (stamp === undefined) return false;
  const recorded = await recordOf(host, object);
  return recorded === `${stamp}\n${object}\n`;
}

/** The record of `object`, or undefined (none, or unreadable: "not ours"). */
async function recordOf(host: Host, object: string): Promise<string | undefined> {
  const r = await host.exec(["sh", "-c", `cat "${DIR}/$1"`, "sh", fileOf(object)], { check: false }).catch(() => undefined);
  return r?.code === 0 ? r.stdout : undefined;
}

/** Forgets the record of `object` (after a delete); a failure is harmless. */
export async function forgetCreation(host: Host, object: string): Promise<void> {
  await host.exec(["sh", "-c", `rm -f "${DIR}/$1"`, "sh", fileOf(object)], { check: false }).catch(() => undefined);
}

/** What an attachment is called here: `disk/DOMAIN-UUID/TARGET`. */
export function diskStampObject(domainUuid: string, target: string): string {
  return `disk/${domainUuid}/${target}`;
}

/** `project/stack/`: the part of a stamp that names the stack (undefined without a stamp). */
export function stackOf(stamp: string | undefined): string | undefined {
  const m = stamp === undefined ? null : /^[^/]+\/[^/]+\//.exec(stamp);
  return m?.[0];
}

/** True when a resource of `stack` (a `stackOf` prefix) recorded creating `object` here. */
export async function createdByStack(host: Host, object: string, stack: string | undefined): Promise<boolean> {
  if (stack === undefined) return false;
  const recorded = await recordOf(host, object);
  return recorded !== undefined && recorded.startsWith(stack) && recorded.endsWith(`\n${object}\n`);
}
