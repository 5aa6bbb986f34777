// Namespace labels and ConfigMap params come from watch-backed caches of the cluster: a
// change in the cluster changes the next decision, and no API call happens per request.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { eventually } from '../helpers/eventually.js';
import { startFakeApiServer, type FakeApiServer } from '../helpers/fake-apiserver.js';
import { policyDir, policyYaml } from '../helpers/policies.js';
import { startTestServer } from '../helpers/server.js';
import type { ServeConfig } from '../../src/config.js';

/**
 * A fake API server with these collections and trustgate serving these policy files against it,
 * both torn down with the test; ready unless said otherwise (`before` runs before trustgate starts).
 */
async function againstCluster(t: { teardown(fn: () => unknown): void }, seed: Parameters<typeof startFakeApiServer>[1], files: Record<string, string>,
  options: { before?: (api: FakeApiServer) => void; config?: Partial<ServeConfig>; ready?: boolean } = {}) {
  const api = await startFakeApiServer(await mkdtemp(join(tmpdir(), 'trustgate-kube-')), seed);
  t.teardown(() => api.close());
  options.before?.(api);
  const policies = await policyDir(files);
  const server = await startTestServer({ policies: [policies], kubeconfig: api.kubeconfig, ...options.config });
  t.teardown(() => server.close());
  if (options.ready !== false) await eventually(async () => (await server.get('/readyz')).status === 200, 'caches to sync');
  return { api, server, policies };
}

const ns = (name: string, labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels, creationTimestamp: '2026-01-02T03:04:05Z' } });
const cm = (data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'teams', namespace: 'trustgate' }, data });

const policy = policyYaml('known-team', `
match:
  resources:
    - { apiGroups: [""], resources: [pods], operations: [CREATE] }
  namespaceSelector:
    matchLabels: { role: tenant }
params:
  configMap: { namespace: trustgate, name: teams }
validations:
  - expression: "namespaceObject.metadata.creationTimestamp.startsWith('2026-')"
    message: namespace objects reach CEL as plain JSON, timestamps as strings
  - expression: "object.metadata.?labels.?team.orValue('') in params.data.allowed.split(' ')"
    messageExpression: "'team ' + object.metadata.?labels.?team.orValue('(none)') + ' is not in ' + params.data.allowed"
`);

const review = (namespace: string, team: string) => ({
  apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
  request: {
    uid: `u-${namespace}-${team}`, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
    namespace, operation: 'CREATE', userInfo: { username: 'alice' },
    object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: { team } }, spec: { containers: [] } },
  },
});


t.test('namespaceSelector and ConfigMap params follow the cluster through watches', async (t) => {
  const { api, server } = await againstCluster(t, {
    '/api/v1/namespaces': [ns('shop', { role: 'tenant' }), ns('ops', {})],
    '/api/v1/namespaces/trustgate/configmaps': [cm({ allowed: 'web payments' })],
  }, { 'p.yaml': policy });

  const decide = async (namespace: string, team: string) => (await server.post('/validate', review(namespace, team))).json().response;
  t.equal((await decide('shop', 'web')).allowed, true, 'a listed team in a tenant namespace');
  t.match((await decide('shop', 'ghosts')).status.message, /team ghosts is not in web payments/);
  t.equal((await decide('ops', 'ghosts')).allowed, true, 'namespaceSelector leaves non-tenant namespaces alone');
  const before = api.requests.length;

  api.put('/api/v1/namespaces/trustgate/configmaps', cm({ allowed: 'web payments ghosts' }));
  await eventually(async () => (await decide('shop', 'ghosts')).allowed === true, 'the ConfigMap update');
  api.put('/api/v1/namespaces', ns('ops', { role: 'tenant' }));
  await eventually(async () => (await decide('ops', 'intruders')).allowed === false, 'the namespace relabel');
  t.equal(api.requests.slice(before).filter((r) => !r.endsWith('?watch')).length, 0, 'decisions made no list calls');

  api.remove('/api/v1/namespaces/trustgate/configmaps', 'teams');
  await eventually(async () => /params ConfigMap trustgate\/teams not found/.test((await decide('shop', 'web')).status?.message ?? ''), 'the ConfigMap deletion');
});

