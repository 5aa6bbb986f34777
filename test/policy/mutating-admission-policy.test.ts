// Kubernetes MutatingAdmissionPolicies as trustgate runs them on /mutate: loading, CEL object
// construction, the ApplyConfiguration merge, JSON Patch, ordering, and what reaches the record.
import t from 'tap';
import { admit, type Endpoint } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { loadPolicySet, runPolicyTests, type PolicySet } from '../../src/policy/index.js';
import { applyJsonPatch } from '../../src/policy/mutation/json-patch.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';

const POD_RULES = `matchConstraints:
    resourceRules:
      - { apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods] }`;

/** a MutatingAdmissionPolicy and its binding (named like the policy) */
function map(name: string, spec: string, binding = ''): string {
  return `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: { name: ${name} }
spec:
  ${POD_RULES}
  ${spec.trim().split('\n').join('\n  ')}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: { name: ${name} }
spec:
  policyName: ${name}
  ${binding}
`;
}

const TEAM_LABEL = map('team-label', `mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: >-
        [JSONPatch{op: "add", path: "/metadata/labels/" + jsonpatch.escapeKey("example.com/team"), value: "platform"}]`);

const PULL_ALWAYS = map('pull-always', `variables:
  - name: names
    expression: object.spec.containers.map(c, c.name)
mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >-
        Object{spec: Object.spec{containers: variables.names.map(n, Object.spec.containers{name: n, imagePullPolicy: "Always"})}}`);

const pod = (extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx:1.27', env: [{ name: 'A', value: '1' }] }, { name: 'log', image: 'fluent-bit:3.0' }] },
  ...extra,
});

async function load(files: Record<string, string>): Promise<PolicySet> {
  const result = await loadPolicySet([await policyDir(files)]);
  if (!result.set) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.set;
}

async function run(set: PolicySet, object: Record<string, unknown>, endpoint: Endpoint = 'mutate') {
  const review = reviewForObject(object as never);
  const outcome = await admit(review, endpoint, { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000 });
  const r = outcome.review.response;
  const patch = r.patch ? JSON.parse(Buffer.from(r.patch, 'base64').toString('utf8')) : [];
  return { outcome, response: r, patch, patched: applyJsonPatch(review.request.object, patch) as Record<string, any> };
}

t.test('a binding puts a MutatingAdmissionPolicy to work under the policy/binding name; alone it changes nothing, and says so', async (t) => {
  const set = await load({ 'm.yaml': TEAM_LABEL, 'unbound.yaml': TEAM_LABEL.split('---')[0]!.replace('team-label', 'spare') });
  t.same(set.policies.map((p) => p.name), ['team-label/team-label']);
  t.match(set.warnings.map((w) => w.message), [/unbound\.yaml:3:\d+: MutatingAdmissionPolicy spare has no binding, so it changes nothing \(as in Kubernetes\): add a MutatingAdmissionPolicyBinding/]);
  t.ok(set.mutates);
});

