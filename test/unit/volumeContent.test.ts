import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { curlConfig } from "../../provider/volumeContent";

test("curlConfig quotes the URL as curl's config parser reads it back (checked with the real curl)", () => {
  for (const url of ["http://127.0.0.1:1/plain.img", 'http://u:p"w\\x@127.0.0.1:1/a"b\\c?t=$(id)`x`', "http://127.0.0.1:1/#frag"]) {
    const r = spawnSync("curl", ["-K", "-", "-s", "-o", "/dev/null", "-w", "%{url}"], { input: curlConfig(url), encoding: "utf8" });
    assert.equal(r.stdout, url, r.stderr);
  }
});

test("curlConfig refuses control characters (a newline would start a second option)", () => {
  assert.throws(() => curlConfig("http://x/a\nupload-file = /etc/shadow"), /control characters/);
});
