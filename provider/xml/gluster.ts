/**
 * What `gluster --mode=script --xml …` prints (glusterfs 10.x): the `<cliOutput>` envelope
 * and the parts of `volume info` and `volume status VOL clients` the
 * GlusterVolume resource reads. Pure: no I/O. Fixtures in test/unit/fixtures/gluster-*.
 */
import { XmlError, child, childText, children, parseInteger, parseRoot, text, type XmlElement } from "./markup";

/** The envelope of every `--xml` answer. The CLI exits 0 even when `opRet` says it failed. */
export interface GlusterCliOutput {
  /** 0 on success, -1 on failure */
  opRet: number;
  opErrno: number;
  /** Why it failed (`<opErrstr>`, else `<output>`), "" on success. */
  error: string;
  root: XmlElement;
}

export function parseCliOutput(xml: string): GlusterCliOutput {
  const root = parseRoot(xml, "cliOutput");
  const opRet = parseInteger(childText(root, "opRet"), "<opRet>");
  if (opRet === undefined) throw new XmlError("gluster's <cliOutput> has no <opRet>");
  const error = (childText(root, "opErrstr") ?? "").trim() || (opRet !== 0 ? (childText(root, "output") ?? "").trim() : "");
  return { opRet, opErrno: parseInteger(childText(root, "opErrno"), "<opErrno>") ?? 0, error, root };
}

export interface GlusterBrick {
  /** `host:/path`, as the volume was created with */
  name: string;
  host: string;
  path: string;
  isArbiter: boolean;
}

/** `host:/path` → its parts (the host has no ':' — no IPv6 brick addresses). */
export function splitBrick(brick: string): { host: string; path: string } | undefined {
  const at = brick.indexOf(":/");
  return at > 0 ? { host: brick.slice(0, at), path: brick.slice(at + 1) } : undefined;
}

export interface GlusterVolumeInfo {
  name: string;
  /** the volume's uuid */
  id: string;
  /** `Created` (never started), `Started` or `Stopped` */
  status: string;
  /** `Distribute`, `Replicate`, `Distributed-Replicate`, `Disperse`, … */
  type: string;
  brickCount: number;
  distCount: number;
  /** 1 when not replicated; arbiter bricks included */
  replicaCount: number;
  arbiterCount: number;
  /** 0 when not dispersed */
  disperseCount: number;
  redundancyCount: number;
  bricks: GlusterBrick[];
  /** The options set on the volume (not defaults), as `volume info` lists them. */
  options: Record<string, string>;
}

function count(el: XmlElement, name: string): number {
  const value = parseInteger(childText(el, name), `<${name}>`);
  if (value === undefined) throw new XmlError(`gluster's <volume> has no <${name}>`);
  return value;
}

function required(el: XmlElement, name: string): string {
  const value = childText(el, name)?.trim();
  if (!value) throw new XmlError(`gluster's <volume> has no <${name}>`);
  return value;
}

/** The volumes of a successful `volume info [VOL]` answer (none when it names none). */
export function parseVolumeInfo(xml: string): GlusterVolumeInfo[] {
  const out = parseCliOutput(xml);
  if (out.opRet !== 0) throw new XmlError(`gluster's volume info failed: ${out.error}`);
  const volumes = child(child(out.root, "volInfo"), "volumes");
  return children(volumes, "volume").map((v) => {
    const bricks = children(child(v, "bricks"), "brick").map((b) => {
      // <brick uuid="…">HOST:/PATH<name>HOST:/PATH</name>…</brick>: the name element is the one to read.
      const name = (childText(b, "name") ?? text(b) ?? "").trim();
      const parts = splitBrick(name);
      if (!parts) throw new XmlError(`gluster's brick is not host:/path: ${JSON.stringify(name)}`);
      return { name, ...parts, isArbiter: childText(b, "isArbiter")?.trim() === "1" };
    });
    const options: Record<string, string> = {};
    for (const o of children(child(v, "options"), "option")) {
      const key = childText(o, "name")?.trim();
      if (key) options[key] = childText(o, "value") ?? "";
    }
    return {
      name: required(v, "name"),
      id: required(v, "id"),
      status: required(v, "statusStr"),
      type: required(v, "typeStr"),
      brickCount: count(v, "brickCount"),
      distCount: count(v, "distCount"),
      replicaCount: count(v, "replicaCount"),
      arbiterCount: count(v, "arbiterCount"),
      disperseCount: count(v, "disperseCount"),
      redundancyCount: count(v, "redundancyCount"),
      bricks,
      options,
    };
  });
}

