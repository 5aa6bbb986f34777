// Kyverno ValidatingPolicies run unchanged: the policies library's vpol examples judged as their
// own Kyverno CLI tests (kyverno-test.yaml) expect, Deployments and CronJobs through Kyverno's
// autogen; each field's semantics; the errors and warnings of what cannot run.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { admit } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import type { KubeObject } from '../../src/admission/types.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { StaticCluster } from '../../src/kube/index.js';
import { canAutogen, rewriteForController } from '../../src/policy/kyverno.js';
import { loadPolicySet, type PolicySet } from '../../src/policy/index.js';
import { policyDir, policyYaml } from '../helpers/policies.js';
import { fixture } from '../helpers/server.js';

const KYVERNO = fixture('kyverno');

async function setOf(files: Record<string, string>): Promise<PolicySet> {
  const result = await loadPolicySet([await policyDir(files)]);
  if (!result.set) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.set;
}
async function errorsOf(files: Record<string, string>): Promise<string[]> {
  const result = await loadPolicySet([await policyDir(files)]);
  return result.errors.map((e) => e.message);
}

const cluster = new StaticCluster([
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { tier: 'prod' } } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'lab' } },
]);

function decide(set: PolicySet, object: KubeObject, operation: 'CREATE' | 'UPDATE' = 'CREATE', oldObject?: KubeObject) {
  const review = reviewForObject(object, { operation, ...(oldObject ? { oldObject } : {}) });
  return admit(review, 'validate', { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000, namespaces: cluster, params: cluster });
}

const vpol = (name: string, spec: string, extra = '') => `apiVersion: policies.kyverno.io/v1\nkind: ValidatingPolicy\nmetadata:\n  name: ${name}\n${extra}spec:\n${spec.replace(/^\n/, '').split('\n').map((l) => (l ? `  ${l}` : l)).join('\n')}\n`;
const PODS = `matchConstraints:
  resourceRules:
    - { apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods] }`;
const pod = (image: string, labels: Record<string, string> = {}, namespace = 'default'): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace, labels }, spec: { containers: [{ name: 'c', image }] } });
const deployment = (image: string, templateLabels: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'default' },
  spec: { selector: {}, template: { metadata: { labels: templateLabels }, spec: { containers: [{ name: 'c', image }] } } },
});

interface KyvernoTest {
  policies: string[];
  resources: string[];
  results: { policy: string; kind: string; resources: string[]; result: 'pass' | 'fail' | 'skip' }[];
}

// each of the Kyverno policies library's vpol examples, with its kyverno-test.yaml as the authority
for (const example of ['08-restrict-image-registries', '09-require-image-checksum', '10-disallow-latest-tag']) {
  t.test(`${example}: every result of its kyverno-test.yaml`, async (t) => {
    const dir = join(KYVERNO, example);
    const loaded = await loadPolicySet([dir]);
    if (!t.ok(loaded.set, loaded.errors.map((e) => e.message).join('\n'))) return;
    // as Kyverno tests it: its validationActions are Audit there, which only records; judged the same
    const set = loaded.set!;
    t.same(set.warnings.map((w) => w.message), [], 'loads without a warning that nothing runs it');
    const test = parseYaml(await readFile(join(dir, '.kyverno-test/kyverno-test.yaml'), 'utf8')) as KyvernoTest;
    const objects = (await Promise.all(test.resources.map(async (f) => parseAllDocuments(await readFile(join(dir, '.kyverno-test', f), 'utf8')).map((d) => d.toJS() as KubeObject)))).flat();
    let checked = 0;
    for (const expected of test.results) {
      for (const name of expected.resources) {
        const object = objects.find((o) => o.kind === expected.kind && o.metadata?.name === name);
        if (!t.ok(object, `${expected.kind} ${name} is among the test's resources`)) continue;
        const out = await decide(set, { ...object!, metadata: { namespace: 'default', ...object!.metadata } });
        // the policy as written or, for a pod controller, its autogen copy: Kyverno reports both under the policy's name
        const results = out.results.filter((r) => r.name === expected.policy || r.name.endsWith(`-${expected.policy}`) && r.name.startsWith('autogen-'));
        const got = results.length === 0 ? 'skip' : results.some((r) => r.result === 'fail') ? 'fail' : 'pass';
        t.equal(got, expected.result, `${expected.policy} on ${expected.kind} ${name}: ${expected.result}${results.map((r) => ` [${r.name}]`).join('')}`);
        checked++;
      }
    }
    t.ok(checked >= 4, `${checked} resources judged`);
  });
}

