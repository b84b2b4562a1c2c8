/**
* Storage pool XML for the two ways libvirt reaches a Gluster volume:
*  - `netfs` + `<format type='glusterfs'/>`: libvirt mounts the volume through FUSE
*    at the target path. The pool element holds exactly one `<host>`; further
*    servers travel as the FUSE mount option `backup-volfile-servers=S2:S3`
*    (fs namespace), so the mount survives the first server being down.
*  - `gluster`: libvirt talks libgfapi itself. It only lists/deletes volumes, and
*    connects through the first `<host>` only (extra hosts are kept in the
*    definition but give no failover).
* Pure data in, data out; see markup.ts for escaping and parsing.
*/
import {
  attr, attrs, child, children, childText, escapeXml, indent, namespacePrefix, parsePermissions,
  parseInteger, parseRoot, permissionsLines, sizeInBytes, textElement, XmlError,
  type Permissions, type XmlElement,
} from "./markup";

export const FS_NAMESPACE = "http://libvirt.org/schemas/storagepool/fs/1.0";

export type PoolType = "netfs" | "gluster";

/** What a GlusterPool wants on the host; also what parsePoolXml reads back. */
export interface PoolSpec {
  name: string;
  type: PoolType;
  /** Gluster volume name (no slashes). */
  volume: string;
  /** Gluster servers, first one first. netfs: the first is the `<host>`, the rest
  *  become `backup-volfile-servers`; gluster: every one is a `<host>`. */
  servers: string[];
  /** glusterd port on the `<host>` element(s); libvirt/gluster default 24007. */
  port?: number;
  /** Absolute directory inside the Gluster volume to use as the pool root;
  *  absent = the volume's root. */
  directory?: string;
  /** netfs only (required there): the mount point. */
  targetPath?: string;
  /** netfs only: ownership and mode of the mount point directory. */
  permissions?: Permissions;
  /** netfs only: extra FUSE mount options, e.g. "log-level=WARNING". */
  mountOptions?: string[];
  uuid?: string;
}

/** parsePoolXml's result: the spec as defined on the host plus live sizes.
 *  Optional fields that the XML lacks are omitted (never undefined, never []),
 *  and modes are normalised ("755" -> "0755"), so compare against a spec
 *  normalised the same way. */
export interface PoolInfo extends PoolSpec {
  /** bytes; present in every dumpxml (0 while the pool is inactive) */
  capacity?: number;
  allocation?: number;
  available?: number;
}

/** The FUSE mount option that carries a netfs pool's servers after the first. */
const BACKUP_SERVERS = "backup-volfile-servers=";
// The single-server spelling older guides use; read it so a hand-made pool compares right.
const LEGACY_BACKUP_SERVER = "backupvolfile-server=";
/** Mount options that name servers: `servers` is their one home, so they are not accepted as options. */
export const SERVER_MOUNT_OPTION_PREFIXES = [BACKUP_SERVERS, LEGACY_BACKUP_SERVER] as const;

/** Fields only a netfs pool has (a native gluster pool has no mount): the schema and the builder refuse them alike. */
export const NETFS_ONLY_FIELDS = ["targetPath", "permissions", "mountOptions"] as const;

/**
 * Why `server` cannot be a netfs pool's server after the first, or undefined if it can:
 * those travel as `backup-volfile-servers=S2:S3`, which mount.glusterfs splits on ':'.
 */
export function backupServerProblem(server: string): string | undefined {
  return server.includes(":") ? "a netfs pool's servers after the first cannot contain ':' (IPv6): use a host name, or type \"gluster\"" : undefined;
}