export interface BrickClients {
  /** `host:/path` */
  brick: string;
  /** each connection's `address:port`, as the brick sees it */
  clients: string[];
}

/** `volume status VOL clients`: which client connections each brick has. */
export function parseVolumeClients(xml: string): BrickClients[] {
  const out = parseCliOutput(xml);
  if (out.opRet !== 0) throw new XmlError(`gluster's volume status failed: ${out.error}`);
  const volume = child(child(child(out.root, "volStatus"), "volumes"), "volume");
  return children(volume, "node").map((node) => ({
    brick: `${childText(node, "hostname")?.trim() ?? ""}:${childText(node, "path")?.trim() ?? ""}`,
    clients: children(child(node, "clientsStatus"), "client").map((c) => childText(c, "hostname")?.trim() ?? ""),
  }));
}

/** One brick as `volume status VOL detail` reports it. */
export interface BrickStatus {
  /** `host:/path` */
  brick: string;
  host: string;
  online: boolean;
  /** the brick process's TCP port; undefined when offline (`N/A`) */
  port?: number;
  /** bytes of the brick's file system; undefined when glusterd gives none */
  sizeTotal?: number;
  sizeFree?: number;
}

/** `volume status VOL detail`: each brick's state, port and free space (a started volume only; a stopped one fails with "is not started"). */
export function parseVolumeStatusDetail(xml: string): BrickStatus[] {
  const out = parseCliOutput(xml);
  if (out.opRet !== 0) throw new XmlError(`gluster's volume status failed: ${out.error}`);
  const volume = child(child(child(out.root, "volStatus"), "volumes"), "volume");
  const number = (raw: string | undefined) => (raw !== undefined && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : undefined);
  return children(volume, "node").map((node) => {
    const host = childText(node, "hostname")?.trim() ?? "";
    return {
      brick: `${host}:${childText(node, "path")?.trim() ?? ""}`,
      host,
      online: childText(node, "status")?.trim() === "1",
      port: number(childText(node, "port")),
      sizeTotal: number(childText(node, "sizeTotal")),
      sizeFree: number(childText(node, "sizeFree")),
    };
  });
}

/** One brick of `volume heal VOL info summary`. */
export interface BrickHeal {
  brick: string;
  /** `Connected`, or why the brick could not be asked */
  status: string;
  /** undefined when the brick could not be asked */
  pending?: number;
  splitBrain?: number;
  possiblyHealing?: number;
}

/**
 * `volume heal VOL info summary`: pending heals per brick, or `"not-replicated"` for a
 * volume without self-heal (glusterd refuses the command for distribute volumes).
 */
export function parseHealSummary(xml: string): BrickHeal[] | "not-replicated" {
  const out = parseCliOutput(xml);
  if (out.opRet !== 0) {
    if (/not of type replicate\/disperse/i.test(out.error)) return "not-replicated";
    throw new XmlError(`gluster's volume heal info failed: ${out.error}`);
  }
  return children(child(child(out.root, "healInfo"), "bricks"), "brick").map((b) => {
    const count = (name: string) => parseInteger(childText(b, name)?.trim(), `<${name}>`);
    return {
      brick: childText(b, "name")?.trim() ?? "",
      status: childText(b, "status")?.trim() ?? "",
      pending: count("numberOfEntriesInHealPending"),
      splitBrain: count("numberOfEntriesInSplitBrain"),
      possiblyHealing: count("numberOfEntriesPossiblyHealing"),
    };
  });
}

/** `volume get VOL OPTION`: the option's effective value (` (DEFAULT)` taken off), undefined when not listed. */
export function parseVolumeGet(xml: string, option: string): string | undefined {
  const out = parseCliOutput(xml);
  if (out.opRet !== 0) throw new XmlError(`gluster's volume get failed: ${out.error}`);
  const opt = children(child(out.root, "volGetopts"), "Opt").find((o) => childText(o, "Option")?.trim() === option);
  return opt === undefined ? undefined : (childText(opt, "Value") ?? "").replace(/\s*\(DEFAULT\)\s*$/, "").trim();
}
