/**
 * zod validators for the input fields resources share. Each message says what is
 * allowed, so a CheckFailure reads as an instruction.
 */
import { isIP } from "node:net";
import { posix } from "node:path";
import { z } from "zod";

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

const id = z.number().int().min(0).max(4294967294);
/** Ownership and mode of files or directories libvirt creates. */
export const permissions = z.strictObject({
  /** numeric uid */
  owner: id.optional(),
  /** numeric gid */
  group: id.optional(),
  mode: octalMode.optional(),
});
export type PermissionsInput = z.output<typeof permissions>;
