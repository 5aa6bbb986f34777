// Canonical JSON (sorted keys, no whitespace): the same value always hashes the same.
// On every admission's path (object digest, record hash), so it is written for speed: each
// call returns its piece as a string (V8 joins them as ropes), keys already in order are not
// sorted again, and strings that need no escaping skip JSON.stringify.

// what JSON.stringify would escape in a string: quote, backslash, control characters, surrogates
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

const quote = (s: string) => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

function write(value: unknown): string {
  if (typeof value === 'string') return quote(value);
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
    if (typeof value === 'boolean') return value ? 'true' : 'false';
    return 'null';
  }
  if (Array.isArray(value)) {
    let s = '[';
    for (let i = 0; i < value.length; i++) {
      if (i) s += ',';
      const item = value[i];
      s += item === undefined ? 'null' : write(item);
    }
    return `${s}]`;
  }
  const keys = Object.keys(value);
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! > keys[i]!) {
      keys.sort();
      break;
    }
  }
  let s = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    if (first) first = false;
    else s += ',';
    s += quote(k);
    s += ':';
    s += write(v);
  }
  return `${s}}`;
}

/** Sorted keys, undefined members dropped (null in arrays), non-finite numbers and other non-JSON values as null. */
export function canonicalJson(value: unknown): string {
  return write(value);
}
