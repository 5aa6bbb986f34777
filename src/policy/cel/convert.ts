// JSON from the API server becomes CEL values once per review: integral numbers are CEL ints
// (BigInt), lists are metered (see meter.ts), and input bounds are enforced here.
import { meterList } from './meter.js';

export interface InputLimits {
  /** longest input list accepted for CEL evaluation */
  maxListLength: number;
  /** deepest nesting accepted */
  maxDepth: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = { maxListLength: 10_000, maxDepth: 100 };

export class InputLimitError extends Error {
  readonly code = 'INPUT_TOO_LARGE';
}

export function toCel(value: unknown, limits: InputLimits = DEFAULT_INPUT_LIMITS): unknown {
  return convert(value, limits, [], 0);
}

// the path of the value being converted, as a stack of keys: spelt out only in an error, since
// a string per node would cost as much as the conversion itself on a large object
const pathOf = (keys: readonly (string | number)[]) => (keys.length ? `/${keys.join('/')}` : '/');

function convert(value: unknown, limits: InputLimits, keys: (string | number)[], depth: number): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
    return value;
  }
  if (depth > limits.maxDepth) throw new InputLimitError(`object nesting deeper than ${limits.maxDepth} at ${pathOf(keys)}`);
  if (Array.isArray(value)) {
    if (value.length > limits.maxListLength) {
      throw new InputLimitError(`list ${pathOf(keys)} has ${value.length} items, more than the ${limits.maxListLength} that CEL policies may iterate`);
    }
    const items = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      keys.push(i);
      items[i] = convert(value[i], limits, keys, depth + 1);
      keys.pop();
    }
    return meterList(items);
  }
  const out: Record<string, unknown> = {};
  // for-in rather than Object.keys: no key array per object (JSON objects inherit nothing enumerable)
  for (const key in value) {
    keys.push(key);
    const converted = convert((value as Record<string, unknown>)[key], limits, keys, depth + 1);
    keys.pop();
    // a label key "__proto__" is legal JSON; plain assignment would change the prototype instead
    if (key === '__proto__') Object.defineProperty(out, key, { value: converted, enumerable: true, writable: true, configurable: true });
    else out[key] = converted;
  }
  return out;
}

/** CEL values back to JSON-friendly values (for --explain and messages). */
export function fromCel(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(fromCel);
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), fromCel(v)]));
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (value instanceof Date) return value.toISOString();
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null && typeof (value as { toString?: unknown }).toString === 'function') {
    return String(value);
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromCel(v)]));
}
