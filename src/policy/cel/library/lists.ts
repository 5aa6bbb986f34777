// Kubernetes lists and sets libraries.
import type { Environment } from '@marcbachmann/cel-js';
import { celError, toIndex } from './fail.js';

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

function compare(a: unknown, b: unknown): number {
  if ((typeof a === 'bigint' || typeof a === 'number') && (typeof b === 'bigint' || typeof b === 'number')) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  return celError(`cannot compare ${typeof a} with ${typeof b}`);
}

class SetsNamespace {}

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
      return l.slice(a, b);
    })
    .registerFunction('list<A>.distinct(): list<A>', (l: unknown[]) => l.filter((x, i) => l.findIndex((y) => celEquals(x, y)) === i))
    .registerType('SetsNamespace', SetsNamespace)
    .registerConstant('sets', 'SetsNamespace', new SetsNamespace())
    .registerFunction('SetsNamespace.contains(list<A>, list<A>): bool', (_: unknown, a: unknown[], b: unknown[]) =>
      b.every((x) => a.some((y) => celEquals(x, y))))
    .registerFunction('SetsNamespace.equivalent(list<A>, list<A>): bool', (_: unknown, a: unknown[], b: unknown[]) =>
      b.every((x) => a.some((y) => celEquals(x, y))) && a.every((x) => b.some((y) => celEquals(x, y))))
    .registerFunction('SetsNamespace.intersects(list<A>, list<A>): bool', (_: unknown, a: unknown[], b: unknown[]) =>
      a.some((x) => b.some((y) => celEquals(x, y))));
}
