/**
 * A download URL with credentials (userinfo and a token in the query) through the real
 * engine and the lab: the host's curl gets them (the server sees the login), yet no
 * process on the host ever has them on its command line, and neither the state, nor
 * `up`/`preview --diff` output, nor the error of a failed download shows them. The lab
 * host is this machine, so the HTTP server on 127.0.0.1 reads /proc itself while it
 * serves, slowly enough for the download to be watched.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { ImageVolume } from "../../sdk";
import { getLab, type LabInfo } from "../helpers/lab";
import { commandLines, tryVirsh } from "../helpers/local";
import { createOwnPool, type OwnPool } from "../helpers/ownPool";
import { exportStackRaw, labCredentials, newStack, readTree, type TestStack, upConverged } from "../helpers/stack";

const password = `SECRETPW${randomBytes(6).toString("hex")}`;
const token = `SECRETTOK${randomBytes(6).toString("hex")}`;
const IMAGE_SIZE = 2 * 1024 * 1024;
const CHUNK = 64 * 1024;

let lab: LabInfo;
/** the test's pool, made by root on a Gluster volume of its own */
let own: OwnPool;
let pool: string;
let server: http.Server;
let port: number;
const stacks: TestStack[] = [];
/** What the server saw: logins, and every host process whose argv held a credential. */
const seen = { authorized: 0, refused: 0, argvHits: [] as string[], scans: 0 };

function scanCommandLines(): void {
  seen.scans++;
  for (const { pid, cmdline } of commandLines()) {
    if (cmdline.includes(password) || cmdline.includes(token)) seen.argvHits.push(`${pid}: ${cmdline.replace(/\0/g, " ")}`);
  }
}

const url = (file: string) => `http://sec:${password}@127.0.0.1:${port}/${file}?token=${token}&x=1`;

before(async () => {
  lab = await getLab();
  own = await createOwnPool(lab, "sec-dl", { by: "root" });
  pool = own.name;
  server = http.createServer(async (req, res) => {
    const login = `Basic ${Buffer.from(`sec:${password}`).toString("base64")}`;
    if (req.headers.authorization !== login || !req.url?.includes(`token=${token}`)) {
      seen.refused++;
      res.writeHead(401).end();
      return;
    }
    seen.authorized++;
    if (!req.url.startsWith("/image.raw")) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": IMAGE_SIZE });
    for (let sent = 0; sent < IMAGE_SIZE; sent += CHUNK) {
      res.write(Buffer.alloc(CHUNK, sent === 0 ? 0x42 : 0));
      scanCommandLines(); // curl and virsh are running now
      await sleep(40); // paced on purpose: 32 chunks over ~1.3 s, so the download is watched while it runs
    }
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  for (const t of stacks) await t.cleanup().catch(() => undefined);
  server?.close();
  await own?.remove();
});

function assertNoCredential(where: string, text: string): void {
  assert.ok(!text.includes(password), `${where} shows the URL's password`);
  assert.ok(!text.includes(token), `${where} shows the URL's token`);
}

async function stackFor(name: string, volume: string, file: string): Promise<TestStack> {
  const t = await newStack(name, async () => {
    const image = new ImageVolume("image", { connection: { host: lab.ssh.host }, pool, name: volume, format: "raw", source: { url: url(file) } });
    return { path: image.path, sha256: image.sha256 };
  }, labCredentials(lab));
  stacks.push(t);
  return t;
}

describe("a download URL with credentials", () => {
  test("downloads with them, yet they are in no argv on the host, nor in state or engine output", async () => {
    const t = await stackFor("sec-dl", "sec-dl.img", "image.raw");
    const preview = await t.stack.preview({ diff: true });
    assertNoCredential("`preview --diff` before up", preview.stdout + preview.stderr);
    assert.match(preview.stdout, /\[secret\]/, "preview shows the source as a secret");
    const up = await upConverged(t);
    assert.equal(up.summary.result, "succeeded");
    assert.equal(seen.authorized, 1, "the host's curl logged in with the URL's credentials");
    assert.ok(seen.scans >= 16, "the host's processes were watched during the download");
    assert.deepEqual(seen.argvHits, [], "a process on the host had a credential on its command line");
    const file = fs.readFileSync(up.outputs.path.value);
    assert.equal(file.length, IMAGE_SIZE);
    assert.equal(file[0], 0x42);
    assertNoCredential("`pulumi up` output", up.stdout + up.stderr);
    const again = await t.stack.preview({ diff: true });
    assertNoCredential("`preview --diff` after up", again.stdout + again.stderr);
    assertNoCredential("`pulumi stack export`", exportStackRaw(t));
    assertNoCredential("the file:// backend", readTree(t.backendDir));
  });

  test("a failed download names the URL without its credentials", async () => {
    const t = await stackFor("sec-dl-missing", "sec-dl-missing.img", "missing.raw");
    const err = await t.stack.up().then(() => undefined, (e: Error) => e);
    assert.ok(err, "up succeeded");
    assert.match(err.message, /downloading http:\/\/\*\*\*@127\.0\.0\.1:\d+\/missing\.raw\?\*\*\* on /);
    assertNoCredential("the error of `up`", err.message);
    assert.notEqual(tryVirsh("vol-info", "--pool", pool, "sec-dl-missing.img").code, 0, "the partial volume was removed");
    assert.deepEqual(seen.argvHits, []);
  });
});
