import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "../provider/ssh/settings";

/**
 * How to reach a hypervisor over SSH. Only `host` is required; everything else may
 * come from the stack config (`gluster-libvirt:user`, `gluster-libvirt:privateKey` as a
 * secret, …) or `~/.ssh/config`. Host keys are verified strictly by default.
 */
export type Connection = ConnectionArgs;

const SECRET_FIELDS = ["privateKey", "passphrase", "password"] as const;

function carriesSecrets(value: unknown): boolean {
  if (!value || typeof value !== "object") return false;
  if (SECRET_FIELDS.some((f) => (value as Record<string, unknown>)[f] !== undefined)) return true;
  const hops = (value as { proxyJump?: unknown }).proxyJump;
  return Array.isArray(hops) && hops.some(carriesSecrets);
}

/**
 * A connection that carries a key, passphrase or password becomes a secret as a
 * whole, so neither state nor `preview --diff` ever shows it. Connections whose
 * credentials come from stack config stay readable.
 */
export function connectionInput(connection: pulumi.Input<Connection>): pulumi.Output<Connection> {
  return pulumi.output(connection).apply((c) => (carriesSecrets(c) ? pulumi.secret(c) : c)) as pulumi.Output<Connection>;
}

/** A list of connections (a DiskAttachment's `hypervisors`): secret as a whole when any of them carries credentials. */
export function connectionsInput(connections: pulumi.Input<pulumi.Input<Connection>[]>): pulumi.Output<Connection[]> {
  return pulumi.output(connections).apply((list) => (list.some(carriesSecrets) ? pulumi.secret(list) : list)) as pulumi.Output<Connection[]>;
}
