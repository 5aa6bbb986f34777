// The printf subset of the CEL strings extension's `format`: %s %d %f %e %x %X %o %b %%.
import { celError } from './fail.js';

/** `%s` as cel-go prints it: strings bare also inside lists and maps, map entries by key text */
function describe(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 1e21 ? `${v}` : String(v);
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (v instanceof Map) return describeEntries([...v]);
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  if (v instanceof Date) return rfc3339(v);
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return describeEntries(Object.entries(v));
  const text = String(v);
  return /^Type<(.+)>$/.exec(text)?.[1] ?? text; // a type value prints as its name
}

function describeEntries(entries: [unknown, unknown][]): string {
  const texts = entries.map(([k, x]) => [describe(k), describe(x)] as const);
  texts.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${texts.map(([k, x]) => `${k}: ${x}`).join(', ')}}`;
}

/** RFC 3339 as Go prints it: no fraction when it is zero, no trailing zeros when it is not */
const rfc3339 = (d: Date): string => d.toISOString().replace(/\.?0+Z$/, 'Z');

/** an int, or a uint (cel-js's UnsignedInt, whose valueOf is a bigint); else undefined */
function integerValue(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  const inner = typeof v === 'object' && v !== null ? (v as { valueOf(): unknown }).valueOf() : undefined;
  return typeof inner === 'bigint' ? inner : undefined;
}

const integer = (v: unknown, verb: string): bigint => integerValue(v) ?? celError(`format: %${verb} needs an integer, got ${describe(v)}`);

const nonFinite = (n: number): string => (Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity');

function fixed(v: unknown, precision: number, verb: string): string {
  const whole = integerValue(v);
  const n = typeof v === 'number' ? v : whole !== undefined ? Number(whole) : celError(`format: %${verb} needs a number, got ${describe(v)}`);
  if (!Number.isFinite(n)) return nonFinite(n);
  return verb === 'e' ? n.toExponential(precision).replace(/e([+-])(\d)$/, 'e$10$2') : toFixedEven(n, precision);
}

/**
 * toFixed, but an exact tie goes to the even digit as Go's %f does ("%.0f" of 2.5 is "2", of
 * 3.5 "4"); JavaScript rounds ties away from zero. A tie is exact when the binary value's full
 * decimal expansion is a 5 and then zeros past the last digit kept.
 */
function toFixedEven(n: number, precision: number): string {
  const rounded = n.toFixed(precision);
  if (precision + 30 > 100) return rounded;
  const exact = n.toFixed(precision + 30);
  const cut = exact.length - 30;
  if (!/^50*$/.test(exact.slice(cut))) return rounded;
  const kept = exact.slice(0, cut).replace(/\.$/, '');
  const lastDigit = Number(kept.replace(/\./g, '').at(-1));
  return lastDigit % 2 === 0 ? kept : rounded;
}

export function formatString(template: string, args: unknown[]): string {
  let out = '';
  let next = 0;
  const take = (verb: string): unknown => {
    if (next >= args.length) celError(`format: too few arguments for %${verb} in ${JSON.stringify(template)}`);
    return args[next++];
  };
  for (let i = 0; i < template.length; i++) {
    const ch = template[i];
    if (ch !== '%') { out += ch; continue; }
    let precision: number | undefined;
    let j = i + 1;
    if (template[j] === '.') {
      let digits = '';
      for (j++; /[0-9]/.test(template[j] ?? ''); j++) digits += template[j];
      precision = Number(digits || '0');
    }
    const verb = template[j];
    i = j;
    switch (verb) {
      case '%': out += '%'; break;
      case 's': out += describe(take('s')); break;
      case 'd': {
        const v = take('d');
        // a double with no integer value prints as cel-go prints it
        out += typeof v === 'number' && !Number.isFinite(v) ? nonFinite(v) : integer(v, 'd').toString();
        break;
      }
      case 'f': out += fixed(take('f'), precision ?? 6, 'f'); break;
      case 'e': out += fixed(take('e'), precision ?? 6, 'e'); break;
      case 'x': case 'X': {
        const v = take(verb);
        const s = typeof v === 'string' ? Buffer.from(v).toString('hex')
          : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : integer(v, verb).toString(16);
        out += verb === 'X' ? s.toUpperCase() : s;
        break;
      }
      case 'o': out += integer(take('o'), 'o').toString(8); break;
      case 'b': {
        const v = take('b');
        out += typeof v === 'boolean' ? (v ? '1' : '0') : integer(v, 'b').toString(2);
        break;
      }
      default: celError(`format: unknown verb %${verb ?? ''} in ${JSON.stringify(template)}`);
    }
  }
  return out;
}
