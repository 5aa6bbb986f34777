// trustgate scan: every object of a set of manifests judged as its CREATE, with where it was
// written, what denies it now and what would once warn-mode policies enforce.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { trustgate } from '../helpers/cli.js';
import { exceptionYaml, policyDir, policyYaml, PROD_REPLICAS, TEAM_LABEL_WARN } from '../helpers/policies.js';

const WORKLOADS = `match:
  resources:
    - apiGroups: ["", "apps"]
      resources: [pods, deployments]
      operations: [CREATE]`;

const policies = () => policyDir({
  'p.yaml': [
    policyYaml('no-privileged', `mode: enforce
${WORKLOADS}
validations:
  - expression: "object.kind != 'Pod' || object.spec.containers.all(c, !c.?securityContext.?privileged.orValue(false))"
    messageExpression: "'privileged container in ' + object.metadata.name"`),
    // namespaceSelector: only namespaces labelled env=prod, as the manifests themselves create them
    TEAM_LABEL_WARN, PROD_REPLICAS,
  ].join('---\n'),
});

const files = {
  'namespace.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: { name: shop, labels: { env: prod } }\n',
  'web.yaml': `# the web tier
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop, labels: { team: web } }
spec: { replicas: 1, template: { spec: { containers: [{ name: c, image: "nginx:1.27" }] } } }
---
apiVersion: v1
kind: Pod
metadata: { name: debug, namespace: shop }
spec: { containers: [{ name: c, image: "busybox:1.36" }] }
`,
  'list.json': JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'root', labels: { team: 'ops' } }, spec: { containers: [{ name: 'c', image: 'x:1', securityContext: { privileged: true } }] } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' } },
  ] }, null, 2),
  'kustomization.yaml': 'resources: [web.yaml]\n',
  'README.md': '# not a manifest\n',
  '.git': { 'config.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: { name: hidden }\n' },
};
const manifests = { app: files };

t.test('scan: denials and would-be denials with file:line; exit 1 on a denial; hidden directories and non-manifests left out', async (t) => {
  const dir = t.testdir(manifests);
  const out = await trustgate('scan', '--policies', await policies(), `${dir}/app`);
  t.equal(out.code, 1, out.stderr);
  t.match(out.stdout, new RegExp(`^${dir}/app/list\\.json:5: DENY v1 Pod default/root\\n    \\[no-privileged\\] enforce fail VALIDATION_FAILED: privileged container in root$`, 'm'));
  t.match(out.stdout, /app\/web\.yaml:2: DENY apps\/v1 Deployment shop\/web\n {4}\[prod-replicas\] enforce fail VALIDATION_FAILED: prod runs at least two replicas$/m, 'the Namespace in the manifests feeds namespaceSelector');
  t.match(out.stdout, /app\/web\.yaml:7: WARN v1 Pod shop\/debug \(admitted now; denied once these policies enforce\)\n {4}\[team-label\] warn fail VALIDATION_FAILED: needs a team label$/m);
  t.notMatch(out.stdout, /ConfigMap|Pod default\/hidden|Namespace shop/, 'allowed objects are not listed; .git is not read');
  t.match(out.stderr, /note: 1 document\(s\) are not Kubernetes objects .*kustomization\.yaml:1/);
  t.match(out.stderr, /scanned 5 object\(s\) against 3 policies: 2 allowed, 1 admitted but failing warn or audit policies, 2 denied/);
});

