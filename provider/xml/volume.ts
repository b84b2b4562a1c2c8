/**
* Storage volume XML (`vol-create POOL /dev/stdin`, `vol-dumpxml`).
* We define volumes from XML rather than with vol-create-as because only the XML
* carries `<target><permissions>`: a netfs pool's own permissions do not carry over
* to the files in it, and QEMU (libvirt-qemu, not root) must be able to open them.
*/
import {
  attr, attrs, child, childText, indent, parsePermissions, parseRoot, permissionsLines,
  isImageFormat, sizeInBytes, textElement, XmlError, type ImageFormat, type Permissions,
} from "./markup";


/** What an ImageVolume asks libvirt to create. */
export interface VolumeSpec {
  /** file name inside the pool */
  name: string;
  /** virtual size, bytes */
  capacity: number;
  /** bytes to allocate up front; default 0 (sparse). */
  allocation?: number;
  format: ImageFormat;
  permissions?: Permissions;
  /** qcow2 only: the image this one is a copy-on-write overlay of (linked clone). */
  backingStore?: { path: string; format: ImageFormat };
}

/** What vol-dumpxml says about a volume. Formats are strings: libvirt probes the
*  file and may report anything (iso, vmdk, dir, …), not only what we create. */
export interface VolumeInfo {
  name: string;
  /** file | block | dir | network | netdir | ploop */
  type: string;
  /** libvirt's unique key; for a file in a netfs pool, its path */
  key?: string;
  /** target path (a file path, or a gluster:// URL in a native gluster pool) */
  path?: string;
  capacity: number;
  allocation: number;
  /** size of the file on disk, when libvirt reports it */
  physical?: number;
  format?: string;
  permissions?: Permissions;
  backingStore?: { path: string; format?: string };
}

export function buildVolumeXml(spec: VolumeSpec): string {
  if (!isImageFormat(spec.format)) {
    throw new XmlError(`unsupported volume format ${JSON.stringify(spec.format)}`);
  }
  for (const [what, value] of [["capacity", spec.capacity], ["allocation", spec.allocation ?? 0]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new XmlError(`${what} must be a whole number of bytes: ${value}`);
  }
  if (spec.backingStore && spec.format !== "qcow2") {
    throw new XmlError("only a qcow2 volume can have a backing store");
  }
  const target = [`<format${attrs({ type: spec.format })}/>`, ...permissionsLines(spec.permissions)];
  const body = [
    textElement("name", spec.name),
    `<capacity unit='bytes'>${spec.capacity}</capacity>`,
    // Always explicit: libvirt's default allocation is the full capacity, which
    // for a raw file on Gluster means writing every byte before create returns.
    `<allocation unit='bytes'>${spec.allocation ?? 0}</allocation>`,
    "<target>", ...indent(target, 1), "</target>",
  ];
  if (spec.backingStore) {
    const backing = [
      textElement("path", spec.backingStore.path),
      `<format${attrs({ type: spec.backingStore.format })}/>`,
    ];
    body.push("<backingStore>", ...indent(backing, 1), "</backingStore>");
  }
  return ["<volume type='file'>", ...indent(body, 1), "</volume>", ""].join("\n");
}

export function parseVolumeXml(xml: string): VolumeInfo {
  const volume = parseRoot(xml, "volume");
  const name = childText(volume, "name");
  if (!name) throw new XmlError("volume has no <name>");
  const target = child(volume, "target");
  const info: VolumeInfo = {
    name,
    type: attr(volume, "type") ?? "file",
    // A definition without sizes is legal input to libvirt (capacity is then
    // required by vol-create); dumpxml always has both.
    capacity: sizeInBytes(child(volume, "capacity"), "capacity") ?? 0,
    allocation: sizeInBytes(child(volume, "allocation"), "allocation") ?? 0,
  };
  const key = childText(volume, "key");
  if (key) info.key = key;
  const path = childText(target, "path");
  if (path) info.path = path;
  const physical = sizeInBytes(child(volume, "physical"), "physical");
  if (physical !== undefined) info.physical = physical;
  const format = attr(child(target, "format"), "type");
  if (format) info.format = format;
  const permissions = parsePermissions(child(target, "permissions"));
  if (permissions) info.permissions = permissions;
  const backing = child(volume, "backingStore");
  const backingPath = childText(backing, "path");
  // libvirt prints an empty <backingStore/> in some versions for "no backing file".
  if (backingPath) {
    info.backingStore = { path: backingPath };
    const backingFormat = attr(child(backing, "format"), "type");
    if (backingFormat) info.backingStore.format = backingFormat;
  }
  return info;
}