export function buildPoolXml(spec: PoolSpec): string {
  if (spec.type !== "netfs" && spec.type !== "gluster") {
    throw new XmlError(`unsupported pool type ${JSON.stringify(spec.type)}`);
  }
  if (spec.servers.length === 0) throw new XmlError("a Gluster pool needs at least one server");
  if (!spec.volume || spec.volume.includes("/")) {
    throw new XmlError(`Gluster volume name must be non-empty without '/': ${JSON.stringify(spec.volume)}`);
  }
  const directory = normalizeDirectory(spec.directory);
  const host = (name: string) => `<host${attrs({ name, port: spec.port })}/>`;

  if (spec.type === "gluster") {
    if (NETFS_ONLY_FIELDS.some((f) => spec[f] !== undefined && !(Array.isArray(spec[f]) && spec[f].length === 0))) {
      // libvirt's gluster pool has no target or mount; silently dropping them would hide a mistake.
      throw new XmlError("targetPath, permissions and mountOptions apply to netfs pools only");
    }
    const source = [
      ...spec.servers.map(host),
      `<dir${attrs({ path: directory ?? "/" })}/>`,
      textElement("name", spec.volume),
    ];
    return document(`<pool type='gluster'>`, [...header(spec), "<source>", ...indent(source, 1), "</source>"]);
  }

  if (!spec.targetPath) throw new XmlError("a netfs pool needs targetPath (the mount point)");
  const [first, ...backups] = spec.servers;
  for (const server of backups) {
    const problem = backupServerProblem(server);
    if (problem) throw new XmlError(`${problem}: ${server}`);
  }
  for (const option of spec.mountOptions ?? []) {
    // Servers have one home (spec.servers); a second spelling would not round-trip.
    if (SERVER_MOUNT_OPTION_PREFIXES.some((prefix) => option.startsWith(prefix))) {
      throw new XmlError(`give extra Gluster servers in servers, not as mount option ${option}`);
    }
  }
  const options = [
    ...(backups.length ? [BACKUP_SERVERS + backups.join(":")] : []),
    ...(spec.mountOptions ?? []),
  ];
  const source = [
    host(first),
    `<dir${attrs({ path: `/${spec.volume}${directory ?? ""}` })}/>`,
    "<format type='glusterfs'/>",
  ];
  const target = [textElement("path", spec.targetPath), ...permissionsLines(spec.permissions)];
  const body = [
    ...header(spec),
    "<source>", ...indent(source, 1), "</source>",
    "<target>", ...indent(target, 1), "</target>",
  ];
  if (options.length) {
    body.push("<fs:mount_opts>", ...indent(options.map((o) => `<fs:option${attrs({ name: o })}/>`), 1), "</fs:mount_opts>");
  }
  // libvirt declares the namespace only when the pool uses it; do the same so the
  // golden output matches what pool-dumpxml prints.
  const open = options.length ? `<pool type='netfs' xmlns:fs='${escapeXml(FS_NAMESPACE)}'>` : `<pool type='netfs'>`;
  return document(open, body);
}

