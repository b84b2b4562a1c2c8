/**
 * Scans shared by the resources of one run (docs/scale.md has the safety argument).
 *
 * The dynamic-provider process serves a whole `pulumi up`/`destroy`, with up to
 * `--parallel` resources in flight at once, and the in-use checks of every one of them
 * read the same things: every domain's definitions, every pool. Each check must see the
 * host as it is *after* the check was asked for (that is all a per-call scan ever proved:
 * the host can change again right after any scan). A FreshScan gives exactly that and no
 * less: a caller is handed the result of a scan that started after it called — the one
 * running when it called is too old for it, so it waits for the next, which every caller
 * that arrived meanwhile shares. Nothing is ever served from an earlier scan.
 */

export class FreshScan<T> {
  private running: Promise<T> | undefined;
  private next: Promise<T> | undefined;

  constructor(private readonly scan: () => Promise<T>) {}

  /** A result read entirely after this call. A failed scan fails every caller that shares it. */
  get(): Promise<T> {
    if (!this.running) return this.start();
    if (!this.next) {
      const settled = this.running.then(
        () => undefined,
        () => undefined,
      );
      this.next = settled.then(() => {
        this.next = undefined;
        return this.start();
      });
    }
    return this.next;
  }

  private start(): Promise<T> {
    const p = this.scan();
    this.running = p;
    const done = () => {
      if (this.running === p) this.running = undefined;
    };
    p.then(done, done);
    return p;
  }
}

/**
 * One FreshScan per (host scope, kind). `scope` identifies one libvirt seen through one
 * login (host.ts passes its virsh runner); without one (fakes in unit tests) every call
 * scans on its own.
 */
const registry = new WeakMap<object, Map<string, FreshScan<unknown>>>();

export function sharedScan<T>(scope: object | undefined, kind: string, scan: () => Promise<T>): Promise<T> {
  if (!scope) return scan();
  let kinds = registry.get(scope);
  if (!kinds) registry.set(scope, (kinds = new Map()));
  let s = kinds.get(kind) as FreshScan<T> | undefined;
  if (!s) kinds.set(kind, (s = new FreshScan(scan)));
  return s.get();
}
