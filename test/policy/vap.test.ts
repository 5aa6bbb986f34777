// Kubernetes ValidatingAdmissionPolicies and bindings run unchanged: the examples of the
// Kubernetes documentation, a source allowlist written the way Flux D2 writes it (with the
// decisions of the corpus's CASES.md, quirks included), and each binding field's semantics.
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { admit } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import type { KubeObject } from '../../src/admission/types.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { StaticCluster } from '../../src/kube/index.js';
import { loadPolicySet, subsetPolicySet, type PolicySet } from '../../src/policy/index.js';
import { policyDir } from '../helpers/policies.js';
import { fixture } from '../helpers/server.js';

const WEBSITE = fixture('vap/kubernetes-website');

async function setOf(files: Record<string, string>, copies: string[] = []): Promise<PolicySet> {
  const result = await load(files, copies);
  if (!result.set) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.set;
}
async function load(files: Record<string, string>, copies: string[] = []) {
  const dir = await policyDir(files);
  for (const c of copies) await copyFile(join(WEBSITE, c), join(dir, c.replace(/\//g, '_')));
  return loadPolicySet([dir]);
}

const cluster = new StaticCluster([
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'testing', labels: { environment: 'test' } } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { environment: 'prod' } } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dev', labels: { environment: 'dev' } } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'frontend', labels: { 'toolkit.fluxcd.io/role': 'tenant' } } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'flux-system' } },
]);

function decide(set: PolicySet, object: KubeObject, options: { operation?: 'CREATE' | 'UPDATE'; cluster?: StaticCluster; username?: string } = {}) {
  const review = reviewForObject(object, { operation: options.operation ?? 'CREATE' }) as { request: { userInfo: { username: string } } };
  if (options.username) review.request.userInfo = { username: options.username };
  const c = options.cluster ?? cluster;
  return admit(review, 'validate', { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000, namespaces: c, params: c });
}

const deployment = (namespace: string, replicas: number, image = 'nginx:1.27', labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace, labels },
  spec: { replicas, selector: {}, template: { spec: { containers: [{ name: 'web', image }] } } },
});

t.test('the documentation\'s basic example: a Deployment over 5 replicas in a test namespace is denied with its expression', async (t) => {
  const set = await setOf({}, ['validatingadmissionpolicy/basic-example-policy.yaml', 'validatingadmissionpolicy/basic-example-binding.yaml']);
  t.same(set.policies.map((p) => [p.name, p.mode, p.failurePolicy]), [['demo-policy.example.com/demo-binding-test.example.com', 'enforce', 'Fail']]);
  const denied = await decide(set, deployment('testing', 6));
  t.equal(denied.review.response.allowed, false);
  t.match(denied.review.response.status?.message, '[demo-policy.example.com/demo-binding-test.example.com] failed expression: object.spec.replicas <= 5');
  t.match(denied.review.response.status, { code: 422, reason: 'Invalid' }, 'as the API server answers a validation without a reason');
  t.equal((await decide(set, deployment('testing', 5))).review.response.allowed, true);
  t.equal((await decide(set, deployment('shop', 6))).review.response.allowed, true, 'the binding selects only environment: test');
});

t.test('params: one policy, two bindings with their own limits, the param objects read from the policy files', async (t) => {
  const set = await setOf({}, [
    'validatingadmissionpolicy/policy-with-param.yaml', 'validatingadmissionpolicy/binding-with-param.yaml', 'validatingadmissionpolicy/binding-with-param-prod.yaml',
    'validatingadmissionpolicy/replicalimit-param.yaml', 'validatingadmissionpolicy/replicalimit-param-prod.yaml',
  ]);
  t.equal(set.policies.length, 2, 'one policy per binding');
  t.equal(set.skipped, 2, 'the ReplicaLimit objects are data');
  // the test limit's namespace is misspelt upstream (namesapce:): written without one, it is taken for the binding's
  t.equal((await decide(set, deployment('testing', 4))).review.response.allowed, false, 'test: at most 3');
  t.equal((await decide(set, deployment('testing', 3))).review.response.allowed, true);
  t.equal((await decide(set, deployment('shop', 100))).review.response.allowed, true, 'elsewhere: at most 100');
  const over = await decide(set, deployment('shop', 101));
  t.match(over.review.response.status?.message, /\[replicalimit-policy\.example\.com\/replicalimit-binding-nontest\] failed expression: object\.spec\.replicas <= params\.maxReplicas/);
  t.same(over.results.map((r) => r.name), ['replicalimit-policy.example.com/replicalimit-binding-nontest'], 'the test binding does not select prod');
  t.same(subsetPolicySet(set, ['replicalimit-policy.example.com']).policies.length, 2, 'a test suite may name the policy for all its bindings');
});

t.test('namespaceObject and variables: only prod images in prod namespaces', async (t) => {
  const set = await setOf({
    'binding.yaml': `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: image-env }
spec:
  policyName: image-matches-namespace-environment.policy.example.com
  validationActions: [Deny]
`,
  }, ['access/image-matches-namespace-environment.policy.yaml']);
  const denied = await decide(set, deployment('shop', 1, 'dev.example.com/nginx'));
  t.match(denied.review.response.status?.message, 'only prod images are allowed in namespace shop');
  t.equal((await decide(set, deployment('shop', 1, 'prod.example.com/nginx'))).review.response.allowed, true);
  t.equal((await decide(set, deployment('dev', 1, 'dev.example.com/nginx'))).review.response.allowed, true);
  t.equal((await decide(set, deployment('shop', 1, 'dev.example.com/nginx', { exempt: 'true' }))).review.response.allowed, true, 'the exempt label');
});

