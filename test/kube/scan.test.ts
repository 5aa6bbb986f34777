// trustgate scan against a cluster: the objects of the resources some policy matches, found by
// discovery and listed in pages; namespaceSelector reading the cluster's Namespaces; a resource
// that cannot be listed makes the scan incomplete, never silently clean.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiReader, listObjects, liveObjects, resourcesToScan, servedResources } from '../../src/kube/live-objects.js';
import { loadKubeConfig } from '../../src/kube/index.js';
import { loadPolicySet } from '../../src/policy/index.js';
import { trustgate } from '../helpers/cli.js';
import { startFakeApiServer } from '../helpers/fake-apiserver.js';
import { policyDir, policyYaml, PROD_REPLICAS, TEAM_LABEL_WARN } from '../helpers/policies.js';

const policies = () => policyDir({ 'p.yaml': [TEAM_LABEL_WARN, PROD_REPLICAS].join('---\n') });

const ns = (name: string, labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const pod = (name: string, namespace: string, labels: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels, creationTimestamp: '2026-01-02T03:04:05Z' }, spec: { containers: [{ name: 'c', image: 'x:1' }] } });
const deployment = (name: string, namespace: string, replicas: number) => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace, labels: { team: 'web' } }, spec: { replicas, template: { spec: { containers: [{ name: 'c', image: 'x:1' }] } } } });

async function cluster(t: { teardown(fn: () => unknown): void }) {
  const api = await startFakeApiServer(await mkdtemp(join(tmpdir(), 'trustgate-scan-')), {
    '/api/v1/namespaces': [ns('shop', { env: 'prod' }), ns('dev', {})],
    '/api/v1/namespaces/shop/pods': [pod('debug', 'shop'), pod('web-1', 'shop', { team: 'web' })],
    '/api/v1/namespaces/dev/pods': [pod('try', 'dev')],
    '/apis/apps/v1/deployments': [deployment('web', 'shop', 1), deployment('api', 'dev', 1)],
    '/api/v1/namespaces/shop/secrets': [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db', namespace: 'shop' } }],
  });
  t.teardown(() => api.close());
  for (const [name, kind, namespaced] of [['namespaces', 'Namespace', false], ['pods', 'Pod', true], ['configmaps', 'ConfigMap', true], ['secrets', 'Secret', true], ['pods/status', 'Pod', true]] as const) {
    api.serveResource('v1', { name, kind, namespaced });
  }
  api.serveResource('apps/v1', { name: 'deployments', kind: 'Deployment', namespaced: true });
  return api;
}

t.test('scan --kubeconfig judges the objects of the resources the policies match, and no others', async (t) => {
  const api = await cluster(t);
  const out = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig);
  t.equal(out.code, 1, out.stderr);
  t.match(out.stdout, /^cluster: DENY apps\/v1 Deployment shop\/web\n {4}\[prod-replicas\] enforce fail VALIDATION_FAILED: prod runs at least two replicas$/m, 'the cluster\'s Namespace labels feed namespaceSelector');
  t.match(out.stdout, /^cluster: WARN v1 Pod shop\/debug /m);
  t.match(out.stdout, /^cluster: WARN v1 Pod dev\/try /m);
  t.notMatch(out.stdout, /dev\/api|web-1/, 'what passes is not listed');
  t.match(out.stderr, /read from the cluster: 2 resource\(s\) the policies match/);
  t.match(out.stderr, /scanned 5 object\(s\) against 2 policies: 2 allowed, 2 admitted but failing warn or audit policies, 1 denied/);
  t.notOk(api.requests.some((r) => r.includes('secrets')), 'no policy matches Secrets: they are not read');
});

t.test('a resource the scan cannot list makes it incomplete (exit 2), the rest still judged', async (t) => {
  const api = await cluster(t);
  api.forbid('/apis/apps/v1/deployments');
  const out = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig);
  t.equal(out.code, 2);
  t.match(out.stderr, /cannot list apps\/v1 deployments: GET \/apis\/apps\/v1\/deployments: HTTP 403/);
  t.match(out.stderr, /scanned 3 object\(s\) .*; incomplete: 1 resource\(s\) not listed/);
});

t.test('manifests judged against the cluster: its Namespaces decide namespaceSelector', async (t) => {
  const api = await cluster(t);
  const dir = t.testdir({ 'web.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: new, namespace: shop, labels: { team: web } }\nspec: { replicas: 1 }\n' });
  const out = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig, dir);
  t.equal(out.code, 1);
  t.match(out.stdout, /web\.yaml:1: DENY apps\/v1 Deployment shop\/new/);
  t.match(out.stderr, /scanned 1 object\(s\)/);
  const both = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig, '--cluster-file', join(dir, 'web.yaml'));
  t.equal(both.code, 2);
  t.match(both.stderr, /--cluster-file stands in for a cluster/);
});

