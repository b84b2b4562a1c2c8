import type * as pulumi from "@pulumi/pulumi";

export type ResourceKind = "GlusterPool" | "ImageVolume" | "DiskAttachment";

const providers = new Map<ResourceKind, pulumi.dynamic.ResourceProvider>();

/**
 * The provider Pulumi serializes into state for each resource. It must stay tiny
 * and capture nothing but `kind`: every method require()s the implementation from
 * the installed package at call time, so refresh and delete of old resources run
 * today's code, and no schema, parser or credential is ever serialized. One object
 * per kind: Pulumi caches the serialized text by object identity, so a program with
 * many resources serializes each kind once.
 */
export function makeProvider(kind: ResourceKind): pulumi.dynamic.ResourceProvider {
  let provider = providers.get(kind);
  if (!provider) {
    const impl = () => require("pulumi-gluster-libvirt/provider");
    provider = {
      async configure(req) {
        impl().configure(req.config);
      },
      async check(olds, news) {
        return impl().resources[kind].check(olds, news);
      },
      async diff(id, olds, news) {
        return impl().resources[kind].diff(id, olds, news);
      },
      async create(inputs) {
        return impl().resources[kind].create(inputs);
      },
      async read(id, props) {
        return impl().resources[kind].read(id, props);
      },
      async update(id, olds, news) {
        return impl().resources[kind].update(id, olds, news);
      },
      async delete(id, props) {
        return impl().resources[kind].delete(id, props);
      },
    };
    providers.set(kind, provider);
  }
  return provider;
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