t.test('a mistyped field is an evaluation error at run time, denied under the default failurePolicy Fail', async (t) => {
  const set = await setOf({ 'binding.yaml': 'apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: { name: b }\nspec: { policyName: deploy-replica-policy.example.com, validationActions: [Deny] }\n' },
    ['validatingadmissionpolicy/typechecking.yaml']);
  const out = await decide(set, deployment('shop', 3));
  t.equal(out.review.response.allowed, false);
  t.same(out.results.map((r) => r.code), ['EVALUATION_ERROR']);
  t.match(out.review.response.status?.message, /object\.replicas > 1.*No such key: replicas/);
});

t.test('what cannot run is refused at load with its file, line and column', async (t) => {
  const typo = await load({}, ['access/validating-admission-policy-match-conditions.yaml']);
  t.equal(typo.set, undefined, '`startWith` is no CEL function');
  t.match(typo.errors.map((e) => e.message), [/access_validating-admission-policy-match-conditions\.yaml:21:20: unknown function startWith\(\) \(did you mean "startsWith"\?\)/]);
  const fragment = await load({}, ['validatingadmissionpolicy/failure-policy-ignore.yaml']);
  t.equal(fragment.set, undefined, 'the documentation fragment with "..." is reported, not a crash');
  t.ok(fragment.errors.length);
  const paramKind = await load({}, ['access/deployment-replicas-policy.yaml']);
  t.match(paramKind.errors.map((e) => e.message).join('\n'), /deployment-replicas-policy\.yaml:7:5: spec\.paramKind: unknown field "group"/);
  const beta2 = await load({ 'p.yaml': 'apiVersion: admissionregistration.k8s.io/v2\nkind: ValidatingAdmissionPolicy\nmetadata: { name: x }\nspec: {}\n' });
  t.match(beta2.errors.map((e) => e.message).join('\n'), /p\.yaml:1:13: apiVersion: must be one of "admissionregistration\.k8s\.io\/v1"/);
});

t.test('a policy without a binding loads with a warning and checks nothing', async (t) => {
  const set = await setOf({}, ['access/validating-admission-policy-audit-annotation.yaml']);
  t.equal(set.policies.length, 0);
  t.match(set.warnings.map((w) => w.message), [/demo-policy\.example\.com has no binding, so it checks nothing/]);
});

t.test('auditAnnotations reach the response and the decision record; null sets none, another type is an error', async (t) => {
  const extra = `    - key: small
      valueExpression: "object.spec.replicas < 100 ? dyn('small') : null"
    - key: decision-id
      valueExpression: "'forged'"
`;
  const docs = (await import('node:fs')).readFileSync(join(WEBSITE, 'access/validating-admission-policy-audit-annotation.yaml'), 'utf8');
  const set = await setOf({
    'policy.json.yaml': docs,
    'extra.yaml': REPLICAS_VAP.replace('      message: at most 5 replicas\n', '      message: at most 5 replicas\n  auditAnnotations:\n' + extra) + binding('a', 'validationActions: [Audit]'),
    'binding.yaml': 'apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: { name: b }\nspec: { policyName: demo-policy.example.com, validationActions: [Deny] }\n',
  });
  const out = await decide(set, deployment('shop', 60));
  t.equal(out.review.response.allowed, true);
  const annotations = out.review.response.auditAnnotations as Record<string, string>;
  t.equal(annotations['high-replica-count'], 'Deployment spec.replicas set to 60');
  t.equal(annotations.small, 'small');
  t.not(annotations['decision-id'], 'forged', 'no policy can take the decision id\'s key');
  t.same(out.record.policies.map((p) => [p.name, p.annotations]), [
    ['demo-policy.example.com/b', { 'high-replica-count': 'Deployment spec.replicas set to 60' }],
    ['replicas.example.com/a', { small: 'small', 'decision-id': 'forged' }],
  ]);
  const big = await decide(set, deployment('shop', 150));
  t.same(big.record.policies.find((p) => p.name === 'replicas.example.com/a')?.annotations, { 'decision-id': 'forged' }, 'a null value sets nothing');
  // a key named like an Object.prototype member, set by the second policy, is still a key
  const proto = await setOf({ 'p.yaml': REPLICAS_VAP.replace('      message: at most 5 replicas\n', '      message: at most 5 replicas\n  auditAnnotations:\n    - { key: first, valueExpression: "\'1\'" }\n') + binding('a', 'validationActions: [Audit]') + '---\n'
    + REPLICAS_VAP.replace('replicas.example.com', 'other.example.com').replace('      message: at most 5 replicas\n', '      message: at most 5 replicas\n  auditAnnotations:\n    - { key: constructor, valueExpression: "\'c\'" }\n') + binding('b', 'validationActions: [Audit]').replace('policyName: replicas.example.com', 'policyName: other.example.com') });
  t.match((await decide(proto, deployment('shop', 1))).review.response.auditAnnotations, { first: '1', constructor: 'c' });
  const withKeys = (keys: string[]) => load({ 'p.yaml': REPLICAS_VAP.replace('      message: at most 5 replicas\n', `      message: at most 5 replicas\n  auditAnnotations:\n${keys.map((k) => `    - { key: ${k}, valueExpression: "'x'" }\n`).join('')}`) + binding('b', 'validationActions: [Deny]') });
  t.match((await withKeys(['__proto__'])).errors.map((e) => e.message), [/auditAnnotations\.0\.key: must match pattern/], 'a key Kubernetes would refuse');
  t.match((await withKeys(['twice', 'twice'])).errors.map((e) => e.message), [/p\.yaml:15:\d+: auditAnnotations key twice is used twice/], "at the repeated key");
  const typed = await setOf({ 'p.yaml': REPLICAS_VAP.replace('      message: at most 5 replicas\n', '      message: at most 5 replicas\n  auditAnnotations:\n    - { key: count, valueExpression: object.spec.replicas }\n') + binding('b', 'validationActions: [Deny]') });
  const wrong = await decide(typed, deployment('shop', 1));
  t.equal(wrong.review.response.allowed, false, 'failurePolicy Fail');
  t.match(wrong.review.response.status?.message, /auditAnnotations\[0\] \(count\) must be a string or null/);
});

