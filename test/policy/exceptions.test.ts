// PolicyExceptions: what loads, what they cover, what they waive and how that is said and recorded.
import t from 'tap';
import { admit } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import type { KubeObject } from '../../src/admission/types.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { toECS } from '../../src/audit/ecs.js';
import { StaticCluster } from '../../src/kube/cluster-file.js';
import { loadPolicySet, runPolicyTests, type PolicySet } from '../../src/policy/index.js';
import { parseInstant } from '../../src/policy/exceptions.js';
import { exceptionYaml, policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';

const NO_PRIVILEGED = policyYaml('no-privileged', `${POD_RULE}
validations:
  - expression: "object.spec.containers.all(c, !(c.?securityContext.?privileged.orValue(false)))"
    message: privileged containers are not allowed`);
const HAS_TEAM = policyYaml('team-label', `mode: warn
${POD_RULE}
validations:
  - expression: "'team' in object.metadata.?labels.orValue({})"
    message: needs a team label`);

const exception = exceptionYaml;
const AGENT = exception('node-agent', `policies: [no-privileged]
reason: the node agent needs privileged mode until v3
ticket: SEC-1234
expires: "2030-01-01"
match:
  namespaces: [monitoring]
  objectSelector: { matchLabels: { app: node-agent } }`);

const NOW = Date.parse('2029-06-01T00:00:00Z');

async function load(docs: string[], now = NOW) {
  return loadPolicySet([await policyDir({ 'p.yaml': docs.join('---\n') })], { now });
}
async function setOf(...docs: string[]): Promise<PolicySet> {
  const result = await load(docs);
  if (!result.set) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.set;
}

function privilegedPod(namespace = 'monitoring', labels: Record<string, string> = { app: 'node-agent' }, name = 'agent'): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels }, spec: { containers: [{ name: 'c', image: 'x:1', securityContext: { privileged: true } }] } } as KubeObject;
}
const cluster = StaticCluster.fromLabels({ monitoring: { tier: 'platform' }, shop: {} }, []);
function decide(set: PolicySet, object: KubeObject, options: { now?: number; operation?: 'CREATE' | 'DELETE'; explain?: boolean } = {}) {
  const review = options.operation === 'DELETE'
    ? reviewForObject(undefined, { operation: 'DELETE', namespace: object.metadata!.namespace, oldObject: object })
    : reviewForObject(object, { namespace: object.metadata!.namespace });
  return admit(review, 'validate', { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000, namespaces: cluster, params: cluster }, { now: options.now ?? NOW, explain: options.explain });
}

/** what --explain says about exceptions */
const exceptionSteps = (o: Awaited<ReturnType<typeof decide>>) => o.explain?.filter((s) => s.step === 'exception');

t.test('an exception waives the policy for what it matches: allowed, warned, recorded', async (t) => {
  const set = await setOf(NO_PRIVILEGED, AGENT);
  const out = await decide(set, privilegedPod());
  t.ok(out.decision.allowed);
  t.same(out.review.response.warnings, ['[no-privileged] excepted by node-agent (SEC-1234) until 2030-01-01T00:00:00.000Z: privileged containers are not allowed']);
  t.same(out.record.policies.map((p) => [p.name, p.result, p.code, p.messages]), [['no-privileged', 'excepted', 'VALIDATION_FAILED', []]]);
  t.same(out.record.policies[0]!.exceptions, [{ expires: '2030-01-01T00:00:00.000Z', messages: ['privileged containers are not allowed'], name: 'node-agent', reason: 'the node agent needs privileged mode until v3', ticket: 'SEC-1234' }]);
  t.equal(toECS(out.record).message, 'allowed CREATE Pod monitoring/agent by exception: node-agent (no-privileged)', 'the ECS view says so too');

  for (const [what, pod] of [['another namespace', privilegedPod('shop')], ['other labels', privilegedPod('monitoring', { app: 'web' })]] as const) {
    const denied = await decide(set, pod);
    t.notOk(denied.decision.allowed, what);
    t.same(denied.record.policies.map((p) => [p.result, p.exceptions]), [['fail', undefined]], `${what}: nothing waived, nothing recorded as waived`);
  }
  const passing = await decide(set, { ...privilegedPod(), spec: { containers: [{ name: 'c', image: 'x:1' }] } } as KubeObject);
  t.same(passing.record.policies.map((p) => [p.result, p.exceptions]), [['pass', undefined]], 'a passing policy needs no exception');
  t.same(passing.review.response.warnings, undefined);
});

