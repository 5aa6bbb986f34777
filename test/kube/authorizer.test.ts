// Policies' authorization checks asked of an API-server stand-in as SubjectAccessReviews, through
// client-node: what is sent, what is kept, what a failure becomes, and a VAP deciding on it.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { admit } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { loadKubeConfig, SubjectAccessReviewAuthorizer } from '../../src/kube/index.js';
import { loadPolicySet } from '../../src/policy/index.js';
import type { AuthorizationAttributes } from '../../src/policy/authorization.js';
import { startFakeApiServer } from '../helpers/fake-apiserver.js';
import { eventually } from '../helpers/eventually.js';
import { policyDir, policyYaml } from '../helpers/policies.js';
import { startTestServer } from '../helpers/server.js';

const user = { username: 'alice', uid: 'u-1', groups: ['devs'], extra: { 'scopes.example.com': ['a', 'b'] } };
const resource = (r: Partial<NonNullable<AuthorizationAttributes['resource']>> = {}): AuthorizationAttributes => ({
  user, verb: 'update', resource: { group: 'apps', resource: 'deployments', subresource: '', namespace: 'shop', name: '', fieldSelector: '', labelSelector: '', ...r },
});

async function setUp(t: { teardown(fn: () => unknown): void }, timeoutMs?: number) {
  const api = await startFakeApiServer(await mkdtemp(join(tmpdir(), 'tg-sar-')), {});
  t.teardown(() => api.close());
  const logged: unknown[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => logged.push(JSON.parse(line)) });
  const outcomes: string[] = [];
  const authorizer = new SubjectAccessReviewAuthorizer(loadKubeConfig({ kubeconfig: api.kubeconfig }), log, (o) => outcomes.push(o), timeoutMs);
  return { api, authorizer, logged, outcomes };
}

t.test('a check is one SubjectAccessReview for the requesting user, in the API server\'s terms', async (t) => {
  const { api, authorizer } = await setUp(t);
  api.answerAccessReviews((spec) => ({ allowed: spec.resourceAttributes?.subresource === 'scale', reason: 'RBAC: rule 3' }));
  t.same(await authorizer.authorize(resource({ subresource: 'scale', name: 'web', labelSelector: 'app=web' })), { allowed: true, reason: 'RBAC: rule 3', error: undefined });
  t.same(api.accessReviews[0], {
    user: 'alice', uid: 'u-1', groups: ['devs'], extra: { 'scopes.example.com': ['a', 'b'] },
    resourceAttributes: { verb: 'update', group: 'apps', version: '*', resource: 'deployments', subresource: 'scale', namespace: 'shop', name: 'web', labelSelector: { rawSelector: 'app=web' } },
  });
  t.same(await authorizer.authorize({ user, verb: 'get', path: '/healthz' }), { allowed: false, reason: 'RBAC: rule 3', error: undefined });
  t.same(api.accessReviews[1]?.nonResourceAttributes, { verb: 'get', path: '/healthz' });
});

