/**
* Domain disk XML: building the `<disk>` a DiskAttachment attaches, and reading a
* domain's disks back, both to find "our" disk by target and to answer "does any
* domain still use this volume" before a volume is deleted (libvirt would let us
* delete it under a running VM).
*/
import { posix } from "node:path";
import {
  attr, attrs, child, children, childText, indent, isImageFormat, parseInteger, parseRoot, textElement, XmlError,
  type ImageFormat, type XmlElement,
} from "./markup";

export type DiskBus = "virtio" | "scsi" | "sata" | "ide" | "usb";
export type DiskCache = "default" | "none" | "writeback" | "writethrough" | "directsync" | "unsafe";
export type DiskIo = "threads" | "native" | "io_uring";
export type DiskDiscard = "unmap" | "ignore";

/** Where QEMU opens the image: a file on the FUSE mount, or libgfapi directly. */
export type DiskSource =
  | {
      type: "file";
      file: string;
      /** QEMU may open the file as it is: libvirt is told not to chown it (nor restore its owner afterwards) */
      keepOwner?: boolean;
    }
  | {
      type: "gluster";
      /** the same for the image reached through libgfapi */
      keepOwner?: boolean;
      /** Gluster volume name */
      volume: string;
      /** path of the image inside the Gluster volume, e.g. "images/vm1.img" */
      path: string;
      /** every server becomes a `<host>`: libgfapi tries them in turn for the volfile */
      servers: string[];
      /** glusterd port; default 24007 */
      port?: number;
    };

export interface DiskSpec {
  source: DiskSource;
  /** guest device name, e.g. "vdb", "sdb" */
  target: string;
  bus: DiskBus;
  format: ImageFormat;
  /** default "none": no host page cache, the only safe choice for shared storage */
  cache?: DiskCache;
  io?: DiskIo;
  discard?: DiskDiscard;
  readonly?: boolean;
  shareable?: boolean;
  serial?: string;
}

export const GLUSTER_DEFAULT_PORT = 24007;

/**
 * On a disk's source: libvirt's DAC driver neither chowns the image nor restores its owner.
 * Seen on libvirt 9.0: a network (gluster) source honours it for the live disk — a live
 * detach then leaves the image as it was — but `dumpxml` does not show it there and the
 * saved definition loses it (`attach-device --config`), so a cold-booted VM relabels as usual.
 */
export const KEEP_OWNER_SECLABEL = "<seclabel model='dac' relabel='no'/>";

/** One `<host>` of a network source. */
export interface DiskHost {
  name?: string;
  port?: number;
  /** tcp (libvirt omits it, the default) | rdma | unix */
  transport?: string;
  socket?: string;
}

/** A disk's (or backing image's) `<source>`; which fields exist depends on the type. */
export interface DiskSourceInfo {
  file?: string;
  dev?: string;
  dir?: string;
  protocol?: string;
  name?: string;
  hosts?: DiskHost[];
  /** type='volume' disks name a libvirt pool and volume */
  pool?: string;
  volume?: string;
}

/** One image below the top one in a live domain's backing chain. */
export interface BackingImage {
  type?: string;
  format?: string;
  source?: DiskSourceInfo;
}

/** A disk as `dumpxml` shows it, any type or device. */
export interface DomainDisk {
  /** file | block | network | volume | dir | nvme | vhostuser */
  type: string;
  /** disk | cdrom | floppy | lun */
  device: string;
  target?: string;
  bus?: string;
  driver?: { name?: string; type?: string; cache?: string; io?: string; discard?: string };
  /** absent for an empty cdrom */
  source?: DiskSourceInfo;
  /** live XML only: the images below this one, top-most first */
  backingChain: BackingImage[];
  readonly: boolean;
  shareable: boolean;
  serial?: string;
  /** live XML only, e.g. "virtio-disk1" */
  alias?: string;
}

export interface DomainController {
  type: string;
  model?: string;
  index: number;
}

export interface DomainSummary {
  name: string;
  uuid: string;
  /** present only while the domain runs (live XML) */
  id?: number;
  /** e.g. "pc-i440fx-7.2" or "pc-q35-7.2": q35 has PCIe root ports */
  machine?: string;
  controllers: DomainController[];
  features: { acpi: boolean };
}

/** What a volume is known as, for sourceReferencesVolume. Give every name you know. */
export interface VolumeReference {
  /** the file on a FUSE mount, e.g. "/mnt/pool/vm1.img" */
  filePath?: string;
  /** Gluster volume name + path inside it: matches protocol='gluster' name='VOL/path' */
  glusterVolume?: string;
  glusterPath?: string;
  /** libvirt pool + volume name: matches type='volume' disks */
  pool?: string;
  volume?: string;
}