// A source allowlist as Flux D2 writes it (our own text; D2's files are AGPL): a VAP with a
// ConfigMap of space-separated prefixes, exactly one of which must start the URL.
const SOURCE_VAP = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: sources.example.com
spec:
  failurePolicy: Fail
  paramKind: { apiVersion: v1, kind: ConfigMap }
  matchConstraints:
    resourceRules:
      - apiGroups: [source.toolkit.fluxcd.io]
        apiVersions: ["*"]
        operations: [CREATE, UPDATE]
        resources: [gitrepositories, ocirepositories, helmrepositories]
  matchConditions:
    - name: not-the-source-controller
      expression: request.userInfo.username != "system:serviceaccount:flux-system:source-controller"
  variables:
    - name: url
      expression: object.spec.url
    - name: prefixes
      expression: params.data.sources.split(' ')
  validations:
    - expression: variables.prefixes.exists_one(p, variables.url.startsWith(p))
      messageExpression: "'source ' + variables.url + ' is not on the list: ' + variables.prefixes.join(', ')"
      reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: tenants
spec:
  policyName: sources.example.com
  validationActions: [Deny]
  paramRef: { name: source-list, namespace: flux-system, parameterNotFoundAction: Deny }
  matchResources:
    namespaceSelector:
      matchExpressions: [{ key: toolkit.fluxcd.io/role, operator: In, values: [tenant] }]
`;
const LIST = 'https://github.com/controlplaneio-fluxcd/ oci://ghcr.io/controlplaneio-fluxcd/ oci://ghcr.io/stefanprodan/charts/ oci://registry-1.docker.io/bitnamicharts/';
const withList = (sources: string | undefined) => StaticCluster.fromLabels({ frontend: { 'toolkit.fluxcd.io/role': 'tenant' }, 'flux-system': {} },
  sources === undefined ? [] : [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'source-list', namespace: 'flux-system' }, data: sources === 'no key' ? {} : { sources } } as KubeObject]);
const ociRepo = (url: string, namespace = 'frontend'): KubeObject => ({
  apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', metadata: { name: 'r', namespace }, spec: { url, ref: { tag: 'latest' } },
});

t.test('the D2-style source VAP decides as CASES.md\'s VAP column, bypasses and false denials included', async (t) => {
  const set = await setOf({ 'sources.yaml': SOURCE_VAP });
  const rows: [string, string, string | undefined, boolean][] = [
    ['D-01', 'oci://ghcr.io/controlplaneio-fluxcd/d2-apps/frontend', LIST, true],
    ['D-07', 'oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack', LIST, false],
    ['F01 look-alike org', 'oci://ghcr.io/controlplaneio-fluxcd-evil/d2-apps/frontend', LIST, false],
    ['F02 dot segment (the VAP\'s bypass)', 'oci://ghcr.io/controlplaneio-fluxcd/../attacker/manifests', LIST, true],
    ['F03 upper-case host (the VAP\'s false denial)', 'oci://GHCR.IO/controlplaneio-fluxcd/d2-apps/frontend', LIST, false],
    ['P2-a overlapping entries: two matches', 'oci://ghcr.io/controlplaneio-fluxcd/d2-apps/frontend', 'oci://ghcr.io/ oci://ghcr.io/controlplaneio-fluxcd/', false],
    ['P3-a double space: the empty entry matches too', 'oci://ghcr.io/controlplaneio-fluxcd/d2-apps/frontend', LIST.replace(' ', '  '), false],
    ['P3-b double space: only the empty entry matches', 'https://charts.bitnami.com/bitnami', LIST.replace(' ', '  '), true],
    ['P5 no sources key: an evaluation error, failurePolicy Fail', 'oci://ghcr.io/controlplaneio-fluxcd/d2-apps/frontend', 'no key', false],
    ['P6 no ConfigMap: parameterNotFoundAction Deny', 'oci://ghcr.io/controlplaneio-fluxcd/d2-apps/frontend', undefined, false],
  ];
  for (const [id, url, sources, allowed] of rows) {
    t.equal((await decide(set, ociRepo(url), { cluster: withList(sources) })).review.response.allowed, allowed, id);
  }
  const denied = await decide(set, ociRepo('oci://ghcr.io/attacker/app'), { cluster: withList(LIST) });
  t.match(denied.review.response.status?.message, `[sources.example.com/tenants] source oci://ghcr.io/attacker/app is not on the list: ${LIST.split(' ').join(', ')}`);
  t.equal((await decide(set, ociRepo('oci://ghcr.io/attacker/app', 'flux-system'), { cluster: withList(LIST) })).results.length, 0, 'flux-system is no tenant');
  const controller = await decide(set, ociRepo('oci://ghcr.io/attacker/app'), { cluster: withList(LIST), username: 'system:serviceaccount:flux-system:source-controller' });
  t.equal(controller.review.response.allowed, true, 'the match condition skips the source-controller');
});