t.test('a ValidatingPolicy runs as a ValidatingAdmissionPolicy with its binding folded in: validationActions decide the mode', async (t) => {
  const check = (actions: string) => vpol(`p-${actions.replace(/\W/g, '').toLowerCase() || 'default'}`, `${actions ? `validationActions: [${actions}]\n` : ''}${PODS}
validations:
  - expression: "!object.spec.containers.exists(c, c.image.endsWith(':latest'))"
    message: no latest`);
  const set = await setOf({ 'a.yaml': [check(''), check('Deny'), check('Warn'), check('Audit'), check('Deny, Audit'), check('Warn, Audit')].join('---\n') });
  t.same(set.policies.map((p) => [p.name, p.mode]).filter(([n]) => !(n as string).startsWith('autogen')), [
    ['p-default', 'enforce'], ['p-deny', 'enforce'], ['p-warn', 'warn'], ['p-audit', 'audit'], ['p-denyaudit', 'enforce'], ['p-warnaudit', 'warn'],
  ], 'no validationActions is Deny, as in Kyverno');
  const out = await decide(set, pod('nginx:latest'));
  t.equal(out.review.response.allowed, false);
  t.match(out.review.response.status?.message, '[p-default] no latest');
  t.match(out.review.response.warnings, ['[p-warn] no latest', '[p-warnaudit] no latest']);
  t.equal((await decide(set, pod('nginx:1.27'))).review.response.allowed, true);
});

t.test('autogen: a Pod policy is also written for the six pod controllers, expressions rewritten to the pod template, as Kyverno does', async (t) => {
  const set = await setOf({ 'a.yaml': vpol('team-label', `${PODS}
matchConditions:
  - name: not-system
    expression: "!object.metadata.name.startsWith('system-')"
variables:
  - name: team
    expression: "object.metadata.?labels.?team.orValue('')"
validations:
  - expression: "variables.team != ''"
    messageExpression: "'pod template of ' + object.metadata.name + ' in ' + object.metadata.namespace + ' lacks a team label'"`) });
  t.same(set.policies.map((p) => p.name), ['team-label', 'autogen-cronjobs-team-label', 'autogen-team-label'].sort((a, b) => (a === 'team-label' ? -1 : b === 'team-label' ? 1 : a < b ? -1 : 1)));
  const rules = (name: string) => set.policies.find((p) => p.name === name)!.rules.map((r) => [[...r.groups], [...r.resources].sort()]);
  t.same(rules('autogen-team-label'), [[['apps'], ['daemonsets', 'deployments', 'replicasets', 'statefulsets']], [['batch'], ['jobs']]]);
  t.same(rules('autogen-cronjobs-team-label'), [[['batch'], ['cronjobs']]]);
  const denied = await decide(set, deployment('nginx:1.27'));
  t.equal(denied.review.response.allowed, false);
  // metadata.name and .namespace stay the workload's own (Kyverno's protected suffixes)
  t.match(denied.review.response.status?.message, '[autogen-team-label] pod template of web in default lacks a team label');
  t.equal((await decide(set, deployment('nginx:1.27', { team: 'shop' }))).review.response.allowed, true, 'the label is read from the template');
  const cron: KubeObject = { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'nightly', namespace: 'default' }, spec: { schedule: '@daily', jobTemplate: { spec: { template: { metadata: { labels: {} }, spec: { containers: [{ name: 'c', image: 'x:1' }] } } } } } };
  t.match((await decide(set, cron)).review.response.status?.message, '[autogen-cronjobs-team-label] pod template of nightly in default lacks a team label');
  t.equal((await decide(set, { ...deployment('nginx:1.27'), metadata: { name: 'system-web', namespace: 'default' } })).review.response.allowed, true, 'match conditions carry over, guarded by the kind');
});

