// The spool's JSON lines as one JSON array, for the HTTP sink, which sends a batch as one: made from
// the bytes in place, so no string of the batch (~1.2 MB for 500 records) is made and no copy
// of it either (on this VM, copying into fresh memory ran at ~300 MB/s: 5 ms per batch).

export interface JsonArrayParts {
  /** '[', the lines joined by commas, ']': written one after the other they are the array */
  parts: Buffer[];
  count: number;
}

const OPEN = Buffer.from('[');
const CLOSE = Buffer.from(']');

/** JSON lines, each ending in a newline, as one JSON array: each newline but the last becomes a comma (in place). */
export function jsonArrayOfLines(bytes: Buffer): JsonArrayParts {
  if (!bytes.length) return { parts: [Buffer.from('[]')], count: 0 };
  let count = 0;
  for (let at = bytes.indexOf(0x0a); at !== -1; at = bytes.indexOf(0x0a, at + 1)) {
    bytes[at] = 0x2c; // ,
    count++;
  }
  return { parts: [OPEN, bytes.subarray(0, bytes.length - 1), CLOSE], count };
}

/** Lines in JSON lines bytes, each ending in a newline. */
export function lineCount(bytes: Buffer): number {
  let count = 0;
  for (let at = bytes.indexOf(0x0a); at !== -1; at = bytes.indexOf(0x0a, at + 1)) count++;
  return count;
}

/** The same array from lines already decoded. */
export function jsonArrayOf(lines: readonly string[]): JsonArrayParts {
  return { parts: [Buffer.from(`[${lines.join(',')}]`)], count: lines.length };
}
