// Canonical JSON (sorted keys, no whitespace): the same value always hashes the same.
// On every admission's path (object digest, record hash), so it is written for speed: pieces
// are appended to one string, keys already in order are not sorted again, and strings that
// need no escaping skip JSON.stringify. A digest streams the text into the hash in chunks, so a
// 16 MiB object is never held as one string (nor as the millions of rope pieces that build it).
import { createHash } from 'node:crypto';

// what JSON.stringify would escape in a string: quote, backslash, control characters, surrogates
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

const quote = (s: string) => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

/** how much text a digest gathers before handing it to the hash */
const CHUNK = 64 * 1024;

class CanonicalWriter {
  text = '';

  /** Called at container boundaries: hands the text gathered so far on, when there is a taker. */
  constructor(private readonly spill?: (chunk: string) => void) {}

  write(value: unknown): void {
    if (typeof value === 'string') {
      this.text += quote(value);
      return;
    }
    if (value === null || typeof value !== 'object') {
      this.text += typeof value === 'number' ? (Number.isFinite(value) ? String(value) : 'null') : typeof value === 'boolean' ? (value ? 'true' : 'false') : 'null';
      return;
    }
    if (this.spill && this.text.length >= CHUNK) {
      this.spill(this.text);
      this.text = '';
    }
    if (Array.isArray(value)) {
      this.text += '[';
      for (let i = 0; i < value.length; i++) {
        if (i) this.text += ',';
        const item = value[i];
        if (item === undefined) this.text += 'null';
        else this.write(item);
      }
      this.text += ']';
      return;
    }
    const keys = Object.keys(value);
    for (let i = 1; i < keys.length; i++) {
      if (keys[i - 1]! > keys[i]!) {
        keys.sort();
        break;
      }
    }
    this.text += '{';
    let first = true;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = (value as Record<string, unknown>)[k];
      if (v === undefined) continue;
      if (first) first = false;
      else this.text += ',';
      this.text += quote(k);
      this.text += ':';
      this.write(v);
    }
    this.text += '}';
  }
}

/** Sorted keys, undefined members dropped (null in arrays), non-finite numbers and other non-JSON values as null. */
export function canonicalJson(value: unknown): string {
  const writer = new CanonicalWriter();
  writer.write(value);
  return writer.text;
}

/** sha256 (hex) of canonicalJson(value), without ever holding the whole text. */
export function canonicalSha256(value: unknown): string {
  const digest = createHash('sha256');
  const writer = new CanonicalWriter((chunk) => digest.update(chunk));
  writer.write(value);
  return digest.update(writer.text).digest('hex');
}
