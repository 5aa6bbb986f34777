// Kubernetes semver library (1.33): semver(), isSemver() and comparisons, per semver 2.0.0.
import type { Environment } from '@marcbachmann/cel-js';
import { celError } from './fail.js';

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export class Semver {
  constructor(readonly major: bigint, readonly minor: bigint, readonly patch: bigint, readonly pre: string[], readonly text: string) {}
  toString(): string { return this.text; }
}

/** parses "1.2.3"; with normalize, also "v1.2" and leading zeros, as Kubernetes' semver(s, true) does */
export function parseSemver(s: string, normalize = false): Semver | undefined {
  let text = s;
  if (normalize) {
    text = text.replace(/^v/, '');
    const core = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)$/.exec(text);
    if (!core) return undefined;
    text = `${BigInt(core[1]!)}.${BigInt(core[2] ?? 0)}.${BigInt(core[3] ?? 0)}${core[4]}`;
  }
  const m = SEMVER.exec(text);
  if (!m) return undefined;
  return new Semver(BigInt(m[1]!), BigInt(m[2]!), BigInt(m[3]!), m[4] ? m[4].split('.') : [], s);
}

export function compareSemver(a: Semver, b: Semver): number {
  for (const k of ['major', 'minor', 'patch'] as const) if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  if (!a.pre.length || !b.pre.length) return b.pre.length - a.pre.length;
  for (let i = 0; i < Math.max(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i];
    const y = b.pre[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) return BigInt(x) < BigInt(y) ? -1 : 1;
    if (nx !== ny) return nx ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

const sv = (s: string, n = false) => parseSemver(s, n) ?? celError(`semver: ${JSON.stringify(s)} is not a semantic version`);

export function registerSemver(env: Environment): void {
  env
    .registerType('Semver', Semver)
    .registerFunction('semver(string): Semver', (s: string) => sv(s))
    .registerFunction('semver(string, bool): Semver', (s: string, n: boolean) => sv(s, n))
    .registerFunction('isSemver(string): bool', (s: string) => parseSemver(s) !== undefined)
    .registerFunction('isSemver(string, bool): bool', (s: string, n: boolean) => parseSemver(s, n) !== undefined)
    .registerFunction('Semver.major(): int', (v: Semver) => v.major)
    .registerFunction('Semver.minor(): int', (v: Semver) => v.minor)
    .registerFunction('Semver.patch(): int', (v: Semver) => v.patch)
    .registerFunction('Semver.compareTo(Semver): int', (a: Semver, b: Semver) => BigInt(compareSemver(a, b)))
    .registerFunction('Semver.isGreaterThan(Semver): bool', (a: Semver, b: Semver) => compareSemver(a, b) > 0)
    .registerFunction('Semver.isLessThan(Semver): bool', (a: Semver, b: Semver) => compareSemver(a, b) < 0)
    .registerFunction('string(Semver): string', (v: Semver) => v.text);
}