t.test('an exception stops waiving at its expiry, to the millisecond', async (t) => {
  const set = await setOf(NO_PRIVILEGED, AGENT);
  const expires = Date.parse('2030-01-01T00:00:00Z');
  t.ok((await decide(set, privilegedPod(), { now: expires - 1 })).decision.allowed);
  const out = await decide(set, privilegedPod(), { now: expires, explain: true });
  t.notOk(out.decision.allowed);
  t.match(exceptionSteps(out), [{ policy: 'exception node-agent', step: 'exception', value: 'expired on 2030-01-01T00:00:00.000Z' }]);
});

t.test('matching: names, resources, namespaceSelector (an unknown namespace waives nothing), DELETE by the old object', async (t) => {
  const set = await setOf(NO_PRIVILEGED, exception('named', `policies: [no-privileged]
reason: r
expires: "2030-01-01"
match:
  names: [agent]
  resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }]
  namespaceSelector: { matchLabels: { tier: platform } }`));
  t.ok((await decide(set, privilegedPod('monitoring', {}))).decision.allowed, 'name, resource and namespace labels match');
  t.notOk((await decide(set, privilegedPod('monitoring', {}, 'other'))).decision.allowed, 'another name');
  t.notOk((await decide(set, privilegedPod('shop', {}))).decision.allowed, 'a namespace without the label');
  const unknown = await decide(set, privilegedPod('nowhere', {}), { explain: true });
  t.notOk(unknown.decision.allowed, 'an unknown namespace cannot be shown to carry the label');
  t.match(exceptionSteps(unknown), [{ policy: 'exception named', value: /namespace nowhere is unknown/ }]);

  const deletes = await setOf(
    policyYaml('no-delete', `match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [DELETE] }]\nvalidations:\n  - expression: "false"\n    message: pods are not deleted here`),
    exception('agent-deletes', `policies: [no-delete]\nreason: r\nexpires: "2030-01-01"\nmatch: { objectSelector: { matchLabels: { app: node-agent } } }`),
  );
  t.ok((await decide(deletes, privilegedPod(), { operation: 'DELETE' })).decision.allowed, 'the labels of the object being deleted');
  t.notOk((await decide(deletes, privilegedPod('monitoring', { app: 'web' }), { operation: 'DELETE' })).decision.allowed);
});

t.test('CEL conditions: all must hold; one that errors waives nothing', async (t) => {
  const set = await setOf(NO_PRIVILEGED, exception('cel', `policies: [no-privileged]
reason: r
expires: "2030-01-01"
match:
  conditions:
    - name: agent-image
      expression: "object.spec.containers.all(c, c.image.startsWith('x:'))"
    - name: annotated
      expression: "object.metadata.annotations['waiver'] == 'yes'"`));
  const pod = (annotations?: Record<string, string>, image = 'x:1') => ({ ...privilegedPod(), metadata: { name: 'a', namespace: 'shop', ...(annotations ? { annotations } : {}) }, spec: { containers: [{ name: 'c', image, securityContext: { privileged: true } }] } }) as KubeObject;
  t.ok((await decide(set, pod({ waiver: 'yes' }))).decision.allowed);
  t.notOk((await decide(set, pod({ waiver: 'yes' }, 'y:1'))).decision.allowed, 'a condition is false');
  const errored = await decide(set, pod(), { explain: true });
  t.notOk(errored.decision.allowed, 'no annotations: the condition errors, and fails closed');
  t.match(exceptionSteps(errored), [{ policy: 'exception cel', value: /condition annotated failed/ }]);
});

