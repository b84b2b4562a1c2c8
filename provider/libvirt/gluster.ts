/** Names of images inside a Gluster volume, and the gluster:// URLs QEMU opens them by. */
import { isIP } from "node:net";
import { GLUSTER_DEFAULT_PORT } from "../xml/disk";
import type { PoolInfo } from "../xml/pool";

/** A server as a URL's authority: IPv6 addresses in brackets, a port when given. */
export function urlAuthority(server: string, port?: number): string {
  const host = isIP(server) === 6 ? `[${server}]` : server;
  return port === undefined ? host : `${host}:${port}`;
}

/** `gluster://SERVER[:PORT]/VOLUME[/PATH]`: the path percent-encoded where a URL needs it, the default port left out. */
export function glusterUrl(server: string, volume: string, path?: string, port?: number): string {
  const tail = path ? `/${encodeURI(path).replace(/[?#]/g, encodeURIComponent)}` : "";
  return `gluster://${urlAuthority(server, port === GLUSTER_DEFAULT_PORT ? undefined : port)}/${volume}${tail}`;
}

/** A pool's volume `name` as a path inside the Gluster volume ("dir/name"). */
export function pathInGlusterVolume(pool: Pick<PoolInfo, "directory">, name: string): string {
  return [...(pool.directory ?? "").split("/").filter(Boolean), name].join("/");
}

/** The URL QEMU and qemu-img open a pool's volume by. */
export function volumeGlusterUrl(pool: Pick<PoolInfo, "servers" | "volume" | "directory" | "port">, name: string): string {
  return glusterUrl(pool.servers[0], pool.volume, pathInGlusterVolume(pool, name), pool.port);
}