/** What a pool is known as, for sourceInPool. Give every name you know. */
export interface PoolReference {
  /** netfs: the mount point; any file below it is in the pool */
  targetPath?: string;
  /** any protocol='gluster' name inside this Gluster volume */
  glusterVolume?: string;
  /** libvirt pool name: matches type='volume' disks */
  pool?: string;
}

export function buildDiskXml(spec: DiskSpec): string {
  if (!isImageFormat(spec.format)) {
    throw new XmlError(`unsupported disk format ${JSON.stringify(spec.format)}`);
  }
  const driver = `<driver${attrs({
    name: "qemu", type: spec.format, cache: spec.cache ?? "none", io: spec.io, discard: spec.discard,
  })}/>`;
  let type: string;
  let source: string[];
  if (spec.source.type === "file") {
    type = "file";
    // Otherwise libvirt chowns the file to QEMU on attach and back (to root, where it
    // cannot remember the owner) on detach or shutdown, leaving an image a later libgfapi
    // disk cannot open. An image QEMU can already open keeps its owner.
    source = spec.source.keepOwner
      ? [`<source${attrs({ file: spec.source.file })}>`, `  ${KEEP_OWNER_SECLABEL}`, "</source>"]
      : [`<source${attrs({ file: spec.source.file })}/>`];
  } else if (spec.source.type === "gluster") {
    const { servers, port = GLUSTER_DEFAULT_PORT } = spec.source;
    if (servers.length === 0) throw new XmlError("a gluster disk needs at least one server");
    type = "network";
    source = [
      `<source${attrs({ protocol: "gluster", name: glusterName(spec.source.volume, spec.source.path) })}>`,
      ...indent(servers.map((name) => `<host${attrs({ name, port })}/>`), 1),
      ...(spec.source.keepOwner ? [`  ${KEEP_OWNER_SECLABEL}`] : []),
      "</source>",
    ];
  } else {
    throw new XmlError(`unsupported disk source ${JSON.stringify((spec.source as { type: unknown }).type)}`);
  }
  const body = [
    driver,
    ...source,
    `<target${attrs({ dev: spec.target, bus: spec.bus })}/>`,
    ...(spec.readonly ? ["<readonly/>"] : []),
    ...(spec.shareable ? ["<shareable/>"] : []),
    ...(spec.serial !== undefined ? [textElement("serial", spec.serial)] : []),
  ];
  return [`<disk${attrs({ type, device: "disk" })}>`, ...indent(body, 1), "</disk>", ""].join("\n");
}

/** Every `<disk>` under `<devices>`, in document order. */
export function parseDomainDisks(domainXml: string): DomainDisk[] {
  const domain = parseRoot(domainXml, "domain");
  return children(child(domain, "devices"), "disk").map(parseDisk);
}

export function parseDomainSummary(domainXml: string): DomainSummary {
  const domain = parseRoot(domainXml, "domain");
  const name = childText(domain, "name");
  const uuid = childText(domain, "uuid")?.trim();
  if (!name || !uuid) throw new XmlError("domain XML lacks <name> or <uuid>");
  const summary: DomainSummary = {
    name,
    uuid,
    controllers: children(child(domain, "devices"), "controller").map((c) => {
      const controller: DomainController = {
        type: attr(c, "type") ?? "",
        index: parseInteger(attr(c, "index"), "controller index") ?? 0,
      };
      const model = attr(c, "model");
      if (model) controller.model = model;
      return controller;
    }),
    features: { acpi: child(child(domain, "features"), "acpi") !== undefined },
  };
  const id = parseInteger(attr(domain, "id"), "domain id");
  // An inactive domain carries no id; -1 is how some tools spell "not running".
  if (id !== undefined && id >= 0) summary.id = id;
  const machine = attr(child(child(domain, "os"), "type"), "machine");
  if (machine) summary.machine = machine;
  return summary;
}

/**
* A backing file as libvirt or qemu-img names it: a gluster:// URL (percent-encoded)
* becomes a gluster source, anything else a file.
*/
export function sourceOfBackingPath(path: string): DiskSourceInfo {
  const m = /^gluster(?:\+tcp)?:\/\/[^/]*\/(.+)$/.exec(path);
  if (!m) return { file: path };
  try {
    return { protocol: "gluster", name: decodeURIComponent(m[1]) };
  } catch {
    return { protocol: "gluster", name: m[1] };
  }
}

/** The disk's own source, then its backing images' (live XML only), top-most first. */
export function diskSources(disk: DomainDisk): DiskSourceInfo[] {
  return [disk.source, ...disk.backingChain.map((b) => b.source)].filter((s): s is DiskSourceInfo => s !== undefined);
}