t.test('load errors point into the file: a binding to nothing, a missing expression, a mismatched type name, construction outside mutations', async (t) => {
  const errors = async (files: Record<string, string>) => (await loadPolicySet([await policyDir(files)])).errors.map((e) => e.message);
  t.match(await errors({ 'b.yaml': TEAM_LABEL.split('---')[1]!.replace('policyName: team-label', 'policyName: nothing') }), [/b\.yaml:\d+:\d+: binding team-label names MutatingAdmissionPolicy nothing, which is not in the policy files/]);
  t.match(await errors({ 'm.yaml': map('m', 'mutations:\n  - patchType: JSONPatch\n    applyConfiguration: { expression: "Object{}" }') }), [/m\.yaml:\d+:\d+: .*missing required field "jsonPatch"/]);
  t.match(await errors({ 'm.yaml': map('m', 'mutations:\n  - patchType: ApplyConfiguration\n    applyConfiguration:\n      expression: "Object{spec: Object.spec{selector: Object.spec.wrong{}}}"') }),
    [/m\.yaml:11:\d+: type mismatch: field selector of Object\.spec holds Object\.spec\.selector\{…\}, not Object\.spec\.wrong\{…\}/]);
  t.match(await errors({ 'm.yaml': map('m', 'mutations:\n  - patchType: ApplyConfiguration\n    applyConfiguration:\n      expression: "[JSONPatch{op: \'remove\', path: \'/x\'}]"') }),
    [/JSONPatch\{…\} belongs in a JSONPatch mutation/]);
  t.match(await errors({ 'm.yaml': map('m', 'mutations:\n  - patchType: JSONPatch\n    jsonPatch:\n      expression: "\'add\'"') }), [/a JSONPatch expression must evaluate to a list of JSONPatch\{…\}, but its type is string/]);
  t.match(await errors({ 'p.yaml': policyYaml('p', `${POD_RULE}\nvalidations:\n  - expression: "Object{} == {}"`) }), [/Object\{…\} constructs a message: only a MutatingAdmissionPolicy's mutations construct Object or JSONPatch values/]);
  t.match(await errors({ 'p.yaml': policyYaml('p', `${POD_RULE}\nvalidations:\n  - expression: "true"\nmutations:\n  - patchType: JSONPatch\n    jsonPatch: { expression: "[]" }`) }), [/a policy mutates or checks, not both/]);
});

t.test('JSONPatch: the label key escaped as one pointer segment; the patch answers /mutate only', async (t) => {
  const set = await load({ 'm.yaml': TEAM_LABEL });
  const { response, patch, patched } = await run(set, pod());
  t.equal(response.allowed, true);
  t.same(patch, [{ op: 'add', path: '/metadata/labels/example.com~1team', value: 'platform' }]);
  t.same(patched.metadata.labels, { app: 'web', 'example.com/team': 'platform' });
  const validated = await run(set, pod(), 'validate');
  t.equal(validated.response.patch, undefined, '/validate changes nothing');
  t.same(validated.outcome.results, [], 'and does not list a mutation policy it did not run');
});

t.test('a failed JSONPatch test leaves the object as it was, as the API server does', async (t) => {
  const set = await load({ 'm.yaml': map('only-web', `mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: >-
        [JSONPatch{op: "test", path: "/metadata/name", value: "db"}, JSONPatch{op: "add", path: "/metadata/labels/tier", value: "db"}]`) });
  const { response, patch } = await run(set, pod());
  t.equal(response.allowed, true);
  t.same(patch, []);
});

t.test('ApplyConfiguration merges containers by name, leaving what it does not name', async (t) => {
  const set = await load({ 'm.yaml': PULL_ALWAYS });
  const { patched, patch } = await run(set, pod());
  t.same(patched.spec.containers, [
    { name: 'web', image: 'nginx:1.27', env: [{ name: 'A', value: '1' }], imagePullPolicy: 'Always' },
    { name: 'log', image: 'fluent-bit:3.0', imagePullPolicy: 'Always' },
  ]);
  t.same(patch.map((o: { op: string; path: string }) => `${o.op} ${o.path}`), ['add /spec/containers/0/imagePullPolicy', 'add /spec/containers/1/imagePullPolicy'], 'the smallest patch, field by field');
});

t.test('ApplyConfiguration: env merged by name, a port by containerPort and its default protocol, finalizers as a set', async (t) => {
  const set = await load({ 'm.yaml': map('merge', `mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >-
        Object{
          metadata: Object.metadata{finalizers: ["example.com/keep"]},
          spec: Object.spec{containers: [Object.spec.containers{
            name: "web",
            env: [Object.spec.containers.env{name: "A", value: "2"}, Object.spec.containers.env{name: "B", value: "3"}],
            ports: [Object.spec.containers.ports{containerPort: 8080, protocol: "TCP", name: "http"}]
          }]}
        }`) });
  const object = pod();
  (object.metadata as Record<string, unknown>).finalizers = ['example.com/keep', 'other'];
  ((object.spec as { containers: Record<string, unknown>[] }).containers[0]!).ports = [{ containerPort: 8080 }];
  const { patched } = await run(set, object);
  t.same(patched.metadata.finalizers, ['example.com/keep', 'other'], 'a set takes nothing twice');
  t.same(patched.spec.containers[0].env, [{ name: 'A', value: '2' }, { name: 'B', value: '3' }]);
  t.same(patched.spec.containers[0].ports, [{ containerPort: 8080, name: 'http', protocol: 'TCP' }], 'no protocol means TCP: the same port');
});

t.test('an atomic list or selector anywhere in the configuration fails the mutation with the API server\'s path; failurePolicy decides', async (t) => {
  const sidecar = (failurePolicy: string) => map('sidecar', `failurePolicy: ${failurePolicy}
mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >-
        Object{spec: Object.spec{initContainers: [Object.spec.initContainers{name: "proxy", image: "mesh/proxy:1.0", args: ["proxy"], restartPolicy: "Always"}]}}`);
  const denied = await run(await load({ 'm.yaml': sidecar('Fail') }), pod());
  t.match(denied.response, { allowed: false, status: { message: /\[sidecar\/sidecar\] mutations\[0\]: may not mutate atomic arrays, maps or structs: \.spec\.initContainers\[0\]\.args/ } });
  t.match(denied.outcome.results[0], { result: 'error', code: 'MUTATION_FAILED' });
  const ignored = await run(await load({ 'm.yaml': sidecar('Ignore') }), pod());
  t.equal(ignored.response.allowed, true);
  t.same(ignored.patch, [], 'nothing half-applied');
  t.match(ignored.response.warnings, [/could not be evaluated and was ignored \(failurePolicy: Ignore\)/]);
  const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'web' } } } };
  const selector = map('selector', `matchConstraints:
  resourceRules:
    - { apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments] }
mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: 'Object{spec: Object.spec{selector: Object.spec.selector{matchLabels: {"l": "v"}}}}'`).replace(POD_RULES, '');
  t.match((await run(await load({ 'm.yaml': selector }), deployment)).response.status?.message, /may not mutate atomic arrays, maps or structs: \.spec\.selector/);
});

