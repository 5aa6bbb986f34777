// The CLI as a user runs it: exit codes, messages, and the JSON it prints.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { trustgate } from '../helpers/cli.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { fixture } from '../helpers/server.js';


const teamPolicy = policyYaml('require-team', `${POD_RULE}
validations:
  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
    messageExpression: "'pod ' + object.metadata.name + ' needs a team label'"`);

t.test('lint: ok on the shipped policies, file:line:col and exit 1 on a broken file', async (t) => {
  const ok = await trustgate('lint', 'policies');
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^ok: 13 policies, 0 trust roots, 8 test suites/);
  const dir = await policyDir({ 'bad.yaml': policyYaml('bad', `${POD_RULE}\nvalidations:\n  - expression: "object.metadata.name.matches('(')"`) });
  const bad = await trustgate('lint', dir);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /bad\.yaml:12:\d+: invalid regular expression "\(": missing closing \)/);
  t.match(bad.stderr, /1 error\(s\); nothing loaded/);
});

t.test('lint: a rule that can never match is a warning with its position; --strict fails on it', async (t) => {
  const dir = await policyDir({ 'typo.yaml': policyYaml('typo', `match:
  resources:
    - apiGroups: [""]
      resources: [pod]
      operations: [CREATE]
validations:
  - expression: "true"`) });
  const lint = await trustgate('lint', dir);
  t.equal(lint.code, 0, 'a warning alone does not fail the lint');
  t.match(lint.stderr, /typo\.yaml:9:21: warning: resource "pod" is not served by the core group \(""\) \(did you mean "pods"\?\), so this rule never matches it/);
  t.match(lint.stdout, /ok: 1 policies, .*, 1 warning\(s\)$/m);
  const strict = await trustgate('lint', '--strict', dir);
  t.equal(strict.code, 1, '--strict fails on it');
  t.equal((await trustgate('lint', '--strict', 'policies')).code, 0, 'the shipped policies have no warnings');
});

t.test('eval: a captured review in, the AdmissionReview response out; exit 1 when denied', async (t) => {
  const dir = await policyDir({ 'team.yaml': teamPolicy });
  const res = await trustgate('eval', '--policies', dir, '--review', fixture('admissionreviews/pod-create-with-init-container.review.json'));
  t.equal(res.code, 1);
  const review = JSON.parse(res.stdout);
  t.equal(review.response.allowed, false);
  t.match(review.response.status.message, /\[require-team\] pod nginx needs a team label/);
});

t.test('eval --object --explain shows what each expression evaluated to', async (t) => {
  const dir = await policyDir({ 'team.yaml': teamPolicy });
  const pod = join(dir, 'pod.yaml');
  await writeFile(pod, 'apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {team: shop}}\nspec: {containers: [{name: web, image: "nginx:1"}]}\n');
  const res = await trustgate('eval', '--policies', dir, '--object', pod, '--namespace', 'shop', '--explain');
  t.equal(res.code, 0, res.stderr);
  t.equal(JSON.parse(res.stdout).response.allowed, true);
  t.match(res.stderr, /\[require-team\] validations\[0\]: has\(object\.metadata\.labels\) && 'team' in object\.metadata\.labels => true/);
  t.match(res.stderr, /\[require-team\] enforce pass/);
});

t.test('eval --patched prints the object as a MutatingAdmissionPolicy leaves it; --explain shows the patch', async (t) => {
  const dir = await policyDir({ 'm.yaml': `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: { name: team }
spec:
  matchConstraints:
    resourceRules: [{ apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods] }]
  mutations:
    - patchType: ApplyConfiguration
      applyConfiguration:
        expression: 'Object{metadata: Object.metadata{labels: {"team": "shop"}}}'
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: { name: all }
spec: { policyName: team }
` });
  const pod = join(dir, 'pod.yaml');
  await writeFile(pod, 'apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: web, image: "nginx:1"}]}\n');
  const res = await trustgate('eval', '--policies', dir, '--object', pod, '--namespace', 'shop', '--patched', '--explain');
  t.equal(res.code, 0, res.stderr);
  t.same(JSON.parse(res.stdout).metadata, { name: 'web', labels: { team: 'shop' } });
  t.match(res.stderr, /\[team\/all\] patch => \[\{"op":"add","path":"\/metadata\/labels","value":\{"team":"shop"\}\}\]/);
  const validated = await trustgate('eval', '--policies', dir, '--object', pod, '--namespace', 'shop');
  t.equal(JSON.parse(validated.stdout).response.patch, undefined, 'without --mutate or --patched: /validate, which runs no mutation');
});

