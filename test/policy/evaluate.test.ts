// Evaluation semantics: failurePolicy on errors, lazy variables, messages, the deadline.
import t from 'tap';
import { admit } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { loadPolicySet, type PolicySet } from '../../src/policy/index.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';

async function setOf(...docs: string[]): Promise<PolicySet> {
  const result = await loadPolicySet([await policyDir({ 'p.yaml': docs.join('---\n') })]);
  if (!result.set) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.set;
}
const pod = (spec: Record<string, unknown> = { containers: [{ name: 'a', image: 'x:1' }] }) =>
  reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec });
const decide = (set: PolicySet, review = pod(), deadlineMs = 8000) =>
  admit(review, 'validate', { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs });
/** A Pod policy with one variable and the given validations (YAML double-quoted, as JSON writes them). */
const variablePolicy = (name: string, [variable, expression]: [string, string], ...validations: string[]) =>
  policyYaml(name, `${POD_RULE}
variables:
  - name: ${variable}
    expression: ${JSON.stringify(expression)}
validations:
${validations.map((v) => `  - expression: ${JSON.stringify(v)}`).join('\n')}`);
const containers = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `c${i}`, image: 'x:1' }));
const explain = (set: PolicySet) =>
  admit(pod(), 'validate', { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000 }, { explain: true });

t.test('an evaluation error denies under failurePolicy Fail and warns under Ignore', async (t) => {
  const set = await setOf(
    policyYaml('strict', `failurePolicy: Fail\n${POD_RULE}\nvalidations:\n  - expression: "object.spec.missing.field == 1"`),
    policyYaml('lenient', `failurePolicy: Ignore\n${POD_RULE}\nvalidations:\n  - expression: "object.spec.missing.field == 1"`),
  );
  const out = await decide(set);
  t.equal(out.review.response.allowed, false);
  t.match(out.review.response.status?.message, /\[strict\] evaluation error in validations\[0\] \(object\.spec\.missing\.field == 1\): No such key: missing/, 'names the expression');
  t.match(out.review.response.warnings, [/\[lenient\] could not be evaluated and was ignored \(failurePolicy: Ignore\)/]);
  t.same(out.results.map((r) => [r.name, r.result, r.code]), [['strict', 'error', 'EVALUATION_ERROR'], ['lenient', 'error', 'EVALUATION_ERROR']]);
});

t.test('an evaluation error names the expression it came from, a variable read by another included', async (t) => {
  const set = await setOf(policyYaml('named', `${POD_RULE}
variables:
  - name: broken
    expression: "object.spec.nope.nope"
validations:
  - expression: "1 == 2"
    messageExpression: "'not ' + variables.broken"
  - expression: "object.spec.containers.all(c, c.name != '')"
  - expression: "size(variables.broken) == 0"`), policyYaml('plain', `${POD_RULE}
validations:
  - expression: "1 == 2"
    messageExpression: "'x' + object.spec.nothing"
  - expression: "object.metadata.nothing == 'x'"`));
  const out = await decide(set);
  t.same(out.results.map((r) => [r.name, r.messages]), [
    // the variable's error, met first by a messageExpression (which falls back) and thrown again
    // from the variable's cache to the third validation, is still the variable's
    ['named', ['evaluation error in variables.broken (object.spec.nope.nope): No such key: nope (not set here: test it with has() first, or read it optionally: .?nope)']],
    // a messageExpression that failed before does not take the blame for a later validation's error
    ['plain', ["evaluation error in validations[1] (object.metadata.nothing == 'x'): No such key: nothing (not set here: test it with has() first, or read it optionally: .?nothing)"]],
  ]);
});

t.test('variables are evaluated lazily and once: an unused failing variable harms nothing', async (t) => {
  const set = await setOf(policyYaml('vars', `${POD_RULE}
variables:
  - name: broken
    expression: "object.spec.nope.nope"
  - name: names
    expression: "object.spec.containers.map(c, c.name)"
  - name: count
    expression: "size(variables.names)"
validations:
  - expression: "variables.count == 1 && variables.names[0] == 'a'"`));
  t.equal((await decide(set)).review.response.allowed, true);
  const explained = await explain(set);
  const steps = (explained.explain ?? []).map((e) => e.step);
  t.equal(steps.filter((s) => s === 'variables.names').length, 1, 'a variable used three times is evaluated once');
  t.equal(steps.filter((s) => s === 'variables.broken').length, 0, 'an unused one never');
});