t.test('mutation policies run in order, each on what the one before made, and every other policy judges the result', async (t) => {
  const set = await load({
    '1.yaml': TEAM_LABEL,
    '2.yaml': map('owner', `matchConditions:
  - name: labelled
    expression: "'example.com/team' in object.metadata.labels"
mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: 'Object{metadata: Object.metadata{annotations: {"example.com/owner": object.metadata.labels["example.com/team"]}}}'
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/labels/owned", value: object.metadata.annotations["example.com/owner"]}]'`),
    '3.yaml': policyYaml('needs-team', `${POD_RULE}\nvalidations:\n  - expression: "'example.com/team' in object.metadata.labels"\n    message: no team`),
  });
  const { response, patched, outcome } = await run(set, pod());
  t.equal(response.allowed, true, 'the validating policy sees the label the first mutation added');
  t.same(patched.metadata.annotations, { 'example.com/owner': 'platform' }, 'the second policy saw it too');
  t.equal(patched.metadata.labels.owned, 'platform', 'and its second mutation saw its first');
  t.same(outcome.results.map((r) => `${r.name} ${r.result}`), ['team-label/team-label pass', 'owner/owner pass', 'needs-team pass']);
  t.equal((await run(set, pod(), 'validate')).response.allowed, false, '/validate judges the object as it comes (the API server sends the mutated one)');
});

t.test('params from the binding, read from the policy files', async (t) => {
  const set = await load({ 'm.yaml': map('sidecar', `paramKind: { apiVersion: mutations.example.com/v1, kind: Sidecar }
matchConditions:
  - name: none-yet
    expression: "!object.spec.containers.exists(c, c.name == params.name)"
mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: 'Object{spec: Object.spec{containers: [Object.spec.containers{name: params.name, image: params.image}]}}'`, 'paramRef: { name: proxy, namespace: shop }'),
  'params.yaml': 'apiVersion: mutations.example.com/v1\nkind: Sidecar\nmetadata: { name: proxy, namespace: shop }\nname: proxy\nimage: mesh/proxy:1.0\n' });
  const { patch } = await run(set, pod());
  t.same(patch, [{ op: 'add', path: '/spec/containers/2', value: { name: 'proxy', image: 'mesh/proxy:1.0' } }]);
});

