/**
 * zod validators for the input fields resources share. Each message says what is
 * allowed, so a CheckFailure reads as an instruction.
 */
import { isIP } from "node:net";
import { posix } from "node:path";
import { z } from "zod";
import { splitBrick } from "./xml/gluster";
import type { Permissions } from "./xml/markup";

/** What the engine sends during preview for a value not known yet (every validator lets it pass as "not set yet"). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** libvirt object names (pools, volumes, domains): safe in paths, URLs and XML. */
export const libvirtName = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$/, "use 1-128 letters, digits, '_', '.', '+' or '-', not starting with '.', '+' or '-'");

/** Gluster's own rule for volume names. */
export const glusterVolumeName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,128}$/, "a Gluster volume name has 1-128 letters, digits, '_' or '-'");

const hostnameRe = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** A Gluster server: host name, IPv4 or IPv6 address (no brackets, no port). */
export const serverAddress = z
  .string()
  .refine((v) => isIP(v) !== 0 || hostnameRe.test(v), "expected a host name or an IP address (no port, no brackets)");

/** An absolute, normalized path on the hypervisor, other than `/`. */
export const absolutePath = z
  .string()
  .refine((v) => v.startsWith("/") && v !== "/", "must be an absolute path other than /")
  .refine((v) => posix.normalize(v) === v.replace(/\/+$/, "") && !v.split("/").includes(".."), "must be normalized (no '..', '//', or trailing '/')")
  .refine((v) => !/[\s\x00-\x1f\\'"`$]/.test(v), "must not contain whitespace, quotes, backslashes, '$' or control characters");

/** File mode as an octal string, e.g. "0755". */
export const octalMode = z.string().regex(/^0?[0-7]{3}$/, "expected an octal mode such as \"0755\"");

/** A numeric uid or gid. */
export const numericId = z.number().int().min(0).max(4294967294);
const id = numericId;
/**
 * Ownership and mode of files or directories libvirt creates: a `Permissions`
 * (xml/markup.ts), field for field; a field missing on either side fails to compile.
 */
export const permissions = z.strictObject({
  /** numeric uid */
  owner: id.optional(),
  /** numeric gid */
  group: id.optional(),
  mode: octalMode.optional(),
} satisfies { [K in keyof Required<Permissions>]: z.ZodType<Permissions[K], Permissions[K]> });

// ---------------------------------------------------------------------------------------
// Paths and options that must never reach a host

/** Trees of the operating system and of libvirt itself: neither they nor anything below them is a mount point. */
export const SYSTEM_TREES = [
  "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/run", "/sbin", "/sys",
  "/tmp", "/usr", "/var/cache", "/var/lib/glusterd", "/var/lib/libvirt/boot", "/var/lib/libvirt/dnsmasq",
  "/var/lib/libvirt/images", "/var/lib/libvirt/qemu", "/var/lock", "/var/log", "/var/mail", "/var/run", "/var/spool", "/var/tmp",
] as const;
/** Directories whose subdirectories are the usual homes of mounts, but which are never one themselves. */
export const MOUNT_PARENTS = ["/", "/home", "/media", "/mnt", "/opt", "/srv", "/var", "/var/lib", "/var/lib/libvirt", "/var/lib/libvirt/gluster"] as const;

/** The system tree (SYSTEM_TREES) that is or holds `path`, if any. */
export function systemTreeOf(path: string): string | undefined {
  return SYSTEM_TREES.find((t) => path === t || path.startsWith(`${t}/`));
}

/**
 * Why `path` (absolute, normalized) cannot be a pool's mount point, or undefined. libvirt's
 * pool-build chowns and chmods an existing directory and the mount hides what it held, so a
 * system directory would be damaged and hidden; `/tmp`-like trees are writable by anyone, who
 * could put a symlink where the mount point goes.
 */
export function systemPathProblem(path: string): string | undefined {
  const tree = systemTreeOf(path);
  if (tree) return `${path} is ${path === tree ? "" : "inside "}the system directory ${tree}; mount pools elsewhere, e.g. under /var/lib/libvirt/gluster/ or /mnt/`;
  if ((MOUNT_PARENTS as readonly string[]).includes(path)) return `${path} holds other directories; use a directory of its own below it, e.g. ${path.replace(/\/$/, "")}/<pool>`;
  return undefined;
}

/** A netfs pool's mount point: absolute, normalized, and not a system directory. */
export const mountPoint = absolutePath.superRefine((v, ctx) => {
  const problem = systemPathProblem(v);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

/**
 * mount.glusterfs options that point the client at other files or servers, or pass raw
 * options past the script: a mount option must not redirect where logs go, which volfile
 * is fetched from where, or which part of the volume is mounted (disks would then point
 * elsewhere than the files). Servers belong in `servers`.
 */
export const REDIRECTING_MOUNT_OPTIONS = [
  "log-file", "dump-fuse", "transport", "server-port", "volume-id", "volume-name", "subdir-mount", "xlator-option",
  "fuse-mountopts", "volfile-server", "volfile-id", "volfile-server-port", "volfile-server-transport", "volfile",
  "backup-volfile-servers", "backupvolfile-server",
] as const;

/** The option's key (`log-file` of `log-file=/x`) when it is one that redirects, else undefined. */
export function redirectingMountOption(option: string): string | undefined {
  const key = option.split("=", 1)[0].toLowerCase();
  return (REDIRECTING_MOUNT_OPTIONS as readonly string[]).includes(key) ? key : undefined;
}

const shellMeta = /[\s\x00-\x1f\x7f;&|$`'"\\<>(){}*?![\]#~]/;

/**
 * The SSH host of a connection: a host name, an IP address, or a ~/.ssh/config alias
 * (letters, digits, '.', '_', '-'). Never anything that starts with '-' or holds shell
 * characters: the name appears in the ssh-keyscan/ssh-keygen lines error messages
 * suggest, and an option-like host is a classic injection.
 */
export const sshHost = z
  .string()
  .min(1, "must not be empty")
  .max(253, "a host name has at most 253 characters")
  .refine((v) => isIP(v) !== 0 || /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(v), "expected a host name, an IP address (no brackets) or a ~/.ssh/config alias: letters, digits, '.', '_', '-', not starting with '-' or '.'");

/** A login name: no leading '-', no whitespace, control or shell characters. */
export const loginName = z
  .string()
  .min(1, "must not be empty")
  .max(256)
  .refine((v) => !v.startsWith("-") && !shellMeta.test(v), "expected a user name (no leading '-', whitespace, quotes or shell characters)");

/**
 * A libvirt URI `driver[+transport]://[user@][host][:port]/[path][?query]`, in a
 * conservative character set: no whitespace, quotes, ';', '$', backticks or other
 * characters a shell or virsh's command parser would act on.
 */
export const libvirtUri = z
  .string()
  .regex(
    /^[a-z][a-z0-9]*(\+[a-z0-9]+)?:\/\/([A-Za-z0-9._-]+@)?([A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?\/[A-Za-z0-9._\/-]*(\?[A-Za-z0-9._\/=&%,:+-]*)?$/,
    "expected a libvirt URI such as \"qemu:///system\" or \"qemu+ssh://user@host/system\" (no spaces, quotes, ';', '$' or backticks)",
  );

/** Whitespace or control characters: never in a URL (URL parsers silently drop tabs and newlines). */
export function hasWhitespaceOrControl(text: string): boolean {
  return /[\s\x00-\x1f\x7f]/.test(text);
}

/**
 * A Gluster brick, `SERVER:/DIRECTORY`: the server a host name or IPv4 address (as the
 * trusted storage pool knows it), the directory absolute, normalized, and neither a system
 * directory nor one that holds others (glusterd writes `.glusterfs` and extended
 * attributes into it).
 */
export const glusterBrick = z.string().superRefine((v, ctx) => {
  const parts = splitBrick(v);
  if (!parts || !(isIP(parts.host) === 4 || hostnameRe.test(parts.host))) {
    ctx.addIssue({ code: "custom", message: "expected SERVER:/DIRECTORY, the server a host name or an IPv4 address" });
    return;
  }
  const path = absolutePath.safeParse(parts.path);
  if (!path.success) {
    ctx.addIssue({ code: "custom", message: `the directory ${path.error.issues[0].message}` });
    return;
  }
  const tree = systemTreeOf(parts.path);
  if (tree || (MOUNT_PARENTS as readonly string[]).includes(parts.path)) {
    ctx.addIssue({ code: "custom", message: `${parts.path} is ${tree ? `${parts.path === tree ? "" : "inside "}the system directory ${tree}` : "a directory that holds others"}; give each brick a directory of its own, e.g. /data/glusterfs/VOLUME/brick1` });
  }
});
