// `authorizer` in policies, as in ValidatingAdmissionPolicy: Kubernetes' authz library, and the
// rounds an admission takes when the answers come from somewhere asynchronous (a
// SubjectAccessReview): checks noted, asked together, the policies that met them evaluated again.
import t from 'tap';
import { admit } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import type { KubeObject } from '../../src/admission/types.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { loadPolicySet, runPolicyTests, type PolicySet } from '../../src/policy/index.js';
import { MAX_AUTHORIZATION_CHECKS, MAX_AUTHORIZATION_ROUNDS, StaticAuthorizer, type AuthorizationAttributes, type AuthorizationDecision, type Authorizer } from '../../src/policy/authorization.js';
import { policyDir, policyYaml } from '../helpers/policies.js';

const VAP = (validations: string, extra = '') => ({
  'vap.yaml': `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: authz }
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["deployments"]
${extra}  validations:
${validations}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: authz }
spec:
  policyName: authz
  validationActions: [Deny]
`,
});

async function setOf(files: Record<string, string>): Promise<PolicySet> {
  const loaded = await loadPolicySet([await policyDir(files)]);
  if (!loaded.set) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  return loaded.set;
}

const deployment: KubeObject = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' }, spec: { replicas: 1 } };

function decide(set: PolicySet, authorizer?: Authorizer, options: { deadlineMs?: number; explain?: boolean } = {}) {
  const review = reviewForObject(deployment, { operation: 'CREATE' });
  review.request.userInfo = { username: 'alice', uid: 'u-1', groups: ['devs', 'system:authenticated'], extra: { 'scopes.example.com': ['a'] } };
  return admit(review, 'validate', { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: options.deadlineMs ?? 8000, authorizer }, { explain: options.explain });
}

/** Answers asynchronously by a function of the attributes, keeping what it was asked. */
class RecordingAuthorizer implements Authorizer {
  asked: AuthorizationAttributes[] = [];
  constructor(private readonly answer: (a: AuthorizationAttributes) => AuthorizationDecision) {}
  async authorize(a: AuthorizationAttributes): Promise<AuthorizationDecision> {
    this.asked.push(a);
    return this.answer(a);
  }
  checks(): string[] {
    return this.asked.map((a) => `${a.verb} ${a.resource ? `${a.resource.group}/${a.resource.resource}` : a.path}`);
  }
}

t.test('the library: checks on resources and paths, as the requesting user, with errors worded as Kubernetes words them', async (t) => {
  const set = await setOf(VAP(`    - expression: "authorizer.group('apps').resource('deployments').namespace('shop').check('delete').allowed()"
      message: may not delete deployments
    - expression: "!authorizer.path('/metrics').check('get').allowed()"
      message: may read metrics
    - expression: "authorizer.requestResource.check('create').allowed()"
      message: may not create this
    - expression: "authorizer.group('apps').resource('deployments').check('patch').reason() == 'by rule 7'"
      message: wrong reason
    - expression: "!authorizer.group('').resource('secrets').check('get').errored() && authorizer.group('').resource('secrets').check('get').error() == ''"
      message: errored`));
  t.ok(set.usesAuthorizer);
  const allow = new StaticAuthorizer([
    { user: 'alice', verb: 'delete', group: 'apps', resource: 'deployments', namespace: 'shop', allowed: true },
    { verb: 'create', group: 'apps', resource: 'deployments', namespace: 'shop', name: 'web', allowed: true },
    { verb: 'patch', group: 'apps', resource: 'deployments', allowed: false, reason: 'by rule 7' },
  ]);
  const allowed = await decide(set, allow);
  t.equal(allowed.review.response.allowed, true, allowed.review.response.status?.message ?? '');
  const denied = await decide(set, new StaticAuthorizer([{ verb: 'get', path: '/metrics', allowed: true }]));
  t.equal(denied.review.response.allowed, false);
  t.match(denied.decision.denials.join('\n'), /may not delete deployments/);
  t.match(denied.decision.denials.join('\n'), /may read metrics/);
  t.match(denied.decision.denials.join('\n'), /may not create this/);
  t.match(denied.decision.denials.join('\n'), /wrong reason/);
  t.notMatch(denied.decision.denials.join('\n'), /errored/);

  for (const [expression, error] of [
    ["authorizer.path(' ').check('get').allowed()", 'path must not be empty'],
    ["authorizer.group('').resource('').check('get').allowed()", 'resource must not be empty'],
    ["authorizer.serviceAccount('shop', 'Not_Valid').group('').resource('pods').check('get').allowed()", 'Invalid service account name'],
    ["authorizer.serviceAccount('a.b', 'builder').group('').resource('pods').check('get').allowed()", 'Invalid service account namespace'],
  ]) {
    const r = await decide(await setOf(VAP(`    - expression: "${expression}"`)), allow);
    t.match(r.results[0], { result: 'error', code: 'EVALUATION_ERROR', messages: [new RegExp(error!)] }, expression);
  }
});

