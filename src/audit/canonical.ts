// Canonical JSON (sorted keys, no whitespace): the same value always hashes the same.
// On every admission's path (object digest, record hash), so it is written for speed. Most
// values take the native path: a copy in sorted key order, made only of the objects whose keys
// are out of order, written by JSON.stringify (one flat string; the per-piece writer below
// allocated ~4x the text in rope pieces and sort buffers, and the collector paid for it per
// admission). JSON.stringify writes canonical text for plain JSON data only, so anything else
// (index-like keys, which objects enumerate in numeric order; non-JSON values) and anything
// large (by its count of values) takes the writer, which a digest streams into the hash in
// chunks: a 16 MiB object is never held as one string, nor copied.
import { createHash, hash } from 'node:crypto';

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
    sortKeys(keys);
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

/**
 * Values (containers and leaves) the native path checks before it leaves a value to the
 * writer: a Pod has a few hundred; past this the text could be large, and is streamed.
 */
export const NATIVE_VALUE_LIMIT = 50_000;

/** returned by inCanonicalOrder when JSON.stringify would not write the canonical text */
const NOT_NATIVE = Symbol('not native');

/** ASCII digit first: the only keys that can be array indices, which objects enumerate first */
const mayBeIndex = (key: string) => {
  const c = key.charCodeAt(0);
  return c >= 48 && c <= 57;
};
const isIndex = (key: string) => /^(?:0|[1-9]\d{0,9})$/.test(key) && Number(key) < 4294967295;

/** in place; key lists are short, and Array#sort allocates a work copy on every call */
export function sortKeys(keys: string[]): void {
  if (keys.length > 32) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

/**
 * The value itself when JSON.stringify already writes it canonically, else a copy of the parts
 * that are out of key order (the rest shared), or NOT_NATIVE when JSON.stringify cannot write it
 * canonically at all, or it holds more than `budget.values` values.
 */
function inCanonicalOrder(value: unknown, budget: { values: number }): unknown {
  if (--budget.values < 0) return NOT_NATIVE;
  if (value === null || typeof value !== 'object') {
    const type = typeof value;
    return type === 'string' || type === 'number' || type === 'boolean' || value === null || value === undefined ? value : NOT_NATIVE;
  }
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const ordered = inCanonicalOrder(item, budget);
      if (ordered === NOT_NATIVE) return NOT_NATIVE;
      if (ordered !== item) (copy ??= value.slice())[i] = ordered;
    }
    return copy ?? value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return NOT_NATIVE;
  // most objects are in key order and stay as they are: walked with for-in, which makes no key
  // list (a list per object was a tenth of what an audited admission allocated)
  let previous: string | undefined;
  for (const key in value) {
    if (mayBeIndex(key) && isIndex(key)) return NOT_NATIVE;
    if (previous !== undefined && previous > key) return orderedCopy(value as Record<string, unknown>, budget, 0, false);
    previous = key;
  }
  let at = 0;
  for (const key in value) {
    const member = (value as Record<string, unknown>)[key];
    const ordered = inCanonicalOrder(member, budget);
    if (ordered === NOT_NATIVE) return NOT_NATIVE;
    // a member that had to be copied: so must this object be, from here on
    if (ordered !== member) return orderedCopy(value as Record<string, unknown>, budget, at, true, ordered);
    at++;
  }
  return value;
}

/**
 * A copy of an object in key order. Its members before `from` (in sorted order) were checked
 * already and are shared as they are; the one at `from` was copied to `fromValue`, when given.
 */
function orderedCopy(value: Record<string, unknown>, budget: { values: number }, from: number, sorted: boolean, fromValue?: unknown): unknown {
  const keys = Object.keys(value);
  if (!sorted) sortKeys(keys);
  const copy: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const member = value[key];
    if (i < from) setMember(copy, key, member);
    else if (i === from && fromValue !== undefined) setMember(copy, key, fromValue);
    else {
      const ordered = inCanonicalOrder(member, budget);
      if (ordered === NOT_NATIVE) return NOT_NATIVE;
      setMember(copy, key, ordered);
    }
  }
  return copy;
}

// a "__proto__" key is legal JSON; plain assignment would set the copy's prototype instead
function setMember(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** the canonical text by JSON.stringify, or undefined when the value must take the writer */
function nativeCanonicalJson(value: unknown): string | undefined {
  const ordered = inCanonicalOrder(value, { values: NATIVE_VALUE_LIMIT });
  return ordered === NOT_NATIVE ? undefined : (JSON.stringify(ordered) ?? 'null');
}

/** Sorted keys, undefined members dropped (null in arrays), non-finite numbers and other non-JSON values as null. */
export function canonicalJson(value: unknown): string {
  const text = nativeCanonicalJson(value);
  if (text !== undefined) return text;
  const writer = new CanonicalWriter();
  writer.write(value);
  return writer.text;
}

/** sha256 (hex) of canonicalJson(value); a large value is streamed, never held as one text. */
export function canonicalSha256(value: unknown): string {
  const text = nativeCanonicalJson(value);
  if (text !== undefined) return hash('sha256', text);
  const digest = createHash('sha256');
  const writer = new CanonicalWriter((chunk) => digest.update(chunk));
  writer.write(value);
  return digest.update(writer.text).digest('hex');
}