t.test('scan --all --format json, --namespace for objects without one, --strict', async (t) => {
  const dir = t.testdir({ ...manifests, 'warn-only': { 'pod.yaml': files['web.yaml'].split('---\n')[1]! } });
  const warnOnly = `${dir}/warn-only`;
  const json = await trustgate('scan', '--policies', await policies(), '--format', 'json', '--namespace', 'team-a', `${dir}/app/list.json`);
  const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.match(lines, [
    { where: /list\.json:5$/, kind: 'Pod', namespace: 'team-a', name: 'root', verdict: 'deny', policies: [{ name: 'no-privileged', mode: 'enforce', result: 'fail', messages: ['privileged container in root'] }] },
    { where: /list\.json:\d+$/, kind: 'ConfigMap', namespace: 'team-a', verdict: 'allow', policies: [] },
  ]);
  t.equal((await trustgate('scan', '--policies', await policies(), warnOnly)).code, 0, 'a warn-mode failure alone passes');
  t.equal((await trustgate('scan', '--policies', await policies(), '--strict', warnOnly)).code, 1, '--strict fails on it');
  const all = await trustgate('scan', '--policies', await policies(), '--all', `${dir}/app/namespace.yaml`);
  t.match(all.stdout, /namespace\.yaml:1: ALLOW v1 Namespace shop$/m);
});

t.test('scan reads standard input (kustomize build | trustgate scan -), and says what it cannot read', async (t) => {
  const dir = await policies();
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('../../src/cli.ts', import.meta.url).pathname, 'scan', '--policies', dir, '-']);
  let stdout = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stdin.end(files['list.json']);
  const code = await new Promise((resolve) => child.on('close', resolve));
  t.equal(code, 1);
  t.match(stdout, /^<stdin>:5: DENY v1 Pod default\/root/m);

  const broken = t.testdir({ 'bad.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: { name: [unclosed\n---\napiVersion: v1\nkind: Pod\nmetadata: { name: fine, labels: { team: t } }\nspec: { containers: [] }\n' });
  const out = await trustgate('scan', '--policies', dir, broken);
  t.equal(out.code, 2, 'an unreadable manifest is an input error, after the rest was judged');
  t.match(out.stderr, /bad\.yaml:\d+:\d+: Flow sequence in block collection must be sufficiently indented/);
  t.match(out.stderr, /scanned 1 object\(s\) .*; incomplete: 1 unreadable document\(s\)/);
  const deep = join(await mkdtemp(join(tmpdir(), 'trustgate-scan-')), 'deep.json');
  await writeFile(deep, JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'deep' }, x: JSON.parse(`${'{"a":'.repeat(150)}1${'}'.repeat(150)}`) }));
  const refused = await trustgate('scan', '--policies', dir, deep);
  t.equal(refused.code, 1, 'an object the server would refuse before any policy is a denial, and the scan goes on');
  t.match(refused.stdout, /deep\.json:1: DENY v1 Pod default\/deep\n {4}\[trustgate\] enforce error ObjectTooDeep: request\.object is nested deeper than 100 levels/);
  const missing = await trustgate('scan', '--policies', dir, `${broken}/nope.yaml`);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /nope\.yaml: no such file or directory/);
  const format = await trustgate('scan', '--policies', dir, '--format', 'xml', broken);
  t.equal(format.code, 2);
  t.match(format.stderr, /--format is table, json, sarif or policyreport/);
  const both = await trustgate('scan', '--policies', dir, '--kubeconfig', 'k', '--in-cluster');
  t.equal(both.code, 2);
  t.match(both.stderr, /give --kubeconfig or --in-cluster, not both/);
  const usage = await trustgate('scan', broken);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /usage: trustgate scan --policies DIR/);
});

