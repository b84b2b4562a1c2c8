/**
* The small XML toolkit shared by pool.ts, volume.ts and disk.ts: escaping for
* the builders, one parser configuration for the parsers, and accessors over
* the parsed tree. Pure: no I/O, no module-level state (a parser instance is
* created per call, so nothing here can end up captured in serialized state).
*/
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { XmlError } from "../errors";

export { XmlError };

/** An element as fast-xml-parser returns it with the options below: attributes
*  under "@name", text under "#text", every child element name mapped to an
*  array (so a repeated element never changes shape). */
export interface XmlElement {
  [key: string]: XmlElement[] | string | undefined;
}

/** Thrown when a document is not well-formed or lacks what its kind requires. */

/** The image formats this package creates and attaches. */
export const IMAGE_FORMATS = ["raw", "qcow2"] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** Is `format` (as libvirt reports it, any string) one of ours? */
export function isImageFormat(format: string | undefined): format is ImageFormat {
  return (IMAGE_FORMATS as readonly (string | undefined)[]).includes(format);
}

/** Escape for element text and for attribute values (we quote with `'`, as libvirt
*  does, but escaping both quote kinds keeps the output valid whichever is used). */
export function escapeXml(value: string): string {
  // XML 1.0 cannot carry most C0 control characters at all, not even as
  // character references: refuse instead of producing a document libvirt rejects.
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(value)) {
    throw new XmlError(`value contains a character XML cannot represent: ${JSON.stringify(value)}`);
  }
  return value
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/'/g, "&apos;")
    .replace(/"/g, "&quot;")
    // Literal CR/LF/TAB would be rewritten by any conforming parser (end-of-line and
    // attribute-value normalisation); character references survive as written.
    .replace(/\r/g, "&#13;")
    .replace(/\n/g, "&#10;")
    .replace(/\t/g, "&#9;");
}

/** ` name='value'` for each defined attribute, in the order given. */
export function attrs(values: Record<string, string | number | undefined>): string {
  let out = "";
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) out += ` ${name}='${escapeXml(String(value))}'`;
  }
  return out;
}

/** `<name>text</name>` */
export function textElement(name: string, text: string | number): string {
  return `<${name}>${escapeXml(String(text))}</${name}>`;
}

/** Indent a list of lines by `depth` levels of two spaces (libvirt's layout). */
export function indent(lines: string[], depth: number): string[] {
  const pad = "  ".repeat(depth);
  return lines.map((line) => pad + line);
}

/**
* Parse a document and return its root element, checking the root's name.
* Malformed input (e.g. virsh output cut short) is an error, not a partial result:
* fast-xml-parser alone silently repairs unbalanced tags, so validate first.
*/
export function parseRoot(xml: string, rootName: string): XmlElement {
  // virsh never prints a DOCTYPE; refusing it rules out entity expansion tricks.
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) {
    throw new XmlError("DOCTYPE/ENTITY declarations are not accepted");
  }
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw new XmlError(`malformed XML (line ${valid.err.line}): ${valid.err.msg}`);
  }
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@",
    parseTagValue: false, // "0755" and uuids must stay strings
    parseAttributeValue: false,
    trimValues: false, // a serial may end in a space; whitespace between elements is never read
    alwaysCreateTextNode: true,
    ignoreDeclaration: true,
    ignorePiTags: true,
    // htmlEntities also decodes numeric character references (&#39;), which
    // hand-written XML may contain; libvirt itself prints named entities.
    processEntities: true,
    htmlEntities: true,
    isArray: (_name: string, _path: unknown, _leaf: boolean, isAttribute: boolean) => !isAttribute,
  });
  const doc = parser.parse(xml) as XmlElement;
  const root = doc[rootName];
  if (!Array.isArray(root) || root.length !== 1) {
    const found = Object.keys(doc).filter((k) => !k.startsWith("?"));
    throw new XmlError(`expected a <${rootName}> document, found <${found.join(", ") || "nothing"}>`);
  }
  return root[0];
}

/** Child elements with the given name (qualified name as written, e.g. "fs:option"). */
export function children(el: XmlElement | undefined, name: string): XmlElement[] {
  const value = el?.[name];
  return Array.isArray(value) ? value : [];
}

/** The first child element with the given name. */
export function child(el: XmlElement | undefined, name: string): XmlElement | undefined {
  return children(el, name)[0];
}

export function attr(el: XmlElement | undefined, name: string): string | undefined {
  const value = el?.[`@${name}`];
  return typeof value === "string" ? value : undefined;
}

/** Text content of an element (undefined when the element is absent). */
export function text(el: XmlElement | undefined): string | undefined {
  if (!el) return undefined;
  const value = el["#text"];
  return typeof value === "string" ? value : "";
}