t.test('a failing variable is evaluated once, however often it is read', async (t) => {
  // the fast path gives up on an error and cel-js evaluates the reader again: the variable's
  // error is kept like a value, so it is not evaluated (nor explained) a second time
  const set = await setOf(variablePolicy('vars', ['broken', 'object.spec.nope.nope'],
    'variables.broken == 1 || true', 'variables.broken == 2 || variables.broken == 3 || true'));
  const explained = await explain(set);
  t.equal(explained.review.response.allowed, true, '|| absorbs the error');
  const steps = (explained.explain ?? []).filter((e) => e.step === 'variables.broken');
  t.equal(steps.length, 1);
  t.match(steps[0]?.error, /nope/);
});

t.test('nested loops over a variable are metered: a uniqueness check on a huge Pod ends as COST_LIMIT_EXCEEDED', async (t) => {
  // the variable is a list made during evaluation, not the metered input: it used to be looped
  // over unmetered (9M iterations here: seconds in which the server answered nothing else)
  const set = await setOf(variablePolicy('unique-names', ['names', 'object.spec.containers.map(c, c.name)'],
    'variables.names.all(a, variables.names.exists_one(b, a == b))'));
  const started = performance.now();
  const out = await decide(set, pod({ containers: containers(3000) }));
  t.same(out.results.map((r) => [r.result, r.code]), [['error', 'COST_LIMIT_EXCEEDED']]);
  t.equal(out.review.response.allowed, false, 'failurePolicy Fail');
  t.ok(performance.now() - started < 3000, `decided after ${Math.round(performance.now() - started)} ms`);
});

t.test('a variable that spends its own budget is an error its reader may absorb, as cel-js decides', async (t) => {
  // the fast path stops without asking cel-js only when the reading expression's own budget is
  // spent; a variable's spent budget is an ordinary error, which || absorbs
  const set = await setOf(variablePolicy('absorbs', ['pairs', 'object.spec.containers.map(c, object.spec.containers.map(d, d.name))'],
    'variables.pairs.size() > 0 || true'));
  const out = await decide(set, pod({ containers: containers(2000) }));
  t.same(out.results.map((r) => r.result), ['pass']);
});

t.test('variables of the same name or position in different policies keep their own values', async (t) => {
  // the getters are shared by position across policies: each object must find its own review and policy
  const set = await setOf(
    policyYaml('a', `${POD_RULE}
variables:
  - name: v
    expression: "'a'"
  - name: w
    expression: "variables.v + '1'"
validations:
  - expression: "variables.v == 'a' && variables.w == 'a1' && size(variables) == 2"`),
    policyYaml('b', `${POD_RULE}
variables:
  - name: w
    expression: "'b'"
  - name: v
    expression: "variables.w + '2'"
validations:
  - expression: "variables.w == 'b' && variables.v == 'b2' && variables.v != 'a'"`),
    policyYaml('c', `${POD_RULE}
variables:
  - name: v
    expression: "object.metadata.name"
validations:
  - expression: "variables.v == 'p' && !('x' in variables)"`),
  );
  const out = await decide(set);
  t.same(out.results.map((r) => [r.name, r.result, r.messages]), [['a', 'pass', []], ['b', 'pass', []], ['c', 'pass', []]]);
  const other = await decide(set, reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'q', namespace: 'shop' }, spec: { containers: [] } }));
  t.same(other.results.find((r) => r.name === 'c')?.result, 'fail', 'the next review sees its own object');
});

t.test('messageExpression, then message, then the expression itself', async (t) => {
  const set = await setOf(policyYaml('msgs', `${POD_RULE}
validations:
  - expression: "false"
    messageExpression: "'dynamic ' + object.metadata.name"
    message: static one
  - expression: "false"
    messageExpression: "object.spec.nope.nope"
    message: static fallback
  - expression: "1 > 2"`));
  const message = (await decide(set)).review.response.status?.message;
  t.equal(message, 'trustgate denied the request: [msgs] dynamic p; static fallback; failed expression: 1 > 2');
});

t.test('JSON Schema violations name the JSON path', async (t) => {
  const set = await setOf(policyYaml('shape', `${POD_RULE}
schema:
  type: object
  properties:
    spec:
      type: object
      required: [serviceAccountName]
      properties:
        containers:
          type: array
          maxItems: 1`));
  const out = await decide(set, pod({ containers: [{ name: 'a' }, { name: 'b' }] }));
  t.match(out.review.response.status?.message, /\[shape\] .*spec\.serviceAccountName: is required/);
  t.match(out.review.response.status?.message, /spec\.containers: must NOT have more than 1 items/);
  t.equal(out.results[0]?.code, 'SCHEMA_VIOLATION');
});