t.test('modes, failurePolicy errors, several policies, and ValidatingAdmissionPolicy names', async (t) => {
  const erroring = policyYaml('broken', `${POD_RULE}\nvalidations:\n  - expression: "object.spec.missing == 1"`);
  const set = await setOf(NO_PRIVILEGED, HAS_TEAM, erroring, exception('all-three', `policies: [no-privileged, team-label, broken]
reason: r
expires: "2030-01-01"
match: { namespaces: [monitoring] }`));
  const out = await decide(set, privilegedPod());
  t.ok(out.decision.allowed, 'a failure, a warn-mode failure and an evaluation error are all waived');
  t.same(out.results.map((r) => [r.name, r.result]), [['no-privileged', 'excepted'], ['team-label', 'excepted'], ['broken', 'excepted']]);
  t.equal(out.review.response.warnings?.length, 3);
  t.match(out.review.response.warnings?.[2], /^\[broken\] excepted by all-three until 2030-01-01T00:00:00\.000Z: evaluation error in validations\[0\]/);

  const audited = await setOf(policyYaml('audited', `mode: audit\n${POD_RULE}\nvalidations:\n  - expression: "false"`), exception('quiet', `policies: [audited]\nreason: r\nexpires: "2030-01-01"\nmatch: { namespaces: [monitoring] }`));
  const quiet = await decide(audited, privilegedPod());
  t.same(quiet.review.response.warnings, undefined, 'audit mode warns nobody, waived or not');
  t.equal(quiet.record.policies[0]!.exceptions?.[0]?.name, 'quiet', 'but the record says so');

  const vap = await setOf(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: no-privileged-vap }
spec:
  matchConstraints:
    resourceRules: [{ apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE] }]
  validations:
    - expression: "false"
      message: denied by the VAP
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: everywhere }
spec: { policyName: no-privileged-vap, validationActions: [Deny] }
`, exception('vap', `policies: [no-privileged-vap]\nreason: r\nexpires: "2030-01-01"\nmatch: { namespaces: [monitoring] }`));
  const byVap = await decide(vap, privilegedPod());
  t.ok(byVap.decision.allowed, "a ValidatingAdmissionPolicy's name covers its bindings");
  t.same(byVap.results.map((r) => [r.name, r.result]), [['no-privileged-vap/everywhere', 'excepted']]);
});

t.test('load: mistakes fail the whole set, with positions', async (t) => {
  const errors = async (spec: string) => ((await load([NO_PRIVILEGED, exception('e', spec)])).errors).map((e) => e.message);
  t.match(await errors('policies: [no-privilegd]\nreason: r\nexpires: "2030-01-01"\nmatch: { namespaces: [a] }'), [/p\.yaml:\d+:\d+: no policy named no-privilegd is loaded \(did you mean "no-privileged"\?\)/]);
  t.match(await errors('policies: [no-privileged]\nreason: r\nexpires: "2030-02-30"\nmatch: { namespaces: [a] }'), [/expires "2030-02-30" is not an RFC 3339 time/]);
  t.match(await errors('policies: [no-privileged]\nreason: r\nexpires: "next week"\nmatch: { namespaces: [a] }'), [/spec\.expires: must match pattern/]);
  t.match(await errors('policies: [no-privileged]\nreason: r\nexpires: "2030-01-01"'), [/an exception must name what it covers/]);
  t.match(await errors('policies: [no-privileged]\nreason: r\nexpires: "2030-01-01"\nmatch: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }'), [/an exception must name what it covers/], 'resources alone cover every object of a kind');
  t.match(await errors('policies: [no-privileged]\nexpires: "2030-01-01"\nmatch: { namespaces: [a] }'), [/missing required field "reason"/]);
  t.match(await errors('policies: [no-privileged]\nreason: r\nexpires: "2030-01-01"\nmatch: { conditions: [{ name: p, expression: "params.x == 1" }] }'), [/exception conditions see object, oldObject, request, namespaceObject, not params/]);
  t.match(await errors('policies: [no-privileged]\nreason: r\nexpires: "2030-01-01"\nmatch: { conditions: [{ name: p, expression: "object.metadata.name ==" }] }'), [/syntax error/]);
  t.match(await errors('policies: [no-privileged]\nreason: r\nexpires: "2030-01-01"\nmatch: { namespace: [a] }'), [/unknown field "namespace" \(did you mean "namespaces"\?\)/]);
  const twice = await load([NO_PRIVILEGED, AGENT, AGENT]);
  t.match(twice.errors.map((e) => e.message), [/PolicyException node-agent is defined twice/]);
});

t.test('load: expired and soon-expiring exceptions are warnings, never errors (a reload must not fail when one runs out)', async (t) => {
  const expired = await load([NO_PRIVILEGED, AGENT], Date.parse('2030-01-02T00:00:00Z'));
  t.match(expired.set?.warnings.map((w) => w.message), [/p\.yaml:\d+:\d+: expired on 2030-01-01T00:00:00\.000Z: it waives nothing any more/]);
  const soon = await load([NO_PRIVILEGED, AGENT], Date.parse('2029-12-25T00:00:00Z'));
  t.match(soon.set?.warnings.map((w) => w.message), [/expires in 7 day\(s\), on 2030-01-01T00:00:00\.000Z/]);
  t.same((await load([NO_PRIVILEGED, AGENT])).set?.warnings, [], 'months ahead: nothing to say');
});

t.test("the set's revision changes with its exceptions", async (t) => {
  const without = await setOf(NO_PRIVILEGED);
  const withAgent = await setOf(NO_PRIVILEGED, AGENT);
  const renewed = await setOf(NO_PRIVILEGED, AGENT.replace('2030-01-01', '2030-06-01'));
  t.not(without.revision, withAgent.revision);
  t.not(withAgent.revision, renewed.revision);
});

t.test('expiry times: RFC 3339 with any offset, or a date meaning its 00:00 UTC; nothing else', async (t) => {
  t.equal(parseInstant('2030-01-01'), Date.parse('2030-01-01T00:00:00Z'));
  t.equal(parseInstant('2030-01-01T02:00:00+02:00'), Date.parse('2030-01-01T00:00:00Z'));
  t.equal(parseInstant('2030-01-01t00:00:00.5z'), Date.parse('2030-01-01T00:00:00.500Z'));
  for (const bad of ['2030-02-29', '2030-13-01', '2030-01-01T24:00:00Z', '2030-01-01T00:00:00', '1 Jan 2030', '']) t.equal(parseInstant(bad), undefined, bad);
});

t.test('PolicyTest suites judge exceptions at their `now` (a case may set its own)', async (t) => {
  const suite = `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: { name: agent }
