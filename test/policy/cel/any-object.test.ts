// Whatever the object holds, an expression ends in a value or a CEL error: never a JavaScript
// TypeError, which would reach the policy's message as an internal failure. Aimed at the
// libraries that walk values of any shape: optionals, two-variable comprehensions, lists v3,
// named formats, format and map literals.
import { EvaluationError } from '@marcbachmann/cel-js';
import fc from 'fast-check';
import t from 'tap';
import { compileExpression, CostLimitError, toCel } from '../../../src/policy/cel/index.js';

const EXPRESSIONS = [
  "object.?spec.?containers.orValue([]).sortBy(c, c.?name.orValue('')).map(c, c.?image.orValue(''))",
  'object.?metadata.?labels.orValue({}).transformList(k, v, format.labelValue().validate(v).hasValue(), k).sort()',
  "object.?metadata.?labels.orValue({}).transformMapEntry(k, v, {k.lowerAscii(): v})",
  'object.?metadata.orValue({}).transformMapEntry(k, v, v)',
  'object.?spec.optMap(s, s.?replicas.orValue(1)).optFlatMap(r, optional.ofNonZeroValue(r)).orValue(0)',
  "[?object.?metadata.?name, ?object.?kind].map(x, string(x))",
  "{?'n': object.?metadata.?name, 'k': dyn(object.?kind.orValue(''))}",
  'object.?items.orValue([]).flatten(3).reverse().first()',
  'object.?items.orValue([]).exists(i, v, i > 0 && v == null)',
  "'%s %d'.format([object, dyn(1)])",
  'has(object.metadata) && format.dns1123Subdomain().validate(string(object.metadata)).hasValue()',
  "object.all(k, v, k.trim() != '' || v == null)",
  "lists.range(3).transformMap(i, n, object.?items.orValue([]).size() + n)",
];

t.test('random objects: a value or a CEL error, never a JavaScript one', async (t) => {
  const compiled = EXPRESSIONS.map((source) => ({ source, expr: compileExpression(source, { expect: 'any' }) }));
  const outcomes = { value: 0, celError: 0 };
  const object = fc.dictionary(fc.constantFrom('metadata', 'spec', 'kind', 'items', 'labels', 'name'), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 5 });
  fc.assert(fc.property(object, (o) => {
    const activation = toCel({ object: o }) as Record<string, unknown>;
    for (const { source, expr } of compiled) {
      try {
        expr.evaluate(activation);
        outcomes.value++;
      } catch (err) {
        if (err instanceof EvaluationError || err instanceof CostLimitError) outcomes.celError++;
        else throw new Error(`${source} on ${JSON.stringify(o)}: ${(err as Error).name}: ${(err as Error).message}`);
      }
    }
  }), { numRuns: Number(process.env.ANY_OBJECT_RUNS ?? 400) });
  t.ok(outcomes.value > 100 && outcomes.celError > 100, `both outcomes reached: ${outcomes.value} values, ${outcomes.celError} CEL errors`);
});
