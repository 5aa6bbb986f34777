// Kubernetes lists and sets libraries.
import { Optional, type Environment } from '@marcbachmann/cel-js';
import { celError, toIndex } from './fail.js';
import { chargeSize, chargeWork } from '../meter.js';

/** CEL equality for the values a JSON admission object can hold. */
export function celEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'bigint' && typeof b === 'number') return Number(a) === b;
  if (typeof a === 'number' && typeof b === 'bigint') return a === Number(b);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => celEquals(x, b[i]));
  if (Array.isArray(a) || Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && celEquals((a as never)[k], (b as never)[k]));
}

/**
 * A key equal for CEL-equal scalars (an int and the double of the same value share one), or
 * undefined for lists, maps and other objects, which are compared pairwise.
 */
function scalarKey(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string': return `s${v}`;
    case 'boolean': return v ? 't' : 'f';
    case 'bigint': return `n${v}`;
    // integral doubles share the int's key only where the conversion is exact; NaN equals nothing
    case 'number': return Number.isSafeInteger(v) || Object.is(v, -0) ? `n${BigInt(v)}` : Number.isInteger(v) || Number.isNaN(v) ? undefined : `d${v}`;
    default: return v === null ? 'z' : undefined;
  }
}

/** The keys of a list of scalars, or undefined if it holds anything else. */
function scalarKeys(l: readonly unknown[]): string[] | undefined {
  const keys: string[] = [];
  for (let i = 0; i < l.length; i++) {
    const k = scalarKey(l[i]);
    if (k === undefined) return undefined;
    keys.push(k);
  }
  return keys;
}

// Set operations: by key when both lists hold scalars (linear), else pairwise, with the
// pairs charged to the expression's cost budget up front (meter.ts): lists made during
// evaluation are not metered element by element, and 10,000 x 10,000 pairs is seconds.
function inSet(items: readonly unknown[], set: readonly unknown[], quantifier: 'every' | 'some'): boolean {
  const itemKeys = scalarKeys(items);
  const setKeys = itemKeys && scalarKeys(set);
  if (itemKeys && setKeys) {
    const keys = new Set(setKeys);
    return itemKeys[quantifier]((k) => keys.has(k));
  }
  chargeWork(items.length * set.length);
  return items[quantifier]((x) => set.some((y) => celEquals(x, y)));
}

function distinct(l: readonly unknown[]): unknown[] {
  const keys = scalarKeys(l);
  if (keys) {
    const seen = new Set<string>();
    return l.filter((_, i) => !seen.has(keys[i]!) && seen.add(keys[i]!));
  }
  chargeWork((l.length * (l.length - 1)) / 2);
  return l.filter((x, i) => l.findIndex((y) => celEquals(x, y)) === i);
}

function compare(a: unknown, b: unknown): number {
  if ((typeof a === 'bigint' || typeof a === 'number') && (typeof b === 'bigint' || typeof b === 'number')) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  return celError(`cannot compare ${typeof a} with ${typeof b}`);
}

class SetsNamespace {}
class ListsNamespace {}

/** one kind of comparable value throughout, as cel-go's sort requires */
function sortedBy<T>(items: readonly T[], keys: readonly unknown[]): T[] {
  if (keys.length > 1) {
    const kind = (v: unknown) => (typeof v === 'number' ? 'bigint' : typeof v);
    const first = kind(keys[0]);
    if (keys.some((k) => kind(k) !== first)) celError('sort: the list holds values of different types');
  }
  chargeSize(items.length);
  chargeWork(items.length * Math.ceil(Math.log2(items.length + 1)));
  const order = items.map((_, i) => i).sort((a, b) => compare(keys[a], keys[b]) || a - b);
  return order.map((i) => items[i]!);
}

/** lists nested in `l` spliced in, `depth` levels down */
function flatten(l: readonly unknown[], depth: number): unknown[] {
  if (depth < 0) celError('flatten: the depth must be non-negative');
  let out = l as unknown[];
  for (let level = 0; level < depth && out.some(Array.isArray); level++) {
    chargeSize(out.reduce((n: number, x) => n + (Array.isArray(x) ? x.length : 1), 0));
    out = out.flatMap((x) => (Array.isArray(x) ? x : [x]));
  }
  return out;
}

