/**
 * Previews that predict what `up` would trip over (issue 15 §3).
 *
 * What the engine does with a dynamic provider during a preview (Pulumi 3.260, seen on
 * the lab): a resource to be created gets `check` with empty olds and nothing more
 * (create is never called); an existing one gets `check` with its old inputs, then `diff`;
 * one that diff replaces is then checked once more with empty olds, as the new resource.
 * No call says whether it is a preview: the SDK's hidden `__preview` input does
 * (resource.ts), and `checkInputs` drops it again. So:
 *  - `predictCreate`, in every check: with empty olds, in a preview, with every input
 *    known, create's own pre-flight runs (the function create itself runs first, never a
 *    copy of its rules); what it throws becomes the check failure, with create's message.
 *    An input still unknown (an output of a resource not made yet) skips it: what is not
 *    known cannot be checked, and `up` runs the same pre-flight anyway.
 *  - `predictReplacement`, in a diff that replaces: the delete's own refusal runs.
 *  - Nothing else: an unchanged or updated resource touches no host in a preview, so the
 *    preview of an unchanged stack opens no SSH connection.
 * What this run creates or deletes is announced by the check or diff that plans it. The
 * engine checks resources one at a time, in the order the program registers them, and a
 * resource that depends on another is registered after that one's step: so a volume in a
 * pool this run creates is not reported missing, and the replacement of a pool does not
 * trip over its predecessor's name.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import { InputError, SshError } from "./errors";
import { containsUnknown, parseArgs, PREVIEW, stampOf, stateOf, type FromEngine, type Stamped, type Unchecked } from "./resource";

let enabled = true;
let previewing = false;

/** `gluster-libvirt:previewChecks` (on unless "false"): off, a preview never touches a host. */
export function setPreviewChecks(on: boolean): void {
  enabled = on;
}

/** Is this provider process serving a preview whose checks probe the hosts (as the last check said)? */
export function isPredicting(): boolean {
  return previewing;
}

/**
 * What a run makes or removes, as the checks and diffs so far announced it: by name, on
 * whichever host (one host may be spelled two ways, an alias and an address, and a
 * wrong "missing" is worse than a missed one).
 */
export type PlannedKind = "pool" | "volume" | "gluster-volume" | "disk";
export interface PlannedObject {
  kind: PlannedKind;
  /** the object's name parts (a volume: pool, name; a disk: domain, target); any may be UNKNOWN */
  name: readonly unknown[];
}

const toCreate: PlannedObject[] = [];
const toDelete: PlannedObject[] = [];

/** Forgets what earlier checks announced (unit tests: one provider process serves one run). */
export function resetPredictions(): void {
  toCreate.length = 0;
  toDelete.length = 0;
  previewing = false;
}

/** Could `planned` be the object `kind` named `name`? An unknown part could be anything. */
export function couldBe(planned: PlannedObject, kind: PlannedKind, name: readonly string[]): boolean {
  return planned.kind === kind && name.every((n, i) => planned.name[i] === n || containsUnknown(planned.name[i]));
}

/** Will this run create it (or might: an announcement with an unknown name)? */
export function createdByThisRun(kind: PlannedKind, ...name: string[]): boolean {
  return toCreate.some((p) => couldBe(p, kind, name));
}

/** Will this run delete it before it creates its replacement? */
export function deletedByThisRun(kind: PlannedKind, ...name: string[]): boolean {
  return toDelete.some((p) => couldBe(p, kind, name));
}

/** Is this check of a resource to be created (new, or the replacement of one)? */
export function isCreation(olds: Unchecked): boolean {
  return Object.keys(stateOf(olds)).length === 0;
}

/**
 * Top-level inputs that may hold credentials: the engine prints a failing top-level
 * property's value in plaintext (docs/architecture.md, Secrets), so a failure of one of
 * them is reported on the resource, its field named in the message.
 */
const MAY_HOLD_SECRETS = new Set(["connection", "source"]);

/** The check failure for what create's pre-flight threw: its own message, on its field when that is safe to print. */
export function failureOf(err: unknown): pulumi.dynamic.CheckFailure {
  if (err instanceof InputError && !MAY_HOLD_SECRETS.has(err.field)) return { property: err.field, reason: err.reason };
  const message = err instanceof Error ? err.message : String(err);
  // A preview that cannot reach a host says how to preview without the checks.
  const hint = err instanceof SshError ? " (preview checks what `up` needs on the hosts; `pulumi config set gluster-libvirt:previewChecks false` previews without them)" : "";
  return { property: "", reason: `${message}${hint}` };
}

/**
 * Where `doctor`'s checks (issue 15 §2) plug in: a read-only check of a resource kind's
 * host prerequisites (QEMU's gluster driver, the Gluster volume started, …), run during a
 * preview after create's own pre-flight, for the same resources. It throws what `up`
 * would fail with (an InputError naming the field, or a GlusterLibvirtError).
 */
export type PreviewCheck<Args> = (args: Args) => Promise<void>;
const extraChecks = new Map<string, PreviewCheck<never>[]>();

export function addPreviewCheck<Args>(kind: string, check: PreviewCheck<Args>): void {
  extraChecks.set(kind, [...(extraChecks.get(kind) ?? []), check as PreviewCheck<never>]);
}

export interface CreatePrediction<Args> {
  /** the resource kind (`ImageVolume`), for the checks added by addPreviewCheck */
  kind: string;
  /** what create will make, from inputs that may hold UNKNOWN; announced even when nothing can be checked */
  makes?(inputs: Record<string, unknown>): PlannedObject | undefined;
  /** create's own pre-flight, on the host(s) create would use: throws what create would throw, and changes nothing */
  preflight(args: Args, stamp: string | undefined): Promise<void>;
}

/**
 * Every check ends here: notes whether this is a probing preview, and for a resource to
 * be created runs its prediction. Returns `result` with create's error as its failure.
 */
export async function predictCreate<S extends z.ZodType>(
  schema: S,
  olds: Unchecked,
  news: Unchecked,
  result: pulumi.dynamic.CheckResult<Stamped<z.input<S>>>,
  prediction: CreatePrediction<z.output<S>>,
): Promise<pulumi.dynamic.CheckResult<Stamped<z.input<S>>>> {
  previewing = enabled && news[PREVIEW] === true;
  if (!previewing || !isCreation(olds) || result.failures?.length || !result.inputs) return result;
  const inputs = result.inputs as Record<string, unknown>;
  const made = prediction.makes?.(inputs);
  if (made) toCreate.push(made);
  if (containsUnknown(inputs)) return result;
  try {
    const args = parseArgs(schema, inputs as FromEngine<Stamped<z.input<S>>>);
    await prediction.preflight(args, stampOf(inputs));
    for (const check of extraChecks.get(prediction.kind) ?? []) await (check as PreviewCheck<z.output<S>>)(args);
    return result;
  } catch (err) {
    return { ...result, failures: [failureOf(err)] };
  }
}

/**
 * A diff that replaces, during a probing preview: announces that the old object goes
 * first (every replacement here deletes before it creates) and runs the delete's own
 * refusal, whose error fails the preview as it would fail `up`.
 */
export async function predictReplacement(
  result: pulumi.dynamic.DiffResult,
  prediction: { removes: PlannedObject; refusal?: () => Promise<void> },
): Promise<pulumi.dynamic.DiffResult> {
  if (!previewing || !result.replaces?.length) return result;
  if (result.deleteBeforeReplace) toDelete.push(prediction.removes);
  await prediction.refusal?.();
  return result;
}
