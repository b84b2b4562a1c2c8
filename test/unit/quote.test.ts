import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import fc from "fast-check";
import { InputError } from "../../provider/errors";
import { MAX_SESSION_LINE, remoteCommandLine, shellCommandLine, shellQuote, virshSessionLine } from "../../provider/ssh/quote";

/** Any string an argv can carry: every code point but NUL, well-formed UTF-16. */
const argString = fc.string({ unit: "binary", maxLength: 40 }).filter((s) => !s.includes("\0") && s.isWellFormed());
/** Strings made of shell-significant characters, so the interesting cases are frequent. */
const nasty = fc.string({ unit: fc.constantFrom(..."'\"`$()\\;&|<>*?[]{}~#!% \t\n\rab-é😀"), maxLength: 30 });
const arg = fc.oneof(argString, nasty);

/** What a real POSIX shell makes of a command line: the words `printf` receives. */
function wordsAfterShell(shell: string, commandLine: string): string[] {
  const out = execFileSync(shell, ["-c", `printf '%s\\0' ${commandLine}`], { encoding: "utf8" });
  return out.split("\0").slice(0, -1);
}

/**
 * virsh's interactive tokenizer (tools/vsh.c, vshCommandStringGetArg), as a reference:
 * blanks and `;` separate words, `'…'` is literal, `"…"` and a bare `\` escape.
 */
function virshWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === " " || line[i] === "\t") i++;
    if (i >= line.length) break;
    assert.notEqual(line[i], ";", "a quoted line never contains a bare ;");
    assert.notEqual(line[i], "#", "a quoted line never starts a word with #");
    let word = "";
    let sq = false;
    let dq = false;
    for (; i < line.length; i++) {
      const c = line[i];
      if (!sq && !dq && (c === " " || c === "\t" || c === ";")) break;
      if (!dq && c === "'") sq = !sq;
      else if (!sq && c === "\\") word += line[++i];
      else if (!sq && c === '"') dq = !dq;
      else word += c;
    }
    assert.ok(!sq && !dq, "quotes are balanced");
    words.push(word);
  }
  return words;
}

describe("shellQuote", () => {
  it("leaves plain words alone and quotes everything else", () => {
    assert.equal(shellQuote("pool-info"), "pool-info");
    assert.equal(shellQuote("qemu:///system"), "qemu:///system");
    assert.equal(shellQuote(""), "''");
    assert.equal(shellQuote("a b"), "'a b'");
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
    assert.equal(shellQuote("$(reboot)"), "'$(reboot)'");
  });

  it("refuses NUL, which no argv can carry", () => {
    assert.throws(() => shellQuote("a\0b"), InputError);
  });

  for (const shell of ["/bin/sh", "/bin/bash"]) {
    it(`every argv comes out of ${shell} as exactly the same words, nothing executed`, () => {
      fc.assert(
        fc.property(fc.array(arg, { minLength: 1, maxLength: 5 }), (argv) => {
          assert.deepEqual(wordsAfterShell(shell, shellCommandLine(argv)), argv);
        }),
        { numRuns: 150 },
      );
    });
  }

  it("prefixes the remote command with English messages and optional sudo -n", () => {
    assert.equal(remoteCommandLine(["virsh", "list"], { sudo: false }), "LC_MESSAGES=C LC_CTYPE=C.UTF-8 virsh list");
    assert.equal(remoteCommandLine(["virsh", "a b"], { sudo: true }), "LC_MESSAGES=C LC_CTYPE=C.UTF-8 sudo -n virsh 'a b'");
  });
});

describe("virshSessionLine", () => {
  it("yields the same words under virsh's tokenizer for printable ASCII", () => {
    const printable = fc.string({ unit: fc.constantFrom(..." !\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"), maxLength: 30 });
    fc.assert(
      fc.property(fc.array(printable, { minLength: 1, maxLength: 5 }), (args) => {
        const line = virshSessionLine(args);
        assert.ok(line !== undefined);
        assert.deepEqual(virshWords(line), args);
      }),
      { numRuns: 300 },
    );
  });

  it("declines what readline or the line reader would alter: control characters, non-ASCII, long lines", () => {
    for (const bad of ["a\nb", "tab\there", "\x15", "\x7f", "é", "😀", "\r"]) assert.equal(virshSessionLine(["echo", bad]), undefined, JSON.stringify(bad));
    assert.equal(virshSessionLine(["echo", "x".repeat(MAX_SESSION_LINE)]), undefined);
    assert.equal(virshSessionLine([]), undefined);
  });

  it("never lets a word start a comment or end the command", () => {
    assert.equal(virshSessionLine(["echo", "#x", ";y"]), "echo '#x' ';y'");
  });
});
