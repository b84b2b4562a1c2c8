/**
 * Private copies of the lab's test domains (same ACPI + virtio-scsi definition, new
 * name and uuid), so tests that attach disks, start or stop a VM never change the
 * shared lab-running / lab-stopped. They are made from the lab's pristine definition
 * (`lab.domains.pristineXml`), not from the live domains: those may carry disks a demo
 * or a user attached, and a copy would inherit them (a clash at the first `sdb`).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { LabInfo } from "./lab";
import { tryVirsh, uniqueName, virsh } from "./local";

/** The lab's pristine domain definition (no disks) under another name, without a uuid. */
export function pristineDomainXml(lab: LabInfo, name: string): string {
  return fs
    .readFileSync(lab.domains.pristineXml, "utf8")
    .replace(/<name>[^<]*<\/name>/, `<name>${name}</name>`)
    .replace(/\s*<uuid>[^<]*<\/uuid>/, "");
}

/**
 * Defines a VM like the lab's running or stopped domain, from its pristine definition;
 * starts it when asked (default: like the original).
 */
export function cloneLabDomain(lab: LabInfo, from: "running" | "stopped", opts: { start?: boolean; prefix?: string } = {}): string {
  const name = uniqueName(opts.prefix ?? `dom-${from}`);
  const xml = pristineDomainXml(lab, name);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "domain-"));
  try {
    fs.writeFileSync(path.join(dir, "domain.xml"), xml);
    virsh("define", path.join(dir, "domain.xml"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (opts.start ?? from === "running") {
    try {
      virsh("start", name);
    } catch (e) {
      // all or nothing: the caller never learns the name, so nobody else would remove it
      dropDomain(name);
      throw e;
    }
  }
  return name;
}

/** Stops and undefines a domain; fine if it is already gone. */
export function dropDomain(name: string): void {
  tryVirsh("destroy", name);
  tryVirsh("undefine", name);
}
