/** Gluster volume options: the `virt` group, which options are not per volume, when two values mean the same. Pure. */

/**
 * What `gluster volume set VOL group virt` sets: `/var/lib/glusterd/groups/virt` of
 * glusterfs 10.3 (Debian 12), the profile Gluster ships for VM images. Written out here so
 * that a preview shows each option before anything touches a server, and every server
 * gets the same values whatever its release's copy of the file says (the unit test
 * compares this table with the captured file).
 */
export const VIRT_GROUP: Readonly<Record<string, string>> = {
  "performance.quick-read": "off",
  "performance.read-ahead": "off",
  "performance.io-cache": "off",
  "performance.low-prio-threads": "32",
  "network.remote-dio": "disable",
  "performance.strict-o-direct": "on",
  "cluster.eager-lock": "enable",
  "cluster.quorum-type": "auto",
  "cluster.server-quorum-type": "server",
  "cluster.data-self-heal-algorithm": "full",
  "cluster.locking-scheme": "granular",
  "cluster.shd-max-threads": "8",
  "cluster.shd-wait-qlength": "10000",
  "features.shard": "on",
  "user.cifs": "off",
  "cluster.choose-local": "off",
  "client.event-threads": "4",
  "server.event-threads": "4",
  "performance.client-io-threads": "on",
  "network.ping-timeout": "20",
  "server.tcp-user-timeout": "20",
  "server.keepalive-time": "10",
  "server.keepalive-interval": "2",
  "server.keepalive-count": "5",
  "cluster.lookup-optimize": "off",
};

/**
 * What a volume whose directory libvirt pools on several hypervisors list needs
 * (`GlusterVolume.sharedPools`). With Gluster's FUSE defaults, a pool refresh (libvirt's
 * readdir, then an open and a header read of every file) fails "Stale file handle" on a
 * file another hypervisor deletes meanwhile: open-behind answers the open before the file
 * is opened on the bricks, and md-cache (stat-prefetch) keeps the entry readdirp gave, so
 * the deleted file's open or first read fails ESTALE where libvirt skips ENOENT — and
 * libvirt then stops the pool. Measured on the lab (docs/scale.md §5): 30 refreshes of a
 * 300-file directory while another client replaces files failed 24 times with the
 * defaults, 0 of 60 with these two off. Neither matters to VM images, opened once each.
 */
export const SHARED_POOL_OPTIONS: Readonly<Record<string, string>> = {
  "performance.open-behind": "off",
  "performance.stat-prefetch": "off",
};

/** A `group` file (`key=value` lines) as a map. */
export function parseGroupFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

/**
 * Options glusterd only takes for every volume at once (`gluster volume set all …`): a
 * resource of one volume must not change them for all the others.
 */
export const CLUSTER_WIDE_OPTIONS = [
  "cluster.server-quorum-ratio",
  "cluster.enable-shared-storage",
  "cluster.op-version",
  "cluster.max-op-version",
  "cluster.brick-multiplex",
  "cluster.max-bricks-per-process",
  "cluster.localtime-logging",
  "cluster.daemon-log-level",
  "cluster.brick-graceful-cleanup",
] as const;

/**
 * Sharding cannot be turned off on a volume that holds sharded files: their data beyond
 * the first shard would no longer be read. Changing it away from `on` is refused.
 */
export const SHARD_OPTION = "features.shard";

const TRUE = new Set(["on", "yes", "true", "enable", "1"]);
const FALSE = new Set(["off", "no", "false", "disable", "0"]);

/** Do two values of an option mean the same to glusterd (equal text, or the same boolean: `on`/`enable`/`yes`/`true`/`1`)? */
export function sameOptionValue(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a === b) return true;
  const [x, y] = [a.trim().toLowerCase(), b.trim().toLowerCase()];
  return x === y || (TRUE.has(x) && TRUE.has(y)) || (FALSE.has(x) && FALSE.has(y));
}

/** Is `value` a boolean that means off to glusterd? */
export function isOff(value: string | undefined): boolean {
  return value !== undefined && FALSE.has(value.trim().toLowerCase());
}
