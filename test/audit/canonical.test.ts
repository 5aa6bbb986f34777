// Canonical JSON: the fast writer must write exactly what the plain definition writes, for
// any JSON value and for the awkward ones (index-like keys, __proto__, surrogates, non-JSON).
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { canonicalJson, canonicalSha256, NATIVE_VALUE_LIMIT } from '../../src/audit/canonical.js';

/** The definition, written plainly: sorted keys, JSON.stringify for every string. */
function referenceCanonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
    if (typeof value === 'string') return JSON.stringify(value);
    if (typeof value === 'boolean') return String(value);
    return 'null';
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : referenceCanonicalJson(v))).join(',')}]`;
  const members = Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined);
  return `{${members.map((k) => `${JSON.stringify(k)}:${referenceCanonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

t.test('equals the definition for arbitrary JSON values', async (t) => {
  fc.assert(fc.property(fc.jsonValue(), (v) => canonicalJson(v) === referenceCanonicalJson(v)), { numRuns: 2000 });
  // objects whose keys look like array indices, mixed with names, in any insertion order
  const key = fc.oneof(fc.string(), fc.nat({ max: 20 }).map(String), fc.constantFrom('__proto__', 'constructor', '01', '-1', '4294967295'));
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 0 }), fc.array(tie('node')), fc.dictionary(key, tie('node'))),
  })).node;
  fc.assert(fc.property(value, (v) => canonicalJson(v) === referenceCanonicalJson(v)), { numRuns: 2000 });
  t.pass('2 × 2000 generated values agree');
});

t.test('real admission reviews, key order shuffled, hash the same', async (t) => {
  const dir = new URL('../fixtures/admissionreviews/', import.meta.url).pathname;
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    const review = JSON.parse(readFileSync(dir + f, 'utf8'));
    const reversed = JSON.parse(JSON.stringify(review), (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v));
    t.equal(canonicalJson(review), referenceCanonicalJson(review), f);
    t.equal(canonicalJson(reversed), canonicalJson(review), `${f} in reverse key order`);
  }
});

t.test('awkward values', async (t) => {
  const cases: [string, unknown][] = [
    ['index keys come in string order', { b: 1, 10: 2, 9: 3, a: { 2: 'x', 1: 'y' } }],
    ['a __proto__ key stays a key', JSON.parse('{"z":1,"__proto__":{"x":1},"a":2}')],
    ['undefined members are dropped, in arrays they are null', { a: undefined, b: [undefined, 1] }],
    ['non-finite numbers are null', { n: Number.NaN, i: Number.POSITIVE_INFINITY, z: -0 }],
    ['a Date is an object without keys', { d: new Date(0) }],
    ['a bigint is null', { b: 10n }],
    ['a function member is written as null', { f: () => 1, a: 1 }],
    ['lone surrogates are escaped', { s: '\ud800x', '\udc00': 1 }],
  ];
  for (const [name, v] of cases) t.equal(canonicalJson(v), referenceCanonicalJson(v), name);
  t.equal(canonicalJson(undefined), 'null');
  t.equal(canonicalJson({ b: [1, { d: 1, c: 2 }], a: 'x' }), '{"a":"x","b":[1,{"c":2,"d":1}]}');
  const input = { y: 1, x: 2 };
  t.equal(canonicalJson(input), '{"x":2,"y":1}');
  t.same(Object.keys(input), ['y', 'x'], 'the input is never reordered in place');
});

t.test('the native path and the writer agree where one hands over to the other', async (t) => {
  // objects with many keys (sorted by Array#sort, not in place), shuffled
  const wide = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${(i * 17) % 40}`, { z: i, a: [i, { y: 1, b: 2 }] }]));
  t.equal(canonicalJson(wide), referenceCanonicalJson(wide), '40 shuffled keys');
  // around the value limit of the native path: below it, and above it (the writer)
  for (const n of [Math.floor(NATIVE_VALUE_LIMIT / 3) - 100, Math.floor(NATIVE_VALUE_LIMIT / 3) + 100]) {
    const many = { list: Array.from({ length: n }, (_, i) => ({ n: i, a: i % 3 ? 'x' : null })) };
    t.equal(canonicalJson(many), referenceCanonicalJson(many), `${3 * n + 2} values`);
    t.equal(canonicalSha256(many), createHash('sha256').update(referenceCanonicalJson(many)).digest('hex'));
  }
  // a non-JSON value deep inside sends the whole value to the writer
  const mixed = { b: { d: 1, c: [1, 2n, new Date(0)] }, a: JSON.parse('{"__proto__":1,"z":{"y":1,"x":2}}') };
  t.equal(canonicalJson(mixed), referenceCanonicalJson(mixed));
  t.equal(canonicalJson(JSON.parse('{"z":{"__proto__":{"b":1,"a":2},"a":0}}')), '{"z":{"__proto__":{"a":2,"b":1},"a":0}}', 'a __proto__ key copied in order stays a key');
});

t.test('the streamed digest is the sha256 of the canonical text, across its chunk boundaries', async (t) => {
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  fc.assert(fc.property(fc.jsonValue(), (v) => canonicalSha256(v) === sha(referenceCanonicalJson(v))), { numRuns: 500 });
  // large enough to be handed to the hash in many 64 KiB pieces, cut inside objects and arrays
  const big = { data: Object.fromEntries(Array.from({ length: 30_000 }, (_, i) => [`k${i}`, [{ v: `é${i}` }, i, null]])), list: Array.from({ length: 5000 }, (_, i) => ({ i, s: '\ud83d\ude00'.repeat(i % 7) })) };
  const text = referenceCanonicalJson(big);
  t.ok(text.length > 16 * 64 * 1024, `${text.length} characters: more than 16 pieces`);
  t.equal(canonicalSha256(big), sha(text));
  t.equal(canonicalSha256(null), sha('null'));
});
