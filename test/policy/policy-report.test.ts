// `trustgate scan --format policyreport`: findings as wgpolicyk8s.io/v1alpha2 Policy Reports, as
// the CRD (Kyverno's config/crds/policyreport/wgpolicyk8s.io_policyreports.yaml, v1alpha2)
// defines them: the schema below holds the fields trustgate writes, with their types and enums;
// the CRD is structural, so a field it does not know would be dropped silently by the API server:
// here it fails the test instead.
import { Ajv } from 'ajv';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { StaticCluster } from '../../src/kube/index.js';
import { loadPolicySet, policyReports, scanEach, type ScanFinding } from '../../src/policy/index.js';
import { trustgate } from '../helpers/cli.js';
import { POD_RULE, policyDir, policyYaml } from '../helpers/policies.js';

const objectReference = { type: 'object', properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, name: { type: 'string' }, namespace: { type: 'string' }, uid: { type: 'string' } }, additionalProperties: false };
const REPORT_SCHEMA = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata'],
  properties: {
    apiVersion: { const: 'wgpolicyk8s.io/v1alpha2' },
    kind: { enum: ['PolicyReport', 'ClusterPolicyReport'] },
    metadata: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, namespace: { type: 'string' }, labels: { type: 'object', additionalProperties: { type: 'string' } } }, additionalProperties: false },
    summary: { type: 'object', properties: Object.fromEntries(['pass', 'fail', 'warn', 'error', 'skip'].map((k) => [k, { type: 'integer' }])), additionalProperties: false },
    results: {
      type: 'array',
      items: {
        type: 'object',
        required: ['policy'],
        properties: {
          source: { type: 'string' }, policy: { type: 'string' }, rule: { type: 'string' }, category: { type: 'string' }, message: { type: 'string' },
          result: { enum: ['pass', 'fail', 'warn', 'error', 'skip'] },
          severity: { enum: ['critical', 'high', 'low', 'medium', 'info'] },
          scored: { type: 'boolean' },
          properties: { type: 'object', additionalProperties: { type: 'string' } },
          timestamp: { type: 'object', required: ['nanos', 'seconds'], properties: { nanos: { type: 'integer', minimum: 0, maximum: 999_999_999 }, seconds: { type: 'integer' } }, additionalProperties: false },
          resources: { type: 'array', items: objectReference },
        },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
};
const validReport = new Ajv({ allErrors: true }).compile(REPORT_SCHEMA);

const finding = (over: Partial<ScanFinding>): ScanFinding => ({ where: 'x.yaml:1', apiVersion: 'v1', kind: 'Pod', name: 'web', namespace: 'shop', verdict: 'allow', passed: [], policies: [], ...over });

t.test('findings become one PolicyReport per namespace and one ClusterPolicyReport, with Kyverno\'s result words', async (t) => {
  const time = new Date('2026-12-02T10:00:00.500Z');
  const reports = policyReports([
    finding({ name: 'web', passed: ['registries'], verdict: 'deny', file: 'pods.yaml', line: 3, policies: [{ name: 'no-latest', mode: 'enforce', result: 'fail', code: 'VALIDATION_FAILED', messages: ['uses latest', 'and again'] }] }),
    finding({ name: 'api', namespace: 'payments', uid: '6a0c-uid', verdict: 'warn', passed: [], policies: [{ name: 'team-label', mode: 'warn', result: 'fail', messages: ['needs a team label'] }] }),
    finding({ name: 'batch', namespace: 'payments', verdict: 'warn', passed: [], policies: [{ name: 'no-latest', mode: 'enforce', result: 'excepted', messages: ['uses latest (excepted by legacy until 2027-01-01)'], exceptions: [{ name: 'legacy', expires: '2027-01-01', ticket: 'SEC-1' }] }] }),
    finding({ name: 'broken', verdict: 'deny', passed: [], policies: [{ name: 'signed-images', mode: 'enforce', result: 'error', code: 'REGISTRY_UNAVAILABLE', messages: ['registry down'] }] }),
    finding({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', name: 'admin', namespace: undefined, passed: ['no-wildcards'] }),
    finding({ apiVersion: 'v1', kind: 'Namespace', name: 'quiet', namespace: undefined, passed: [], policies: [] }),
  ], { time });
  for (const r of reports) t.ok(validReport(r), `${String(r.kind)} ${JSON.stringify(validReport.errors)}`);
  // the schema check has teeth: a result word outside the CRD's enum, a property that is no string, a field it does not know
  const [first] = reports as { results: Record<string, unknown>[] }[];
  t.notOk(validReport({ ...first, results: [{ ...first!.results[0], result: 'denied' }] }), 'an unknown result word');
  t.notOk(validReport({ ...first, results: [{ ...first!.results[0], properties: { count: 3 } }] }), 'a property that is no string');
  t.notOk(validReport({ ...first, results: [{ ...first!.results[0], decisionId: 'x' }] }), 'a field the CRD would prune');
  t.same(reports.map((r) => [r.kind, (r.metadata as { namespace?: string }).namespace, (r.metadata as { name: string }).name]), [
    ['PolicyReport', 'payments', 'trustgate-scan'], ['PolicyReport', 'shop', 'trustgate-scan'], ['ClusterPolicyReport', undefined, 'trustgate-scan'],
  ]);
  const [payments, shop, cluster] = reports as { summary: object; results: Record<string, unknown>[] }[];
  t.same(shop!.summary, { pass: 1, fail: 1, warn: 0, error: 1, skip: 0 });
  t.match(shop!.results, [
    { policy: 'registries', result: 'pass', source: 'trustgate', scored: true, timestamp: { seconds: 1796205600, nanos: 0 }, resources: [{ apiVersion: 'v1', kind: 'Pod', name: 'web', namespace: 'shop' }] },
    { policy: 'no-latest', result: 'fail', message: 'uses latest; and again', properties: { mode: 'enforce', code: 'VALIDATION_FAILED', manifest: 'pods.yaml:3' } },
    { policy: 'signed-images', result: 'error', message: 'registry down', properties: { code: 'REGISTRY_UNAVAILABLE' } },
  ]);
  t.same(payments!.summary, { pass: 0, fail: 1, warn: 0, error: 0, skip: 1 }, 'a warn-mode failure is a fail (its mode is a property); an excepted one a skip');
  t.match(payments!.results, [
    { policy: 'team-label', result: 'fail', properties: { mode: 'warn' }, resources: [{ uid: '6a0c-uid' }] },
    { policy: 'no-latest', result: 'skip', properties: { exceptions: 'legacy (until 2027-01-01, SEC-1)' } },
  ]);
  t.same(cluster!.summary, { pass: 1, fail: 0, warn: 0, error: 0, skip: 0 });
  t.same((cluster!.results[0]!.resources as object[])[0], { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', name: 'admin' });
  t.same(policyReports([finding({ passed: [], policies: [] })], { time }), [], 'nothing judged, nothing reported');
  const open = policyReports([finding({ passed: ['a'] }), finding({ namespace: undefined, kind: 'Namespace', passed: ['b'] })], { time, api: 'openreports.io' });
  t.same(open.map((r) => [r.apiVersion, r.kind]), [['openreports.io/v1alpha1', 'Report'], ['openreports.io/v1alpha1', 'ClusterReport']], 'or openreports.io\'s, the same results under its names');
});

t.test('a namespace whose results would exceed the API server\'s object size is spread over several reports, an object\'s results together', async (t) => {
  const many = Array.from({ length: 50 }, (_, i) => finding({ name: `pod-${i}`, passed: ['a', 'b'], policies: [{ name: 'c', mode: 'warn', result: 'fail', messages: ['x'.repeat(200)] }] }));
  const reports = policyReports(many, { time: new Date(0), maxBytes: 4000 });
  t.ok(reports.length > 3, `${reports.length} reports`);
  t.same(reports.map((r) => r.metadata.name).slice(0, 3), ['trustgate-scan', 'trustgate-scan-2', 'trustgate-scan-3']);
  for (const r of reports) {
    t.ok(JSON.stringify(r.results).length <= 4000 + 200, 'each under the bound');
    t.equal(new Set(r.results.map((x) => (x.resources as { name: string }[])[0]!.name)).size * 3, r.results.length, 'whole objects only');
    t.same(r.metadata.labels, { 'app.kubernetes.io/managed-by': 'trustgate', 'trustgate.dev/report': 'scan' });
  }
  t.equal(reports.reduce((n, r) => n + r.summary.pass + r.summary.fail, 0), 150, 'every result once');
});

t.test('a scanned object read from a cluster carries its uid into the finding, and passes are listed', async (t) => {
  const set = (await loadPolicySet([await policyDir({ 'p.yaml': policyYaml('team', `${POD_RULE}\nvalidations: [{ expression: "has(object.metadata.labels)" }]`) })])).set!;
  const cluster = new StaticCluster([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }]);
  const found: ScanFinding[] = [];
  await scanEach([{ where: 'cluster', object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop', uid: 'u-1', labels: {} }, spec: { containers: [] } }, served: { resource: 'pods', namespaced: true } }],
    { policies: () => set, recorder: new NullDecisionRecorder(), replica: 'scan', deadlineMs: 8000, namespaces: cluster, params: cluster }, {}, (f) => found.push(f));
  t.match(found, [{ uid: 'u-1', passed: ['team'], policies: [] }]);
});

t.test('trustgate scan --format policyreport prints the reports as YAML for kubectl apply, exit codes unchanged', async (t) => {
  const policies = await policyDir({ 'p.yaml': policyYaml('no-latest', `${POD_RULE}\nvalidations: [{ expression: "!object.spec.containers.exists(c, c.image.endsWith(':latest'))", message: uses latest }]`) });
  const manifests = await policyDir({
    'pods.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: { name: good, namespace: shop }\nspec: { containers: [{ name: a, image: "nginx:1.27" }] }\n---\napiVersion: v1\nkind: Pod\nmetadata: { name: bad }\nspec: { containers: [{ name: a, image: "nginx:latest" }] }\n',
  });
  const out = await trustgate('scan', '--policies', policies, '--format', 'policyreport', manifests);
  t.equal(out.code, 1, 'a denied object still fails the scan');
  t.notMatch(out.stdout, /[&*]a\d/, 'no YAML anchors: every result stands alone');
  const reports = parseAllDocuments(out.stdout).map((d) => d.toJS() as { kind: string; metadata: { namespace?: string }; summary: object; results: { policy: string; result: string; resources: { name: string }[] }[] });
  for (const r of reports) t.ok(validReport(r), JSON.stringify(validReport.errors));
  t.same(reports.map((r) => [r.kind, r.metadata.namespace, r.summary]), [
    ['PolicyReport', 'default', { pass: 0, fail: 1, warn: 0, error: 0, skip: 0 }],
    ['PolicyReport', 'shop', { pass: 1, fail: 0, warn: 0, error: 0, skip: 0 }],
  ], 'an object without a namespace is reported in the one it would be created in');
  t.match(reports[0]!.results, [{ policy: 'no-latest', result: 'fail', resources: [{ name: 'bad' }] }]);
  t.match(out.stderr, /scanned 2 object\(s\)/);
});