t.test('watch disconnects and 410 Gone: the caches reconnect and list again, missing nothing', async (t) => {
  const { api, server } = await againstCluster(t, {
    '/api/v1/namespaces': [ns('shop', { role: 'tenant' })],
    '/api/v1/namespaces/trustgate/configmaps': [cm({ allowed: 'web' })],
  }, { 'p.yaml': policy });
  const decide = async (team: string) => (await server.post('/validate', review('shop', team))).json().response;
  t.equal((await decide('payments')).allowed, false);

  const lists = () => api.requests.filter((r) => r === 'GET /api/v1/namespaces/trustgate/configmaps').length;
  const listedBefore = lists();
  // the watch drops, and the next one is told its resourceVersion is gone; meanwhile the ConfigMap changed unseen
  api.expireNextWatch('/api/v1/namespaces/trustgate/configmaps');
  api.putSilently('/api/v1/namespaces/trustgate/configmaps', cm({ allowed: 'web payments' }));
  api.disconnectWatches();
  await eventually(async () => (await decide('payments')).allowed === true, 'the change made while disconnected, seen after a re-list', 20_000);
  t.ok(lists() > listedBefore, 'the 410 made the cache list again');

  // and a plain disconnect: the watch is resumed and later changes still arrive
  api.disconnectWatches();
  api.put('/api/v1/namespaces', ns('shop', {}));
  await eventually(async () => (await decide('ghosts')).allowed === true, 'a relabel after a disconnect', 20_000);
});

t.test('without cluster data, policies that need it fail closed', async (t) => {
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policy })] });
  t.teardown(() => server.close());
  const response = (await server.post('/validate', review('shop', 'web'))).json().response;
  t.equal(response.allowed, false);
  t.match(response.status.message, /\[known-team\] namespace shop is unknown/);
});

// Params from each request's namespace: the ConfigMaps are watched cluster-wide, but no wider than
// the policies read them (by name with a field selector, which RBAC can limit by resourceNames,
// or by label selector), and each request reads its own namespace's.
t.test('params from the namespace of each request follow the cluster through narrowed cluster-wide watches', async (t) => {
  const tenantCm = (namespace: string, name: string, allowed: string, labels: Record<string, string> = {}) =>
    ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels }, data: { allowed } });
  const perNamespace = policy.replace('name: known-team', 'name: own-teams').replace('configMap: { namespace: trustgate, name: teams }', 'configMap: { name: teams }');
  const selected = policy.replace('name: known-team', 'name: selected-teams')
    .replace('configMap: { namespace: trustgate, name: teams }', 'configMap: { selector: { matchExpressions: [{ key: trustgate.dev/teams, operator: Exists }] }, parameterNotFoundAction: Allow }');
  const { api, server } = await againstCluster(t, {
    '/api/v1/namespaces': [ns('shop', { role: 'tenant' }), ns('ops', { role: 'tenant' })],
    '/api/v1/namespaces/shop/configmaps': [tenantCm('shop', 'teams', 'web'), tenantCm('shop', 'extra', 'web', { 'trustgate.dev/teams': 'extra' }), tenantCm('shop', 'unrelated', 'x')],
    '/api/v1/namespaces/ops/configmaps': [tenantCm('ops', 'teams', 'sre')],
  }, { 'a.yaml': perNamespace, 'b.yaml': selected });

  const decide = async (namespace: string, team: string) => (await server.post('/validate', review(namespace, team))).json().response;
  t.equal((await decide('shop', 'web')).allowed, true, "shop's own list, and its selected ConfigMap");
  t.equal((await decide('ops', 'sre')).allowed, true, "ops's own list; no selected ConfigMap in ops, which Allow passes");
  const crossed = await decide('ops', 'web');
  t.equal(crossed.allowed, false);
  t.match(crossed.status.message, /\[own-teams\] team web is not in sre/);

  const cw = api.queries.filter((q) => q.startsWith('GET /api/v1/configmaps'));
  t.ok(cw.some((q) => /fieldSelector=metadata\.name%3Dteams/.test(q) && /watch=true/.test(q)), 'watched by name');
  t.ok(cw.some((q) => /labelSelector=trustgate\.dev%2Fteams/.test(q) && /watch=true/.test(q)), 'watched by label selector');
  t.notOk(api.queries.some((q) => /^GET \/api\/v1\/namespaces\/[^/]+\/configmaps/.test(q)), 'no namespace is watched whole');
  t.ok(cw.every((q) => /fieldSelector|labelSelector/.test(q)), 'never every ConfigMap of the cluster');

  api.put('/api/v1/namespaces/ops/configmaps', tenantCm('ops', 'teams', 'sre web'));
  await eventually(async () => (await decide('ops', 'web')).allowed === true, 'the ConfigMap update in ops');
  api.put('/api/v1/namespaces/ops/configmaps', tenantCm('ops', 'gate', 'sre', { 'trustgate.dev/teams': 'gate' }));
  await eventually(async () => /\[selected-teams\] team web is not in sre/.test((await decide('ops', 'web')).status?.message ?? ''), 'a newly labelled ConfigMap is selected');
  api.remove('/api/v1/namespaces/shop/configmaps', 'teams');
  await eventually(async () => /params ConfigMap shop\/teams not found/.test((await decide('shop', 'web')).status?.message ?? ''), 'the deletion in shop');
  t.equal((await decide('ops', 'sre')).allowed, true, 'ops is untouched by the change in shop');
});