export function registerLists(env: Environment): void {
  env
    .registerFunction('list<A>.isSorted(): bool', (l: unknown[]) => l.every((x, i) => i === 0 || compare(l[i - 1], x) <= 0))
    .registerFunction('list<A>.sum(): A', (l: unknown[]) => {
      if (l.length === 0) return 0n;
      return l.reduce((acc: any, x: any) => {
        if (typeof acc !== typeof x) celError('sum: mixed numeric types');
        return acc + x;
      });
    })
    .registerFunction('list<A>.min(): A', (l: unknown[]) => {
      if (l.length === 0) celError('min called on an empty list');
      return l.reduce((m, x) => (compare(x, m) < 0 ? x : m));
    })
    .registerFunction('list<A>.max(): A', (l: unknown[]) => {
      if (l.length === 0) celError('max called on an empty list');
      return l.reduce((m, x) => (compare(x, m) > 0 ? x : m));
    })
    .registerFunction('list<A>.indexOf(A): int', (l: unknown[], v: unknown) => BigInt(l.findIndex((x) => celEquals(x, v))))
    .registerFunction('list<A>.lastIndexOf(A): int', (l: unknown[], v: unknown) => BigInt(l.findLastIndex((x) => celEquals(x, v))))
    .registerFunction('list<A>.slice(int, int): list<A>', (l: unknown[], from: bigint, to: bigint) => {
      const a = toIndex(from, 'slice');
      const b = toIndex(to, 'slice');
      if (a > b || b > l.length) celError(`slice(${from}, ${to}) out of range for a list of ${l.length}`);
      chargeSize(b - a);
      return l.slice(a, b);
    })
    .registerFunction('list<A>.distinct(): list<A>', (l: unknown[]) => {
      chargeSize(l.length);
      return distinct(l);
    })
    // cel-go's lists extension at version 3, as Kubernetes 1.34 has it
    .registerFunction('list<A>.reverse(): list<A>', (l: unknown[]) => {
      chargeSize(l.length);
      return [...l].reverse();
    })
    .registerFunction('list<A>.sort(): list<A>', (l: unknown[]) => sortedBy(l, l))
    .registerFunction('list.flatten(): list<dyn>', (l: unknown[]) => flatten(l, 1))
    // any depth: flattening stops at the first level with no list left (no cap of its own)
    .registerFunction('list.flatten(int): list<dyn>', (l: unknown[], depth: bigint) => flatten(l, depth < 0n ? -1 : Number(depth > 1_000_000n ? 1_000_000n : depth)))
    .registerFunction('list<A>.first(): optional<A>', (l: unknown[]) => (l.length ? Optional.of(l[0]) : Optional.none()))
    .registerFunction('list<A>.last(): optional<A>', (l: unknown[]) => (l.length ? Optional.of(l.at(-1)) : Optional.none()))
    .registerType('ListsNamespace', ListsNamespace)
    .registerConstant('lists', 'ListsNamespace', new ListsNamespace())
    .registerFunction('ListsNamespace.range(int): list<int>', (_: unknown, n: bigint) => {
      const size = n > 0n ? n : 0n;
      // one unit per item, charged before it exists: each is a heap BigInt, so at the usual
      // ten items a unit the budget let lists.range(object.spec.replicas) build 5M of them
      // (125 MB, 1.7 s) from a number the object's author chooses
      chargeWork(size > 100_000_000n ? Number.MAX_SAFE_INTEGER : Number(size));
      return Array.from({ length: Number(size) }, (_v, i) => BigInt(i));
    })
    // sortBy(e, key) is a macro that cel-js expands into this, with the keys from map(e, key)
    .registerFunction('ListsNamespace.sortByAssociatedKeys(list<A>, list<B>): list<A>', (_: unknown, l: unknown[], keys: unknown[]) => sortedBy(l, keys))
    .registerType('SetsNamespace', SetsNamespace)
    .registerConstant('sets', 'SetsNamespace', new SetsNamespace())
    .registerFunction('SetsNamespace.contains(list<A>, list<A>): bool', (_: unknown, a: unknown[], b: unknown[]) => inSet(b, a, 'every'))
    .registerFunction('SetsNamespace.equivalent(list<A>, list<A>): bool', (_: unknown, a: unknown[], b: unknown[]) => inSet(b, a, 'every') && inSet(a, b, 'every'))
    .registerFunction('SetsNamespace.intersects(list<A>, list<A>): bool', (_: unknown, a: unknown[], b: unknown[]) => inSet(a, b, 'some'));
}
