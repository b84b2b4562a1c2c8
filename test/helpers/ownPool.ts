/**
 * A test's own Gluster volume with a libvirt pool on it, and their teardown. libvirt
 * allows one netfs pool per Gluster source and host, so a suite that makes pools or
 * volumes works on a volume nobody else uses.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { glusterPool, type PoolOutputs } from "../../provider/pool";
import type { LabInfo } from "./lab";
import { createGlusterVolume, labConnection, tryVirsh, uniqueName, virsh } from "./local";

export interface OwnPool {
  /** the Gluster volume under the pool, of this pool alone */
  gluster: ReturnType<typeof createGlusterVolume>;
  /** the pool's name in libvirt */
  name: string;
  /** where a netfs pool is mounted (undefined for a native gluster pool) */
  targetPath: string | undefined;
  /**
   * Empties and removes the pool, then the Gluster volume (its brick with it). Every step
   * runs even when one before it failed; the first failure of removing the pool is thrown
   * at the end. Calling it again does nothing more.
   */
  remove(): Promise<void>;
}

export interface OwnPoolOptions {
  /** default netfs (FUSE); "gluster" is libvirt's native libgfapi pool */
  type?: "netfs" | "gluster";
  /**
   * Who makes the pool: the provider's GlusterPool.create as the lab user over SSH (default),
   * or root's virsh on this machine (pool-define-as, build, start: netfs only), for tests of
   * something else that must not depend on the pool code.
   */
  by?: "provider" | "root";
}

/**
 * A started Gluster volume and a running pool on it, both named `<prefix>-<pid>-<5 chars>`
 * (`_` in the volume's name). All or nothing: if the pool cannot be made, the volume is
 * removed again before the error is thrown.
 */
export async function createOwnPool(lab: LabInfo, prefix: string, opts: OwnPoolOptions = {}): Promise<OwnPool> {
  const type = opts.type ?? "netfs";
  const name = uniqueName(prefix);
  const gluster = createGlusterVolume(lab, name.replace(/-/g, "_"));
  let outs: PoolOutputs | undefined;
  let removing: Promise<void> | undefined;
  const own: OwnPool = {
    gluster,
    name,
    targetPath: undefined,
    remove: () => (removing ??= teardown()),
  };
  const teardown = async () => {
    let failure: unknown;
    try {
      emptyPool(lab, own, type);
    } catch {
      // tidying only: the files go with the brick below
    }
    if (outs) await glusterPool.delete(outs.uuid, outs).catch((e: unknown) => void (failure ??= e));
    // whatever the provider left (or a pool made by root): stop, remove the mount point, forget
    tryVirsh("pool-destroy", name);
    if (type === "netfs") tryVirsh("pool-delete", name);
    tryVirsh("pool-undefine", name);
    gluster.remove();
    if (failure !== undefined) throw failure;
  };
  try {
    if (opts.by === "root") {
      if (type !== "netfs") throw new Error(`createOwnPool: root makes netfs pools only, not ${type}`);
      own.targetPath = `/var/lib/libvirt/gluster/${name}`;
      virsh("pool-define-as", name, "netfs", "--source-host", lab.gluster.servers[0], "--source-path", `/${gluster.name}`, "--source-format", "glusterfs", "--target", own.targetPath);
      virsh("pool-build", name);
      virsh("pool-start", name);
    } else {
      const news = { connection: labConnection(lab), name, ...(opts.type ? { type } : {}), volume: gluster.name, servers: lab.gluster.servers };
      const checked = await glusterPool.check({}, news);
      if (checked.failures?.length) throw new Error(`createOwnPool: GlusterPool.check failed: ${JSON.stringify(checked.failures)}`);
      outs = (await glusterPool.create(checked.inputs!)).outs as PoolOutputs;
      own.targetPath = outs.targetPath;
    }
  } catch (e) {
    await own.remove().catch(() => undefined);
    throw e;
  }
  return own;
}

/**
 * Deletes the pool's volumes with root's virsh: every file of a netfs pool, overlays first (so
 * their backing files can go too); of a native pool, its qcow2 files (every libgfapi delete
 * waits ~10 s in glfs_fini; all the rest goes with the brick anyway).
 */
function emptyPool(lab: LabInfo, pool: OwnPool, type: "netfs" | "gluster"): void {
  if (type === "gluster") {
    tryVirsh("pool-refresh", pool.name);
    const brick = path.join(lab.stateDir, "bricks", pool.gluster.name);
    for (const file of fs.readdirSync(brick).filter((f) => f.endsWith(".qcow2"))) tryVirsh("vol-delete", "--pool", pool.name, file);
    return;
  }
  if (!pool.targetPath) return;
  const files = fs.readdirSync(pool.targetPath).sort((a, b) => Number(b.endsWith(".qcow2")) - Number(a.endsWith(".qcow2")));
  for (const file of files) tryVirsh("vol-delete", "--pool", pool.name, file);
}
