import { isDeepStrictEqual } from "node:util";
import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import { InputError } from "./errors";
import { UNKNOWN } from "./fields";

/**
 * The hidden input by which the SDK tells create which resource of which stack asks
 * (`project/stack/Kind/name`): the engine hands a dynamic provider no URN. Not validated,
 * not diffed; recorded on the host next to what create makes (libvirt/stamps.ts).
 */
export const STAMP = "__stamp";

/** The stamp create was given, if the SDK sent one. */
export function stampOf(props: { readonly [STAMP]?: unknown }): string | undefined {
  const stamp = props[STAMP];
  return typeof stamp === "string" && stamp !== UNKNOWN ? stamp : undefined;
}

/**
 * The hidden input by which the SDK says the program runs for a preview (`isDryRun()`): the
 * engine tells a dynamic provider nothing of the kind, and check alone may probe the hosts
 * then (provider/preview.ts). `checkInputs` drops it, so it never reaches diff, state or
 * the preview's display.
 */
export const PREVIEW = "__preview";

export { UNKNOWN };

/** A resource's inputs as the SDK sends them: the schema's input type and the hidden stamp. */
export type Stamped<Inputs> = Inputs & { readonly [STAMP]?: string };

// What the engine really hands a dynamic provider is looser than the declared inputs and
// outputs, in three ways, written down here once:
//  - every bag, inputs and state alike, also carries `__provider` (the serialized
//    provider), which the helpers below drop: `FromEngine`;
//  - `check` gets the program's inputs unvalidated, anything at all: `Unchecked`;
//  - during preview (`check`, `diff`) a value not known yet is the UNKNOWN string, at
//    any depth: `Previewed`.

/** A bag with the engine's `__provider` on it. */
export type FromEngine<T> = T & { readonly __provider?: string };

/** Inputs nobody has validated yet. */
export type Unchecked = { readonly [key: string]: unknown };

/** Checked inputs during preview: any value, at any depth, may still be UNKNOWN. */
export type Previewed<T> = { [K in keyof T]: MaybeUnknown<T[K]> };
type MaybeUnknown<T> = typeof UNKNOWN | (T extends readonly (infer E)[] ? MaybeUnknown<E>[] : T extends object ? Previewed<T> : T);

/**
 * A resource's CRUD object: Pulumi's `ResourceProvider` over the resource's typed inputs
 * (with the stamp) and outputs, every method present, whose `check` and `diff` also take
 * what the engine really hands them (see above).
 */
export type ResourceCrud<Inputs, Outputs> = Required<Omit<pulumi.dynamic.ResourceProvider<Stamped<Inputs>, Outputs>, "configure">> & {
  check(olds: Unchecked, news: Unchecked): Promise<pulumi.dynamic.CheckResult<Stamped<Inputs>>>;
  diff(id: string, olds: Outputs, news: Previewed<Stamped<Inputs>>): Promise<pulumi.dynamic.DiffResult>;
};

/** A bag compared field by field against a replacement table: the table's keys, any values (UNKNOWN among them). */
export type Compared<T> = { readonly [K in keyof T]?: unknown };

export function containsUnknown(value: unknown): boolean {
  if (value === UNKNOWN) return true;
  if (Array.isArray(value)) return value.some(containsUnknown);
  if (value && typeof value === "object") return Object.values(value).some(containsUnknown);
  return false;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** `connection.host`, `servers[1]` — the property path Pulumi shows next to a failure. */
export function propertyPath(path: readonly PropertyKey[]): string {
  return path
    .map((k, i) =>
      typeof k === "number" ? `[${k}]` : !/^[A-Za-z_$][\w$]*$/.test(String(k)) ? `[${JSON.stringify(String(k))}]` : i === 0 ? String(k) : `.${String(k)}`,
    )
    .join("");
}

/**
 * Validates inputs with the resource's zod schema and reports each problem against
 * the field it concerns. Values still unknown (preview) are not judged: a failure on
 * or inside an unknown value is dropped, and the inputs are passed on unnormalized
 * until every value is known.
 */
export function checkInputs<Inputs extends object, Args extends Inputs>(
  schema: z.ZodType<Args, Inputs>,
  news: FromEngine<Unchecked>,
): pulumi.dynamic.CheckResult<Stamped<Inputs>> {
  const { __provider: _ignored, [STAMP]: stamp, [PREVIEW]: _preview, ...given } = news;
  // Failed or not yet judged (unknown values), the inputs go back as they were given.
  const inputs = given as Stamped<Inputs>;
  const result = schema.safeParse(inputs);
  // Valid inputs go back normalized: what the schema makes of them it takes again (`Args extends Inputs`).
  if (result.success) return { inputs: { ...result.data, ...(typeof stamp === "string" ? { [STAMP]: stamp } : {}) } };
  const failures = result.error.issues
    .filter((issue) => {
      for (let i = 0; i <= issue.path.length; i++) {
        if (valueAt(inputs, issue.path.slice(0, i)) === UNKNOWN) return false;
      }
      // A refinement over the whole object may trip on an unknown value inside it.
      return !(issue.code === "custom" && containsUnknown(valueAt(inputs, issue.path)));
    })
    .map((issue) => ({
      // An unknown key is reported on itself: the engine prints the value of a failing
      // top-level property next to the reason, in plaintext even when it is a secret
      // (Pulumi 3.260), and a whole `connection` or `source` may hold credentials.
      property: propertyPath(issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]] : issue.path) || "(inputs)",
      // A map's bad key: zod's own message is "Invalid key in record"; the key schema's says what is wrong.
      reason: issue.code === "invalid_key" ? (issue.issues[0]?.message ?? issue.message) : issue.message,
    }));
  return failures.length ? { inputs, failures } : { inputs };
}

