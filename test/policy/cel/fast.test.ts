// The fast path (closures compiled from the AST) against cel-js, the reference: on random
// objects of every kind of value, whenever the closures answer, cel-js answers the same; where
// they cannot, compileExpression falls back and the answer is still cel-js's.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { compileExpression, createCelEnvironment, toCel, useRe2 } from '../../../src/policy/cel/index.js';
import { compileFast } from '../../../src/policy/cel/fast.js';
import type { Node } from '../../../src/policy/cel/ast.js';

const KEYS = ['a', 'b', 'name', 'items'] as const;

// JSON as the API server sends it, with the awkward corners: surrogate pairs, int64 edges,
// doubles that are integral, nulls, empty lists and maps
const scalar = fc.oneof(
  fc.constantFrom('', 'x', 'a/b:c', 'Ünïcode', '😀', 'a.b', 'latest', 'nginx:1.25', '__proto__'),
  fc.string({ maxLength: 6 }),
  fc.constantFrom(0, 1, -1, 2, 65535, 65536, 2 ** 53, -(2 ** 53), 1e300),
  // doubles as often as ints: the double comparisons were answered ~30 times a run, near the floor of 20
  fc.constantFrom(9.5, -0.5, 0.25, 2.5, -3.75, 1e-9),
  fc.integer({ min: -100, max: 100 }),
  fc.boolean(),
  fc.constant(null),
);
const { json } = fc.letrec((tie) => ({
  json: fc.oneof({ maxDepth: 3, depthSize: 'small' }, scalar, tie('list'), tie('map')),
  list: fc.array(tie('json'), { maxLength: 4 }),
  map: fc.dictionary(fc.constantFrom(...KEYS), tie('json'), { maxKeys: 4 }),
}));
// shaped like the expressions expect most of the time, so that the closures get to answer
const often = <T>(likely: fc.Arbitrary<T>) => fc.oneof({ arbitrary: likely, weight: 4 }, { arbitrary: json, weight: 1 });
const item = fc.oneof(scalar, fc.record({ name: often(fc.string({ maxLength: 4 })), a: json }, { requiredKeys: [] }));
const activation = fc.record({
  object: fc.record({
    a: often(scalar), b: often(scalar), name: often(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('ghcr.io/org/app:v1', 'nginx', '😀/x', '1Gi', '500m', '8Gi', '2', '1e3', '0.5', '-1Ki'))),
    items: often(fc.oneof(fc.array(item, { maxLength: 5 }), fc.array(fc.string({ maxLength: 3 }), { maxLength: 4 }))),
  }, { requiredKeys: [] }),
  params: often(fc.record({ a: json, items: fc.array(fc.record({ a: often(fc.boolean()) }, { requiredKeys: [] }), { maxLength: 4 }) }, { requiredKeys: [] })),
});

const EXPRESSIONS = [
  "object.a == object.b", "object.a != 'x'", 'object.a < object.b', 'object.a >= 2', "object.a <= 'm'", 'object.a > 0.5',
  'object.a + object.b', 'object.a - object.b', "object.name + '!'", '[object.a, object.b]', 'object.a in object.items',
  "'a' in object.items", 'object.a in [1, 2, 3]', 'size(object.a)', 'object.items.size()', 'size(object.items) > 2',
  'has(object.a)', 'has(object.a.b)', "object.?a.?b.orValue('none')", 'object.?a.?name.hasValue()', 'object.?items.orValue([]).size()',
  '!object.a', 'object.a && object.b', 'object.a || object.b', 'object.a ? object.b : object.name', 'object.a ? 1 : 2',
  'object.items.all(i, i > 0)', 'object.items.exists(i, i == 1)', "object.items.exists_one(i, i == 'x')",
  'object.items.filter(i, i != null)', 'object.items.map(i, i.name)', 'object.items.map(i, object.items.map(j, [i, j]))',
  'object.items[0]', 'object.items[1] == object.a', "object.a['b']", "object.name.startsWith('a')", "object.name.endsWith(':c')",
  "object.name.contains('.')", "object.name.matches('^[a-z]+$')", "matches(object.name, 'b')", "object.items.join(', ')", 'object.items.join()',
  "object.name.indexOf('/')", "object.name.lastIndexOf(':')", 'object.name.substring(1)', 'object.name.substring(1, 2)',
  "object.name.split('/')", "object.name.split('/')[0]", 'object.name.lowerAscii()', 'object.name.upperAscii()',
  "cel.bind(n, object.name, n + n)", "cel.bind(x, object.items, x.all(y, y in x))", 'params.a.b', 'object.?a.orValue(null) == null', 'params.items.all(p, p.a)',
  'object.a + 9223372036854775807', 'object.a * 2', '-object.a', "object.items.filter(i, has(i.name)).map(i, i.name).join(', ')",
  "quantity(object.name).isLessThan(quantity('8Gi'))", 'isQuantity(object.name)', "quantity(object.name).compareTo(quantity('500m'))",
  "object.items.all(i, isQuantity(i) && quantity(i).isGreaterThan(quantity('1')))", "quantity(object.name).isEqualTo(quantity('1024Mi'))",
];

const env = createCelEnvironment({ variables: ['object', 'params'] });
const compiled = EXPRESSIONS.map((source) => {
  const parsed = env.parse(source);
  useRe2(parsed.ast);
  return { source, parsed, fast: parsed.check().valid ? compileFast(parsed.ast as Node) : undefined };
});