t.test('answers are kept briefly and identical checks in flight are asked once; failures are not kept', async (t) => {
  const { api, authorizer, logged, outcomes } = await setUp(t);
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  api.answerAccessReviews(async () => { await gate; return { allowed: true }; });
  t.equal(authorizer.known(resource()), undefined);
  const both = Promise.all([authorizer.authorize(resource()), authorizer.authorize(resource())]);
  await new Promise((r) => setTimeout(r, 50));
  release();
  t.same((await both).map((d) => d.allowed), [true, true]);
  t.equal(api.accessReviews.length, 1, 'asked once');
  t.same(authorizer.known(resource()), { allowed: true, reason: '', error: undefined }, 'then known without asking');
  t.equal(authorizer.known(resource({ namespace: 'other' })), undefined, 'another namespace is another check');
  t.equal(authorizer.known({ ...resource(), user: { ...user, groups: ['admins'] } }), undefined, 'another user (or group) is another check');

  api.failNext('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', 500);
  const failed = await authorizer.authorize(resource({ resource: 'statefulsets' }));
  t.match(failed, { allowed: false, error: /^SubjectAccessReview failed: / });
  t.equal(authorizer.known(resource({ resource: 'statefulsets' })), undefined, 'a failure is asked again next time');
  t.match(logged, [{ msg: /SubjectAccessReview failed/, verb: 'update', resource: 'apps/statefulsets' }]);
  t.notMatch(JSON.stringify(logged), /alice|scopes/, 'who asked stays out of the log');

  api.answerAccessReviews(() => ({ allowed: false, evaluationError: 'role binding refers to a missing role' }));
  t.same(await authorizer.authorize(resource({ resource: 'daemonsets' })), { allowed: false, reason: '', error: 'role binding refers to a missing role' });
  t.equal(authorizer.known(resource({ resource: 'daemonsets' })), undefined, 'nor is an answer the authorizer could not fully evaluate');
  t.same(outcomes, ['allowed', 'cached', 'error', 'denied']);
});

t.test('a review the API server never answers ends by itself, so the checks that share it are asked again', async (t) => {
  const { api, authorizer, outcomes } = await setUp(t, 300);
  let hang = true;
  api.answerAccessReviews(() => (hang ? new Promise(() => {}) : { allowed: true }));
  const started = Date.now();
  t.match(await authorizer.authorize(resource()), { allowed: false, error: 'SubjectAccessReview failed: no answer within 300 ms' });
  t.ok(Date.now() - started < 3000, `ended after ${Date.now() - started} ms`);
  hang = false;
  t.match(await authorizer.authorize(resource()), { allowed: true }, 'the next request for the same check asks again');
  t.same(outcomes, ['error', 'allowed']);
});

t.test('a review is given up once every request waiting for it has passed its deadline, not before', async (t) => {
  const { api, authorizer, logged, outcomes } = await setUp(t);
  api.answerAccessReviews(() => new Promise(() => {}));
  const first = new AbortController();
  const second = new AbortController();
  const started = Date.now();
  const answers = [authorizer.authorize(resource(), first.signal), authorizer.authorize(resource(), second.signal)];
  first.abort();
  const settled = await Promise.race([answers[0]!.then(() => 'settled'), new Promise((r) => setTimeout(() => r('waiting'), 300))]);
  t.equal(settled, 'waiting', 'one request past its deadline leaves the review to the other');
  second.abort();
  for (const answer of answers) t.match(await answer, { allowed: false, error: 'SubjectAccessReview failed: abandoned: every request waiting for the answer passed its deadline' });
  t.ok(Date.now() - started < 3000, `given up after ${Date.now() - started} ms, not at the review's own 5 s bound`);
  t.equal(api.accessReviews.length, 1, 'asked once for both');
  t.same(outcomes, ['error']);
  t.match(logged, [{ reason: /abandoned/ }]);

  api.answerAccessReviews(() => ({ allowed: true }));
  const late = new AbortController();
  late.abort();
  t.match(await authorizer.authorize(resource({ resource: 'jobs' }), late.signal), { error: /abandoned/ }, 'a request already past its deadline starts no review');
  t.equal(api.accessReviews.length, 1, 'none reached the API server');
  t.match(await authorizer.authorize(resource({ resource: 'jobs' }), new AbortController().signal), { allowed: true }, 'and the next one asks again');
});

