// A mutation's CEL value as the JSON the patch carries, strictly: what has no JSON form (an
// optional, a type, an infinite double, a map keyed by numbers) or would not survive as a JSON
// number fails the mutation, as the API server refuses a value it "could not marshal to JSON",
// rather than landing in the object as "[object optional]" or a rounded integer. (fromCel is the
// lenient conversion, for --explain and messages.)
import { Environment } from '@marcbachmann/cel-js';
import { JsonPatchError, setOwn } from './json-patch.js';

// cel-js exports neither class; a literal of each hands over its constructor
const probe = new Environment();
const UnsignedInt = probe.evaluate('0u').constructor;
const Duration = probe.evaluate("duration('1s')").constructor;

function exactNumber(n: bigint, where: string): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) throw new JsonPatchError(`${where}: ${n} is beyond what trustgate writes exactly as a JSON number (±2^53); write it as a string`);
  return Number(n);
}

export function jsonValue(v: unknown, where = 'value'): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new JsonPatchError(`${where}: ${v} has no JSON form`);
    return v;
  }
  if (typeof v === 'bigint') return exactNumber(v, where);
  if (Array.isArray(v)) return v.map((x, i) => jsonValue(x, `${where}[${i}]`));
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (v instanceof Date) return v.toISOString();
  if (v instanceof UnsignedInt) return exactNumber((v as { valueOf(): bigint }).valueOf(), where);
  if (v instanceof Duration) return String(v);
  const out: Record<string, unknown> = {};
  if (v instanceof Map) {
    for (const [k, x] of v) {
      if (typeof k !== 'string') throw new JsonPatchError(`${where}: a map key ${String(k)} is no string, which a JSON object needs`);
      setOwn(out, k, jsonValue(x, `${where}.${k}`));
    }
    return out;
  }
  const proto = typeof v === 'object' ? Object.getPrototypeOf(v) : undefined;
  if (proto !== Object.prototype && proto !== null) throw new JsonPatchError(`${where}: a value of type ${(v as object)?.constructor?.name ?? typeof v} has no JSON form`);
  for (const [k, x] of Object.entries(v as object)) setOwn(out, k, jsonValue(x, `${where}.${k}`));
  return out;
}