/**
 * How a change to each input is applied. Every input is listed (the type demands
 * it): `replace` forces a new resource, `update` is done in place by `update()`.
 * A function decides per change (e.g. a connection that points at another host).
 */
export type ChangeRule<T> = "replace" | "update" | ((olds: T, news: T) => "replace" | "update");
export type ReplacementTable<Inputs> = { readonly [K in keyof Required<Inputs>]: ChangeRule<Inputs[K]> };

/**
 * The `connection` input: pointing at another hypervisor means another object, so it
 * replaces; new credentials, ports or jump hosts for the same host only update state.
 */
export const connectionRule: ChangeRule<{ host?: string } | undefined> = (olds, news) =>
  olds?.host === news?.host ? "update" : "replace";

export interface FieldChange {
  field: string;
  how: "replace" | "update";
}

/** The fields whose desired value differs from the recorded one, and how each applies. */
export function changedFields<Inputs extends object>(
  table: ReplacementTable<Inputs>,
  olds: Compared<Inputs>,
  news: Compared<Inputs>,
): FieldChange[] {
  const changes: FieldChange[] = [];
  for (const [field, rule] of Object.entries(table) as [keyof Inputs & string, ChangeRule<unknown>][]) {
    const before = olds[field];
    const after = news[field];
    if (isDeepStrictEqual(before, after)) continue;
    const unknown = containsUnknown(after);
    const how = typeof rule === "function" ? (unknown ? "replace" : rule(before, after)) : rule;
    changes.push({ field, how });
  }
  return changes;
}

/** `diff()` for every resource: the table alone decides replace vs update. */
export function diffByTable<Inputs extends object>(
  table: ReplacementTable<Inputs>,
  olds: Compared<Inputs>,
  news: Compared<Inputs>,
): pulumi.dynamic.DiffResult {
  const changes = changedFields(table, olds, news);
  return {
    changes: changes.length > 0,
    replaces: changes.filter((c) => c.how === "replace").map((c) => c.field),
    // A replacement of a named libvirt object cannot coexist with its predecessor.
    deleteBeforeReplace: changes.some((c) => c.how === "replace"),
  };
}

/**
 * Inputs as create/update receive them (checked, plus the engine's `__provider`),
 * parsed into the resource's typed arguments. A failure here means check was
 * bypassed; it still names the field.
 */
export function parseArgs<S extends z.ZodType>(schema: S, props: FromEngine<Stamped<z.input<S>>>): z.output<S> {
  const { __provider: _ignored, [STAMP]: _stamp, [PREVIEW]: _preview, ...inputs } = props as FromEngine<Stamped<z.input<S>>> & { [PREVIEW]?: unknown };
  const result = schema.safeParse(inputs);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new InputError(propertyPath(issue.path) || "(inputs)", issue.message);
}

/** A resource's recorded state as read/update/delete receive it, without the engine's `__provider`. */
export function stateOf<T extends object>(props: FromEngine<T> | undefined): T {
  const { __provider: _ignored, ...state } = props ?? ({} as FromEngine<T>);
  return state as T;
}

/** Outputs must be plain JSON: drops `undefined` (Pulumi rejects it), keeps nulls. */
export function plainOutputs<T extends object>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
