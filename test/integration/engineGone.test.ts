/**
 * The provider stops its SSH work and exits when the Pulumi engine goes away (issue 11:
 * after the CLI was SIGKILLed, the provider kept reconnecting and creating volumes).
 *
 * A stand-in for the engine is started as its own process: it listens on an address
 * like the engine's gRPC server and starts a "provider" the way the engine does (a
 * /bin/sh shim running `node …/cmd/dynamic-provider/index.js <address>` in its own
 * process group, stdin on a pipe). The provider runs real commands over SSH on a
 * throwaway sshd, in a loop, plus one long one. Then the engine is SIGKILLed.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { getLab, type LabInfo } from "../helpers/lab";
import { LOGIN_USER, type Sshd, startSshd } from "../helpers/sshd";
import { exited, sleep, waitFor } from "../helpers/wait";

let lab: LabInfo;
let sshd: Sshd;
let knownHostsFile: string;
const cleanups: Array<() => void> = [];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

before(async () => {
  lab = await getLab();
  sshd = await startSshd({ address: "127.0.0.1", port: await freePort(), authorizedKeys: [readFileSync(`${lab.ssh.privateKeyPath}.pub`, "utf8").trim()] });
  cleanups.push(() => sshd.stop());
  knownHostsFile = join(mkdtempSync(join(tmpdir(), "glv-kh-")), "known_hosts");
  writeFileSync(knownHostsFile, `${sshd.knownHostsLine}\n`);
});
after(() => {
  for (const c of cleanups.reverse()) c();
});

/** The stand-in provider: its path ends in cmd/dynamic-provider/index.js, as the engine's does. */
function writeProvider(dir: string): string {
  const file = join(dir, "cmd", "dynamic-provider", "index.js");
  mkdirSync(join(dir, "cmd", "dynamic-provider"), { recursive: true });
  const conn = { host: sshd.address, port: sshd.port, user: LOGIN_USER, privateKeyPath: lab.ssh.privateKeyPath, knownHostsFile, agent: "" };
  writeFileSync(
    file,
    `
    const fs = require("fs");
    const { getHost } = require(${JSON.stringify(join(__dirname, "../../provider/host.js"))});
    const dir = ${JSON.stringify(dir)};
    setInterval(() => {}, 1 << 30); // what the gRPC server does: nothing else ends this process
    const h = getHost(${JSON.stringify(conn)});
    const log = (e) => fs.appendFileSync(dir + "/errors", e.message + "\\n");
    h.exec(["sh", "-c", "echo $$ > " + dir + "/long.pid; exec sleep 600"]).catch(log);
    (async () => {
      for (let i = 0; ; i++) {
        await h.exec(["sh", "-c", "echo x >> " + dir + "/marks"]).catch(log);
        await h.virsh(["echo", "tr-" + i]).catch(log);
        if (i === 0) console.log("ready");
        await new Promise((r) => setTimeout(r, 20)); // a provider works between RPCs; a hot loop would starve its timers
      }
    })();`,
  );
  return file;
}

/** Start the stand-in engine; resolves once the provider's loop runs. */
async function startEngine(dir: string, stdin: "pipe" | "ignore"): Promise<{ engine: ChildProcess; provider: number }> {
  const provider = writeProvider(dir);
  const script = `
    const { spawn } = require("child_process");
    const server = require("net").createServer((s) => s.destroy()).listen(0, "127.0.0.1", () => {
      const address = "127.0.0.1:" + server.address().port;
      // Like pulumi-resource-pulumi-nodejs: sh runs node as a child; like the engine: own process group.
      const shim = spawn("/bin/sh", ["-c", '"$0" "$1" "$2"', process.execPath, ${JSON.stringify(provider)}, address],
        { stdio: [${JSON.stringify(stdin)}, "pipe", "inherit"], detached: true });
      shim.stdout.pipe(process.stdout);
      console.log("shim " + shim.pid);
    });`;
  const engine = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  cleanups.push(() => engine.kill("SIGKILL"));
  let out = "";
  engine.stdout!.on("data", (d) => (out += d));
  await waitFor("the provider's first commands", () => /shim \d+/.test(out) && out.includes("ready"), 60_000);
  const shim = Number(/shim (\d+)/.exec(out)![1]);
  const pid = Number(spawnSync("pgrep", ["-P", String(shim)], { encoding: "utf8" }).stdout.trim());
  assert.ok(pid > 0, "the provider runs under the shim");
  cleanups.push(() => spawnSync("kill", ["-9", String(pid), String(shim)]));
  return { engine, provider: pid };
}

for (const stdin of ["pipe", "ignore"] as const) {
  const how = stdin === "pipe" ? "its stdin closes" : "with stdin on /dev/null, the engine address refuses connections";
  describe(`engine SIGKILLed (${how})`, () => {
    it("the provider kills its remote commands, stops all SSH work and exits", async () => {
      const dir = mkdtempSync(join(tmpdir(), "glv-engine-gone-"));
      chmodSync(dir, 0o777); // the remote commands run as the login user
      const { engine, provider } = await startEngine(dir, stdin);
      await waitFor("the long remote command's start", () => existsSync(join(dir, "long.pid")) && readFileSync(join(dir, "long.pid"), "utf8").endsWith("\n"), 60_000);
      const long = Number(readFileSync(join(dir, "long.pid"), "utf8"));
      assert.ok(!exited(long), "the long remote command runs");
      engine.kill("SIGKILL");
      await waitFor("the provider's exit", () => exited(provider), 60_000);
      const marks = statSync(join(dir, "marks")).size;
      // Time passing on purpose: nothing may happen in it. The loop ran a command every few
      // ms; a provider still alive, or a remote command it had started, would append a mark.
      await sleep(1500);
      assert.equal(statSync(join(dir, "marks")).size, marks, "no command ran after the provider exited");
      await waitFor("the long remote command's end", () => exited(long), 60_000);
    });
  });
}