// A ConfigMap that cannot be read is not a ConfigMap that does not exist: parameterNotFoundAction
// Allow passes a missing one, but a cache that has not listed (RBAC lacking, API down) is an
// error its failurePolicy decides. And a cache a reload adds later cannot unready the webhook.
t.test('params that cannot be read are an error, never "not found"; a later cache that cannot list fails its policy, not readiness', async (t) => {
  const optional = policy.replace('name: known-team', 'name: optional-teams').replace('configMap: { namespace: trustgate, name: teams }', 'configMap: { name: teams, parameterNotFoundAction: Allow }');
  const { api, server, policies } = await againstCluster(t, {
    '/api/v1/namespaces': [ns('shop', { role: 'tenant' })],
    '/api/v1/namespaces/shop/configmaps': [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'teams', namespace: 'shop' }, data: { allowed: 'web' } }],
  }, { 'a.yaml': optional }, { before: (api) => api.forbid('/api/v1/configmaps'), ready: false });
  const decide = async (team: string) => (await server.post('/validate', review('shop', team))).json().response;

  await new Promise((r) => setTimeout(r, 300));
  t.equal((await server.get('/readyz')).status, 503, 'not ready while the cache cannot list');
  const unreadable = await decide('ghosts');
  t.equal(unreadable.allowed, false, 'failurePolicy Fail: an unreadable ConfigMap does not pass as a missing one would');
  t.match(unreadable.status.message, /\[optional-teams\] ConfigMap shop\/teams cannot be read yet: its cluster cache has not listed them/);

  const metrics = async () => (await server.get('/metrics')).text;
  t.match(await metrics(), /^trustgate_cluster_cache_synced\{cache="configmaps name:teams"\} 0$/m, 'what an alert can watch for');
  t.match(await metrics(), /^trustgate_cluster_cache_failures_total\{cache="configmaps name:teams"\} [1-9]/m);
  t.match(await metrics(), /^trustgate_cluster_cache_synced\{cache="namespaces"\} 1$/m);

  api.forbid('/api/v1/configmaps', false);
  await eventually(async () => (await server.get('/readyz')).status === 200, 'the cache to list once allowed', 20_000);
  t.match(await metrics(), /^trustgate_cluster_cache_synced\{cache="configmaps name:teams"\} 1$/m);
  t.match((await decide('ghosts')).status?.message, /team ghosts is not in web/);

  // a reload adds a policy whose ConfigMaps the (unchanged) RBAC does not let trustgate read
  api.forbid('/api/v1/configmaps');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(policies, 'b.yaml'), policy.replace('name: known-team', 'name: selected-teams')
    .replace('configMap: { namespace: trustgate, name: teams }', 'configMap: { selector: { matchLabels: { teams: "yes" } }, parameterNotFoundAction: Allow }'));
  await eventually(async () => /\[selected-teams\] the ConfigMap objects in shop labelled teams=yes cannot be read yet/.test((await decide('web')).status?.message ?? ''), 'the reload');
  t.equal((await server.get('/readyz')).status, 200, 'still ready: only the policy that reads the new cache fails');
  t.match(await metrics(), /^trustgate_cluster_cache_synced\{cache="configmaps selector:teams=yes"\} 0$/m, 'and /metrics says which cache');
  t.notMatch((await decide('web')).status.message, /optional-teams/, 'the policy with a listed cache decides as before');
});

// A ValidatingAdmissionPolicy whose params are a custom resource (the documentation's
// ReplicaLimit): found by discovery once its CRD is installed, then watched like the rest.
t.test('params of a custom kind: discovered when the cluster serves it, then watched', async (t) => {
  const limit = (max: number) => ({ apiVersion: 'rules.example.com/v1', kind: 'ReplicaLimit', metadata: { name: 'standard' }, maxReplicas: max });
  const vap = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: replicas }
spec:
  paramKind: { apiVersion: rules.example.com/v1, kind: ReplicaLimit }
  matchConstraints:
    resourceRules: [{ apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments] }]
  validations:
    - expression: object.spec.replicas <= params.maxReplicas
      messageExpression: "'at most ' + string(params.maxReplicas) + ' replicas'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: standard }
spec:
  policyName: replicas
  validationActions: [Deny]
  paramRef: { name: standard, parameterNotFoundAction: Deny }