t.test('eval --authorizations answers authorization checks for --user, as a PolicyTest would', async (t) => {
  const dir = await policyDir({ 'exec.yaml': policyYaml('delete-needs-right', `${POD_RULE}
validations:
  - expression: "authorizer.group('').resource('pods').namespace(object.metadata.namespace).check('delete').allowed()"
    messageExpression: "'may not: ' + authorizer.group('').resource('pods').namespace(object.metadata.namespace).check('delete').reason()"`) });
  const pod = join(dir, 'pod.yaml');
  await writeFile(pod, 'apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec: {containers: []}\n');
  // beside the policy directory: a list is no policy document
  const answers = join(await mkdtemp(join(tmpdir(), 'tg-answers-')), 'answers.yaml');
  await writeFile(answers, '- { user: ops, verb: delete, resource: pods, namespace: shop, reason: on call }\n');
  const asOps = await trustgate('eval', '--policies', dir, '--object', pod, '--authorizations', answers, '--user', 'ops', '--group', 'sre');
  t.equal(asOps.code, 0, asOps.stdout + asOps.stderr);
  const asDev = await trustgate('eval', '--policies', dir, '--object', pod, '--authorizations', answers, '--user', 'dev');
  t.equal(asDev.code, 1);
  t.match(JSON.parse(asDev.stdout).response.status.message, /may not: no listed authorization matches/);
  const offline = await trustgate('eval', '--policies', dir, '--object', pod, '--explain');
  t.equal(offline.code, 1, 'without answers a check is an errored decision, never allowed');
  t.match(offline.stderr, /check\('delete'\)\.allowed\(\) => false/);
  const broken = join(dirname(answers), 'broken.yaml');
  await writeFile(broken, '- { verb: delete }\n');
  const bad = await trustgate('eval', '--policies', dir, '--object', pod, '--authorizations', broken);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /broken\.yaml: authorizations\.0: missing required field "resource"/);
  const missing = await trustgate('eval', '--policies', dir, '--object', pod, '--authorizations', '/no/such/answers.yaml');
  t.equal(missing.code, 2);
  t.match(missing.stderr, /authorizations \/no\/such\/answers\.yaml: no such file/);
  const notAList = join(dirname(answers), 'map.yaml');
  await writeFile(notAList, 'verb: delete\n');
  const mapping = await trustgate('eval', '--policies', dir, '--object', pod, '--authorizations', notAList);
  t.equal(mapping.code, 2);
  t.match(mapping.stderr, /map\.yaml: authorizations: must be array/);
  const review = await trustgate('eval', '--policies', dir, '--review', fixture('admissionreviews/pod-create-with-init-container.review.json'), '--user', 'ops');
  t.equal(review.code, 2);
  t.match(review.stderr, /--user and --group describe who sends --object; a --review names its own userInfo/);
});

t.test('eval --object reads JSON as JSON and flow-style YAML that looks like it as YAML', async (t) => {
  const dir = await policyDir({ 'team.yaml': teamPolicy });
  const json = join(dir, 'pod.json');
  await writeFile(json, JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', labels: { team: 'shop' } }, spec: { containers: [{ name: 'web', image: 'nginx:1' }] } }));
  const flow = join(dir, 'flow.yaml');
  await writeFile(flow, '{apiVersion: v1, kind: Pod, metadata: {name: web}, spec: {containers: [{name: web, image: "nginx:1"}]}}\n');
  const broken = join(dir, 'broken.json');
  await writeFile(broken, '{"apiVersion": "v1", "kind": ');
  const fromJson = await trustgate('eval', '--policies', dir, '--object', json);
  t.equal(fromJson.code, 0, fromJson.stderr);
  const fromFlow = await trustgate('eval', '--policies', dir, '--object', flow);
  t.equal(fromFlow.code, 1, 'not JSON, read as YAML: the pod has no team label');
  t.match(JSON.parse(fromFlow.stdout).response.status.message, /pod web needs a team label/);
  const bad = await trustgate('eval', '--policies', dir, '--object', broken);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /broken\.json is not JSON or YAML/);
});