const binding = (name: string, spec: string) => `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: ${name} }
spec:
  policyName: replicas.example.com
${spec.replace(/^/gm, '  ')}
`;
const REPLICAS_VAP = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: replicas.example.com }
spec:
  matchConstraints:
    resourceRules:
      - { apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments, statefulsets] }
    excludeResourceRules:
      - { apiGroups: [apps], apiVersions: [v1], operations: ["*"], resources: [deployments], resourceNames: [legacy] }
  validations:
    - expression: object.spec.replicas <= 5
      message: at most 5 replicas
---
`;
const statefulSet = (namespace: string, replicas: number): KubeObject => ({ ...deployment(namespace, replicas), kind: 'StatefulSet' });

t.test('validationActions: Warn warns, Audit only records, Deny with Warn is refused', async (t) => {
  const set = await setOf({ 'p.yaml': REPLICAS_VAP + binding('warn', 'validationActions: [Warn, Audit]') + '---\n' + binding('audit', 'validationActions: [Audit]') });
  t.same(set.policies.map((p) => p.mode), ['warn', 'audit']);
  const out = await decide(set, deployment('shop', 9));
  t.equal(out.review.response.allowed, true);
  t.same(out.review.response.warnings, ['[replicas.example.com/warn] at most 5 replicas']);
  t.same(out.results.map((r) => [r.name, r.result]), [['replicas.example.com/warn', 'fail'], ['replicas.example.com/audit', 'fail']], 'both recorded');
  const both = await load({ 'p.yaml': REPLICAS_VAP + binding('both', 'validationActions: [Deny, Warn]') });
  t.match(both.errors.map((e) => e.message), [/p\.yaml:\d+:\d+: validationActions: Deny and Warn may not be used together/]);
});

t.test('a binding narrows its policy: its resource rules, selectors and the policy\'s exclusions all hold', async (t) => {
  const set = await setOf({ 'p.yaml': REPLICAS_VAP + binding('b', `validationActions: [Deny]