t.test('scan --format sarif: SARIF 2.1.0 with a rule per policy, errors for denials, warnings for warn mode, repository-relative lines', async (t) => {
  const dir = t.testdir(manifests);
  const run = promisify(execFile);
  const out = await run(process.execPath, ['--import', 'tsx', new URL('../../src/cli.ts', import.meta.url).pathname, 'scan', '--policies', await policies(), '--format', 'sarif', 'app'], { cwd: dir })
    .catch((e) => e as { code: number; stdout: string });
  const sarif = JSON.parse(out.stdout);
  t.match(sarif, { version: '2.1.0', $schema: /sarif-2\.1\.0/, runs: [{ tool: { driver: { name: 'trustgate', version: /^\d+\.\d+\.\d+/ } } }] });
  const run0 = sarif.runs[0];
  t.same(run0.tool.driver.rules.map((r: { id: string }) => r.id).sort(), ['no-privileged', 'prod-replicas', 'team-label']);
  const byRule = (id: string) => run0.results.filter((r: { ruleId: string }) => r.ruleId === id);
  t.match(byRule('no-privileged'), [{ level: 'error', message: { text: 'Pod default/root: privileged container in root' }, locations: [{ physicalLocation: { artifactLocation: { uri: 'app/list.json' }, region: { startLine: 5 } } }], logicalLocations: [{ fullyQualifiedName: 'v1/Pod/default/root' }] }]);
  t.match(byRule('team-label'), [{ level: 'warning', message: { text: /^Pod shop\/debug: needs a team label \(warn mode: denied once it enforces\)$/ }, locations: [{ physicalLocation: { artifactLocation: { uri: 'app/web.yaml' }, region: { startLine: 7 } } }] }]);
  t.equal(run0.results.length, 3, 'allowed objects give no result');
});

t.test('scan: an object admitted only by a PolicyException is a WARN that says what is waived and until when', async (t) => {
  const dir = t.testdir(manifests);
  const exception = exceptionYaml('root-pod', `policies: [no-privileged]
reason: the root pod is retired next quarter
ticket: OPS-9
expires: "2999-01-01"
match: { names: [root] }`);
  const withException = await policyDir({ 'p.yaml': await readFile(join(await policies(), 'p.yaml'), 'utf8'), 'e.yaml': exception });
  const out = await trustgate('scan', '--policies', withException, `${dir}/app/list.json`);
  t.equal(out.code, 0, 'nothing is denied');
  t.match(out.stdout, /list\.json:5: WARN v1 Pod default\/root \(admitted now; denied once its exceptions expire\)\n {4}\[no-privileged\] enforce excepted VALIDATION_FAILED: privileged container in root \(excepted by root-pod until 2999-01-01T00:00:00\.000Z\)$/m);
  t.match(out.stderr, /1 admitted but failing warn or audit policies \(1 of them admitted by exception\), 0 denied/);
  t.equal((await trustgate('scan', '--policies', withException, '--strict', `${dir}/app/list.json`)).code, 1, '--strict fails on what only an exception admits');
  t.match((await trustgate('lint', withException)).stdout, /^ok: 3 policies, 0 trust roots, 1 exceptions, 0 test suites/);
  const json = await trustgate('scan', '--policies', withException, '--format', 'json', `${dir}/app/list.json`);
  t.match(JSON.parse(json.stdout.split('\n')[0]!), { verdict: 'warn', policies: [{ name: 'no-privileged', result: 'excepted', exceptions: [{ name: 'root-pod', expires: '2999-01-01T00:00:00.000Z', ticket: 'OPS-9' }] }] });
  const sarif = JSON.parse((await trustgate('scan', '--policies', withException, '--format', 'sarif', `${dir}/app/list.json`)).stdout);
  t.match(sarif.runs[0].results, [{ ruleId: 'no-privileged', level: 'warning', message: { text: 'Pod default/root: privileged container in root (excepted by root-pod until 2999-01-01T00:00:00.000Z)' } }]);
});

