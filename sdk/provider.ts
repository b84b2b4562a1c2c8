import type * as pulumi from "@pulumi/pulumi";

export type ResourceKind = "GlusterPool" | "ImageVolume" | "DiskAttachment";

/**
 * The provider Pulumi serializes into state for each resource. It must stay tiny
 * and capture nothing but `kind`: every method require()s the implementation from
 * the installed package at call time, so refresh and delete of old resources run
 * today's code, and no schema, parser or credential is ever serialized.
 */
export function makeProvider(kind: ResourceKind): pulumi.dynamic.ResourceProvider {
  return {
    async configure(req) {
      require("pulumi-gluster-libvirt/provider").configure(req.config);
    },
    async check(olds, news) {
      return require("pulumi-gluster-libvirt/provider").resources[kind].check(olds, news);
    },
    async diff(id, olds, news) {
      return require("pulumi-gluster-libvirt/provider").resources[kind].diff(id, olds, news);
    },
    async create(inputs) {
      return require("pulumi-gluster-libvirt/provider").resources[kind].create(inputs);
    },
    async read(id, props) {
      return require("pulumi-gluster-libvirt/provider").resources[kind].read(id, props);
    },
    async update(id, olds, news) {
      return require("pulumi-gluster-libvirt/provider").resources[kind].update(id, olds, news);
    },
    async delete(id, props) {
      return require("pulumi-gluster-libvirt/provider").resources[kind].delete(id, props);
    },
  };
}

/** `true` only when A and B have the same keys: every provider input has an Args field and vice versa. */
export type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never] ? true : never;

/**
 * Resource props with every output key present: Pulumi creates an Output property
 * only for keys it is given, so inputs left unset and computed outputs are passed
 * as `undefined` (the `declare`d fields then exist at runtime).
 */
export function withOutputs<T extends object>(args: T, outputKeys: readonly string[]): T & Record<string, unknown> {
  return { ...Object.fromEntries(outputKeys.map((k) => [k, undefined])), ...args };
}
