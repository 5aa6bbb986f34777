// nestingDepth guards every review against objects nested too deep to evaluate safely.
import t from 'tap';
import { MAX_OBJECT_DEPTH, nestingDepth } from '../../src/admission/parse.js';

const nest = (depth: number, leaf: unknown = 1): unknown => {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { k: v };
  return v;
};

t.test('counts objects and arrays alike, leaves not at all', async (t) => {
  t.equal(nestingDepth(1, 10), 0);
  t.equal(nestingDepth(null, 10), 0);
  t.equal(nestingDepth({}, 10), 1);
  t.equal(nestingDepth({ a: 1, b: 'x', c: null }, 10), 1);
  t.equal(nestingDepth(nest(7), 10), 7);
  t.equal(nestingDepth({ shallow: [1], deep: nest(5), other: { x: {} } }, 10), 6, 'the deepest branch counts');
  t.equal(nestingDepth(JSON.parse('{"__proto__":{"a":{"b":{}}}}'), 10), 4, 'a "__proto__" member is walked like any other');
});

t.test('stops once past the limit, without recursion', async (t) => {
  t.equal(nestingDepth(nest(MAX_OBJECT_DEPTH), MAX_OBJECT_DEPTH), MAX_OBJECT_DEPTH);
  t.equal(nestingDepth(nest(MAX_OBJECT_DEPTH + 1), MAX_OBJECT_DEPTH), MAX_OBJECT_DEPTH + 1);
  // far deeper than the call stack would allow a recursive walk
  t.equal(nestingDepth(nest(200_000), 200_000), 200_000);
  t.equal(nestingDepth(nest(200_000), MAX_OBJECT_DEPTH), MAX_OBJECT_DEPTH + 1, 'the answer comes at the limit');
});

t.test('a kind named like an Object.prototype member gets a plural, not a function', async (t) => {
  const { pluralOf } = await import('../../src/admission/synthesize.js');
  t.equal(pluralOf('constructor'), 'constructors');
  t.equal(pluralOf('toString'), 'tostrings');
  t.equal(pluralOf('Ingress'), 'ingresses');
});