t.test('test: runs the shipped suites and ends with the summary line', async (t) => {
  const res = await trustgate('test', 'policies');
  t.equal(res.code, 0, res.stdout);
  t.match(res.stdout, /\n52 passed, 0 failed\n$/);
});

t.test('test: a failing case is reported with what was expected, and exit 1', async (t) => {
  const dir = await policyDir({
    'team.yaml': teamPolicy,
    'team.test.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: {name: team}
spec:
  cases:
    - name: wrongly expects allow
      expect: allow
      object: {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: []}}
    - name: expects deny with the right message
      expect: deny
      messages: ["pod p needs a team label"]
      object: {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: []}}
`,
  });
  const junit = join(dir, 'report.xml');
  const res = await trustgate('test', dir, '--junit', junit);
  t.equal(res.code, 1);
  t.match(res.stdout, /not ok - team: wrongly expects allow\n\s+expected allow, got deny: trustgate denied the request: \[require-team\] pod p needs a team label/);
  t.match(res.stdout, /ok - team: expects deny with the right message/);
  t.match(res.stdout, /\n1 passed, 1 failed\n$/);
  // the same outcomes for a CI system's test report
  const xml = await readFile(junit, 'utf8');
  t.match(xml, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<testsuites name="trustgate" tests="2" failures="1">\n  <testsuite name="team" tests="2" failures="1">\n/);
  t.match(xml, /<testcase classname="team" name="wrongly expects allow">\n\s+<failure message="expected allow, got deny: trustgate denied the request: \[require-team\] pod p needs a team label">/);
  t.match(xml, /<testcase classname="team" name="expects deny with the right message"\/>/);
  const unwritable = await trustgate('test', dir, '--junit', join(dir, 'missing', 'report.xml'));
  t.equal(unwritable.code, 2);
  t.match(unwritable.stderr, /cannot write the JUnit report .*missing\/report\.xml/);
  t.match(unwritable.stdout, /\n1 passed, 1 failed\n$/, 'the results are printed all the same');
});

t.test('the JUnit report escapes what XML cannot hold as is', async (t) => {
  const { junitReport } = await import('../../src/policy/index.js');
  const xml = junitReport([{ suite: 'a&b', name: '<x> "q" \'s\'\u0001\ud800', passed: false, detail: 'got <deny> & more\nsecond line' }]);
  t.match(xml, /<testsuite name="a&amp;b" tests="1" failures="1">/);
  t.match(xml, /name="&lt;x&gt; &quot;q&quot; &apos;s&apos;"/);
  t.match(xml, /<failure message="got &lt;deny&gt; &amp; more">got &lt;deny&gt; &amp; more\nsecond line<\/failure>/);
});

t.test('test: a policy no case makes fail is named, since its deny path is untested', async (t) => {
  const dir = await policyDir({
    'team.yaml': teamPolicy,
    'limits.yaml': policyYaml('require-limits', `${POD_RULE}
validations:
  - expression: "object.spec.containers.all(c, has(c.resources))"`),
    'team.test.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: {name: team}
spec:
  cases:
    - name: a pod without a team is refused
      expect: deny
      object: {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: []}}
`,
  });
  const res = await trustgate('test', dir);
  t.equal(res.code, 0, 'a note, not a failure');
  t.match(res.stderr, /note: no case makes these policies fail, so their deny or warn path is untested: require-limits\n/);
  t.notMatch(res.stderr, /require-team/);
  t.match(res.stdout, /\n1 passed, 0 failed\n$/);
  t.match((await trustgate('test', 'policies')).stderr, /images-only policies are not judged offline \(trustgate verify IMAGE checks them against a registry\): .*signed-images/);
});