t.test('autogen is off where Kyverno turns it off, and limited to the controllers named', async (t) => {
  const names = async (spec: string) => (await setOf({ 'a.yaml': vpol('p', spec) })).policies.map((p) => p.name).sort();
  const validation = '\nvalidations: [{ expression: "true" }]';
  t.same(await names(`${PODS}${validation}`), ['autogen-cronjobs-p', 'autogen-p', 'p']);
  t.same(await names(`${PODS}\nautogen: { podControllers: { controllers: [deployments] } }${validation}`), ['autogen-p', 'p']);
  t.same(await names(`${PODS}\nautogen: { podControllers: { controllers: [cronjobs] } }${validation}`), ['autogen-cronjobs-p', 'p']);
  t.same(await names(`${PODS}\nautogen: { podControllers: { controllers: [] } }${validation}`), ['p'], 'an empty list: none');
  t.same(await names(`${PODS}\n  objectSelector: { matchLabels: { app: web } }${validation}`), ['p'], 'an object selector');
  t.same(await names(`matchConstraints:\n  resourceRules: [{ apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods, pods/ephemeralcontainers] }]${validation}`), ['p'], 'more than pods');
  t.same(await names(`matchConstraints:\n  resourceRules: [{ apiGroups: [""], apiVersions: ["*"], operations: [CREATE], resources: [pods] }]${validation}`), ['p'], 'versions other than exactly v1');
  t.equal(canAutogen({ resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['CREATE'], resourceNames: ['a'] }] }), false, 'resource names');
  t.equal(canAutogen({ resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['CREATE'] }], namespaceSelector: {} }), true, 'an empty selector selects everything');
});

t.test('the rewrite is Kyverno\'s text replacement, protected suffixes included', async (t) => {
  t.equal(rewriteForController("object.spec.containers.all(c, oldObject.spec.x == 1) && object.metadata.labels.a == 'b'", 'defaults'),
    "object.spec.template.spec.containers.all(c, oldObject.spec.template.spec.x == 1) && object.spec.template.metadata.labels.a == 'b'");
  t.equal(rewriteForController('object.metadata.name + object.metadata.namespace + object.metadata.nameSuffix', 'defaults'),
    'object.metadata.name + object.metadata.namespace + object.spec.template.metadata.nameSuffix');
  t.equal(rewriteForController('object.spec.containers', 'cronjobs'), 'object.spec.jobTemplate.spec.template.spec.containers');
  t.equal(rewriteForController("object.kind == 'Pod' && object.apiVersion == 'v1'", 'defaults'), "object.kind == 'Pod' && object.apiVersion == 'v1'");
});

t.test('a NamespacedValidatingPolicy judges its own namespace only', async (t) => {
  const text = `apiVersion: policies.kyverno.io/v1\nkind: NamespacedValidatingPolicy\nmetadata: { name: no-latest, namespace: shop }\nspec:\n  ${PODS.replace(/\n/g, '\n  ')}\n  validations: [{ expression: "!object.spec.containers.exists(c, c.image.endsWith(':latest'))", message: no latest }]\n`;
  const set = await setOf({ 'a.yaml': text });
  t.same(set.policies.map((p) => p.name).sort(), ['shop/autogen-cronjobs-no-latest', 'shop/autogen-no-latest', 'shop/no-latest']);
  t.equal((await decide(set, pod('nginx:latest', {}, 'shop'))).review.response.allowed, false);
  t.equal((await decide(set, pod('nginx:latest', {}, 'lab'))).review.response.allowed, true);
  t.match(await errorsOf({ 'a.yaml': text.replace(', namespace: shop', '') }), [/a NamespacedValidatingPolicy applies to its own namespace only: give metadata\.namespace/]);
});

t.test('matching, failurePolicy and auditAnnotations behave as in a ValidatingAdmissionPolicy', async (t) => {
  const set = await setOf({ 'a.yaml': vpol('prod-only', `failurePolicy: Ignore
matchConstraints:
  resourceRules: [{ apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods] }]
  namespaceSelector: { matchLabels: { tier: prod } }
validations:
  - expression: "object.spec.containers.all(c, c.image != 'broken' || object.spec.nope.nope == 1)"
auditAnnotations:
  - key: image
    valueExpression: "object.spec.containers[0].image"`) });
  t.same(set.policies.map((p) => p.name), ['prod-only'], 'a namespace selector turns autogen off');
  const out = await decide(set, pod('broken', {}, 'shop'));
  t.equal(out.review.response.allowed, true, 'an evaluation error under failurePolicy Ignore admits');
  t.match(out.results, [{ name: 'prod-only', result: 'error' }]);
  t.match((await decide(set, pod('nginx:1', {}, 'shop'))).record.policies, [{ name: 'prod-only', result: 'pass', annotations: { image: 'nginx:1' } }]);
  t.same((await decide(set, pod('nginx:1', {}, 'lab'))).results, [], 'outside the selected namespaces: not matched');
});

