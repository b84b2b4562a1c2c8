/** virsh's plain-text listings: reading them, and their parsers (the XML ones live in provider/xml/). */
import type { Host } from "../host";

/**
 * A listing (`pool-list`, `list`): virsh asks for each object's details after listing
 * it, so one undefined in between fails the whole listing ("Could not retrieve pool
 * information"). That race is retried a few times; any other failure stands.
 */
export async function listing(host: Host, args: readonly string[]): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await host.virsh(args);
    } catch (err) {
      if (attempt >= 5 || !/Could not retrieve|failed to get .* (name|uuid|state|info)/i.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

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