/**
* Does one image source (a disk's or a backing image's) name the volume? Errs towards
* "yes": a gluster source matches on volume+path whatever hosts it names, because a false
* "in use" only blocks a delete, a false "free" loses data.
*/
export function sourceReferencesVolume(source: DiskSourceInfo, ref: VolumeReference): boolean {
  if (ref.filePath && source.file && samePath(source.file, ref.filePath)) return true;
  if (ref.glusterVolume && ref.glusterPath && source.protocol === "gluster" && source.name) {
    if (samePath(source.name, `${ref.glusterVolume}/${ref.glusterPath}`)) return true;
  }
  if (ref.pool && ref.volume && source.pool === ref.pool && source.volume === ref.volume) return true;
  return false;
}

/** Is one image source (a disk's or a backing image's) inside the pool? Errs towards "yes" likewise. */
export function sourceInPool(source: DiskSourceInfo, ref: PoolReference): boolean {
  if (ref.targetPath && source.file && isBelow(source.file, ref.targetPath)) return true;
  if (ref.glusterVolume && source.protocol === "gluster" && source.name && isBelow(source.name, ref.glusterVolume)) return true;
  if (ref.pool && source.pool === ref.pool) return true;
  return false;
}

/** Lexical comparison ("//", ".", trailing "/", leading "/" on gluster names);
*  symlinks cannot be seen from XML. */
function samePath(a: string, b: string): boolean {
  return cleanPath(a) === cleanPath(b);
}

/** Is `path` strictly inside directory `dir`? Lexical, like samePath. */
function isBelow(path: string, dir: string): boolean {
  return cleanPath(path).startsWith(`${cleanPath(dir)}/`);
}

function cleanPath(p: string): string {
  return posix.normalize("/" + p).replace(/\/+$/, "");
}

/** "VOLUME/path/in/volume", the name QEMU's gluster driver expects. */
function glusterName(volume: string, path: string): string {
  if (!volume || volume.includes("/")) {
    throw new XmlError(`Gluster volume name must be non-empty without '/': ${JSON.stringify(volume)}`);
  }
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 0 || parts.some((p) => p === "." || p === "..")) {
    throw new XmlError(`not a file path inside a Gluster volume: ${JSON.stringify(path)}`);
  }
  return [volume, ...parts].join("/");
}

function parseDisk(el: XmlElement): DomainDisk {
  const disk: DomainDisk = {
    type: attr(el, "type") ?? "file", // libvirt's default when the attribute is absent
    device: attr(el, "device") ?? "disk",
    backingChain: parseBackingChain(child(el, "backingStore")),
    readonly: child(el, "readonly") !== undefined,
    shareable: child(el, "shareable") !== undefined,
  };
  const target = child(el, "target");
  const dev = attr(target, "dev");
  if (dev) disk.target = dev;
  const bus = attr(target, "bus");
  if (bus) disk.bus = bus;
  const driverEl = child(el, "driver");
  if (driverEl) {
    const driver: NonNullable<DomainDisk["driver"]> = {};
    for (const key of ["name", "type", "cache", "io", "discard"] as const) {
      const value = attr(driverEl, key);
      if (value) driver[key] = value;
    }
    disk.driver = driver;
  }
  const source = parseSource(child(el, "source"));
  if (source) disk.source = source;
  const serial = childText(el, "serial");
  if (serial !== undefined) disk.serial = serial;
  const alias = attr(child(el, "alias"), "name");
  if (alias) disk.alias = alias;
  return disk;
}

function parseSource(el: XmlElement | undefined): DiskSourceInfo | undefined {
  if (!el) return undefined;
  const source: DiskSourceInfo = {};
  for (const key of ["file", "dev", "dir", "protocol", "name", "pool", "volume"] as const) {
    const value = attr(el, key);
    if (value !== undefined) source[key] = value;
  }
  const hosts = children(el, "host").map((h) => {
    const host: DiskHost = {};
    const name = attr(h, "name");
    if (name) host.name = name;
    const port = parseInteger(attr(h, "port"), "host port");
    if (port !== undefined) host.port = port;
    const transport = attr(h, "transport");
    if (transport) host.transport = transport;
    const socket = attr(h, "socket");
    if (socket) host.socket = socket;
    return host;
  });
  if (hosts.length) source.hosts = hosts;
  return source;
}

/** Flattens nested `<backingStore>` elements; an empty `<backingStore/>` ends the chain. */
function parseBackingChain(el: XmlElement | undefined): BackingImage[] {
  const chain: BackingImage[] = [];
  for (let current = el; current && attr(current, "type") !== undefined; current = child(current, "backingStore")) {
    const image: BackingImage = { type: attr(current, "type") };
    const format = attr(child(current, "format"), "type");
    if (format) image.format = format;
    const source = parseSource(child(current, "source"));
    if (source) image.source = source;
    chain.push(image);
  }
  return chain;
}