t.test('JSON Schema patterns run on RE2: a backtracking pattern cannot stall, lookaround fails the load', async (t) => {
  const set = await setOf(policyYaml('names', `${POD_RULE}
schema:
  type: object
  properties:
    metadata:
      properties:
        name: { type: string, pattern: "^(a+)+$" }
        labels: { patternProperties: { "^(x+x+)+y$": { type: string, pattern: "^[a-z]+$" } } }`));
  // V8's own engine ran for minutes on this name: exponential backtracking
  const review = reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `${'a'.repeat(40)}!`, namespace: 'shop', labels: { [`${'x'.repeat(40)}y`]: 'Upper' } }, spec: {} });
  const started = performance.now();
  const out = await decide(set, review);
  t.ok(performance.now() - started < 1000, `decided in ${Math.round(performance.now() - started)} ms`);
  t.match(out.review.response.status?.message, /metadata\.name: must match pattern "\^\(a\+\)\+\$"/);
  t.match(out.review.response.status?.message, /must match pattern "\^\[a-z\]\+\$"/, 'patternProperties select by RE2 too');
  const ok = await decide(set, reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'aaa', namespace: 'shop', labels: { xxy: 'lower' } }, spec: {} }));
  t.equal(ok.review.response.allowed, true);
  const bad = await loadPolicySet([await policyDir({ 'p.yaml': policyYaml('look', `${POD_RULE}\nschema:\n  properties:\n    metadata:\n      properties:\n        name: { pattern: "^(?!kube-)" }`) })]);
  t.notOk(bad.set, 'a lookahead does not load');
  t.match(bad.errors.map((e) => e.message).join('\n'), /invalid JSON Schema: invalid regular expression "\^\(\?!kube-\)"/);
});

