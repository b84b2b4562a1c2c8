import * as pulumi from "@pulumi/pulumi";
import type { ResourceKind } from "../provider/index";
import { PREVIEW, STAMP } from "../provider/resource";
import { connectionInput, connectionsInput, type Connection } from "./connection";

export type { ResourceKind };

/**
 * The `__provider` of every resource of `kind`: the source the engine's dynamic-provider
 * process loads (`require-from-string`) and whose `exports.handler()` it calls to get the
 * provider. `pulumi.dynamic.Resource` would serialize a provider object into this text
 * (3 KB for our seven methods), and the engine stores it twice per resource (inputs and
 * outputs) and writes the whole state after every step, so its size is paid per resource
 * and step (docs/benchmarks.md, run G). One line instead: it require()s the implementation
 * from the installed package at call time, so refresh and delete of old resources run
 * today's code, and no schema, parser or credential is ever in state.
 */
export function providerSource(kind: ResourceKind): string {
  return `exports.handler = () => require("pulumi-gluster-libvirt/provider").providerFor(${JSON.stringify(kind)});\n`;
}

/** `true` only when A and B have the same keys: every provider input has an Args field and vice versa. */
export type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never] ? true : never;

/**
 * Every key of `T` exactly once, checked at compile time: a key missing from the table, or
 * one `T` does not have, fails to compile. The keys of a resource's outputs are written
 * down here once (as a table of `true`), not as a list kept by hand next to the type.
 */
export type KeyTable<T> = { readonly [K in keyof Required<T>]: true };
export function keysOf<T>(table: KeyTable<T>): (keyof T & string)[] {
  return Object.keys(table) as (keyof T & string)[];
}

/**
 * The hidden `__stamp` input: which resource of which stack this is. The engine gives a
 * dynamic provider no URN, and create records this on the host next to what it makes,
 * so the next run recognises an object that a killed run left behind as its own.
 */
function stamp(kind: ResourceKind, name: string): Record<typeof STAMP, string> {
  return { [STAMP]: `${pulumi.getProject()}/${pulumi.getStack()}/${kind}/${name}` } as Record<typeof STAMP, string>;
}

/**
 * The hidden `__preview` input, only while the program runs for a preview: the engine does
 * not tell a dynamic provider whether it previews, and only a preview's check probes the
 * hosts for what `up` would trip over (provider/preview.ts).
 */
function previewMarker(): Record<string, true> {
  return pulumi.runtime.isDryRun() ? { [PREVIEW]: true } : {};
}

/**
 * Resource props with every output key present: Pulumi creates an Output property
 * only for keys it is given, so inputs left unset and computed outputs are passed
 * as `undefined` (the `declare`d fields then exist at runtime).
 */
function withOutputs<T extends object>(args: T, outputKeys: readonly string[]): T & Record<string, unknown> {
  return { ...Object.fromEntries(outputKeys.map((k) => [k, undefined])), ...args };
}

/**
 * Every resource class of the package: the dynamic resource of `kind` (the type token and
 * `__provider` that `pulumi.dynamic.Resource` would give it), given its inputs (the
 * connection made secret when it carries credentials), the hidden stamp, and every output
 * key.
 */
export abstract class GlusterLibvirtResource extends pulumi.CustomResource {
  protected constructor(
    kind: ResourceKind,
    name: string,
    args: { connection?: pulumi.Input<Connection>; hypervisors?: pulumi.Input<pulumi.Input<Connection>[]> },
    outputKeys: readonly string[],
    opts: pulumi.CustomResourceOptions | undefined,
  ) {
    const connections = {
      ...(args.connection !== undefined ? { connection: connectionInput(args.connection) } : {}),
      ...(args.hypervisors !== undefined ? { hypervisors: connectionsInput(args.hypervisors) } : {}),
    };
    const props = withOutputs({ ...args, ...connections, ...stamp(kind, name), ...previewMarker(), __provider: providerSource(kind) }, outputKeys);
    super(`pulumi-nodejs:dynamic/gluster-libvirt:${kind}`, name, props, opts);
  }
}
