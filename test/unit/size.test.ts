import { test } from "node:test";
import assert from "node:assert/strict";
import { formatSize, parseSize } from "../../provider/size";

test("parseSize: bytes and units as virsh reads them (K = KiB = 1024, KB = 1000)", () => {
  const cases: [number | string, number][] = [
    [0, 0],
    [4096, 4096],
    ["4096", 4096],
    ["512B", 512],
    ["1K", 1024],
    ["1k", 1024],
    ["1KiB", 1024],
    ["1KB", 1000],
    ["512M", 512 * 2 ** 20],
    ["512 MiB", 512 * 2 ** 20],
    ["20GiB", 20 * 2 ** 30],
    ["20G", 20 * 2 ** 30],
    ["20GB", 20e9],
    ["1.5GiB", 1.5 * 2 ** 30],
    ["2TiB", 2 * 2 ** 40],
    [" 3 MB ", 3e6],
  ];
  for (const [input, bytes] of cases) assert.deepEqual(parseSize(input), { bytes }, JSON.stringify(input));
});

test("parseSize: refuses what is not a whole number of bytes, with a reason", () => {
  for (const input of ["", "GiB", "-1", "1.5", "0.3K", "12 parsecs", "1e9", "1,5G", 1.5, -1, Number.NaN, "99999999PiB"]) {
    const r = parseSize(input);
    assert.ok("error" in r, `${JSON.stringify(input)} should be refused`);
    assert.match((r as { error: string }).error, /size|bytes/);
  }
});

test("formatSize: exact binary units, else rounded with the byte count", () => {
  assert.equal(formatSize(20 * 2 ** 30), "20 GiB");
  assert.equal(formatSize(1.5 * 2 ** 20), "1.5 MiB");
  assert.equal(formatSize(1000), "1000 bytes");
  assert.equal(formatSize(2 ** 30 + 1), "1 GiB (1073741825 bytes)");
});