t.test('without an authorizer (offline, no cluster), every check is an errored decision the policy can see', async (t) => {
  const set = await setOf(VAP(`    - expression: "authorizer.group('').resource('pods').check('get').errored()"
    - expression: "authorizer.group('').resource('pods').check('get').error().startsWith('no authorizer')"
    - expression: "!authorizer.group('').resource('pods').check('get').allowed()"`));
  const r = await decide(set, undefined, { explain: true });
  t.equal(r.review.response.allowed, true, r.review.response.status?.message ?? '');
  t.match(r.explain, [{ value: true }, { value: true }, { value: true }]);
  const explained = await decide(await setOf(VAP(`    - expression: "[variables.decision, variables.resource, variables.path].size() == 3"`, `  variables:
    - { name: decision, expression: "authorizer.requestResource.check('get')" }
    - { name: resource, expression: "authorizer.group('apps').resource('deployments').subresource('scale').name('web').namespace('ops')" }
    - { name: path, expression: "authorizer.path('/metrics')" }
`)), new StaticAuthorizer([{ verb: 'get', group: 'apps', resource: 'deployments', reason: 'RBAC' }]), { explain: true });
  t.equal(explained.review.response.allowed, true);
  t.same(explained.explain!.filter((s) => s.step.startsWith('variables.')).map((s) => s.value), ['allowed: RBAC', 'check of apps/deployments/scale web in ops', 'check of path /metrics'], 'eval --explain shows what the values are');
});

