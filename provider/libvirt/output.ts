/** Parsers for virsh's plain-text answers (the XML ones live in provider/xml/). */

/** `pool-info`, `dominfo`, `vol-info`: "Key:   value" lines → { key: value }. */
export function parseInfo(text: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([^:]+):\s*(.*?)\s*$/.exec(line);
    if (m) info[m[1].trim()] = m[2];
  }
  return info;
}

/** `list --name`, `pool-list --name`, `vol-list --name`: one name per line. */
export function parseNames(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}
