/**
 * Noticing that the Pulumi engine went away, so the provider stops its work.
 *
 * How the dynamic provider runs (Pulumi 3.260, seen on the lab and in the engine's
 * source, sdk/go/common/resource/plugin/plugin.go): the engine starts
 * `pulumi-resource-pulumi-nodejs <engine address>`, a /bin/sh shim that runs
 * `node …/@pulumi/pulumi/cmd/dynamic-provider/index.js <engine address>` as its child
 * (not exec), in a process group of its own, with stdin, stdout and stderr on pipes to
 * the engine. The gRPC server it starts keeps it alive until the engine kills it.
 *
 * When the CLI is SIGKILLed (or crashes) nobody kills it: the shim is reparented to
 * init, node's parent (the shim) does not change, and the provider keeps running its
 * operations (and so redialled and created volumes after the CLI was gone). What does
 * change, at once: node's stdin reaches EOF (the engine held the pipe's write end and
 * never writes to it), and the engine address refuses connections.
 *
 * So inside a dynamic-provider process, the transport's first use starts this watch:
 * stdin's end when stdin is a pipe (immediate), and every PROBE_MS a TCP connect to the
 * engine address, where only a refusal counts (a slow answer proves nothing), plus a
 * change of parent. Everything is unref'd: the watch never keeps a process alive.
 */
import { fstatSync } from "node:fs";
import { connect } from "node:net";

const PROBE_MS = 2000;

/** The process the engine starts for dynamic resources (its script is `cmd/dynamic-provider/index.js`). */
export function isDynamicProviderProcess(argv: readonly string[] = process.argv): boolean {
  return /[\\/]cmd[\\/]dynamic-provider[\\/]index\.js$/.test(argv[1] ?? "");
}

/** `127.0.0.1:12345` → host and port; undefined for anything else. */
function parseAddress(address: string | undefined): { host: string; port: number } | undefined {
  const m = /^(.+):(\d+)$/.exec(address ?? "");
  return m ? { host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) } : undefined;
}

/**
 * Call `onGone` once when the engine is gone. `engineAddress` is what the engine passed
 * the provider (its first argument).
 */
export function watchEngine(onGone: (why: string) => void, engineAddress = process.argv[2]): () => void {
  let done = false;
  const gone = (why: string) => {
    if (done) return;
    stop();
    onGone(`the Pulumi engine went away (${why})`);
  };
  const stop = () => {
    done = true;
    clearInterval(probe);
    process.stdin.removeListener("end", onStdinEnd);
  };

  const onStdinEnd = () => gone("the provider's stdin was closed");
  const stdin = fstatSync(0);
  if (stdin.isFIFO() || stdin.isSocket()) {
    process.stdin.on("end", onStdinEnd);
    process.stdin.on("error", () => {}); // a broken pipe also ends it
    process.stdin.resume(); // the engine never writes; reading is how EOF is seen
    (process.stdin as { unref?: () => void }).unref?.();
  }

  const parent = process.ppid;
  const address = parseAddress(engineAddress);
  const probe = setInterval(() => {
    if (process.ppid !== parent) return gone(`the provider's parent process ${parent} exited`);
    if (!address) return;
    const socket = connect(address.port, address.host);
    socket.unref();
    socket.setTimeout(PROBE_MS, () => socket.destroy());
    socket.once("connect", () => socket.destroy());
    socket.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED") gone(`its address ${engineAddress} refuses connections`);
    });
  }, PROBE_MS);
  probe.unref();
  return stop;
}

let watching = false;

/** Start the watch once, and only in a dynamic-provider process (tests and scripts are left alone). */
export function watchEngineOnce(onGone: (why: string) => void): void {
  if (watching || !isDynamicProviderProcess()) return;
  watching = true;
  watchEngine(onGone);
}