matchResources:
  resourceRules:
    - { apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [statefulsets] }
  namespaceSelector: { matchLabels: { environment: prod } }`) });
  t.equal((await decide(set, statefulSet('shop', 9))).review.response.allowed, false, 'a StatefulSet in prod');
  t.equal((await decide(set, statefulSet('testing', 9))).review.response.allowed, true, 'not in test namespaces');
  t.equal((await decide(set, deployment('shop', 9))).review.response.allowed, true, 'not Deployments: the binding names StatefulSets');
  t.equal((await decide(set, statefulSet('shop', 9), { operation: 'UPDATE' })).review.response.allowed, true, 'nor UPDATEs');
  const all = await setOf({ 'p.yaml': REPLICAS_VAP + binding('all', 'validationActions: [Deny]') });
  t.equal((await decide(all, deployment('shop', 9))).review.response.allowed, false);
  const legacy = deployment('shop', 9);
  legacy.metadata!.name = 'legacy';
  t.equal((await decide(all, legacy)).review.response.allowed, true, 'excludeResourceRules with resourceNames');
});

t.test('params: parameterNotFoundAction Allow passes without its ConfigMap, and what trustgate cannot honour is refused', async (t) => {
  const vap = SOURCE_VAP.replace('parameterNotFoundAction: Deny', 'parameterNotFoundAction: Allow');
  const set = await setOf({ 'sources.yaml': vap });
  const out = await decide(set, ociRepo('oci://ghcr.io/attacker/app'), { cluster: withList(undefined) });
  t.equal(out.review.response.allowed, true);
  t.same(out.results.map((r) => r.result), ['pass']);
  const both = await load({ 'sources.yaml': SOURCE_VAP.replace('{ name: source-list,', '{ name: source-list, selector: {},') });
  t.match(both.errors.map((e) => e.message), [/sources\.yaml:\d+:\d+: paramRef needs exactly one of name and selector/]);
  const misspelt = await load({ 'p.yaml': REPLICAS_VAP.replace('    - expression: object.spec.replicas <= 5', '    - expresion: object.spec.replicas <= 5') + binding('b', 'validationActions: [Deny]') });
  t.match(misspelt.errors.map((e) => e.message), [/missing required field "expression"/, /unknown field "expresion"/]);
  t.notMatch(misspelt.errors.map((e) => e.message).join('\n'), /not in the policy files/, 'a binding of a policy the schema refused adds no "not in the policy files"');
  const orphan = await load({ 'b.yaml': binding('b', 'validationActions: [Deny]') });
  t.match(orphan.errors.map((e) => e.message), [/b\.yaml:5:\d+: binding b names ValidatingAdmissionPolicy replicas\.example\.com, which is not in the policy files/]);
});

// Per-tenant params, as Kubernetes documents paramRef: without a namespace, the ConfigMap of the
// request's own namespace; with a selector, one evaluation per ConfigMap it selects.
const tenantList = (namespace: string, name: string, sources: string, labels: Record<string, string> = {}) =>
  ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels }, data: { sources } }) as KubeObject;
const tenants = (...configMaps: KubeObject[]) => new StaticCluster([
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'frontend', labels: { 'toolkit.fluxcd.io/role': 'tenant' } } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'backend', labels: { 'toolkit.fluxcd.io/role': 'tenant' } } },
  ...configMaps,
]);

t.test('params from the namespace of each request: a paramRef without a namespace reads each tenant its own ConfigMap', async (t) => {
  const set = await setOf({ 'sources.yaml': SOURCE_VAP.replace('namespace: flux-system, ', '') });
  t.same(set.warnings, [], 'no warning: nothing in the files is left unused');
  const cluster = tenants(tenantList('frontend', 'source-list', 'oci://ghcr.io/frontend/'), tenantList('backend', 'source-list', 'oci://ghcr.io/backend/'));
  t.equal((await decide(set, ociRepo('oci://ghcr.io/frontend/app', 'frontend'), { cluster })).review.response.allowed, true, "frontend's own list");
  const crossed = await decide(set, ociRepo('oci://ghcr.io/frontend/app', 'backend'), { cluster });
  t.equal(crossed.review.response.allowed, false, "backend may not use frontend's prefix");
  t.match(crossed.review.response.status?.message, 'is not on the list: oci://ghcr.io/backend/');
  const missing = await decide(set, ociRepo('oci://ghcr.io/frontend/app', 'backend'), { cluster: tenants(tenantList('frontend', 'source-list', 'oci://ghcr.io/frontend/')) });
  t.equal(missing.review.response.allowed, false, 'parameterNotFoundAction Deny: a tenant without its list is an error, and failurePolicy Fail denies');
  t.match(missing.results[0], { result: 'error', code: 'PARAMS_NOT_FOUND', messages: ['params ConfigMap backend/source-list not found'] });

  const allow = await setOf({ 'sources.yaml': SOURCE_VAP.replace('namespace: flux-system, parameterNotFoundAction: Deny', 'parameterNotFoundAction: Allow') });
  t.equal((await decide(allow, ociRepo('oci://ghcr.io/anything', 'backend'), { cluster: tenants() })).review.response.allowed, true, 'Allow: no list, no check');

  // a binding that also matches a cluster-scoped kind has no request namespace to read from
  const clusterScoped = await setOf({ 'sources.yaml': SOURCE_VAP.replace('namespace: flux-system, ', '').replace('resources: [gitrepositories, ocirepositories, helmrepositories]', 'resources: [gitrepositories, ocirepositories, helmrepositories, clustersources]')
    .replace(/  matchResources:\n    namespaceSelector:\n.*\n/, '') });
  const object = { ...ociRepo('oci://ghcr.io/frontend/app'), kind: 'ClusterSource', metadata: { name: 'c' } } as KubeObject;
  const review = reviewForObject(object, { operation: 'CREATE' }) as { request: { namespace?: string; resource: { resource: string } } };
  delete review.request.namespace;
  review.request.resource.resource = 'clustersources';
  const out = await admit(review, 'validate', { policies: () => clusterScoped, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000, namespaces: cluster, params: cluster });
  t.match(out.results[0], { result: 'error', code: 'PARAMS_NOT_FOUND', messages: [/read from the namespace of each request, and this ClusterSource is cluster-scoped/] });
  t.equal(out.review.response.allowed, false, 'an error, decided by failurePolicy (Fail), not a pass: parameterNotFoundAction does not cover it');

  const shadowed = await load({ 'sources.yaml': SOURCE_VAP.replace('namespace: flux-system, ', ''), 'list.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: source-list, namespace: flux-system }\ndata: { sources: "oci://" }\n' });
  t.same(shadowed.errors, []);
  t.match(shadowed.set?.warnings.map((w) => w.message), [/sources\.yaml:\d+:\d+: ConfigMap source-list in the policy files is not used: paramRef has no namespace/]);
});

t.test('params by selector: one evaluation per selected ConfigMap; the policy fails if any evaluation fails', async (t) => {
  const set = await setOf({ 'sources.yaml': SOURCE_VAP.replace('name: source-list, namespace: flux-system, parameterNotFoundAction: Deny', 'selector: { matchLabels: { trustgate.dev/sources: "true" } }') });
  const labelled = { 'trustgate.dev/sources': 'true' };
  const cluster = tenants(
    tenantList('frontend', 'a-ghcr', 'oci://ghcr.io/frontend/', labelled),
    tenantList('frontend', 'b-github', 'https://github.com/frontend/ oci://ghcr.io/frontend/', labelled),
    tenantList('frontend', 'unlabelled', 'oci://ghcr.io/'),
    tenantList('backend', 'backend', 'oci://ghcr.io/', labelled),
  );
  t.equal((await decide(set, ociRepo('oci://ghcr.io/frontend/app'), { cluster })).review.response.allowed, true, 'on both selected lists');
  const out = await decide(set, ociRepo('https://github.com/frontend/app'), { cluster });
  t.equal(out.review.response.allowed, false, 'on one list only: the other evaluation fails');
  t.same(out.results[0]!.messages, ['source https://github.com/frontend/app is not on the list: oci://ghcr.io/frontend/'], 'the failing evaluation speaks, once');
  const recorded = out.record.policies[0]!.params;
  t.same(recorded?.map((p) => [p.kind, p.namespace, p.name]), [['ConfigMap', 'frontend', 'a-ghcr'], ['ConfigMap', 'frontend', 'b-github']], 'the record names every params object that decided');
  t.match(recorded?.[0]?.sha256, /^[0-9a-f]{64}$/);
  const changed = tenants(tenantList('frontend', 'a-ghcr', 'oci://ghcr.io/frontend/ https://github.com/frontend/', labelled), tenantList('frontend', 'b-github', 'https://github.com/frontend/ oci://ghcr.io/frontend/', labelled));
  const after = await decide(set, ociRepo('https://github.com/frontend/app'), { cluster: changed });
  t.equal(after.review.response.allowed, true, 'the params changed');
  t.not(after.record.policies[0]!.params?.[0]?.sha256, recorded?.[0]?.sha256, 'and the record shows they did');
  t.equal(after.record.policies[0]!.params?.[1]?.sha256, recorded?.[1]?.sha256, 'the unchanged one digests alike');
  const two = await decide(set, ociRepo('oci://quay.io/x'), { cluster });
  t.equal(two.results[0]!.messages.length, 2, 'one message per failing ConfigMap, in name order');
  t.match(two.results[0]!.messages[0], /oci:\/\/ghcr\.io\/frontend\/$/);
  const versioned = { ...tenantList('frontend', 'v', 'oci://ghcr.io/', labelled), metadata: { name: 'v', namespace: 'frontend', labels: labelled, resourceVersion: '4711' } } as KubeObject;
  t.match((await decide(set, ociRepo('oci://ghcr.io/x'), { cluster: tenants(versioned) })).record.policies[0]!.params, [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'v', namespace: 'frontend', resourceVersion: '4711' }], 'with the version that decided');
  const twins = tenants(tenantList('frontend', 'one', 'oci://ghcr.io/frontend/', labelled), tenantList('frontend', 'two', 'oci://ghcr.io/frontend/', labelled));
  t.same((await decide(set, ociRepo('oci://quay.io/x'), { cluster: twins })).results[0]!.messages, ['source oci://quay.io/x is not on the list: oci://ghcr.io/frontend/'], 'two evaluations failing alike say it once');
  const none = await decide(set, ociRepo('oci://ghcr.io/x', 'frontend'), { cluster: tenants(tenantList('frontend', 'unlabelled', 'oci://ghcr.io/')) });
  t.match(none.results[0], { result: 'error', code: 'PARAMS_NOT_FOUND', messages: ['no params ConfigMap in frontend matches the selector "trustgate.dev/sources=true"'] });
  const pinned = await setOf({ 'sources.yaml': SOURCE_VAP.replace('name: source-list, namespace: flux-system, parameterNotFoundAction: Deny', 'namespace: backend, selector: { matchLabels: { trustgate.dev/sources: "true" } }') });
  t.equal((await decide(pinned, ociRepo('oci://ghcr.io/anyone/app'), { cluster })).review.response.allowed, true, 'with a namespace: the ConfigMaps of that namespace, for every request');
});

// The documentation's ReplicaLimit is a custom resource: in the policy files it is bound as
// written; otherwise it is read from the cluster, in the scope the cluster serves the kind in.
t.test('params of a custom kind not in the policy files come from the cluster, in the kind\'s own scope', async (t) => {
  const limitVap = REPLICAS_VAP.replace('  matchConstraints:', '  paramKind: { apiVersion: rules.example.com/v1, kind: ReplicaLimit }\n  matchConstraints:')
    .replace('object.spec.replicas <= 5', 'object.spec.replicas <= params.maxReplicas');
  const limit = (name: string, max: number, namespace?: string, labels: Record<string, string> = {}) =>
    ({ apiVersion: 'rules.example.com/v1', kind: 'ReplicaLimit', metadata: { name, labels, ...(namespace ? { namespace } : {}) }, maxReplicas: max }) as KubeObject;
  const named = await setOf({ 'p.yaml': limitVap + binding('b', 'validationActions: [Deny]\nparamRef: { name: standard, parameterNotFoundAction: Deny }') });
  t.match(named.policies[0]!.params, { kind: 'object', type: { apiVersion: 'rules.example.com/v1', kind: 'ReplicaLimit' }, name: 'standard' });
  const clusterScoped = new StaticCluster([limit('standard', 3)]);
  t.equal((await decide(named, deployment('shop', 3), { cluster: clusterScoped })).review.response.allowed, true);
  t.equal((await decide(named, deployment('shop', 4), { cluster: clusterScoped })).review.response.allowed, false, 'the cluster-scoped object serves every namespace');
  const none = await decide(named, deployment('shop', 1), { cluster: new StaticCluster([]) });
  t.match(none.results[0], { result: 'error', code: 'PARAMS_NOT_FOUND', messages: ['params ReplicaLimit standard not found'] });

  const perNamespace = new StaticCluster([limit('standard', 3, 'shop'), limit('standard', 9, 'batch')]);
  t.equal((await decide(named, deployment('batch', 9), { cluster: perNamespace })).review.response.allowed, true, "a namespaced kind: the request's namespace's own");
  t.equal((await decide(named, deployment('shop', 9), { cluster: perNamespace })).review.response.allowed, false);

  const pinned = await setOf({ 'p.yaml': limitVap + binding('b', 'validationActions: [Deny]\nparamRef: { name: standard, namespace: shop }') });
  t.match((await decide(pinned, deployment('shop', 1), { cluster: clusterScoped })).results[0], { result: 'error', messages: ['params name namespace shop, but ReplicaLimit (rules.example.com/v1) is cluster-scoped'] }, 'a configuration error, as in Kubernetes');

  const selected = await setOf({ 'p.yaml': limitVap + binding('b', 'validationActions: [Deny]\nparamRef: { selector: { matchLabels: { tier: gold } } }') });
  const tiers = new StaticCluster([limit('a', 5, undefined, { tier: 'gold' }), limit('b', 7, undefined, { tier: 'gold' }), limit('c', 1)]);
  t.equal((await decide(selected, deployment('shop', 5), { cluster: tiers })).review.response.allowed, true, 'within every selected limit');
  t.equal((await decide(selected, deployment('shop', 6), { cluster: tiers })).review.response.allowed, false, 'over one of them');

  const inFiles = await setOf({ 'p.yaml': limitVap + binding('b', 'validationActions: [Deny]\nparamRef: { name: standard }'), 'limit.yaml': 'apiVersion: rules.example.com/v1\nkind: ReplicaLimit\nmetadata: { name: standard }\nmaxReplicas: 2\n' });
  t.match(inFiles.policies[0]!.params, { kind: 'value' }, 'an object in the policy files is bound as written');
});

t.test('eval: a binding selecting custom params objects, read offline from --cluster-file, explained per object', async (t) => {
  const { trustgate } = await import('../helpers/cli.js');
  const { writeFile } = await import('node:fs/promises');
  const dir = await policyDir({
    'replicas.yaml': REPLICAS_VAP.replace('  matchConstraints:', '  paramKind: { apiVersion: rules.example.com/v1, kind: ReplicaLimit }\n  matchConstraints:')
      .replace('object.spec.replicas <= 5', 'object.spec.replicas <= params.maxReplicas')
      + binding('b', 'validationActions: [Deny]\nparamRef: { selector: { matchLabels: { tier: gold } }, parameterNotFoundAction: Deny }'),
  });
  const cluster = join(dir, '..', `${dir.split('/').pop()}-cluster.yaml`);
  await writeFile(cluster, `apiVersion: v1