/** Text of a child element, or undefined if there is no such child. */
export function childText(el: XmlElement | undefined, name: string): string | undefined {
  return text(child(el, name));
}

/** The prefix a document uses for a namespace URI, declared on `el` (libvirt puts
*  its namespace declarations on the root element). */
export function namespacePrefix(el: XmlElement, uri: string): string | undefined {
  for (const key of Object.keys(el)) {
    if (key.startsWith("@xmlns:") && el[key] === uri) return key.slice("@xmlns:".length);
  }
  return undefined;
}

// libvirt's scaled integers (virScaleInteger): single letters and the *iB forms
// are powers of 1024, the *B forms powers of 1000; the default unit is bytes.
const UNIT_EXPONENT: Record<string, [base: bigint, power: bigint]> = {
  b: [1n, 0n], byte: [1n, 0n], bytes: [1n, 0n],
  k: [1024n, 1n], kib: [1024n, 1n], kb: [1000n, 1n],
  m: [1024n, 2n], mib: [1024n, 2n], mb: [1000n, 2n],
  g: [1024n, 3n], gib: [1024n, 3n], gb: [1000n, 3n],
  t: [1024n, 4n], tib: [1024n, 4n], tb: [1000n, 4n],
  p: [1024n, 5n], pib: [1024n, 5n], pb: [1000n, 5n],
  e: [1024n, 6n], eib: [1024n, 6n], eb: [1000n, 6n],
};

/**
* A size element (`<capacity unit='G'>10</capacity>`) in bytes. virsh prints
* bytes, but a hand-written definition may use any unit libvirt accepts.
* Returns undefined when the element is absent.
*/
export function sizeInBytes(el: XmlElement | undefined, what: string): number | undefined {
  if (!el) return undefined;
  const raw = (text(el) ?? "").trim();
  const unit = (attr(el, "unit") ?? "bytes").toLowerCase();
  const scale = UNIT_EXPONENT[unit];
  if (!/^\d+$/.test(raw) || !scale) {
    throw new XmlError(`<${what}> is not a size: ${JSON.stringify(raw)} unit=${JSON.stringify(unit)}`);
  }
  const bytes = BigInt(raw) * scale[0] ** scale[1];
  // JSON outputs are plain numbers; 2^53 bytes is 8 PiB, beyond any pool we manage.
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new XmlError(`<${what}> of ${bytes} bytes exceeds the safe integer range`);
  }
  return Number(bytes);
}

/** A non-negative integer from text/attribute (uid, port, index). */
export function parseInteger(raw: string | undefined, what: string): number | undefined {
  if (raw === undefined) return undefined;
  raw = raw.trim();
  if (!/^-?\d+$/.test(raw)) throw new XmlError(`${what} is not an integer: ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** File modes as libvirt prints them (`%04o`): "755", "0755" and "00755" all become "0755". */
export function normalizeMode(mode: string): string {
  const value = /^[0-7]+$/.test(mode) ? parseInt(mode, 8) : NaN;
  if (!(value <= 0o7777)) throw new XmlError(`not an octal file mode: ${JSON.stringify(mode)}`);
  return value.toString(8).padStart(4, "0");
}

/** `<permissions>` of a pool's target directory or a volume's file. Owner and
*  group are numeric ids (libvirt's schema accepts nothing else). The one type of
*  permissions: the `permissions` input (fields.ts) is checked against it. */
export interface Permissions {
  /** octal, as libvirt prints it: "0755" */
  mode?: string;
  owner?: number;
  group?: number;
}

/** The `<permissions>` block (libvirt's order: mode, owner, group), or no lines. */
export function permissionsLines(p: Permissions | undefined): string[] {
  if (!p || (p.mode === undefined && p.owner === undefined && p.group === undefined)) return [];
  const inner: string[] = [];
  if (p.mode !== undefined) inner.push(textElement("mode", normalizeMode(p.mode)));
  for (const id of ["owner", "group"] as const) {
    const value = p[id];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 0) throw new XmlError(`permissions.${id} must be a numeric id: ${value}`);
    inner.push(textElement(id, value));
  }
  return ["<permissions>", ...indent(inner, 1), "</permissions>"];
}

/** Reads `<permissions>`; -1 (libvirt's "not set") reads as absent. */
export function parsePermissions(el: XmlElement | undefined): Permissions | undefined {
  if (!el) return undefined;
  const out: Permissions = {};
  const mode = childText(el, "mode")?.trim();
  if (mode) out.mode = normalizeMode(mode);
  for (const id of ["owner", "group"] as const) {
    const value = parseInteger(childText(el, id), `permissions ${id}`);
    if (value !== undefined && value >= 0) out[id] = value;
  }
  return out.mode === undefined && out.owner === undefined && out.group === undefined ? undefined : out;
}