t.test('asynchronous answers: every check a round meets is asked at once, and only the policies that met one run again', async (t) => {
  const set = await setOf({
    ...VAP(`    - expression: "authorizer.group('apps').resource('deployments').check('delete').allowed() && authorizer.group('').resource('pods').check('list').allowed()"
      message: no delete
    - expression: "authorizer.group('').resource('secrets').check('get').allowed()"
      messageExpression: "'denied: ' + authorizer.group('').resource('secrets').check('get').reason()"`, `  variables:
    - name: canList
      expression: "authorizer.group('').resource('configmaps').check('list').allowed()"
`),
    'plain.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: plain }
spec:
  match: { resources: [{ kinds: ["Deployment"], apiGroups: ["apps"], operations: ["CREATE"] }] }
  validations:
    - expression: "object.spec.replicas < 5"
`,
  });
  const authorizer = new RecordingAuthorizer((a) => ({ allowed: a.verb !== 'get', reason: a.verb === 'get' ? 'secrets are private' : 'ok' }));
  const r = await decide(set, authorizer, { explain: true });
  t.equal(r.review.response.allowed, false);
  t.same(r.decision.denials, ['[authz/authz] denied: secrets are private'], 'the messageExpression sees the answer too');
  // CEL evaluates both sides of && when one is an error (here: not answered yet), so one round asks all three
  t.same(authorizer.checks().sort(), ['get /secrets', 'delete apps/deployments', 'list /pods'].sort(), 'each distinct check asked once');
  t.equal(r.explain!.filter((s) => s.policy === 'plain').length, 1, 'the policy without checks is evaluated once');
  t.ok(r.explain!.filter((s) => s.policy === 'authz/authz' && s.step === 'validations[0]').length >= 2, 'the one with checks again');
  t.same(r.results.map((x) => x.name), set.policies.map((p) => p.name), 'results keep the policies\' order');
  t.same(authorizer.asked[0]!.user, { username: 'alice', uid: 'u-1', groups: ['devs', 'system:authenticated'], extra: { 'scopes.example.com': ['a'] } }, 'asked as the requesting user');
  // the record says what was asked and answered, the user by name only (extra never); the
  // variable no expression reads asked nothing
  t.same(JSON.parse(JSON.stringify(r.record.authorizations)).sort((a: { resource: string }, b: { resource: string }) => a.resource.localeCompare(b.resource)), [
    { allowed: true, group: 'apps', reason: 'ok', resource: 'deployments', user: 'alice', verb: 'delete' },
    { allowed: true, group: '', reason: 'ok', resource: 'pods', user: 'alice', verb: 'list' },
    { allowed: false, group: '', reason: 'secrets are private', resource: 'secrets', user: 'alice', verb: 'get' },
  ]);
});

t.test('two policies making the same check: it is asked once, and both are evaluated again with the answer', async (t) => {
  const same = (name: string) => policyYaml(name, `match:
  resources: [{ apiGroups: [apps], resources: [deployments], operations: [CREATE] }]
validations:
  - expression: "authorizer.group('apps').resource('deployments').check('delete').allowed()"
    message: ${name} says no`);
  const set = await setOf({ 'a.yaml': same('a'), 'b.yaml': same('b') });
  const authorizer = new RecordingAuthorizer(() => ({ allowed: true, reason: '' }));
  const r = await decide(set, authorizer);
  t.equal(authorizer.asked.length, 1, 'asked once');
  t.same(r.results.map((x) => [x.name, x.result]), [['a', 'pass'], ['b', 'pass']], 'neither left with the pending check as its result');
});

t.test('checks that depend on answers take more rounds, a bounded number; past it they are errored decisions', async (t) => {
  // each check is only made when the previous one was allowed: one round each (a && b would ask
  // for both at once, as CEL evaluates both sides when one is an error, here a pending answer)
  const check = (i: number) => `authorizer.group('').resource('r${i}').check('get').allowed()`;
  const chain = Array.from({ length: MAX_AUTHORIZATION_ROUNDS + 2 }, (_, i) => i).reduceRight((inner, i) => `(${check(i)} ? ${inner} : false)`, 'true');
  const set = await setOf(VAP(`    - expression: "${chain}"
      message: chain`));
  const authorizer = new RecordingAuthorizer(() => ({ allowed: true, reason: '' }));
  const r = await decide(set, authorizer);
  t.same(authorizer.checks(), ['get /r0', 'get /r1', 'get /r2', 'get /r3'], 'one check asked per round, for as many rounds as allowed');
  t.equal(MAX_AUTHORIZATION_ROUNDS, 4);
  t.equal(r.review.response.allowed, false, 'the check past the last round is not allowed');
  t.same(r.decision.denials, ['[authz/authz] chain']);
});

t.test('a request makes a bounded number of distinct checks', async (t) => {
  const set = await setOf(VAP(`    - expression: "[${Array.from({ length: MAX_AUTHORIZATION_CHECKS + 5 }, (_, i) => `'r${i}'`).join(', ')}].all(r, authorizer.group('').resource(r).check('get').allowed() || authorizer.group('').resource(r).check('get').error().startsWith('too many'))"
      message: bounded`));
  const authorizer = new RecordingAuthorizer(() => ({ allowed: true, reason: '' }));
  const r = await decide(set, authorizer);
  t.equal(r.review.response.allowed, true, r.review.response.status?.message ?? '');
  t.equal(authorizer.asked.length, MAX_AUTHORIZATION_CHECKS);

  // at the limit, a check already on its way is still the same check, not one too many
  const atLimit = await setOf({
    ...VAP(`    - expression: "[${Array.from({ length: MAX_AUTHORIZATION_CHECKS }, (_, i) => `'r${i}'`).join(', ')}].all(r, authorizer.group('').resource(r).check('get').allowed())"`),
    'z.yaml': policyYaml('z-same-check', `match:
  resources: [{ apiGroups: [apps], resources: [deployments], operations: [CREATE] }]
validations:
  - expression: "authorizer.group('').resource('r${MAX_AUTHORIZATION_CHECKS - 1}').check('get').allowed()"`),
  });
  const full = await decide(atLimit, new RecordingAuthorizer(() => ({ allowed: true, reason: '' })));
  // z-same-check is evaluated first and notes the last check; the VAP reaches it with 32 noted
  t.same(full.results.map((x) => [x.name, x.result, x.messages]).sort(), [['authz/authz', 'pass', []], ['z-same-check', 'pass', []]]);
  t.same(full.record.authorizations!.filter((a) => a.error), [], 'and no check was answered "too many" on the way');
});

t.test('an authorizer that fails or does not answer in time gives errored decisions, and the request is answered before its deadline', async (t) => {
  const set = await setOf(VAP(`    - expression: "authorizer.group('').resource('pods').check('get').allowed()"
      messageExpression: "'not allowed: ' + authorizer.group('').resource('pods').check('get').error()"`));
  const failing = await decide(set, { authorize: async () => { throw new Error('connection refused'); } });
  t.same(failing.decision.denials, ['[authz/authz] not allowed: authorization check failed: connection refused']);
  const started = Date.now();
  const hanging = await decide(set, { authorize: () => new Promise(() => {}) }, { deadlineMs: 200 });
  t.ok(Date.now() - started < 1000, `answered after ${Date.now() - started} ms`);
  // the last evaluation runs before the deadline, so the expression sees the errored decision
  t.same(hanging.decision.denials, ['[authz/authz] not allowed: authorization check timed out: no answer in time for the internal deadline']);
});

t.test('an unanswered check reaches the expression, so failurePolicy Ignore does not admit what the check would deny', async (t) => {
  const files = VAP(`    - expression: "authorizer.group('').resource('pods').check('get').allowed()"`);
  const set = await setOf({ 'vap.yaml': files['vap.yaml'].replace('failurePolicy: Fail', 'failurePolicy: Ignore') });
  for (const deadlineMs of [100, 300]) {
    const hanging = await decide(set, { authorize: () => new Promise(() => {}) }, { deadlineMs });
    t.equal(hanging.decision.allowed, false, `denied with a ${deadlineMs} ms deadline`);
    t.match(hanging.results, [{ name: 'authz/authz', result: 'fail' }], 'by the validation, not by an evaluation error');
  }
});

t.test('serviceAccount() checks as that service account', async (t) => {
  const set = await setOf(VAP(`    - expression: "authorizer.serviceAccount('ci', 'builder').group('apps').resource('deployments').check('create').allowed()"
      message: the builder may not`));
  const authorizer = new RecordingAuthorizer((a) => ({ allowed: a.user.username === 'system:serviceaccount:ci:builder', reason: '' }));
  t.equal((await decide(set, authorizer)).review.response.allowed, true);
  const r = await decide(set, authorizer);
  t.same(authorizer.asked[0]!.user, { username: 'system:serviceaccount:ci:builder', groups: ['system:serviceaccounts', 'system:serviceaccounts:ci'] });
  t.match(r.record.authorizations, [{ user: 'system:serviceaccount:ci:builder', verb: 'create', group: 'apps', resource: 'deployments', allowed: true }], 'recorded as checked for the service account');
});

t.test('a policy set without authorizer makes no session: the hot path stays as it was', async (t) => {
  const set = await setOf({ 'p.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: p }
spec:
  match: { resources: [{ kinds: ["Deployment"], apiGroups: ["apps"], operations: ["CREATE"] }] }
  validations: [{ expression: "object.spec.replicas < 5" }]
` });
  t.equal(set.usesAuthorizer, false);
  t.equal((await decide(set)).record.authorizations, undefined, 'and its records no authorizations member');
});