`;
  const { api, server } = await againstCluster(t, {
    '/api/v1/namespaces': [ns('shop', {})],
    '/apis/rules.example.com/v1/replicalimits': [limit(3)],
  }, { 'replicas.yaml': vap }, { ready: false });
  const decide = async (replicas: number) => (await server.post('/validate', {
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid: `u-${replicas}-${Math.random()}`, kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      namespace: 'shop', operation: 'CREATE', userInfo: { username: 'alice' },
      object: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' }, spec: { replicas } },
    },
  })).json().response;

  await new Promise((r) => setTimeout(r, 300));
  t.equal((await server.get('/readyz')).status, 503, 'not ready while the kind is not served');
  t.match((await decide(1)).status.message, /\[replicas\/standard\] ReplicaLimit \(rules\.example\.com\/v1\) params cannot be read yet/, 'an error for failurePolicy, never a pass');

  api.serveResource('rules.example.com/v1', { name: 'replicalimits', kind: 'ReplicaLimit', namespaced: false });
  await eventually(async () => (await server.get('/readyz')).status === 200, 'discovery once the CRD is installed', 20_000);
  t.equal((await decide(3)).allowed, true);
  t.match((await decide(4)).status.message, /\[replicas\/standard\] at most 3 replicas/);
  api.put('/apis/rules.example.com/v1/replicalimits', limit(5));
  await eventually(async () => (await decide(4)).allowed === true, 'the ReplicaLimit update');
  t.ok(api.queries.some((q) => q.startsWith('GET /apis/rules.example.com/v1/replicalimits?') && q.includes('watch=true')), 'watched cluster-wide at the discovered plural');

  // the CRD is deleted: the last ReplicaLimit must not go on deciding
  api.dropResource('rules.example.com/v1', 'replicalimits');
  api.disconnectWatches();
  await eventually(async () => /ReplicaLimit standard cannot be read yet/.test((await decide(4)).status?.message ?? ''), 'the removal to be noticed', 20_000);
  t.equal((await server.get('/readyz')).status, 200, 'only the policies reading it fail');
});

t.test('a reload that no longer reads a ConfigMap stops its watch after the grace period; one read again is kept', async (t) => {
  const byName = (name: string) => policy.replace('configMap: { namespace: trustgate, name: teams }', `configMap: { name: ${name} }`);
  const { api, server, policies } = await againstCluster(t, {
    '/api/v1/namespaces': [ns('shop', { role: 'tenant' })],
    '/api/v1/namespaces/shop/configmaps': [
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'teams', namespace: 'shop' }, data: { allowed: 'web' } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'crew', namespace: 'shop' }, data: { allowed: 'sre' } },
    ],
  }, { 'p.yaml': byName('teams') }, { config: { deadlineMs: 300 } }); // a short deadline: a short grace period (twice the deadline)
  const watching = (name: string) => api.openWatches().some((q) => q.includes(`fieldSelector=metadata.name%3D${name}`));
  await eventually(async () => watching('teams'), 'the watch of teams');

  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(policies, 'p.yaml'), byName('crew'));
  await eventually(async () => /team web is not in sre/.test((await server.post('/validate', review('shop', 'web'))).json().response.status?.message ?? ''), 'the reload');
  await eventually(async () => !watching('teams'), 'the unread watch to stop');
  t.ok(watching('crew'), 'the one now read keeps watching');
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(watching('teams'), 'and it is not started again');
  t.equal((await server.get('/readyz')).status, 200);
});

// Flux or kubectl applies a Namespace and its workloads together: the workloads' reviews can
// arrive before the Namespace's watch event. One GET then, instead of NAMESPACE_UNKNOWN.
t.test('a namespace the watch has not delivered yet is looked up once, not judged unknown', async (t) => {
  const { api, server } = await againstCluster(t, {
    '/api/v1/namespaces': [ns('shop', { role: 'tenant' })],
    '/api/v1/namespaces/trustgate/configmaps': [cm({ allowed: 'web' })],
  }, { 'p.yaml': policy });
  const decide = async (namespace: string, team: string) => (await server.post('/validate', review(namespace, team))).json().response;

  api.putSilently('/api/v1/namespaces', ns('fresh', { role: 'tenant' }));
  const gets = () => api.requests.filter((r) => r === 'GET /api/v1/namespaces/fresh').length;
  const [a, b] = await Promise.all([decide('fresh', 'ghosts'), decide('fresh', 'web')]);
  t.match(a.status?.message, /\[known-team\] team ghosts is not in web/, 'judged by its labels, not refused as unknown');
  t.equal(b.allowed, true);
  t.equal(gets(), 1, 'concurrent requests shared one look-up');
  t.equal((await decide('fresh', 'web')).allowed, true);
  t.equal(gets(), 1, 'and it is cached');

  const missing = await decide('nowhere', 'web');
  t.match(missing.status?.message, /namespace nowhere is unknown/, 'a namespace that is not there is still unknown: failurePolicy decides');
  await decide('nowhere', 'web');
  t.equal(api.requests.filter((r) => r === 'GET /api/v1/namespaces/nowhere').length, 1, 'and not asked for again at once');
});
