// The printf subset of the CEL strings extension's `format`: %s %d %f %e %x %X %o %b %%.
import { celError } from './fail.js';

function describe(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 1e21 ? `${v}` : String(v);
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(describeQuoted).join(', ')}]`;
  if (v instanceof Map) return `{${[...v].map(([k, x]) => `${describeQuoted(k)}: ${describeQuoted(x)}`).join(', ')}}`;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return `{${Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => `${JSON.stringify(k)}: ${describeQuoted(x)}`).join(', ')}}`;
  }
  return String(v);
}

function describeQuoted(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : describe(v);
}

function integer(v: unknown, verb: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'object' && v !== null && 'valueOf' in v && typeof (v as { valueOf(): unknown }).valueOf() === 'bigint') {
    return (v as { valueOf(): bigint }).valueOf();
  }
  return celError(`format: %${verb} needs an integer, got ${describe(v)}`);
}

function fixed(v: unknown, precision: number, verb: string): string {
  const n = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : celError(`format: %${verb} needs a number, got ${describe(v)}`);
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
  return verb === 'e' ? n.toExponential(precision).replace(/e([+-])(\d)$/, 'e$10$2') : n.toFixed(precision);
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
      case 'd': out += integer(take('d'), 'd').toString(); break;
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
        out += typeof v === 'boolean' ? String(v) : integer(v, 'b').toString(2);
        break;
      }
      default: celError(`format: unknown verb %${verb ?? ''} in ${JSON.stringify(template)}`);
    }
  }
  return out;
}
