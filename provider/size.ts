/**
 * Sizes as users write them: a number of bytes, or a string such as "20GiB", "512M",
 * "1.5 GiB", "100KB". Units follow virsh (vol-create-as, vol-resize): a bare letter
 * or an `iB` suffix is binary (K = KiB = 1024), `B` after the letter is decimal
 * (KB = 1000). Pure: no I/O.
 */

const UNITS: Readonly<Record<string, number>> = {
  "": 1, b: 1, bytes: 1,
  k: 2 ** 10, kib: 2 ** 10, kb: 1e3,
  m: 2 ** 20, mib: 2 ** 20, mb: 1e6,
  g: 2 ** 30, gib: 2 ** 30, gb: 1e9,
  t: 2 ** 40, tib: 2 ** 40, tb: 1e12,
  p: 2 ** 50, pib: 2 ** 50, pb: 1e15,
};

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/;

/** Bytes for `size`, or a reason it is not a size (never throws). */
export function parseSize(size: number | string): { bytes: number } | { error: string } {
  if (typeof size === "number") {
    return Number.isSafeInteger(size) && size >= 0 ? { bytes: size } : { error: `${size} is not a whole, non-negative number of bytes` };
  }
  const m = SIZE.exec(size);
  const factor = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || factor === undefined) {
    return { error: `${JSON.stringify(size)} is not a size: use bytes or a number with a unit such as "20GiB", "512M", "100KB"` };
  }
  // Decimal fractions are exact only in small multiples: compute on the digits.
  const [whole, fraction = ""] = m[1].split(".");
  const scale = 10 ** fraction.length;
  const bytes = (Number(whole) * scale + Number(fraction || 0)) * factor / scale;
  if (!Number.isSafeInteger(bytes)) {
    return { error: `${JSON.stringify(size)} is not a whole number of bytes below 2^53` };
  }
  return { bytes };
}

/** "20 GiB", "1.5 GiB (1610612737 bytes)", "1000 bytes": for messages. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [["TiB", 2 ** 40], ["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) {
    if (bytes < factor) continue;
    const value = bytes / factor;
    const rounded = Number(value.toFixed(2));
    return rounded === value ? `${value} ${unit}` : `${rounded} ${unit} (${bytes} bytes)`;
  }
  return `${bytes} bytes`;
}
