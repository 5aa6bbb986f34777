// cel-go's math extension (math.greatest, math.least, rounding, bit operations, sqrt …) and
// the encoders extension (base64), which Kubernetes enables too; plus int(uint) and bytes ordering.
import { Environment } from '@marcbachmann/cel-js';
import { celError } from './fail.js';

// cel-js does not export its uint class; a uint literal hands us its constructor
const UnsignedInt = new Environment().evaluate('0u').constructor as new (v: bigint) => { valueOf(): bigint };
const isUint = (v: unknown): v is { valueOf(): bigint } => v instanceof UnsignedInt;
const numeric = (v: unknown): number => (typeof v === 'number' ? v : Number(isUint(v) ? v.valueOf() : (v as bigint)));

class MathNamespace {}
class Base64Namespace {}

function extreme(values: unknown[], pickGreater: boolean): unknown {
  if (!values.length) celError(`math.${pickGreater ? 'greatest' : 'least'}() requires at least one argument`);
  let best = values[0];
  for (const v of values) {
    if (typeof v !== 'number' && typeof v !== 'bigint' && !isUint(v)) celError(`math.${pickGreater ? 'greatest' : 'least'}() takes numbers only`);
    const a = numeric(v);
    const b = numeric(best);
    if (Number.isNaN(a)) continue;
    if (Number.isNaN(b) || (pickGreater ? a > b : a < b)) best = v;
  }
  return best;
}

const MAX_I64 = (1n << 63n) - 1n;
const MIN_I64 = -(1n << 63n);

