// Which policies a request touches: resource rules, subresources, kinds, namespaces, selectors.
import t from 'tap';
import type { AdmissionRequest } from '../../src/admission/index.js';
import { loadPolicySet, EvaluationContext, evaluatePolicy } from '../../src/policy/index.js';
import { StaticCluster } from '../../src/kube/index.js';
import { policyDir, policyYaml } from '../helpers/policies.js';

function request(over: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
    operation: 'CREATE', namespace: 'shop', userInfo: {}, object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: { app: 'web' } } }, ...over,
  };
}

async function setOf(policies: Record<string, string>) {
  const docs = Object.entries(policies).map(([name, spec]) => policyYaml(name, `${spec}\nvalidations:\n  - expression: "true"`));
  const result = await loadPolicySet([await policyDir({ 'p.yaml': docs.join('---\n') })]);
  if (!result.set) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.set;
}

const names = (set: Awaited<ReturnType<typeof setOf>>, req: AdmissionRequest) => set.index.candidates(req).map((p) => p.name);

t.test('resource rules: groups, versions, operations, wildcards and subresources', async (t) => {
  const set = await setOf({
    pods: 'match:\n  resources:\n    - { apiGroups: [""], resources: [pods], operations: [CREATE] }',
    'all-core': 'match:\n  resources:\n    - { apiGroups: [""], resources: ["*"], operations: ["*"] }',
    everything: 'match:\n  resources:\n    - { apiGroups: ["*"], resources: ["*/*"], operations: ["*"] }',
    ephemeral: 'match:\n  resources:\n    - { apiGroups: [""], resources: [pods/ephemeralcontainers], operations: [UPDATE] }',
    'any-scale': 'match:\n  resources:\n    - { apiGroups: ["*"], resources: ["*/scale"], operations: [UPDATE] }',
    'v2-only': 'match:\n  resources:\n    - { apiGroups: [""], apiVersions: [v2], resources: [pods], operations: [CREATE] }',
    'by-kind': 'match:\n  resources:\n    - { apiGroups: ["*"], kinds: [Pod], operations: [CREATE, UPDATE] }',
    deployments: 'match:\n  resources:\n    - { apiGroups: [apps], resources: [deployments], operations: [CREATE] }',
  });
  t.same(names(set, request()), ['pods', 'all-core', 'everything', 'by-kind']);
  t.same(names(set, request({ operation: 'UPDATE', subResource: 'ephemeralcontainers' })), ['everything', 'ephemeral'], 'a pods rule does not cover a subresource');
  t.same(names(set, request({ operation: 'UPDATE', resource: { group: 'apps', version: 'v1', resource: 'deployments' }, kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' }, subResource: 'scale' })), ['everything', 'any-scale']);
  t.same(names(set, request({ operation: 'DELETE' })), ['all-core', 'everything']);
});

t.test('the per-shape candidate cache answers every shape as the rules do, and cannot be aliased', async (t) => {
  const set = await setOf({
    pods: 'match:\n  resources:\n    - { apiGroups: [""], resources: [pods], operations: [CREATE] }',
    namespaced: 'match:\n  resources:\n    - { apiGroups: ["*"], resources: ["*"], operations: ["*"], scope: Namespaced }',
  });
  // a crafted review whose fields hold separators first, then the real shape it could collide with
  t.same(names(set, request({ resource: { group: '', version: 'v1|pods', resource: '' }, subResource: '' })), ['namespaced']);
  t.same(names(set, request({ resource: { group: '', version: 'v1', resource: 'pods|' } })), ['namespaced']);
  t.same(names(set, request()), ['pods', 'namespaced'], 'the real shape still gets its own answer');
  t.same(names(set, request({ namespace: '' })), ['pods'], 'namespace presence is part of the shape');
  t.same(names(set, request()), ['pods', 'namespaced'], 'and a cached answer is the same answer');
  for (let i = 0; i < 1100; i++) names(set, request({ kind: { group: '', version: 'v1', kind: `Junk${i}` } }));
  t.same(names(set, request()), ['pods', 'namespaced'], 'a flood of junk shapes only resets the cache');
});

t.test('namespaces, excludeNamespaces, namespaceSelector, objectSelector', async (t) => {
  const set = await setOf({
    only: 'match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }]\n  namespaces: [shop]',
    exclude: 'match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }]\n  excludeNamespaces: [shop]',
    tenants: 'match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }]\n  namespaceSelector:\n    matchLabels: { role: tenant }',
    'not-prod': 'match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }]\n  namespaceSelector:\n    matchExpressions: [{ key: env, operator: NotIn, values: [prod] }]',
    web: 'match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }]\n  objectSelector:\n    matchExpressions: [{ key: app, operator: In, values: [web] }]',
  });
  const namespaces = StaticCluster.fromLabels({ shop: { role: 'tenant', env: 'prod' }, dev: { env: 'dev' } });
  const applied = (req: AdmissionRequest) => set.index.candidates(req).map((p) => [p.name, evaluatePolicy(p, new EvaluationContext(req, Date.now() + 1000, namespaces))?.result ?? 'skip']);
  t.same(applied(request()), [['only', 'pass'], ['exclude', 'skip'], ['tenants', 'pass'], ['not-prod', 'skip'], ['web', 'pass']]);
  t.same(applied(request({ namespace: 'dev', object: { metadata: { name: 'x' } } })), [['only', 'skip'], ['exclude', 'pass'], ['tenants', 'skip'], ['not-prod', 'pass'], ['web', 'skip']]);
  const unknown = applied(request({ namespace: 'ghost' }));
  t.same(unknown.find(([n]) => n === 'tenants'), ['tenants', 'error'], 'an unknown namespace cannot be judged by a selector: an error, so failurePolicy decides');
});

t.test('UPDATEs of objects being deleted are skipped unless the policy asks for them', async (t) => {
  const set = await setOf({
    normal: 'match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [UPDATE] }]',
    strict: 'match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [UPDATE] }]\n  includeTerminating: true',
  });
  const terminating = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [] } };
  const req = request({ operation: 'UPDATE', object: terminating, oldObject: { ...terminating, metadata: { ...terminating.metadata, finalizers: ['x'] } } });
  const results = set.index.candidates(req).map((p) => evaluatePolicy(p, new EvaluationContext(req, Date.now() + 1000))?.name);
  t.same(results, [undefined, 'strict']);
});

t.test('the index leaves unrelated policies untouched', async (t) => {
  const many: Record<string, string> = {};
  for (let i = 0; i < 50; i++) many[`flux-${i}`] = 'match:\n  resources: [{ apiGroups: [source.toolkit.fluxcd.io], resources: [gitrepositories], operations: [CREATE] }]';
  many.pods = 'match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }]';
  const set = await setOf(many);
  t.same(names(set, request()), ['pods']);
});

t.test('resourceNames and excludeResources narrow a rule past the index, which knows only request shapes', async (t) => {
  const set = await setOf({
    named: 'match:\n  resources:\n    - { apiGroups: [""], resources: [pods], resourceNames: [p, q], operations: [CREATE] }',
    'all-but-debug': 'match:\n  resources:\n    - { apiGroups: [""], resources: ["*"], operations: ["*"] }\n  excludeResources:\n    - { apiGroups: [""], resources: [pods], operations: [CREATE], resourceNames: [debug] }',
  });
  const applied = (req: AdmissionRequest) => set.index.candidates(req).filter((p) => evaluatePolicy(p, new EvaluationContext(req, Date.now() + 1000))).map((p) => p.name);
  t.same(applied(request({ name: 'p' })), ['named', 'all-but-debug']);
  t.same(applied(request({ name: 'other' })), ['all-but-debug'], 'a name the rule does not list; the same shape as before');
  t.same(applied(request({ name: undefined })), ['all-but-debug'], 'an object with generateName has no name yet');
  t.same(applied(request({ name: 'debug' })), [], 'excluded by name');
  t.same(applied(request({ name: 'debug', operation: 'UPDATE' })), ['all-but-debug'], 'the exclusion names CREATE only');
});