t.test('the decision record keeps the patch, a mutation\'s values by digest only', async (t) => {
  const set = await load({ 'm.yaml': TEAM_LABEL });
  const { outcome } = await run(set, pod());
  t.match(outcome.record.patch, [{ op: 'add', path: '/metadata/labels/example.com~1team', valueSha256: /^[0-9a-f]{64}$/ }]);
  t.notOk(JSON.stringify(outcome.record).includes('platform'), 'the value itself is not recorded');
  t.match(outcome.record.policies, [{ name: 'team-label/team-label', result: 'pass' }]);
});

t.test('a PolicyTest case checks the mutated object', async (t) => {
  const suite = `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: { name: labels }
spec:
  cases:
    - name: gets the team label
      object: { apiVersion: v1, kind: Pod, metadata: { name: a, namespace: shop, labels: {} }, spec: { containers: [{ name: a, image: nginx:1.27 }] } }
      expect: allow
      mutated: { metadata: { labels: { example.com/team: platform } } }
    - name: a wrong expectation fails
      object: { apiVersion: v1, kind: Pod, metadata: { name: a, namespace: shop, labels: {} }, spec: { containers: [{ name: a, image: nginx:1.27 }] } }
      expect: allow
      mutated: { metadata: { labels: { example.com/team: web } } }
`;
  const outcomes = await runPolicyTests(await load({ 'm.yaml': TEAM_LABEL, 'm.test.yaml': suite }));
  t.same(outcomes.map((o) => o.passed), [true, false]);
  t.match(outcomes[1]!.detail, /mutated object: \.metadata\.labels\.example\.com\/team: expected "web", got "platform"/);
});

t.test('lint warns of an atomic list or selector written out in an apply configuration, for the kinds the policy matches', async (t) => {
  const sidecar = map('sidecar', `mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >-
        Object{spec: Object.spec{initContainers: [Object.spec.initContainers{name: "proxy", image: "mesh/proxy:1.0", args: ["proxy"], env: [Object.spec.initContainers.env{name: "A", value: "1"}]}]}}`);
  const set = await load({ 'm.yaml': sidecar });
  t.match(set.warnings.map((w) => w.message), [/m\.yaml:\d+:\d+: sets \.spec\.initContainers\.args, atomic in Pod: the API server \(and trustgate\) refuse this apply configuration at admission/]);
  t.notMatch(set.warnings[0]!.message, /env/, 'env is a map list');
  t.same((await load({ 'm.yaml': PULL_ALWAYS })).warnings, [], 'containers built by a comprehension: nothing to say');
  const anyKind = sidecar.replace('{ apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods] }', '{ apiGroups: ["*"], apiVersions: ["*"], operations: [CREATE], resources: ["*"] }');
  t.same((await load({ 'm.yaml': anyKind })).warnings, [], 'a rule over every kind may meet one where the list merges');
});

t.test('a scan judges each manifest as the cluster would: mutated first', async (t) => {
  const { scanEach } = await import('../../src/policy/scan.js');
  const set = await load({
    '1.yaml': TEAM_LABEL,
    '2.yaml': policyYaml('needs-team', `${POD_RULE}\nvalidations:\n  - expression: "'example.com/team' in object.metadata.labels"\n    message: no team`),
  });
  const findings: { verdict: string; name?: string }[] = [];
  const manifests = [{ object: pod() as never, where: 'a.yaml:1' }, { object: { ...pod(), metadata: { name: 'bare', namespace: 'shop' } } as never, where: 'a.yaml:9' }];
  await scanEach(manifests, { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000 }, {}, (f) => findings.push(f));
  t.same(findings.map((f) => `${f.name} ${f.verdict}`), ['web allow', 'bare deny'], 'the label the mutation adds satisfies the check; without labels to add to, the mutation fails');
  t.match(findings[1], { policies: [{ name: 'team-label/team-label', code: 'MUTATION_FAILED' }] });
});

t.test('a mutation returns what its patch type takes, as the API server requires', async (t) => {
  const errors = async (patchType: string, field: string, expression: string) =>
    (await loadPolicySet([await policyDir({ 'm.yaml': map('m', `mutations:\n  - patchType: ${patchType}\n    ${field}:\n      expression: '${expression}'`) })])).errors.map((e) => e.message);
  t.match(await errors('ApplyConfiguration', 'applyConfiguration', 'Object.spec{replicas: 1}'), [/an ApplyConfiguration must evaluate to Object\{…\}, not Object\.spec\{…\}/]);
  t.match(await errors('JSONPatch', 'jsonPatch', '[Object{}]'), [/a JSONPatch expression lists JSONPatch\{…\} operations, not Object\{…\}/]);
  t.same(await errors('JSONPatch', 'jsonPatch', '[JSONPatch{op: "add", path: "/spec/containers/-", value: Object.spec.containers{name: "x", image: "y"}}]'), [], 'an Object value inside one is fine');
});