export function registerMath(env: Environment): void {
  env.registerType('MathNamespace', MathNamespace).registerConstant('math', 'MathNamespace', new MathNamespace());
  for (const name of ['greatest', 'least'] as const) {
    const greater = name === 'greatest';
    env.registerFunction(`MathNamespace.${name}(list): dyn`, (_: unknown, l: unknown[]) => extreme(l, greater));
    for (const t of ['int', 'uint', 'double']) env.registerFunction(`MathNamespace.${name}(${t}): ${t}`, (_: unknown, v: unknown) => extreme([v], greater));
    for (let n = 2; n <= 8; n++) {
      env.registerFunction(`MathNamespace.${name}(${Array(n).fill('dyn').join(', ')}): dyn`, (_: unknown, ...args: unknown[]) => extreme(args, greater));
    }
  }
  const rounding: Record<string, (x: number) => number> = {
    ceil: Math.ceil,
    floor: Math.floor,
    trunc: Math.trunc,
    round: (x) => (x < 0 ? -Math.round(-x) : Math.round(x)), // half away from zero, as Go's math.Round
  };
  for (const [name, fn] of Object.entries(rounding)) env.registerFunction(`MathNamespace.${name}(double): double`, (_: unknown, x: number) => fn(x));
  env
    .registerFunction('MathNamespace.isInf(double): bool', (_: unknown, x: number) => x === Infinity || x === -Infinity)
    .registerFunction('MathNamespace.isNaN(double): bool', (_: unknown, x: number) => Number.isNaN(x))
    .registerFunction('MathNamespace.isFinite(double): bool', (_: unknown, x: number) => Number.isFinite(x))
    .registerFunction('MathNamespace.abs(int): int', (_: unknown, x: bigint) => {
      if (x === MIN_I64) celError('math.abs() overflow');
      return x < 0n ? -x : x;
    })
    .registerFunction('MathNamespace.abs(uint): uint', (_: unknown, x: unknown) => x)
    .registerFunction('MathNamespace.abs(double): double', (_: unknown, x: number) => Math.abs(x))
    .registerFunction('MathNamespace.sign(int): int', (_: unknown, x: bigint) => (x > 0n ? 1n : x < 0n ? -1n : 0n))
    .registerFunction('MathNamespace.sign(uint): uint', (_: unknown, x: { valueOf(): bigint }) => new UnsignedInt(x.valueOf() > 0n ? 1n : 0n))
    .registerFunction('MathNamespace.sign(double): double', (_: unknown, x: number) => (Number.isNaN(x) ? NaN : x > 0 ? 1 : x < 0 ? -1 : 0))
    .registerFunction('MathNamespace.sqrt(double): double', (_: unknown, x: number) => Math.sqrt(x))
    .registerFunction('MathNamespace.sqrt(int): double', (_: unknown, x: bigint) => Math.sqrt(Number(x)))
    .registerFunction('MathNamespace.sqrt(uint): double', (_: unknown, x: { valueOf(): bigint }) => Math.sqrt(Number(x.valueOf())));
  const wrapInt = (v: bigint) => BigInt.asIntN(64, v);
  const bitInt: Record<string, (a: bigint, b: bigint) => bigint> = { bitAnd: (a, b) => a & b, bitOr: (a, b) => a | b, bitXor: (a, b) => a ^ b };
  for (const [name, fn] of Object.entries(bitInt)) {
    env.registerFunction(`MathNamespace.${name}(int, int): int`, (_: unknown, a: bigint, b: bigint) => fn(a, b));
    env.registerFunction(`MathNamespace.${name}(uint, uint): uint`, (_: unknown, a: { valueOf(): bigint }, b: { valueOf(): bigint }) => new UnsignedInt(fn(a.valueOf(), b.valueOf())));
  }
  env
    .registerFunction('MathNamespace.bitNot(int): int', (_: unknown, a: bigint) => ~a)
    .registerFunction('MathNamespace.bitNot(uint): uint', (_: unknown, a: { valueOf(): bigint }) => new UnsignedInt(BigInt.asUintN(64, ~a.valueOf())))
    .registerFunction('MathNamespace.bitShiftLeft(int, int): int', (_: unknown, a: bigint, n: bigint) => {
      if (n < 0n) celError('math.bitShiftLeft() negative offset');
      return n > 63n ? 0n : wrapInt(a << n);
    })
    .registerFunction('MathNamespace.bitShiftLeft(uint, int): uint', (_: unknown, a: { valueOf(): bigint }, n: bigint) => {
      if (n < 0n) celError('math.bitShiftLeft() negative offset');
      return new UnsignedInt(n > 63n ? 0n : BigInt.asUintN(64, a.valueOf() << n));
    })
    .registerFunction('MathNamespace.bitShiftRight(int, int): int', (_: unknown, a: bigint, n: bigint) => {
      if (n < 0n) celError('math.bitShiftRight() negative offset');
      // logical shift on the 64-bit pattern, as cel-go does
      return n > 63n ? 0n : BigInt.asIntN(64, BigInt.asUintN(64, a) >> n);
    })
    .registerFunction('MathNamespace.bitShiftRight(uint, int): uint', (_: unknown, a: { valueOf(): bigint }, n: bigint) => {
      if (n < 0n) celError('math.bitShiftRight() negative offset');
      return new UnsignedInt(n > 63n ? 0n : a.valueOf() >> n);
    });
  env.registerFunction('int(uint): int', (u: { valueOf(): bigint }) => {
    if (u.valueOf() > MAX_I64) celError('int(uint): value out of the int range');
    return u.valueOf();
  });
  // bytes order lexicographically, as in cel-go
  const compareBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length));
  env
    .registerOperator('bytes < bytes', (a: Uint8Array, b: Uint8Array) => compareBytes(a, b) < 0)
    .registerOperator('bytes <= bytes', (a: Uint8Array, b: Uint8Array) => compareBytes(a, b) <= 0)
    .registerOperator('bytes > bytes', (a: Uint8Array, b: Uint8Array) => compareBytes(a, b) > 0)
    .registerOperator('bytes >= bytes', (a: Uint8Array, b: Uint8Array) => compareBytes(a, b) >= 0);
  env
    .registerType('Base64Namespace', Base64Namespace)
    .registerConstant('base64', 'Base64Namespace', new Base64Namespace())
    .registerFunction('Base64Namespace.encode(bytes): string', (_: unknown, b: Uint8Array) => Buffer.from(b).toString('base64'))
    .registerFunction('Base64Namespace.decode(string): bytes', (_: unknown, s: string) => {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) && !/^[A-Za-z0-9+/]*$/.test(s)) celError('base64.decode: invalid base64');
      return Uint8Array.from(Buffer.from(s, 'base64'));
    });
}
