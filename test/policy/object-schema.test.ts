// Policies' object schemas: the linear uniqueItems agrees with ajv's pairwise deep equality.
import fc from 'fast-check';
import t from 'tap';
import equalModule from 'ajv/dist/runtime/equal.js';
import { firstDuplicate } from '../../src/policy/object-schema.js';

// ajv/dist/runtime/equal is CommonJS (fast-deep-equal): under ESM its function is `default`
const equal = (equalModule as unknown as { default: (a: unknown, b: unknown) => boolean }).default;

/** ajv's own definition: the first later item equal to an earlier one */
function pairwise(items: readonly unknown[]): [number, number] | undefined {
  for (let i = 1; i < items.length; i++) for (let j = 0; j < i; j++) if (equal(items[j], items[i])) return [j, i];
  return undefined;
}

t.test('firstDuplicate finds what pairwise deep equality finds', async (t) => {
  // small values so that duplicates are common: nested, reordered keys, ints and doubles;
  // plain objects only, as JSON.parse makes them
  const value = fc.letrec((tie) => ({
    v: fc.oneof({ maxDepth: 3 }, fc.constantFrom(0, -0, 1, 1.5, '1', '', true, false, null), fc.array(tie('v'), { maxLength: 3 }),
      fc.dictionary(fc.constantFrom('a', 'b', 'c'), tie('v'), { maxKeys: 3, noNullPrototype: true })),
  })).v;
  // often a copy of an earlier item with every object's keys in reverse order
  const reversed = (v: unknown): unknown => Array.isArray(v) ? v.map(reversed)
    : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reversed(x)])) : v;
  const lists = fc.tuple(fc.array(value, { maxLength: 7 }), fc.nat(), fc.boolean())
    .map(([items, n, copy]) => (copy && items.length ? [...items, reversed(items[n % items.length])] : items));
  fc.assert(fc.property(lists, (items) => {
    const want = pairwise(items);
    const got = firstDuplicate(items);
    // both say whether there is a duplicate; the pair reported may differ in which comes first
    if ((want === undefined) !== (got === undefined)) throw new Error(`${JSON.stringify(items)}: pairwise ${want}, by key ${got}`);
    if (got && !equal(items[got[0]], items[got[1]])) throw new Error(`${JSON.stringify(items)}: ${got} are not equal`);
  }), { numRuns: 2000 });
  t.pass('2,000 generated lists agree');
});