t.test('the Kubernetes documentation\'s examples decide as the API server does', async (t) => {
  const { copyFile, mkdtemp } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const examples = new URL('../fixtures/map/kubernetes-website/mutatingadmissionpolicy/', import.meta.url).pathname;
  const setOf = async (policy: string) => {
    const dir = await mkdtemp(join(tmpdir(), 'trustgate-map-'));
    for (const f of [policy, 'applyconfiguration-example-binding.yaml']) await copyFile(join(examples, f), join(dir, f));
    const result = await loadPolicySet([dir]);
    if (!result.set) throw new Error(result.errors.map((e) => e.message).join('\n'));
    return result.set;
  };
  const withInit = pod({ spec: { initContainers: [{ name: 'setup', image: 'busybox:1.36' }], containers: [{ name: 'web', image: 'nginx:1.27' }] } });

  const jsonPatch = await setOf('json-patch-example.yaml');
  t.same(jsonPatch.warnings, []);
  const added = await run(jsonPatch, withInit);
  t.same(added.patch, [{ op: 'add', path: '/spec/initContainers/1', value: { name: 'mesh-proxy', image: 'mesh-proxy/v1.0.0', restartPolicy: 'Always' } }]);
  t.same((await run(jsonPatch, added.patched)).patch, [], 'a pod that has the sidecar is left alone (its match condition)');
  t.match((await run(jsonPatch, pod())).response, { allowed: false, status: { message: /no such key: initContainers/i } }, 'a pod without initContainers: the match condition errors, and failurePolicy: Fail denies, as in the API server');

  const apply = await setOf('applyconfiguration-example.yaml');
  t.match(apply.warnings.map((w) => w.message), [/applyconfiguration-example\.yaml:\d+:\d+: sets \.spec\.initContainers\.args, atomic in Pod/], 'lint says what the API server will say');
  t.match((await run(apply, withInit)).response, { allowed: false, status: { message: /may not mutate atomic arrays, maps or structs: \.spec\.initContainers\[0\]\.args/ } }, 'the API server\'s own error for this example');
});

t.test('reinvocationPolicy: IfNeeded runs a policy once more after the object changed, as the API server reinvokes', async (t) => {
  const tierAnnotation = (reinvocation: string) => map('tier-annotation', `reinvocationPolicy: ${reinvocation}
mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: 'Object{metadata: Object.metadata{annotations: {"example.com/tier": object.metadata.labels.?tier.orValue("unknown")}}}'`);
  const tierLabel = map('tier-label', `mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/labels/tier", value: "web"}]'`);
  const once = await run(await load({ '1.yaml': tierAnnotation('Never'), '2.yaml': tierLabel }), pod());
  t.equal(once.patched.metadata.annotations['example.com/tier'], 'unknown', 'Never: it saw the object before the label');
  const again = await run(await load({ '1.yaml': tierAnnotation('IfNeeded'), '2.yaml': tierLabel }), pod());
  t.equal(again.patched.metadata.annotations['example.com/tier'], 'web', 'IfNeeded: run again after the label was added');
  t.same(again.outcome.results.map((r) => r.name), ['tier-annotation/tier-annotation', 'tier-label/tier-label', 'tier-annotation/tier-annotation'], 'the second run is recorded, as it changed something');
  const settled = await run(await load({ '1.yaml': tierAnnotation('IfNeeded'), '2.yaml': tierLabel }), pod({ metadata: { name: 'web', namespace: 'shop', labels: { tier: 'web' } } }));
  t.equal(settled.outcome.results.length, 2, 'a second run that changes nothing is not recorded');
});