t.test('usage errors are clear and exit 2', async (t) => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['constructor'], /unknown command "constructor"/],
    [['toString'], /unknown command "toString"/],
    [['lint', '--fast', 'policies'], /unknown flag --fast; see --help/],
    [['lnt', 'policies'], /unknown command "lnt" \(did you mean "lint"\?\)/],
    [['eval', '--polices', 'policies'], /unknown flag --polices \(did you mean "policies"\?\)/],
    [['eval', '--policies', 'policies'], /exactly one of --review FILE or --object FILE/],
    [['eval', '--policies', 'policies', '--review', '/no/such/file.json'], /review \/no\/such\/file\.json: no such file/],
    [['serve', '--listen', 'nonsense'], /listen address "nonsense" is not HOST:PORT/],
    [['serve', '--tls-cert', 'a.pem'], /--tls-cert and --tls-key go together/],
    [['serve', '--audit-sync', 'sometimes'], /--audit-sync must be fsync or write, got "sometimes"/],
    [['verify', 'ghcr.io/x/y:1'], /usage: trustgate verify IMAGE --policies DIR/],
    [['verify', 'Not A Ref', '--policies', 'policies'], /is not a valid image reference/],
    [['verify-bundle', '--bundle', 'b.json', 'a.txt'], /--certificate-identity/],
  ];
  for (const [args, message] of cases) {
    const res = await trustgate(...args);
    t.equal(res.code, 2, args.join(' '));
    t.match(res.stderr, message, args.join(' '));
  }
  const lintMissing = await trustgate('lint', '/no/such/dir');
  t.equal(lintMissing.code, 1);
  t.match(lintMissing.stderr, /\/no\/such\/dir: no such file or directory/);
});

t.test('certs client writes a client CA and a client certificate it issued, for the API server', async (t) => {
  const dir = t.testdir({});
  const res = await trustgate('certs', 'client', '--name', 'kube-apiserver', '--out', dir);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /serve --client-ca .*client-ca\.crt --client-name kube-apiserver/);
  const ca = new X509Certificate(await readFile(join(dir, 'client-ca.crt')));
  const client = new X509Certificate(await readFile(join(dir, 'client.crt')));
  t.ok(client.checkIssued(ca) && client.verify(ca.publicKey), 'issued and signed by the CA');
  t.match(client.subject, /CN=kube-apiserver/);
  t.ok(client.keyUsage?.includes('1.3.6.1.5.5.7.3.2'), 'for client authentication');
  t.ok(client.checkPrivateKey(createPrivateKey(await readFile(join(dir, 'client.key')))));
  t.equal((await stat(join(dir, 'client.key'))).mode & 0o777, 0o600, 'the key is readable by its owner only');
  t.notOk(existsSync(join(dir, 'client-ca.key')), 'the CA key is not kept: a new pair is made when one is needed');
  const missing = await trustgate('certs', 'client', '--out', dir);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /certs client needs --name NAME/);
});

t.test('certs generate writes a CA and a serving pair', async (t) => {
  const dir = t.testdir({});
  const res = await trustgate('certs', 'generate', '--dns', 'trustgate.trustgate.svc', '--out', dir);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /CA certificate: .*ca\.crt/);
});

t.test('CMD --help prints that command\'s usage, which the unknown-flag message points to', async (t) => {
  const help = await trustgate('scan', '--help');
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage:\n {2}trustgate scan {4}--policies DIR/);
  t.notMatch(help.stdout, /trustgate (eval|verify|audit)/, 'only that command');
  t.match((await trustgate('verify', '-h')).stdout, /trustgate verify {2}IMAGE --policies DIR/);
  t.notMatch((await trustgate('verify', '-h')).stdout, /verify-bundle/);
  const unknown = await trustgate('eval', '--frobnicate');
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown flag --frobnicate; see --help/);
  t.equal((await trustgate('eval', '--help')).code, 0, 'and --help works there');
});
