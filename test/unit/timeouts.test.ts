/**
 * `connection.timeouts`: every field is range-checked at preview, because Node's timers
 * hold at most 2^31−1 ms and fire after ~1 ms when given more.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { utils } from "ssh2";
import { InputError } from "../../provider/errors";
import { boundedWaitMs, resolveConnection, setConnectionDefaults } from "../../provider/ssh/settings";
import { imageVolume } from "../../provider/volume";

const privateKey = utils.generateKeyPairSync("ed25519").private;
const resolve = (timeouts: Record<string, unknown>) =>
  resolveConnection({ host: "kvm1", agent: "", privateKey, timeouts }, { readSshConfig: () => ({ identityFiles: [] }) });
const refusedField = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InputError, String(err));
    return { field: err.field, message: err.message };
  }
  assert.fail("accepted");
};

afterEach(() => setConnectionDefaults({}));

describe("connection.timeouts", () => {
  it("refuses { command: 3e6 }, naming connection.timeouts.command and the limit", () => {
    const r = refusedField(() => resolve({ command: 3e6 }));
    assert.equal(r.field, "connection.timeouts.command");
    assert.match(r.message, /at most 2147483 seconds/);
  });

  it("range-checks every field: 2147483 s is the largest a timer holds", () => {
    for (const field of ["connect", "command", "keepalive", "idle"]) {
      assert.equal(refusedField(() => resolve({ [field]: 2147484 })).field, `connection.timeouts.${field}`);
      assert.equal(resolve({ [field]: 2147483 }).timeouts[`${field}Ms` as "connectMs"], 2147483000);
    }
  });

  it("refuses NaN, Infinity, negatives, and a zero connect timeout (a connect must end)", () => {
    for (const v of [Number.NaN, Number.POSITIVE_INFINITY, -1]) assert.equal(refusedField(() => resolve({ idle: v })).field, "connection.timeouts.idle");
    assert.equal(refusedField(() => resolve({ connect: 0 })).field, "connection.timeouts.connect");
    assert.equal(resolve({ command: 0 }).timeouts.commandMs, 0, "0 = commands without a limit");
  });

  it("waits on commands keep a bound when commands have none", () => {
    assert.equal(boundedWaitMs(resolve({ command: 0 }).timeouts), 1800_000);
    assert.equal(boundedWaitMs(resolve({ command: 60 }).timeouts), 60_000);
  });

  it("is reported by check (preview) on the field, and in stack config under gluster-libvirt:", async () => {
    const r = await imageVolume.check({}, { connection: { host: "kvm1", timeouts: { command: 3e6 } }, pool: "p", name: "v.img", capacity: "1GiB" });
    assert.deepEqual(r.failures?.map((f) => f.property), ["connection.timeouts.command"]);
    assert.equal(refusedField(() => setConnectionDefaults({ timeouts: '{"keepalive": 1e10}' })).field, "gluster-libvirt:timeouts.keepalive");
  });
});