export function parsePoolXml(xml: string): PoolInfo {
  const pool = parseRoot(xml, "pool");
  const type = attr(pool, "type");
  const name = childText(pool, "name") ?? "";
  if (type !== "netfs" && type !== "gluster") {
    throw new XmlError(`pool '${name}' is of type '${type ?? "?"}', not a Gluster pool`);
  }
  const source = child(pool, "source");
  const hosts = children(source, "host").map((h) => ({
    name: attr(h, "name") ?? "",
    port: parseInteger(attr(h, "port"), "host port"),
  }));
  if (hosts.length === 0 || hosts.some((h) => !h.name)) throw new XmlError(`pool '${name}' has no source host`);
  // libvirt connects through the first host only, so its port is the one that counts.
  const port = hosts[0].port;
  const dirPath = attr(child(source, "dir"), "path");

  let info: PoolInfo;
  if (type === "gluster") {
    info = {
      name, type,
      volume: childText(source, "name") ?? "",
      servers: hosts.map((h) => h.name),
    };
    const directory = normalizeDirectory(dirPath ?? "/");
    if (directory !== undefined) info.directory = directory;
  } else {
    const format = attr(child(source, "format"), "type");
    if (format !== "glusterfs") {
      throw new XmlError(`pool '${name}' is a netfs pool of format '${format ?? "auto"}', not glusterfs`);
    }
    // dir is "/VOLUME[/sub/dir]" ("VOLUME…" without the slash is accepted too).
    const [volume, ...rest] = (dirPath ?? "").replace(/^\/+/, "").split("/");
    const servers = [hosts[0].name];
    if (hosts.length > 1) throw new XmlError(`netfs pool '${name}' has ${hosts.length} hosts; libvirt allows one`);
    const mountOptions: string[] = [];
    for (const option of mountOptionNames(pool)) {
      if (option.startsWith(BACKUP_SERVERS)) {
        servers.push(...option.slice(BACKUP_SERVERS.length).split(":").filter(Boolean));
      } else if (option.startsWith(LEGACY_BACKUP_SERVER)) {
        servers.push(option.slice(LEGACY_BACKUP_SERVER.length));
      } else {
        mountOptions.push(option);
      }
    }
    const target = child(pool, "target");
    info = { name, type, volume, servers };
    const directory = normalizeDirectory("/" + rest.join("/"));
    if (directory !== undefined) info.directory = directory;
    const targetPath = childText(target, "path");
    if (targetPath !== undefined) info.targetPath = targetPath;
    const permissions = parsePermissions(child(target, "permissions"));
    if (permissions) info.permissions = permissions;
    if (mountOptions.length) info.mountOptions = mountOptions;
  }
  if (!info.volume) throw new XmlError(`pool '${name}' names no Gluster volume`);
  if (port !== undefined) info.port = port;
  const uuid = childText(pool, "uuid")?.trim();
  if (uuid) info.uuid = uuid;
  for (const size of ["capacity", "allocation", "available"] as const) {
    const bytes = sizeInBytes(child(pool, size), size);
    if (bytes !== undefined) info[size] = bytes;
  }
  return info;
}

/** Names of `<fs:option>`s, whatever prefix the document bound the fs namespace to. */
function mountOptionNames(pool: XmlElement): string[] {
  const prefix = namespacePrefix(pool, FS_NAMESPACE);
  if (!prefix) return [];
  return children(pool, `${prefix}:mount_opts`).flatMap((opts) =>
    children(opts, `${prefix}:option`).map((o) => attr(o, "name") ?? "").filter(Boolean),
  );
}

/** "/a//b/" -> "/a/b"; the volume root ("/", "", undefined) -> undefined. */
function normalizeDirectory(dir: string | undefined): string | undefined {
  if (dir === undefined) return undefined;
  const parts = dir.split("/").filter(Boolean);
  if (parts.some((p) => p === "." || p === "..")) throw new XmlError(`directory must not contain . or ..: ${dir}`);
  return parts.length ? "/" + parts.join("/") : undefined;
}

function header(spec: PoolSpec): string[] {
  return [textElement("name", spec.name), ...(spec.uuid ? [textElement("uuid", spec.uuid)] : [])];
}

function document(open: string, body: string[]): string {
  return [open, ...indent(body, 1), "</pool>", ""].join("\n");
}

/** Any storage pool, Gluster or not, as far as the in-use scans need to know it. */
export interface PoolSummary {
  name: string;
  uuid?: string;
  /** dir | fs | netfs | gluster | logical | iscsi | rbd | … */
  type: string;
  /** where the pool's files are on the host (dir, fs, netfs) */
  targetPath?: string;
  /** Gluster pools (netfs with format glusterfs, or native): the volume and the directory inside it */
  gluster?: { volume: string; directory?: string };
}

export function parsePoolSummary(xml: string): PoolSummary {
  const pool = parseRoot(xml, "pool");
  const summary: PoolSummary = { name: childText(pool, "name") ?? "", type: attr(pool, "type") ?? "" };
  const uuid = childText(pool, "uuid")?.trim();
  if (uuid) summary.uuid = uuid;
  const targetPath = childText(child(pool, "target"), "path");
  if (targetPath) summary.targetPath = targetPath;
  if (summary.type === "gluster" || (summary.type === "netfs" && attr(child(child(pool, "source"), "format"), "type") === "glusterfs")) {
    const info = parsePoolXml(xml);
    summary.gluster = { volume: info.volume, ...(info.directory ? { directory: info.directory } : {}) };
  }
  return summary;
}