t.test('scan --audit: each judgement a decision record (endpoint scan) in a chain of its own, delivered before exit', async (t) => {
  const dir = t.testdir(manifests);
  const log = join(dir, 'scan-audit.jsonl');
  const out = await trustgate('scan', '--policies', await policies(), '--audit', `file:${log}`, `${dir}/app`);
  t.equal(out.code, 1, 'the verdict is the scan\'s as ever');
  t.match(out.stderr, new RegExp(`audit: 5 record\\(s\\) delivered to file:${log} \\(replica scan-\\S+-\\d{8}T\\d{6}Z\\)`));
  const records = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  t.equal(records.length, 5);
  t.match(records, records.map(() => ({ endpoint: 'scan', replica: /^scan-/, request: { operation: 'CREATE', userInfo: { username: 'trustgate-offline' } } })));
  t.same(records.map((r) => r.seq), [1, 2, 3, 4, 5], 'a fresh chain');
  t.equal(records.filter((r) => !r.allowed).length, 2);
  t.match((await trustgate('audit', 'verify', log)).stdout, /verified: 5 records, every chain intact/);
  t.equal((await trustgate('audit', 'query', log, '--endpoint', 'scan', '--denied')).stdout.trim().split('\n').length, 2);
  t.equal((await trustgate('audit', 'query', log, '--endpoint', 'validate')).stdout.trim(), '');
  t.equal((await trustgate('audit', 'query', log, '--endpoint', 'webhook')).code, 2);
  const named = await trustgate('scan', '--policies', await policies(), '--audit', `file:${log}`, '--replica', 'nightly-1', `${dir}/app/list.json`);
  t.match(named.stderr, /delivered to .* \(replica nightly-1\)/);
});

t.test('scan --audit: records no sink took fail the scan (exit 2) and stay in a spool it names', async (t) => {
  const dir = t.testdir(manifests);
  const out = await trustgate('scan', '--policies', await policies(), '--audit', 'http://127.0.0.1:9/audit', '--audit-timeout-seconds', '1', `${dir}/app/list.json`);
  t.equal(out.code, 2);
  const spool = /what was not delivered is in (\S+)/.exec(out.stderr)?.[1];
  t.ok(spool, out.stderr);
  t.ok((await readdir(spool!)).length > 0, 'the spool is left for inspection');
  t.match((await trustgate('scan', '--policies', await policies(), '--audit', 'file:/x', '--audit-header', 'nonsense', `${dir}/app`)).stderr, /--audit-header must look like 'Name: value'/);
  t.equal((await trustgate('scan', '--policies', await policies(), '--audit', 'gopher://x', `${dir}/app`)).code, 2);
  const zero = await trustgate('scan', '--policies', await policies(), '--audit', 'file:/x', '--audit-timeout-seconds', '0', `${dir}/app`);
  t.same([zero.code, /--audit-timeout-seconds must be a positive whole number/.test(zero.stderr)], [2, true]);
});

t.test('scan: a custom kind whose CustomResourceDefinition comes with the manifests is judged under its plural and scope', async (t) => {
  const issuerPolicy = policyYaml('no-self-signed', `match:
  resources:
    - { apiGroups: [cert-manager.io], resources: [clusterissuers], operations: [CREATE], scope: Cluster }
validations:
  - expression: "!has(object.spec.selfSigned)"
    message: self-signed issuers are not allowed`);
  const dir = t.testdir({
    'crd.yaml': `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: clusterissuers.cert-manager.io }
spec:
  group: cert-manager.io
  scope: Cluster
  names: { kind: ClusterIssuer, plural: clusterissuers, singular: clusterissuer, listKind: ClusterIssuerList }
  versions: [{ name: v1, served: true, storage: true, schema: { openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true } } }]
`,
    'issuer.yaml': 'apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: { name: local }\nspec: { selfSigned: {} }\n',
  });
  const out = await trustgate('scan', '--policies', await policyDir({ 'p.yaml': issuerPolicy }), '--namespace', 'team-a', dir);
  t.equal(out.code, 1, out.stderr);
  t.match(out.stdout, /issuer\.yaml:1: DENY cert-manager\.io\/v1 ClusterIssuer local\n {4}\[no-self-signed\] enforce fail VALIDATION_FAILED: self-signed issuers are not allowed/, 'cluster-scoped, as its CRD says: no namespace given to it, and a scope: Cluster rule matches');
  const alone = await trustgate('scan', '--policies', await policyDir({ 'p.yaml': issuerPolicy }), '--namespace', 'team-a', join(dir, 'issuer.yaml'));
  t.equal(alone.code, 0, 'without its CRD the kind is taken for a namespaced one, which this rule does not match');
});
