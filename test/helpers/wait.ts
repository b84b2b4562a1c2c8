/**
 * Bounded waits for tests. A test waits for an event it can observe (a process, a file, a
 * counter), never for a fixed time standing in for it; and every wait has a limit, after
 * which it fails naming what it waited for. The few fixed sleeps left in the tests let
 * time pass on purpose, to show that nothing happens meanwhile, and say so.
 */
import { readFileSync } from "node:fs";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined/false,
 * and returns that value; throws "timed out after … waiting for <what>" after `timeoutMs`.
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** `p`, or a rejection "hang: <what> did not settle within …" after `ms`: fails a test instead of hanging it. */
export function settlesWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`hang: ${what} did not settle within ${ms / 1000} s`)), ms)));
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** The process has exited: it is gone, or a zombie not reaped (yet, or ever: its parent died too). */
export function exited(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? true;
  } catch {
    return true;
  }
}