t.test('PolicyTest cases answer checks from their authorizations, the case\'s before the suite\'s', async (t) => {
  const set = await setOf({
    ...VAP(`    - expression: "authorizer.group('apps').resource('deployments').subresource('scale').namespace(object.metadata.namespace).check('update').allowed()"
      messageExpression: "'may not scale: ' + authorizer.group('apps').resource('deployments').subresource('scale').namespace(object.metadata.namespace).check('update').reason()"`),
    'tests.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: { name: scaling }
spec:
  authorizations:
    - { user: alice, verb: update, group: apps, resource: deployments, subresource: scale }
  cases:
    - name: alice may scale
      object: { apiVersion: apps/v1, kind: Deployment, metadata: { name: web, namespace: shop } }
      userInfo: { username: alice }
      expect: allow
    - name: bob may not
      object: { apiVersion: apps/v1, kind: Deployment, metadata: { name: web, namespace: shop } }
      userInfo: { username: bob }
      expect: deny
      messages: ["may not scale: no listed authorization matches"]
    - name: the case's own answer comes first
      object: { apiVersion: apps/v1, kind: Deployment, metadata: { name: web, namespace: shop } }
      userInfo: { username: alice }
      authorizations:
        - { verb: update, group: apps, resource: deployments, subresource: scale, namespace: shop, allowed: false, reason: frozen }
      expect: deny
      messages: ["may not scale: frozen"]
`,
  });
  const outcomes = await runPolicyTests(set);
  t.same(outcomes.map((o) => [o.name, o.passed, o.detail]), [
    ['alice may scale', true, undefined], ['bob may not', true, undefined], ["the case's own answer comes first", true, undefined],
  ]);
  const broken = await loadPolicySet([await policyDir({ 't.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: { name: t }
spec:
  authorizations: [{ verb: get, allowed: true }]
  cases: [{ name: x, object: {}, expect: allow }]
` })]);
  t.match(broken.errors.map((e) => e.message).join('\n'), /t\.yaml:5:\d+: spec\.authorizations\.0: /, 'an answer names a resource or a path');
});

t.test('the reserve for the last evaluation: a tenth of the time left, at most 250 ms, at least 50 ms or half', async (t) => {
  const { evaluationReserve } = await import('../../src/policy/authorization.js');
  t.same([8000, 1000, 300, 100, 40, 0].map(evaluationReserve), [250, 100, 50, 50, 20, 0]);
});