t.test('a ValidatingAdmissionPolicy decides on the cluster\'s answer', async (t) => {
  const { api, authorizer } = await setUp(t);
  api.answerAccessReviews((spec) => (spec.user === 'release-bot' ? { allowed: true } : { allowed: false, reason: 'no RBAC rule allows it' }));
  const dir = await policyDir({ 'vap.yaml': `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: release-labels }
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{ apiGroups: ["apps"], apiVersions: ["v1"], operations: ["CREATE", "UPDATE"], resources: ["deployments"] }]
  validations:
    - expression: "!has(object.metadata.labels) || !('release' in object.metadata.labels) || authorizer.group('apps').resource('deployments').subresource('release').namespace(object.metadata.namespace).check('update').allowed()"
      messageExpression: "'only releasers may set the release label: ' + authorizer.group('apps').resource('deployments').subresource('release').namespace(object.metadata.namespace).check('update').reason()"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: release-labels }
spec: { policyName: release-labels, validationActions: [Deny] }
` });
  const set = (await loadPolicySet([dir])).set!;
  const decide = (username: string) => {
    const review = reviewForObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop', labels: { release: 'v2' } } }, { operation: 'UPDATE' });
    review.request.userInfo = { username, groups: ['system:authenticated'] };
    return admit(review, 'validate', { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000, authorizer });
  };
  t.equal((await decide('release-bot')).review.response.allowed, true);
  const denied = await decide('alice');
  t.equal(denied.review.response.allowed, false);
  t.match(denied.review.response.status?.message, 'only releasers may set the release label: no RBAC rule allows it');
  t.same(api.accessReviews.map((s) => s.user), ['release-bot', 'alice'], 'one review per user, the messageExpression reusing the answer');
});

t.test('trustgate serve with a cluster asks it, once per check within the cache time, and counts the checks', async (t) => {
  const api = await startFakeApiServer(await mkdtemp(join(tmpdir(), 'tg-sar-serve-')), { '/api/v1/namespaces': [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }] });
  t.teardown(() => api.close());
  api.answerAccessReviews((spec) => ({ allowed: spec.user === 'ops', reason: spec.user === 'ops' ? '' : 'not an operator' }));
  const policies = await policyDir({ 'p.yaml': policyYaml('exec-needs-delete', `
match:
  resources:
    - { apiGroups: [""], resources: [pods/exec], operations: [CONNECT] }
validations:
  - expression: "authorizer.requestResource.subresource('').check('delete').allowed()"
    messageExpression: "'exec needs the right to delete the pod: ' + authorizer.requestResource.subresource('').check('delete').reason()"
`) });
  const server = await startTestServer({ policies: [policies], kubeconfig: api.kubeconfig });
  t.teardown(() => server.close());
  await eventually(async () => (await server.get('/readyz')).status === 200, 'caches to sync');
  const exec = (username: string) => server.post('/validate', {
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid: `u-${username}`, kind: { group: '', version: 'v1', kind: 'PodExecOptions' }, resource: { group: '', version: 'v1', resource: 'pods' }, subResource: 'exec',
      name: 'web-0', namespace: 'shop', operation: 'CONNECT', userInfo: { username, groups: ['system:authenticated'] },
      object: { apiVersion: 'v1', kind: 'PodExecOptions', command: ['sh'] },
    },
  }).then((r) => r.json().response);
  t.match(await exec('dev'), { allowed: false, status: { message: /exec needs the right to delete the pod: not an operator/ } });
  t.match(await exec('ops'), { allowed: true });
  t.match(await exec('ops'), { allowed: true });
  t.same(api.accessReviews.map((s) => [s.user, s.resourceAttributes]), [
    ['dev', { verb: 'delete', group: '', version: '*', resource: 'pods', namespace: 'shop', name: 'web-0' }],
    ['ops', { verb: 'delete', group: '', version: '*', resource: 'pods', namespace: 'shop', name: 'web-0' }],
  ], 'the pod being exec\'d into, asked once per user');
  const metrics = (await server.get('/metrics')).text;
  t.match(metrics, /trustgate_authorization_checks_total\{outcome="cached"\} 1/);
  t.match(metrics, /trustgate_authorization_checks_total\{outcome="allowed"\} 1/);
  t.match(metrics, /trustgate_authorization_checks_total\{outcome="denied"\} 1/);
});