t.test('discovery: preferred versions, no subresources, lists read page by page with raw timestamps', async (t) => {
  const api = await cluster(t);
  const reader = ApiReader.of(loadKubeConfig({ kubeconfig: api.kubeconfig }));
  const { resources: served, failures } = await servedResources(reader);
  t.same(failures, []);
  t.same(served.map((r) => `${r.group}/${r.version}/${r.resource}`), ['/v1/namespaces', '/v1/pods', '/v1/configmaps', '/v1/secrets', 'apps/v1/deployments']);
  const { set } = await loadPolicySet([await policies()]);
  t.same(resourcesToScan(served, set!).map((r) => r.resource), ['pods', 'deployments']);
  const pods = [];
  for await (const o of listObjects(reader, served[1]!, 2)) pods.push(o);
  t.equal(pods.length, 3);
  t.same(pods[0], { ...pod('debug', 'shop'), metadata: { ...pod('debug', 'shop').metadata, resourceVersion: pods[0]!.metadata!.resourceVersion } }, 'the wire form: creationTimestamp stays a string');
  t.ok(api.queries.some((q) => /pods\?limit=2&continue=2/.test(q)), 'the second page asked with the continue token');

  // a scan streams: the first object is judged before the second page is asked for
  const before = api.queries.length;
  const live = await liveObjects(loadKubeConfig({ kubeconfig: api.kubeconfig }), set!, 2);
  const iterator = live.objects[Symbol.asyncIterator]();
  t.match((await iterator.next()).value, { where: 'cluster', object: { kind: 'Pod' }, served: { resource: 'pods', namespaced: true } });
  const lists = api.queries.slice(before).filter((q) => /\/pods\?/.test(q));
  t.same(lists, ['GET /api/v1/pods?limit=2'], 'one page asked so far');
  await iterator.return?.();
});

t.test('objects read from the cluster carry their true plural and scope, not guesses from the kind', async (t) => {
  const api = await startFakeApiServer(await mkdtemp(join(tmpdir(), 'trustgate-scan-')), {
    '/api/v1/namespaces': [],
    '/apis/example.com/v1/clusterwidgetz': [{ apiVersion: 'example.com/v1', kind: 'ClusterWidget', metadata: { name: 'w1' }, spec: { size: 9 } }],
  });
  t.teardown(() => api.close());
  api.serveResource('example.com/v1', { name: 'clusterwidgetz', kind: 'ClusterWidget', namespaced: false });
  const dir = await policyDir({ 'p.yaml': policyYaml('small-widgets', `mode: enforce
match:
  resources: [{ apiGroups: [example.com], resources: [clusterwidgetz], operations: [CREATE], scope: Cluster }]
validations:
  - expression: "object.spec.size < 5"
    message: widgets stay small`) });
  const out = await trustgate('scan', '--policies', dir, '--kubeconfig', api.kubeconfig, '--format', 'json');
  // the core group is not served here: a discovery failure, named, and the scan incomplete
  t.equal(out.code, 2);
  t.match(out.stderr, /cannot list v1 \(discovery\): GET \/api\/v1: HTTP 404\n/);
  t.match(out.stderr, /incomplete: 1 resource\(s\) not listed/);
  const [finding] = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.match(finding, { kind: 'ClusterWidget', name: 'w1', verdict: 'deny', policies: [{ name: 'small-widgets', messages: ['widgets stay small'] }] });
  t.notOk('namespace' in finding, 'cluster-scoped: no namespace, whatever the kind is called');
});

t.test('manifests judged against a cluster take the plural it serves their kind under', async (t) => {
  const api = await startFakeApiServer(await mkdtemp(join(tmpdir(), 'trustgate-scan-')), { '/api/v1/namespaces': [ns('shop', {})] });
  t.teardown(() => api.close());
  api.serveResource('v1', { name: 'namespaces', kind: 'Namespace', namespaced: false });
  api.serveResource('example.com/v1', { name: 'clusterwidgetz', kind: 'ClusterWidget', namespaced: false });
  const dir = await policyDir({ 'p.yaml': policyYaml('small-widgets', `mode: enforce
match:
  resources: [{ apiGroups: [example.com], resources: [clusterwidgetz], operations: [CREATE] }]
validations:
  - expression: "object.spec.size < 5"
    message: widgets stay small`) });
  const manifests = t.testdir({ 'w.yaml': 'apiVersion: example.com/v1\nkind: ClusterWidget\nmetadata: { name: w2 }\nspec: { size: 7 }\n' });
  const offline = await trustgate('scan', '--policies', dir, manifests);
  t.equal(offline.code, 0, 'offline, the plural is guessed (clusterwidgets) and no rule matches it');
  const against = await trustgate('scan', '--policies', dir, '--kubeconfig', api.kubeconfig, '--format', 'json', manifests);
  t.equal(against.code, 1, against.stderr);
  t.match(JSON.parse(against.stdout), { name: 'w2', verdict: 'deny', policies: [{ name: 'small-widgets' }] });
  t.notOk('namespace' in JSON.parse(against.stdout), 'cluster-scoped, as discovery says');
});

