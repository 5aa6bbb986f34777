// Kubernetes resource.Quantity as exact rationals (BigInt), as the quantity library defines it.
import type { Environment } from '@marcbachmann/cel-js';
import { LRUCache } from 'lru-cache';
import { celError } from './fail.js';

const SUFFIX: Record<string, [bigint, bigint]> = {
  '': [1n, 1n], n: [1n, 10n ** 9n], u: [1n, 10n ** 6n], m: [1n, 1000n],
  k: [1000n, 1n], M: [10n ** 6n, 1n], G: [10n ** 9n, 1n], T: [10n ** 12n, 1n], P: [10n ** 15n, 1n], E: [10n ** 18n, 1n],
  Ki: [1n << 10n, 1n], Mi: [1n << 20n, 1n], Gi: [1n << 30n, 1n], Ti: [1n << 40n, 1n], Pi: [1n << 50n, 1n], Ei: [1n << 60n, 1n],
};
const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d+))?$/;

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  while (b) [a, b] = [b, a % b];
  return a || 1n;
}

export class Quantity {
  readonly num: bigint;
  readonly den: bigint;
  constructor(num: bigint, den: bigint, readonly text: string) {
    const g = gcd(num, den);
    this.num = num / g;
    this.den = den / g;
  }
  compare(o: Quantity): number {
    const l = this.num * o.den;
    const r = o.num * this.den;
    return l < r ? -1 : l > r ? 1 : 0;
  }
  toString(): string { return this.text; }
}

// the same few quantities ('100m', '256Mi') come in every Pod and every policy literal: parsed
// ones are kept (Quantity is immutable), a bounded set of short strings
const parsed = new LRUCache<string, Quantity>({ max: 1024 });

export function parseQuantity(s: string): Quantity | undefined {
  let quantity = parsed.get(s);
  if (quantity) return quantity;
  quantity = parseUncached(s);
  if (quantity && s.length <= 64) parsed.set(s, quantity);
  return quantity;
}

function parseUncached(s: string): Quantity | undefined {
  const m = QUANTITY.exec(s);
  if (!m) return undefined;
  const [, sign, digits, suffix = '', exp] = m;
  const [whole, frac = ''] = digits!.split('.');
  let num = BigInt((whole || '0') + frac) * (sign === '-' ? -1n : 1n);
  let den = 10n ** BigInt(frac.length);
  const [mul, div] = exp !== undefined ? (BigInt(exp) >= 0n ? [10n ** BigInt(exp), 1n] : [1n, 10n ** -BigInt(exp)]) : SUFFIX[suffix]!;
  num *= mul;
  den *= div;
  return new Quantity(num, den, s);
}

const q = (s: string) => parseQuantity(s) ?? celError(`quantity: ${JSON.stringify(s)} is not a Kubernetes quantity`);
const arith = (a: Quantity, b: Quantity, sign: bigint) => {
  const num = a.num * b.den + sign * b.num * a.den;
  const den = a.den * b.den;
  return new Quantity(num, den, num % den === 0n ? String(num / den) : String(Number(num) / Number(den)));
};
const asQuantity = (v: bigint) => new Quantity(v, 1n, String(v));
const MAX_I64 = (1n << 63n) - 1n;

export function registerQuantity(env: Environment): void {
  env
    .registerType('Quantity', Quantity)
    .registerFunction('quantity(string): Quantity', q)
    .registerFunction('isQuantity(string): bool', (s: string) => parseQuantity(s) !== undefined)
    .registerFunction('Quantity.compareTo(Quantity): int', (a: Quantity, b: Quantity) => BigInt(a.compare(b)))
    .registerFunction('Quantity.isGreaterThan(Quantity): bool', (a: Quantity, b: Quantity) => a.compare(b) > 0)
    .registerFunction('Quantity.isLessThan(Quantity): bool', (a: Quantity, b: Quantity) => a.compare(b) < 0)
    .registerFunction('Quantity.add(Quantity): Quantity', (a: Quantity, b: Quantity) => arith(a, b, 1n))
    .registerFunction('Quantity.add(int): Quantity', (a: Quantity, b: bigint) => arith(a, asQuantity(b), 1n))
    .registerFunction('Quantity.sub(Quantity): Quantity', (a: Quantity, b: Quantity) => arith(a, b, -1n))
    .registerFunction('Quantity.sub(int): Quantity', (a: Quantity, b: bigint) => arith(a, asQuantity(b), -1n))
    .registerFunction('Quantity.isInteger(): bool', (a: Quantity) => a.den === 1n && a.num <= MAX_I64 && a.num >= -MAX_I64 - 1n)
    .registerFunction('Quantity.asInteger(): int', (a: Quantity) => {
      if (a.den !== 1n || a.num > MAX_I64 || a.num < -MAX_I64 - 1n) celError(`quantity ${a.text} cannot be represented as an integer`);
      return a.num;
    })
    .registerFunction('Quantity.asApproximateFloat(): double', (a: Quantity) => Number(a.num) / Number(a.den))
    .registerFunction('Quantity.sign(): int', (a: Quantity) => (a.num > 0n ? 1n : a.num < 0n ? -1n : 0n))
    .registerFunction('Quantity.isEqualTo(Quantity): bool', (a: Quantity, b: Quantity) => a.compare(b) === 0)
    .registerFunction('string(Quantity): string', (a: Quantity) => a.text);
}
