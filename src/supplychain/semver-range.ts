// Semver ranges as Flux resolves OCIRepository spec.ref.semver (Masterminds/semver v3): the
// highest tag that parses as a version and satisfies the constraint; pre-releases only when the
// constraint itself names one. Supports = != > < >= <=, ~, ^, x-ranges, hyphen ranges, ',' and '||'.

export interface Version { major: number; minor: number; patch: number; pre: string[]; tag: string }

const VERSION = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

export function parseVersion(tag: string): Version | undefined {
  const m = VERSION.exec(tag);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2] ?? 0), patch: Number(m[3] ?? 0), pre: m[4] ? m[4].split('.') : [], tag };
}

export function compareVersions(a: Version, b: Version): number {
  for (const k of ['major', 'minor', 'patch'] as const) if (a[k] !== b[k]) return a[k] - b[k];
  if (!a.pre.length || !b.pre.length) return b.pre.length - a.pre.length; // a release outranks its pre-releases
  for (let i = 0; i < Math.max(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i];
    const y = b.pre[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny && Number(x) !== Number(y)) return Number(x) - Number(y);
    if (nx !== ny) return nx ? -1 : 1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

type Check = (v: Version) => boolean;
export class SemverRangeError extends Error {}

const PARTIAL = /^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$/;

interface Partial { major?: number; minor?: number; patch?: number; pre: string[] }

function partial(text: string): Partial {
  const m = PARTIAL.exec(text);
  if (!m) throw new SemverRangeError(`${JSON.stringify(text)} is not a version`);
  const n = (s?: string) => (s === undefined || /^[xX*]$/.test(s) ? undefined : Number(s));
  const major = n(m[1]);
  const minor = major === undefined ? undefined : n(m[2]);
  const patch = minor === undefined ? undefined : n(m[3]);
  return { major, minor, patch, pre: m[4] ? m[4].split('.') : [] };
}

const v = (major: number, minor: number, patch: number, pre: string[] = []): Version => ({ major, minor, patch, pre, tag: '' });
const floor = (p: Partial) => v(p.major ?? 0, p.minor ?? 0, p.patch ?? 0, p.pre);
/** the first version above a partial: 1.2 -> 1.3.0-0 */
function ceiling(p: Partial): Version | undefined {
  if (p.major === undefined) return undefined;
  if (p.minor === undefined) return v(p.major + 1, 0, 0, ['0']);
  if (p.patch === undefined) return v(p.major, p.minor + 1, 0, ['0']);
  return undefined;
}
const gte = (a: Version): Check => (x) => compareVersions(x, a) >= 0;
const lt = (a: Version): Check => (x) => compareVersions(x, a) < 0;

function comparator(text: string): Check[] {
  const m = /^(>=|<=|!=|=>|=<|>|<|=|~>|~|\^)?\s*(.+)$/.exec(text)!;
  const op = m[1] ?? '';
  const p = partial(m[2]!);
  const lo = floor(p);
  const hi = ceiling(p);
  switch (op) {
    case '': case '=': return hi ? [gte(lo), lt(hi)] : p.major === undefined ? [] : [(x) => compareVersions(x, lo) === 0];
    case '!=': return [(x) => !(hi ? compareVersions(x, lo) >= 0 && compareVersions(x, hi) < 0 : compareVersions(x, lo) === 0)];
    case '>': return [hi ? gte(hi) : (x) => compareVersions(x, lo) > 0];
    case '>=': case '=>': return [gte(lo)];
    case '<': return [lt(lo)];
    case '<=': case '=<': return [hi ? lt(hi) : (x) => compareVersions(x, lo) <= 0];
    case '~': case '~>': return [gte(lo), lt(p.minor === undefined ? v(lo.major + 1, 0, 0, ['0']) : v(lo.major, lo.minor + 1, 0, ['0']))];
    case '^': {
      const upper = lo.major > 0 || p.minor === undefined ? v(lo.major + 1, 0, 0, ['0']) : lo.minor > 0 || p.patch === undefined ? v(0, lo.minor + 1, 0, ['0']) : v(0, 0, lo.patch + 1, ['0']);
      return [gte(lo), lt(upper)];
    }
    default: throw new SemverRangeError(`unknown operator ${op}`);
  }
}

/** A compiled constraint; throws SemverRangeError for what Masterminds would also reject. */
export function compileRange(range: string): (version: Version) => boolean {
  const alternatives = range.split('||').map((alt) => {
    const text = alt.trim().replace(/\s*-\s+/g, ' - ');
    const checks: Check[] = [];
    const hyphen = /^(\S+) - (\S+)$/.exec(text);
    if (hyphen) {
      const hiPartial = partial(hyphen[2]!);
      checks.push(gte(floor(partial(hyphen[1]!))));
      const hi = ceiling(hiPartial);
      checks.push(hi ? lt(hi) : (x) => compareVersions(x, floor(hiPartial)) <= 0);
    } else {
      // ">= 1.2, < 2" -> [">=1.2", "<2"]
      const compact = text.replace(/(>=|<=|!=|=>|=<|~>|>|<|=|~|\^)\s+/g, '$1');
      for (const part of compact.split(/[\s,]+/).filter(Boolean)) checks.push(...comparator(part));
    }
    const allowsPre = /-[0-9A-Za-z]/.test(text.replace(/ - /g, ' '));
    return (x: Version) => (allowsPre || !x.pre.length) && checks.every((c) => c(x));
  });
  if (!range.trim()) throw new SemverRangeError('empty semver range');
  return (x) => alternatives.some((a) => a(x));
}

/** The highest tag satisfying the range, as Flux picks it; undefined when none does. */
export function highestMatchingTag(tags: readonly string[], range: string): string | undefined {
  const satisfies = compileRange(range);
  let best: Version | undefined;
  for (const tag of tags) {
    const version = parseVersion(tag);
    if (version && satisfies(version) && (!best || compareVersions(version, best) > 0)) best = version;
  }
  return best?.tag;
}