t.test('JSON Schema formats are asserted; one ajv does not know fails the load instead of passing everything', async (t) => {
  const set = await setOf(policyYaml('formats', `${POD_RULE}
schema:
  properties:
    metadata:
      properties:
        annotations:
          properties:
            homepage: { type: string, format: uri }
            owner: { type: string, format: email }`));
  const withAnnotations = (annotations: Record<string, string>) =>
    reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop', annotations }, spec: {} });
  const bad = await decide(set, withAnnotations({ homepage: 'not a uri', owner: 'nobody' }));
  t.match(bad.review.response.status?.message, /metadata\.annotations\.homepage: must match format "uri"/);
  t.match(bad.review.response.status?.message, /metadata\.annotations\.owner: must match format "email"/);
  t.equal((await decide(set, withAnnotations({ homepage: 'https://shop.example', owner: 'team@example.com' }))).review.response.allowed, true);
  const unknown = await loadPolicySet([await policyDir({ 'p.yaml': policyYaml('cidr', `${POD_RULE}\nschema:\n  properties:\n    spec:\n      properties:\n        subnet: { format: cidr }`) })]);
  t.notOk(unknown.set);
  t.match(unknown.errors[0]?.message, /p\.yaml:\d+:\d+: invalid JSON Schema: unknown format "cidr" at #\/properties\/spec\/properties\/subnet; the formats checked are date, .*uri/);
});

t.test('uniqueItems is linear: 20,000 containers are checked in well under a second, duplicates named', async (t) => {
  // ajv compared every pair of items: 90 s for this Pod, beyond the deadline's reach
  const set = await setOf(policyYaml('unique', `${POD_RULE}\nschema:\n  properties:\n    spec:\n      properties:\n        containers: { uniqueItems: true }\n        tags: { uniqueItems: true }`));
  const many = containers(20_000).map((c) => ({ ...c, env: [{ name: 'A', value: 'b' }] }));
  const started = performance.now();
  const out = await decide(set, pod({ containers: many }));
  t.ok(performance.now() - started < 1500, `decided in ${Math.round(performance.now() - started)} ms`);
  t.equal(out.review.response.allowed, true);
  // equal by value whatever the key order, as JSON Schema defines it
  const twice = await decide(set, pod({ containers: [{ name: 'a', image: 'x:1' }, { name: 'b' }, { image: 'x:1', name: 'a' }], tags: [1, '1', 1.0] }));
  t.match(twice.review.response.status?.message, /spec\.containers: must NOT have duplicate items \(items ## 0 and 2 are identical\)/);
  t.match(twice.review.response.status?.message, /spec\.tags: must NOT have duplicate items \(items ## 0 and 2 are identical\)/, "1 and 1.0 are one number; '1' is a string");
});

t.test('a schema $id survives hot reloads and may be shared by two policies', async (t) => {
  // the one ajv kept every compiled schema: the second load of a schema with an $id failed with
  // "already exists", so a policy with an $id broke every later reload
  const dir = await policyDir({ 'p.yaml': [
    policyYaml('first', `${POD_RULE}\nschema:\n  $id: https://example.com/pod\n  type: object\n  required: [spec]`),
    policyYaml('second', `${POD_RULE}\nschema:\n  $id: https://example.com/pod\n  type: object`),
  ].join('---\n') });
  for (const round of [1, 2, 3]) {
    const loaded = await loadPolicySet([dir]);
    t.same(loaded.errors.map((e) => e.message), [], `load ${round}`);
    t.equal(loaded.set?.policies.length, 2);
  }
});

t.test('a hostile object that exhausts the runtime cost is decided by failurePolicy', async (t) => {
  const set = await setOf(policyYaml('pairs', `${POD_RULE}\nvalidations:\n  - expression: "object.spec.containers.all(a, object.spec.containers.all(b, a.name != b.name || a == b))"`));
  const containers = Array.from({ length: 1500 }, (_, i) => ({ name: `c${i}`, image: 'x:1' }));
  const out = await decide(set, pod({ containers }));
  t.equal(out.review.response.allowed, false);
  t.equal(out.results[0]?.code, 'COST_LIMIT_EXCEEDED');
});

t.test('policies not reached before the internal deadline are decided by their failurePolicy', async (t) => {
  const set = await setOf(
    policyYaml('late-strict', `${POD_RULE}\nvalidations:\n  - expression: "true"`),
    policyYaml('late-lenient', `failurePolicy: Ignore\n${POD_RULE}\nvalidations:\n  - expression: "true"`),
  );
  const out = await decide(set, pod(), -1);
  t.same(out.results.map((r) => [r.name, r.code]), [['late-strict', 'DEADLINE_EXCEEDED'], ['late-lenient', 'DEADLINE_EXCEEDED']]);
  t.equal(out.review.response.allowed, false);
});

t.test('the decision record holds no object body and no userInfo.extra', async (t) => {
  const set = await setOf(policyYaml('any', `${POD_RULE}\nvalidations:\n  - expression: "true"`));
  const review = pod({ containers: [{ name: 'a', image: 'x:1', env: [{ name: 'TOKEN', value: 's3cr3t-value' }] }] });
  review.request.userInfo = { username: 'alice', groups: ['dev'], extra: { 'authentication.kubernetes.io/credential-id': ['JTI=secret-jti'] } };
  const out = await decide(set, review);
  const text = JSON.stringify(out.record);
  t.notMatch(text, /s3cr3t-value|secret-jti/);
  t.match(out.record.request.objectSha256, /^[0-9a-f]{64}$/);
  t.same(out.record.request.userInfo, { username: 'alice', groups: ['dev'] });
});

t.test('recorded messages are bounded: a quoted field or a failure per list item cannot bloat every record', async (t) => {
  const set = await setOf(
    policyYaml('quotes', `${POD_RULE}\nvalidations:\n  - expression: "false"\n    messageExpression: "'bad note: ' + object.metadata.annotations.note"`),
    policyYaml('per-item', `${POD_RULE}\nschema:\n  properties:\n    spec:\n      properties:\n        containers: { items: { required: [image] } }`),
  );
  const review = reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop', annotations: { note: 'n'.repeat(100_000) } }, spec: { containers: containers(500).map(({ name }) => ({ name })) } });
  const out = await decide(set, review);
  const [quotes, perItem] = out.record.policies;
  t.equal(quotes?.messages.length, 1);
  t.equal(quotes?.messages[0]?.length, 2048, 'one message is cut at 2,048 characters');
  t.equal(perItem?.messages.length, 101, '100 messages and a count of the rest');
  t.equal(perItem?.messages[100], '… and 400 more messages');
  t.equal(out.results[1]?.messages.length, 500, 'the evaluation itself keeps them all');
  t.ok(JSON.stringify(out.record).length < 20_000, `record of ${JSON.stringify(out.record).length} characters`);
  t.ok(JSON.stringify(out.review).length < 10_000, 'and so is the response');
});

t.test('policies of one request each see their own params and variables (activations are shared only when equal)', async (t) => {
  const set = await setOf(
    policyYaml('one', `${POD_RULE}\nparams:\n  inline: { n: 1 }\nvalidations:\n  - expression: "params.n == 1"`),
    policyYaml('none-a', `${POD_RULE}\nvalidations:\n  - expression: "params == null && size(variables) == 0"`),
    policyYaml('two', `${POD_RULE}\nparams:\n  inline: { n: 2 }\nvalidations:\n  - expression: "params.n == 2"`),
    policyYaml('vars', `${POD_RULE}\nvariables:\n  - name: v\n    expression: "'mine'"\nvalidations:\n  - expression: "variables.v == 'mine' && params == null"`),
    policyYaml('none-b', `${POD_RULE}\nvalidations:\n  - expression: "params == null && size(variables) == 0"`),
  );
  const out = await decide(set);
  t.same(out.results.map((r) => [r.name, r.result]), [['one', 'pass'], ['none-a', 'pass'], ['two', 'pass'], ['vars', 'pass'], ['none-b', 'pass']]);
});