kind: List
items:
  - { apiVersion: rules.example.com/v1, kind: ReplicaLimit, metadata: { name: a, labels: { tier: gold } }, maxReplicas: 5 }
  - { apiVersion: rules.example.com/v1, kind: ReplicaLimit, metadata: { name: b, labels: { tier: gold } }, maxReplicas: 3 }
  - { apiVersion: rules.example.com/v1, kind: ReplicaLimit, metadata: { name: c }, maxReplicas: 1 }
`);
  const object = join(dir, '..', `${dir.split('/').pop()}-deployment.yaml`);
  await writeFile(object, 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec: { replicas: 4 }\n');
  const out = await trustgate('eval', '--policies', dir, '--object', object, '--namespace', 'shop', '--cluster-file', cluster, '--explain');
  t.equal(out.code, 1, 'denied');
  t.equal(JSON.parse(out.stdout).response.allowed, false, 'over the limit of b');
  t.match(out.stderr, /params => "ReplicaLimit a"[^]*=> true[^]*params => "ReplicaLimit b"[^]*=> false/, 'each selected object, then what its evaluation gave');
  t.notMatch(out.stderr, /ReplicaLimit c/, 'the unlabelled object is not selected');
});

t.test('a CEL error in a ValidatingAdmissionPolicy points into its own file', async (t) => {
  const broken = await load({ 'p.yaml': REPLICAS_VAP.replace('object.spec.replicas <= 5', 'object.spec.replicas <= "5" +') + binding('b', 'validationActions: [Deny]') });
  t.equal(broken.set, undefined);
  t.match(broken.errors.map((e) => e.message), [/^.*p\.yaml:11:\d+: /]);
});

t.test('lint and test suites take ValidatingAdmissionPolicies from the command line', async (t) => {
  const { trustgate } = await import('../helpers/cli.js');
  const dir = await policyDir({
    'replicas.yaml': REPLICAS_VAP + binding('b', 'validationActions: [Deny]\nmatchResources: { namespaceSelector: { matchLabels: { environment: prod } } }'),
    'replicas.test.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: { name: replicas }
spec:
  policies: [replicas.example.com]
  namespaces: { shop: { environment: prod }, testing: { environment: test } }
  cases:
    - name: too many in prod
      expect: deny
      messages: ["[replicas.example.com/b] at most 5 replicas"]
      namespace: shop
      object: { apiVersion: apps/v1, kind: Deployment, metadata: { name: web }, spec: { replicas: 9 } }
    - name: anything goes in test
      expect: allow
      namespace: testing
      object: { apiVersion: apps/v1, kind: Deployment, metadata: { name: web }, spec: { replicas: 9 } }
`,
  });
  const lint = await trustgate('lint', dir);
  t.equal(lint.code, 0, lint.stderr);
  t.match(lint.stdout, /^ok: 1 policies, 0 trust roots, 1 test suites in 2 files/);
  const tested = await trustgate('test', dir);
  t.equal(tested.code, 0, tested.stdout + tested.stderr);
  t.match(tested.stdout, /2 passed, 0 failed/);
});