spec:
  now: "2029-12-31T23:59:59Z"
  cases:
    - name: waived on the last second
      namespace: monitoring
      object: { apiVersion: v1, kind: Pod, metadata: { name: a, labels: { app: node-agent } }, spec: { containers: [{ name: c, image: "x:1", securityContext: { privileged: true } }] } }
      expect: warn
      messages: ["excepted by node-agent (SEC-1234) until 2030-01-01T00:00:00.000Z"]
    - name: denied once it expires
      now: "2030-01-01"
      namespace: monitoring
      object: { apiVersion: v1, kind: Pod, metadata: { name: a, labels: { app: node-agent } }, spec: { containers: [{ name: c, image: "x:1", securityContext: { privileged: true } }] } }
      expect: deny
`;
  const set = await setOf(NO_PRIVILEGED, AGENT, suite);
  const outcomes = await runPolicyTests(set);
  t.same(outcomes.map((o) => [o.name, o.passed, o.detail]), [['waived on the last second', true, undefined], ['denied once it expires', true, undefined]]);
  t.same(outcomes[0]!.failed, ['no-privileged'], "a waived failure still exercises the policy's deny path");
});

t.test("a PolicyTest's `now` that is no real time fails its cases, saying why (the schema lets 2030-02-30 through)", async (t) => {
  const suite = `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: { name: bad-now }
spec:
  now: "2030-02-30"
  cases:
    - { name: any, namespace: monitoring, expect: allow, object: { apiVersion: v1, kind: Pod, metadata: { name: a }, spec: { containers: [] } } }
`;
  const outcomes = await runPolicyTests(await setOf(NO_PRIVILEGED, AGENT, suite));
  t.same(outcomes.map((o) => [o.passed, o.detail]), [[false, 'could not run: now "2030-02-30" is not an RFC 3339 time or a date']]);
});