t.test('what cannot run says so: JSON and background-only policies, Kyverno-only CEL libraries, bad fields, clashing names', async (t) => {
  const set = await setOf({
    'json.yaml': vpol('payloads', `evaluation: { mode: JSON }\nvalidations: [{ expression: "true" }]`),
    'bg.yaml': vpol('background', `evaluation: { admission: { enabled: false } }\n${PODS}\nvalidations: [{ expression: "true" }]`),
  });
  t.same(set.policies, []);
  t.match(set.warnings.map((w) => w.message).sort(), [/ValidatingPolicy background is for Kyverno's background scans only/, /ValidatingPolicy payloads judges JSON payloads \(evaluation\.mode JSON\), not admission requests/]);
  const errors = await errorsOf({
    'lib.yaml': vpol('lookup', `${PODS}\nvalidations:\n  - expression: "resource.Get('v1', 'configmaps', 'default', 'x').data.a == 'b'"`),
    'exc.yaml': vpol('exc', `${PODS}\nvalidations:\n  - expression: "object.spec.containers.all(c, c.image in exceptions.allowedImages)"`),
    'img.yaml': vpol('image-fn', `${PODS}\nvalidations:\n  - expression: "image(object.spec.containers[0].image).registry() == 'ghcr.io'"`),
    'typo.yaml': vpol('typo', `${PODS}\nvalidationActons: [Deny]\nvalidations: [{ expression: "true" }]`),
    'both.yaml': vpol('both', `validationActions: [Deny, Warn]\n${PODS}\nvalidations: [{ expression: "true" }]`),
    'empty.yaml': vpol('empty', PODS),
    'keys.yaml': vpol('keys', `${PODS}\nauditAnnotations: [{ key: a, valueExpression: "'x'" }, { key: a, valueExpression: "'y'" }]`),
    'clash.yaml': `${vpol('same', `${PODS}\nvalidations: [{ expression: "true" }]`)}---\n${policyYaml('same', 'match:\n  resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }]\nvalidations: [{ expression: "true" }]')}`,
  });
  t.match(errors.find((e) => e.includes('lib.yaml')), /lib\.yaml:\d+:\d+: .*\(the policy calls Kyverno's own CEL libraries, which trustgate does not have: resource;/);
  t.match(errors.find((e) => e.includes('img.yaml')), /Kyverno's own CEL libraries, which trustgate does not have: image\(\);/);
  t.equal(errors.filter((e) => e.includes('lib.yaml')).length, 1, 'reported once, not again for each autogen copy');
  t.match(errors.find((e) => e.includes('exc.yaml')), /Kyverno's own CEL libraries, which trustgate does not have: exceptions;/);
  t.match(errors.find((e) => e.includes('typo.yaml')), /typo\.yaml:\d+:\d+: spec: unknown field "validationActons" \(did you mean "validationActions"\?\)/);
  t.match(errors.find((e) => e.includes('both.yaml')), /Deny and Warn may not be used together/);
  t.match(errors.find((e) => e.includes('empty.yaml')), /validations and auditAnnotations may not both be empty/);
  t.match(errors.find((e) => e.includes('keys.yaml')), /keys\.yaml:\d+:\d+: auditAnnotations key a is used twice/);
  t.match(errors.find((e) => e.includes('clash.yaml')), /the Kyverno policy same has the name of another policy: rename one/);
});

t.test('Kyverno\'s other policy kinds still load with the warning that nothing enforces them', async (t) => {
  const set = await setOf({ 'm.yaml': 'apiVersion: policies.kyverno.io/v1\nkind: MutatingPolicy\nmetadata: { name: m }\nspec: {}\n' });
  t.match(set.warnings.map((w) => w.message), [/MutatingPolicy is Kyverno's, which trustgate does not run/]);
});

t.test('scan and manifests see them: webhook rules cover the autogen kinds', async (t) => {
  const { webhookRules } = await import('../../src/kube/manifests.js');
  const set = await setOf({ 'a.yaml': vpol('p', `${PODS}\nvalidations: [{ expression: "true" }]`) });
  const resources = webhookRules(set).flatMap((r) => r.resources as string[]).sort();
  t.same(resources, ['cronjobs', 'daemonsets', 'deployments', 'jobs', 'pods', 'replicasets', 'statefulsets']);
});

t.test('trustgate test runs Kyverno CLI tests (kyverno-test.yaml) of ValidatingPolicies, and names what it cannot run', async (t) => {
  const { trustgate } = await import('../helpers/cli.js');
  const ok = await trustgate('test', KYVERNO);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^ok - kyverno-test disallow-latest-tag: disallow-latest-tag on Deployment baddeployment01: fail$/m, 'a Deployment judged through autogen');
  t.match(ok.stdout, /\n19 passed, 0 failed\n$/);

  // a copy with one expectation turned round, a ClusterPolicy result and a test with a values file
  const dir = await policyDir({});
  const { cp, writeFile, readFile: read, mkdir } = await import('node:fs/promises');
  await cp(join(KYVERNO, '10-disallow-latest-tag'), join(dir, 'latest'), { recursive: true });
  const testFile = join(dir, 'latest/.kyverno-test/kyverno-test.yaml');
  const text = await read(testFile, 'utf8');
  await writeFile(testFile, text.replace(/(  - gooddeployment01\n  result: )pass/, '$1fail').replace('results:\n', 'results:\n- policy: some-cluster-policy\n  rule: a-rule\n  kind: Pod\n  resources: [myapp-pod]\n  result: pass\n- policy: disallow-latest-tag\n  kind: Pod\n  resources: [no-such-pod]\n  result: pass\n'));
  // a test whose policy file is missing fails, naming it
  await mkdir(join(dir, 'lost/.kyverno-test'), { recursive: true });
  await writeFile(join(dir, 'lost/.kyverno-test/kyverno-test.yaml'), 'apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata: { name: lost }\npolicies: [../gone.yaml]\nresources: []\nresults: []\n');
  await cp(join(KYVERNO, '09-require-image-checksum'), join(dir, 'digest'), { recursive: true });
  const digestTest = join(dir, 'digest/.kyverno-test/kyverno-test.yaml');
  await writeFile(digestTest, `${await read(digestTest, 'utf8')}variables: values.yaml\n`);
  const broken = await trustgate('test', dir);
  t.equal(broken.code, 1);
  t.match(broken.stdout, /^not ok - kyverno-test disallow-latest-tag: disallow-latest-tag on Deployment gooddeployment01: fail\n    got pass$/m);
  t.match(broken.stderr, /latest\/\.kyverno-test\/kyverno-test\.yaml: 1 of its 8 results not run: some-cluster-policy is not a Kyverno ValidatingPolicy among its policies/);
  t.match(broken.stderr, /digest\/\.kyverno-test\/kyverno-test\.yaml: not run: it sets variables, which trustgate's runner of Kyverno tests does not read/);
  t.match(broken.stdout, /^not ok - kyverno-test disallow-latest-tag: disallow-latest-tag on Pod no-such-pod: pass\n    no such resource among resource\.yaml$/m, 'a result naming a resource the test lacks fails');
  t.match(broken.stdout, /^not ok - kyverno-test lost: load policies\n    .*gone\.yaml: no such file or directory/m);
  t.match(broken.stdout, /\n7 passed, 3 failed\n$/, 'what was not run is not counted either way');
});

t.test('Kyverno tests are found once each, in .kyverno-test directories too, through a symlink loop', async (t) => {
  const { findKyvernoTests } = await import('../../src/policy/kyverno-tests.js');
  const { cp, symlink, mkdir } = await import('node:fs/promises');
  const dir = await policyDir({});
  await cp(join(KYVERNO, '10-disallow-latest-tag'), join(dir, 'latest'), { recursive: true });
  await mkdir(join(dir, 'sub'));
  await symlink('..', join(dir, 'sub', 'up'));
  t.same((await findKyvernoTests([dir])).map((f) => f.slice(dir.length)), ['/latest/.kyverno-test/kyverno-test.yaml']);
});