t.test('a validation\'s reason sets the denial\'s status, for trustgate\'s own policies too; an unknown reason is refused', async (t) => {
  const own = (reason: string) => `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: p }
spec:
  match: { resources: [{ apiGroups: [apps], resources: [deployments], operations: [CREATE] }] }
  validations:
    - expression: object.spec.replicas <= 5
${reason ? `      reason: ${reason}\n` : ''}`;
  t.match((await decide(await setOf({ 'p.yaml': own('') }), deployment('shop', 9))).review.response.status, { code: 403, reason: 'Forbidden' });
  t.match((await decide(await setOf({ 'p.yaml': own('Unauthorized') }), deployment('shop', 9))).review.response.status, { code: 401, reason: 'Unauthorized' });
  const bad = await load({ 'p.yaml': own('Teapot') });
  t.match(bad.errors.map((e) => e.message), [/p\.yaml:8:15: spec\.validations\.0\.reason: must be one of "Forbidden", "Invalid", "Unauthorized", "RequestEntityTooLarge"/]);
});

t.test('a policy as `kubectl get -o yaml` prints it (server defaults, status, managed fields) loads and decides the same', async (t) => {
  const exported = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  creationTimestamp: "2026-11-01T10:00:00Z"
  generation: 1
  managedFields: [{ apiVersion: admissionregistration.k8s.io/v1, fieldsType: FieldsV1, manager: kubectl, operation: Update }]
  name: replicas.example.com
  resourceVersion: "4242"
  uid: 0b3c1a5e-0000-4000-8000-000000000001
spec:
  failurePolicy: Fail
  matchConstraints:
    matchPolicy: Equivalent
    namespaceSelector: {}
    objectSelector: {}
    resourceRules:
      - { apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments], scope: "*" }
  validations:
    - expression: object.spec.replicas <= 5
status:
  observedGeneration: 1
  typeChecking: {}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: b, generation: 1, resourceVersion: "4243" }