t.test('scan --policy-reports writes the Policy Reports into the cluster, replacing the last scan\'s and deleting its stale ones', async (t) => {
  const api = await cluster(t);
  const reports = '/apis/wgpolicyk8s.io/v1alpha2';
  api.serveResource('wgpolicyk8s.io/v1alpha2', { name: 'policyreports', kind: 'PolicyReport', namespaced: true });
  api.serveResource('wgpolicyk8s.io/v1alpha2', { name: 'clusterpolicyreports', kind: 'ClusterPolicyReport', namespaced: false });
  const report = (namespace: string, name: string, labels: Record<string, string>) => ({ apiVersion: 'wgpolicyk8s.io/v1alpha2', kind: 'PolicyReport', metadata: { name, namespace, labels }, results: [] });
  const ours = { 'app.kubernetes.io/managed-by': 'trustgate', 'trustgate.dev/report': 'scan' };
  api.put(`${reports}/namespaces/gone/policyreports`, report('gone', 'trustgate-scan', ours));
  api.put(`${reports}/namespaces/shop/policyreports`, report('shop', 'trustgate-scan-2', ours));
  api.put(`${reports}/namespaces/shop/policyreports`, report('shop', 'kyverno-report', { 'app.kubernetes.io/managed-by': 'kyverno' }));
  const first = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig, '--policy-reports');
  t.equal(first.code, 1, 'the denied Deployment still fails the scan');
  t.match(first.stderr, /policy reports: 2 written, 2 stale one\(s\) deleted/);
  const shop = api.get(`${reports}/namespaces/shop/policyreports`, 'trustgate-scan');
  t.match(shop, { metadata: { labels: { 'app.kubernetes.io/managed-by': 'trustgate' } }, summary: { pass: 2, fail: 2 } });
  t.match(shop.results.find((r: { policy: string; result: string }) => r.result === 'fail' && r.policy === 'prod-replicas'), { resources: [{ kind: 'Deployment', name: 'web', namespace: 'shop' }] });
  t.ok(api.get(`${reports}/namespaces/dev/policyreports`, 'trustgate-scan'));
  t.notOk(api.get(`${reports}/namespaces/gone/policyreports`, 'trustgate-scan'), 'a namespace with nothing judged any more loses its old report');
  t.notOk(api.get(`${reports}/namespaces/shop/policyreports`, 'trustgate-scan-2'), 'and one whose results fit in fewer reports its extra one');
  t.ok(api.get(`${reports}/namespaces/shop/policyreports`, 'kyverno-report'), 'another engine\'s report is left alone');
  // the next scan replaces them in place
  const second = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig, '--policy-reports');
  t.match(second.stderr, /policy reports: 2 written, 0 stale one\(s\) deleted/);
  t.ok(api.requests.includes(`PUT ${reports}/namespaces/shop/policyreports/trustgate-scan`), 'replaced, not created twice');
});

t.test('scan --policy-reports --report-api openreports.io writes openreports.io Reports instead', async (t) => {
  const api = await cluster(t);
  api.serveResource('openreports.io/v1alpha1', { name: 'reports', kind: 'Report', namespaced: true });
  api.serveResource('openreports.io/v1alpha1', { name: 'clusterreports', kind: 'ClusterReport', namespaced: false });
  const out = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig, '--policy-reports', '--report-api', 'openreports.io');
  t.match(out.stderr, /policy reports: 2 written, 0 stale one\(s\) deleted/);
  t.match(api.get('/apis/openreports.io/v1alpha1/namespaces/shop/reports', 'trustgate-scan'), { apiVersion: 'openreports.io/v1alpha1', kind: 'Report', summary: { fail: 2 } });
  const bad = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig, '--report-api', 'openreports.io');
  t.match(bad.stderr, /--report-api goes with --format policyreport or --policy-reports/);
  const unknown = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig, '--policy-reports', '--report-api', 'reports.x-k8s.io');
  t.match(unknown.stderr, /--report-api is wgpolicyk8s\.io or openreports\.io, not "reports\.x-k8s\.io"/);
});

t.test('scan --policy-reports says what is missing: the CRD, or a cluster to scan', async (t) => {
  const api = await cluster(t);
  const out = await trustgate('scan', '--policies', await policies(), '--kubeconfig', api.kubeconfig, '--policy-reports');
  t.equal(out.code, 2);
  t.match(out.stderr, /policy reports: cannot write PolicyReport dev\/trustgate-scan: .*is the wgpolicyk8s\.io CRD installed/);
  const usage = await trustgate('scan', '--policies', await policies(), '--policy-reports', '.');
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--policy-reports writes the reports of a scan of the cluster's objects: give --kubeconfig or --in-cluster and no PATH/);
});
