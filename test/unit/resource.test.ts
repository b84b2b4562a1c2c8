import { test } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import { checkInputs, diffByTable, plainOutputs, propertyPath, UNKNOWN, type ReplacementTable } from "../../provider/resource";

const schema = z.object({
  name: z.string().regex(/^[a-z]+$/, "lowercase letters only"),
  servers: z.array(z.string().min(1, "must not be empty")).min(1),
  autostart: z.boolean().default(true),
  connection: z.object({ host: z.string().min(1), port: z.number().int().default(22) }),
});
type Inputs = z.input<typeof schema>;

test("check reports each failure against the field it concerns", () => {
  const r = checkInputs(schema, { name: "Bad!", servers: ["a", ""], connection: { host: "h", port: 1.5 } });
  assert.deepEqual(
    r.failures?.map((f) => f.property).sort(),
    ["connection.port", "name", "servers[1]"],
  );
  assert.match(r.failures!.find((f) => f.property === "name")!.reason, /lowercase/);
});

test("check normalizes valid inputs with defaults and drops __provider", () => {
  const r = checkInputs(schema, { __provider: "code", name: "pool", servers: ["gs1"], connection: { host: "h" } });
  assert.equal(r.failures, undefined);
  assert.deepEqual(r.inputs, { name: "pool", servers: ["gs1"], autostart: true, connection: { host: "h", port: 22 } });
});

test("check tolerates unknown values during preview but still judges known ones", () => {
  const r = checkInputs(schema, { name: UNKNOWN, servers: UNKNOWN, connection: { host: UNKNOWN, port: "x" } });
  assert.deepEqual(r.failures?.map((f) => f.property), ["connection.port"]);
  const ok = checkInputs(schema, { name: UNKNOWN, servers: [UNKNOWN], connection: UNKNOWN });
  assert.equal(ok.failures, undefined);
});

test("property paths read like Pulumi's", () => {
  assert.equal(propertyPath(["connection", "proxyJump", 1, "host"]), "connection.proxyJump[1].host");
});

const table: ReplacementTable<Inputs> = {
  name: "replace",
  servers: "replace",
  autostart: "update",
  connection: (a, b) => (a?.host === b?.host ? "update" : "replace"),
};
const base = { name: "p", servers: ["a"], autostart: true, connection: { host: "h", port: 22 } };

test("diff: no change, update-only, replace, computed rule", () => {
  const state = { ...base, uuid: "u" }; // recorded state: the inputs and the outputs
  assert.deepEqual(diffByTable(table, state, base), { changes: false, replaces: [], deleteBeforeReplace: false });
  assert.deepEqual(diffByTable(table, base, { ...base, autostart: false }).replaces, []);
  assert.equal(diffByTable(table, base, { ...base, autostart: false }).changes, true);
  assert.deepEqual(diffByTable(table, base, { ...base, servers: ["a", "b"] }).replaces, ["servers"]);
  assert.deepEqual(diffByTable(table, base, { ...base, connection: { host: "h", port: 2222 } }).replaces, []);
  assert.deepEqual(diffByTable(table, base, { ...base, connection: { host: "other", port: 22 } }).replaces, ["connection"]);
  assert.deepEqual(diffByTable(table, base, { ...base, connection: UNKNOWN }).replaces, ["connection"]);
});

test("outputs are plain JSON", () => {
  assert.deepEqual(plainOutputs({ a: undefined, b: null, c: [1] }), { b: null, c: [1] });
});