t.test('nearly every expression here compiles to closures', async (t) => {
  const slow = compiled.filter((c) => !c.fast).map((c) => c.source);
  t.same(slow, ['object.a * 2', '-object.a'], 'multiplication and negation are left to cel-js');
});

t.test('whenever the closures answer, cel-js answers the same', async (t) => {
  const answered = new Map(compiled.map((c) => [c.source, 0]));
  fc.assert(
    fc.property(activation, (input) => {
      const act = toCel(input) as Record<string, unknown>;
      for (const { source, parsed, fast } of compiled) {
        if (!fast) continue;
        let mine: { value: unknown } | undefined;
        try {
          mine = { value: fast(act) };
        } catch {
          continue;
        }
        answered.set(source, answered.get(source)! + 1);
        let reference: { value: unknown } | { error: string };
        try {
          reference = { value: parsed(act) };
        } catch (err) {
          reference = { error: (err as Error).message };
        }
        if (!('value' in reference) || !isDeepStrictEqual(mine.value, reference.value)) {
          throw new Error(`${source} on ${JSON.stringify(input)}: fast ${String(mine.value)}, cel-js ${'value' in reference ? String(reference.value) : reference.error}`);
        }
      }
    }),
    { numRuns: 3000 },
  );
  const total = [...answered.values()].reduce((a, b) => a + b, 0);
  t.comment(`${total} evaluations answered by the closures and compared`);
  const rarely = [...answered].filter(([source, n]) => n < 20 && compiled.find((c) => c.source === source)!.fast).map(([s, n]) => `${s}: ${n}`);
  t.same(rarely, [], 'every compiled expression was compared at least 20 times');
});

t.test('what the closures do not answer, cel-js does: heterogeneous equality, absorbed errors, int overflow', async (t) => {
  const run = (src: string, object: unknown) => compileExpression(src, { expect: 'any' }).evaluate(toCel({ object }) as Record<string, unknown>);
  t.equal(run('object.a == 1', { a: 1.5 }), false);
  t.equal(run('object.a == 2', { a: 2.0 }), true, 'a JSON 2.0 is an int; 2.5 == 2 is cel-js\'s');
  t.equal(run('object.missing.x == 1 || true', {}), true, 'an error on one side of || is absorbed');
  t.equal(run('object.items.exists(i, i.x == 1)', { items: [{}, { x: 1 }] }), true, 'an error in one element of exists is absorbed');
  t.throws(() => run('object.a + 9223372036854775807', { a: 1 }), /overflow|range/i, 'int64 overflow is cel-js\'s error');
  t.equal(run("size(object.s)", { s: '😀x' }), 2n, 'size counts code points');
  t.equal(compileExpression('quantity(object.q).isLessThan(quantity("1Gi"))', { expect: 'bool' }).fast, true, 'quantities are compiled');
  t.throws(() => run('quantity(object.q).isLessThan(quantity("1Gi"))', { q: 'lots' }), /not a Kubernetes quantity/, 'a string that is no quantity is cel-js\'s error');
  t.equal(compileExpression('url(object.u).getHost() == "x"', { expect: 'bool' }).fast, false, 'URLs are not compiled');
  t.equal(compileExpression('object.spec.containers.all(c, c.?securityContext.?privileged.orValue(false) == false)', { expect: 'bool' }).fast, true);
});

t.test('the closures charge what they build as cel-js does, so both stop at the same size', async (t) => {
  const { armMeter, disarmMeter, CostLimitError } = await import('../../../src/policy/cel/meter.js');
  const sources = [
    'object.name + object.name', 'object.items + object.items', 'cel.bind(n, object.name + object.name, n + n)',
    'object.items.join(object.name)', 'object.items.join()', "object.name.split('')", 'object.name.lowerAscii()', 'object.name.upperAscii()',
    "cel.bind(l, object.items + object.items, l.map(i, object.name in l).size())",
  ];
  const pairs = sources.map((source) => {
    const parsed = env.parse(source);
    return { source, parsed, fast: compileFast(parsed.ast as Node)! };
  });
  t.notOk(pairs.some((p) => !p.fast), 'all of them compile to closures');
  // a budget of 20 units is 200 characters or items built
  const outcome = (run: () => unknown): string => {
    armMeter(20, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
    try {
      return `value ${JSON.stringify(run(), (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`;
    } catch (err) {
      return err instanceof CostLimitError ? 'limit' : 'other';
    } finally {
      disarmMeter();
    }
  };
  const seen = { limit: 0, value: 0 };
  // strings of every length around the limit, some of them not ASCII
  const text = (max: number) => fc.tuple(fc.string({ minLength: 1, maxLength: 3 }), fc.integer({ min: 0, max })).map(([s, n]) => s.repeat(n));
  fc.assert(fc.property(text(120), fc.array(text(20), { maxLength: 12, size: 'max' }), (name, items) => {
    const act = toCel({ object: { name, items } }) as Record<string, unknown>;
    for (const { source, parsed, fast } of pairs) {
      const mine = outcome(() => fast(act));
      if (mine === 'other') continue; // not the closures' to answer
      const reference = outcome(() => parsed(act));
      if (mine !== reference) throw new Error(`${source} on ${JSON.stringify({ name, items })}: fast ${mine}, cel-js ${reference}`);
      seen[mine === 'limit' ? 'limit' : 'value']++;
    }
  }), { numRuns: 300 });
  t.ok(seen.limit > 100 && seen.value > 100, `both outcomes compared: ${seen.limit} stopped, ${seen.value} answered`);
});
