/** The `gluster` CLI on a server of the trusted storage pool, through `Host.exec`. */
import { GlusterError } from "../errors";
import type { Host } from "../host";
import { shellCommandLine } from "../ssh/quote";
import { parseCliOutput } from "../xml/gluster";

/**
 * `gluster --mode=script --xml ARGS…` → the answer's XML. Script mode answers every
 * confirmation with yes. The CLI exits 0 with `--xml` even when the operation failed, so
 * success is read from `<opRet>`; a failure throws a classified GlusterError carrying
 * glusterd's own message. Needs root on the server (a root login or `sudo: true`).
 */
export async function gluster(host: Host, args: readonly string[]): Promise<string> {
  const argv = ["gluster", "--mode=script", "--xml", ...args];
  const r = await host.exec(argv, { check: false });
  const failed = (exitCode: number, message: string) => new GlusterError(shellCommandLine(argv), exitCode, message, { target: host.label });
  // No XML at all: glusterd unreachable, no gluster binary, sudo refused, …
  if (!r.stdout.trimStart().startsWith("<")) throw failed(r.code || 1, (r.stderr.trim() || r.stdout.trim() || "no output"));
  const out = parseCliOutput(r.stdout);
  if (out.opRet !== 0) throw failed(r.code || out.opRet, out.error || r.stderr.trim() || `opErrno ${out.opErrno}`);
  return r.stdout;
}

/** `gluster --mode=script ARGS…` for the few answers whose `--xml` form lacks what we need (`client-list`). */
export async function glusterText(host: Host, args: readonly string[]): Promise<string> {
  const argv = ["gluster", "--mode=script", ...args];
  const r = await host.exec(argv, { check: false });
  if (r.code !== 0) throw new GlusterError(shellCommandLine(argv), r.code, r.stderr.trim() || r.stdout.trim(), { target: host.label });
  return r.stdout;
}