t.test('a failing mutation is skipped and the policy\'s others apply; failurePolicy: Ignore admits what they made', async (t) => {
  const set = await load({ 'm.yaml': map('partial', `failurePolicy: Ignore
mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/labels/a", value: "1"}]'
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "remove", path: "/metadata/labels/missing"}]'
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/labels/c", value: "3"}]'`) });
  const { response, patched, outcome } = await run(set, pod());
  t.equal(response.allowed, true);
  t.same(patched.metadata.labels, { app: 'web', a: '1', c: '3' });
  t.match(outcome.results[0], { result: 'error', code: 'MUTATION_FAILED', messages: [/mutations\[1\]: operation 0 \(remove \/metadata\/labels\/missing\): path \/metadata\/labels\/missing does not exist/] });
  t.match(response.warnings, [/\[partial\/partial\] could not be evaluated and was ignored \(failurePolicy: Ignore\): mutations\[1\]/]);
});

t.test('trustgate test names the mutation policies no case ran to a change', async (t) => {
  const { policiesNeverFailed } = await import('../../src/policy/index.js');
  const suite = (mutated: boolean) => `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: { name: s }
spec:
  cases:
    - name: a pod
      object: { apiVersion: v1, kind: Pod, metadata: { name: a, namespace: shop, labels: {} }, spec: { containers: [{ name: a, image: nginx:1.27 }] } }
      expect: allow
${mutated ? '      mutated: { metadata: { labels: { example.com/team: platform } } }' : ''}
`;
  for (const mutated of [true, false]) {
    const set = await load({ 'm.yaml': TEAM_LABEL, 's.test.yaml': suite(mutated) });
    const outcomes = await runPolicyTests(set);
    t.same(outcomes.map((o) => o.passed), [true]);
    t.same(policiesNeverFailed(set, outcomes), { untested: [], needRegistry: [], neverMutated: mutated ? [] : ['team-label/team-label'] }, mutated ? 'run on /mutate' : 'only validated: never ran');
  }
});

t.test('trustgate\'s own Policy takes mutations in the same form; its mode decides what a failing one means', async (t) => {
  const own = (mode: string) => policyYaml('own-label', `mode: ${mode}
${POD_RULE}
reinvocationPolicy: Never
mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/labels/owner", value: "platform"}]'`);
  const enforced = await run(await load({ 'p.yaml': own('enforce') }), pod());
  t.same(enforced.patch, [{ op: 'add', path: '/metadata/labels/owner', value: 'platform' }]);
  const bare = { ...pod(), metadata: { name: 'bare', namespace: 'shop' } };
  t.equal((await run(await load({ 'p.yaml': own('enforce') }), bare)).response.allowed, false, 'enforce: a failed mutation denies');
  const warned = await run(await load({ 'p.yaml': own('warn') }), bare);
  t.equal(warned.response.allowed, true);
  t.match(warned.response.warnings, [/\[own-label\] mutations\[0\]: operation 0 \(add \/metadata\/labels\/owner\)/], 'warn: admitted with the failure as a warning');
});

t.test('a mutation value with no JSON form fails the mutation, as the API server cannot marshal it; bytes, timestamps and durations are written as strings', async (t) => {
  const labelled = (value: string) => map('value', `mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/labels/x", value: ${value}}]'`);
  for (const [value, message] of [
    ['optional.of("a")', /value\[0\]\.value: a value of type Optional has no JSON form/],
    ['type(1)', /a value of type Type has no JSON form/],
    ['1.0 / 0.0', /Infinity has no JSON form/],
    ['{1: "a"}', /a map key 1 is no string/],
    ['9223372036854775807', /9223372036854775807 is beyond what trustgate writes exactly as a JSON number/],
  ] as const) {
    const { response, outcome } = await run(await load({ 'm.yaml': labelled(value) }), pod());
    t.equal(response.allowed, false, value);
    t.match(outcome.results[0], { code: 'MUTATION_FAILED', messages: [message] }, value);
  }
  for (const [value, written] of [['b"ab"', 'YWI='], ['timestamp("2026-01-01T00:00:00Z")', '2026-01-01T00:00:00.000Z'], ['duration("90s")', '90s'], ['7u', 7]] as const) {
    t.equal((await run(await load({ 'm.yaml': labelled(value) }), pod())).patched.metadata.labels.x, written, value);
  }
});