spec:
  policyName: replicas.example.com
  validationActions: [Deny]
  matchResources: { matchPolicy: Equivalent, namespaceSelector: {}, objectSelector: {} }
`;
  const set = await setOf({ 'exported.yaml': exported });
  const unknownNamespace = new StaticCluster([]);
  t.equal((await decide(set, deployment('nowhere', 9), { cluster: unknownNamespace })).review.response.allowed, false, 'an empty selector selects everything, even a namespace nobody described');
  t.equal((await decide(set, deployment('nowhere', 2), { cluster: unknownNamespace })).review.response.allowed, true);
});

t.test('a messageExpression that is blank or breaks the line falls back to the message, as in Kubernetes', async (t) => {
  const withMessage = (expr: string) => REPLICAS_VAP.replace('      message: at most 5 replicas\n', `      message: at most 5 replicas\n      messageExpression: ${JSON.stringify(expr)}\n`) + binding('b', 'validationActions: [Deny]');
  for (const expr of ["'two\\nlines'", "'   '", "string(object.spec.nothing)"]) {
    const out = await decide(await setOf({ 'p.yaml': withMessage(expr) }), deployment('shop', 9));
    t.match(out.review.response.status?.message, /\] at most 5 replicas$/, expr);
  }
  const out = await decide(await setOf({ 'p.yaml': withMessage("'replicas: ' + string(object.spec.replicas)") }), deployment('shop', 9));
  t.match(out.review.response.status?.message, /\] replicas: 9$/);
});

t.test('random damage to a policy and its binding is a load error with a position, never a crash', async (t) => {
  const fc = (await import('fast-check')).default;
  const { parse } = await import('yaml');
  const docs = (REPLICAS_VAP + binding('b', 'validationActions: [Deny]\nparamRef: { name: p, namespace: default }')).split(/^---$/m).map((d) => parse(d) as Record<string, unknown>);
  (docs[0]!.spec as Record<string, unknown>).paramKind = { apiVersion: 'v1', kind: 'ConfigMap' };
  // a path into one of the two documents, and the JSON value put there
  const damage = fc.tuple(fc.nat(1), fc.array(fc.constantFrom('spec', 'metadata', 'matchConstraints', 'resourceRules', 'matchResources', 'paramRef', 'paramKind', 'validations', 'validationActions', 'name', 'namespace', 'expression', 0, 1), { minLength: 1, maxLength: 4 }), fc.jsonValue({ maxDepth: 2 }));
  let loaded = 0;
  let refused = 0;
  await fc.assert(fc.asyncProperty(damage, async ([which, path, value]) => {
    const copy = structuredClone(docs);
    let node: unknown = copy[which];
    for (const key of path.slice(0, -1)) node = node && typeof node === 'object' ? (node as Record<string | number, unknown>)[key] : undefined;
    if (!node || typeof node !== 'object') return;
    (node as Record<string | number, unknown>)[path.at(-1)!] = value;
    const result = await load({ 'p.yaml': copy.map((d) => JSON.stringify(d)).join('\n---\n') });
    if (result.set) loaded++;
    else {
      refused++;
      for (const e of result.errors) if (!/p\.yaml:\d+:\d+: /.test(e.message)) throw new Error(`no position: ${e.message}`);
    }
  }), { numRuns: Number(process.env.VAP_DAMAGE_RUNS ?? 400) });
  t.ok(refused > 0, `${refused} refused with positions, ${loaded} still loadable`);
});

t.test('a status reason is looked up among the four, never through the object prototype', async (t) => {
  const { buildResponse } = await import('../../src/admission/index.js');
  for (const reason of ['toString', '__proto__', 'constructor', 'Teapot', undefined]) {
    const r = buildResponse('u', { allowed: false, denials: ['[p] no'], warnings: [], reason }, 'd').response;
    t.match(r.status, { code: 403, reason: 'Forbidden' }, String(reason));
  }
  t.match(buildResponse('u', { allowed: false, denials: ['[p] no'], warnings: [], reason: 'RequestEntityTooLarge' }, 'd').response.status, { code: 413 });
});

t.test('a rule that can never match is warned about where it was written: the policy\'s, or its binding\'s', async (t) => {
  const set = await setOf({ 'p.yaml': REPLICAS_VAP + binding('b', `validationActions: [Deny]
matchResources:
  resourceRules:
    - { apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [statefulset] }
  excludeResourceRules:
    - { apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deploymnets] }`) });
  t.same(set.warnings.map((w) => w.message.replace(/^.*p\.yaml/, 'p.yaml')), [
    'p.yaml:24:83: resource "deploymnets" is not served by group "apps" (did you mean "deployments"?), so this rule never matches it (trustgate knows the groups of Kubernetes 1.34 and Flux; ignore this if your server serves it)',
    'p.yaml:22:83: resource "statefulset" is not served by group "apps" (did you mean "statefulsets"?), so this rule never matches it (trustgate knows the groups of Kubernetes 1.34 and Flux; ignore this if your server serves it)',
  ], 'the binding\'s exclusion comes after the policy\'s one, and is found in the binding');
});
