/**
 * The preview's predictions (issue 15 §3) without hosts: when they run, what they
 * announce, how create's error becomes a check failure. Their effect on real hosts is
 * test/e2e/previewChecks.test.ts.
 */
import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { utils } from "ssh2";
import { z } from "zod";
import { GlusterLibvirtError, InputError, SshError } from "../../provider/errors";
import { getHost } from "../../provider/host";
import {
  couldBe,
  createdByThisRun,
  deletedByThisRun,
  failureOf,
  isCreation,
  isPredicting,
  predictCreate,
  predictReplacement,
  resetPredictions,
  setPreviewChecks,
} from "../../provider/preview";
import { checkInputs, PREVIEW, UNKNOWN } from "../../provider/resource";
import { connectionSchema } from "../../provider/ssh/settings";

const privateKey = utils.generateKeyPairSync("ed25519").private;
const connection = { host: "kvm1", port: 22, user: "root", agent: "", privateKey };
const schema = z.strictObject({ connection: connectionSchema, name: z.string() });
const at = "root@kvm1:22";

/** One check as the engine makes it: olds (empty for a creation), news with or without the preview marker. */
async function check(olds: Record<string, unknown>, news: Record<string, unknown>, preflight: () => Promise<void>) {
  const calls: unknown[] = [];
  const result = await predictCreate(schema, olds, news, checkInputs(schema, news), {
    kind: "Test",
    makes: (inputs) => ({ kind: "pool", name: [inputs.name] }),
    async preflight(args) {
      calls.push({ host: getHost(args.connection).label, name: args.name });
      await preflight();
    },
  });
  return { result, calls };
}

afterEach(() => {
  resetPredictions();
  setPreviewChecks(true);
});

describe("predictCreate", () => {
  test("runs create's pre-flight for a creation in a preview, and its error is the failure", async () => {
    const { result, calls } = await check({}, { connection, name: "p1", [PREVIEW]: true }, async () => {
      throw new InputError("name", "a pool named 'p1' already exists");
    });
    assert.deepEqual(calls, [{ host: at, name: "p1" }]);
    assert.deepEqual(result.failures, [{ property: "name", reason: "a pool named 'p1' already exists" }]);
    assert.equal(PREVIEW in (result.inputs ?? {}), false, "the marker never reaches diff or state");
    assert.equal(isPredicting(), true);
  });

  test("runs nothing in up, for existing resources, when turned off, or after a schema failure", async () => {
    const never = async () => assert.fail("no pre-flight expected");
    assert.deepEqual((await check({}, { connection, name: "p1" }, never)).calls, [], "up: create runs it itself");
    assert.equal(isPredicting(), false);
    assert.deepEqual((await check({ connection, name: "p1", __provider: "x" }, { connection, name: "p1", [PREVIEW]: true }, never)).calls, [], "unchanged or updated");
    const failed = await check({}, { connection, name: 7, [PREVIEW]: true }, never);
    assert.equal(failed.result.failures?.[0].property, "name", "the schema's failure alone");
    setPreviewChecks(false);
    assert.deepEqual((await check({}, { connection, name: "p1", [PREVIEW]: true }, never)).calls, []);
    assert.equal(createdByThisRun("pool", "p1"), false, "nothing announced when off");
  });

  test("unknown inputs skip the pre-flight but announce what will be made", async () => {
    const never = async () => assert.fail("no pre-flight with unknown inputs");
    const { result } = await check({}, { connection, name: UNKNOWN, [PREVIEW]: true }, never);
    assert.equal(result.failures, undefined);
    assert.equal(createdByThisRun("pool", "anything"), true, "an unknown name could be any pool");
    assert.equal(createdByThisRun("volume", "anything", "x"), false);
  });

  test("announced creations are what later checks count on", async () => {
    await check({}, { connection, name: "p1", [PREVIEW]: true }, async () => undefined);
    assert.equal(createdByThisRun("pool", "p1"), true);
    assert.equal(createdByThisRun("pool", "p2"), false);
  });
});

describe("predictReplacement", () => {
  const removes = { kind: "volume" as const, name: ["pool", "v1"] };
  const replacing = { changes: true, replaces: ["format"], deleteBeforeReplace: true };

  test("in a preview, runs the delete's refusal and announces the deletion", async () => {
    await check({}, { connection, name: "p1", [PREVIEW]: true }, async () => undefined);
    await assert.rejects(
      predictReplacement(replacing, { removes, refusal: async () => { throw new GlusterLibvirtError("in use by vm1 (sdb, persistent)"); } }),
      /in use by vm1/,
    );
    assert.equal(deletedByThisRun("volume", "pool", "v1"), true);
    assert.equal(deletedByThisRun("volume", "pool", "v2"), false);
  });

  test("does nothing for updates, or outside a preview", async () => {
    const refusal = async () => assert.fail("no refusal expected");
    await check({}, { connection, name: "p1", [PREVIEW]: true }, async () => undefined);
    await predictReplacement({ changes: true, replaces: [] }, { removes, refusal });
    await check({}, { connection, name: "p1" }, async () => undefined);
    await predictReplacement(replacing, { removes, refusal });
    assert.equal(deletedByThisRun("volume", "pool", "v1"), false);
  });
});

describe("the pure parts", () => {
  test("a creation is a check with empty olds (the engine's __provider aside)", () => {
    assert.equal(isCreation({}), true);
    assert.equal(isCreation({ __provider: "x" }), true);
    assert.equal(isCreation({ name: "p1" }), false);
  });

  test("an unknown name part matches anything; a known one only itself", () => {
    assert.equal(couldBe({ kind: "volume", name: ["pool", UNKNOWN] }, "volume", ["pool", "v"]), true);
    assert.equal(couldBe({ kind: "volume", name: ["pool", "v"] }, "volume", ["other", "v"]), false);
    assert.equal(couldBe({ kind: "pool", name: ["pool"] }, "volume", ["pool"]), false);
  });

  test("failures: an InputError on its field, except fields that may hold secrets; others on the resource", () => {
    assert.deepEqual(failureOf(new InputError("target", "taken")), { property: "target", reason: "taken" });
    assert.deepEqual(failureOf(new InputError("connection", "log in as root")), { property: "", reason: "connection: log in as root" });
    assert.deepEqual(failureOf(new GlusterLibvirtError("has another layout")), { property: "", reason: "has another layout" });
    const ssh = failureOf(new SshError("connect", at, "connection refused"));
    assert.match(ssh.reason, /^SSH root@kvm1:22: connection refused \(preview checks .*previewChecks false/);
  });
});
