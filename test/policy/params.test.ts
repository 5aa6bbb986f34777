// trustgate's own policies take cluster params as a ValidatingAdmissionPolicyBinding's paramRef
// does: by name in a fixed namespace, by name from the namespace of each request, or one
// evaluation per object a label selector selects; ConfigMaps or custom kinds (params.object);
// names and selectors checked as the API server would; and a team tests them offline.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { loadPolicySet } from '../../src/policy/index.js';
import { trustgate } from '../helpers/cli.js';
import { policyDir, policyYaml } from '../helpers/policies.js';

const REPLICAS = `match:
  resources:
    - { apiGroups: [apps], resources: [deployments], operations: [CREATE, UPDATE] }
validations:
  - expression: object.spec.replicas <= int(params.data.maxReplicas)
    messageExpression: "'at most ' + params.data.maxReplicas + ' replicas (' + params.metadata.name + ')'"
`;
const limits = (namespace: string, name: string, max: number, labels = '{}') =>
  `{ apiVersion: v1, kind: ConfigMap, metadata: { name: ${name}, namespace: ${namespace}, labels: ${labels} }, data: { maxReplicas: "${max}" } }`;
const deployment = (replicas: number) => `{ apiVersion: apps/v1, kind: Deployment, metadata: { name: web }, spec: { replicas: ${replicas} } }`;

t.test('params.configMap without a namespace, or with a selector, tested offline with a PolicyTest', async (t) => {
  const dir = await policyDir({
    'per-namespace.yaml': policyYaml('per-namespace', `${REPLICAS}params:\n  configMap: { name: limits }\n`),
    'selected.yaml': policyYaml('selected', `${REPLICAS}params:\n  configMap: { selector: { matchExpressions: [{ key: limits, operator: Exists }] }, parameterNotFoundAction: Allow }\n`),
    'limits.test.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: { name: limits }
spec:
  configMaps:
    - ${limits('shop', 'limits', 3)}
    - ${limits('batch', 'limits', 50)}
    - ${limits('shop', 'hard', 5, '{ limits: "yes" }')}
    - ${limits('shop', 'soft', 10, '{ limits: "yes" }')}
  cases:
    - { name: within the shop's limits, expect: allow, namespace: shop, object: ${deployment(3)} }
    - name: over the shop's own limit only
      expect: deny
      namespace: shop
      object: ${deployment(4)}
      messages: ["[per-namespace] at most 3 replicas (limits)"]
    - { name: batch has a limit of its own, expect: allow, namespace: batch, object: ${deployment(40)} }
    - name: over one selected ConfigMap, and the per-namespace one
      expect: deny
      namespace: shop
      object: ${deployment(7)}
      messages: ["[selected] at most 5 replicas (hard)", "[per-namespace] at most 3 replicas (limits)"]
    - name: a namespace without params
      expect: deny
      namespace: empty
      object: ${deployment(1)}
      messages: ["[per-namespace] params ConfigMap empty/limits not found"]
`,
  });
  const lint = await trustgate('lint', '--strict', dir);
  t.equal(lint.code, 0, lint.stdout + lint.stderr);
  const tested = await trustgate('test', dir);
  t.equal(tested.code, 0, tested.stdout + tested.stderr);
  t.match(tested.stdout, /5 passed, 0 failed/);
  const loaded = await loadPolicySet([dir]);
  t.match(loaded.set?.policies.map((p) => p.params), [{ kind: 'object', type: { apiVersion: 'v1', kind: 'ConfigMap' }, name: 'limits' }, { kind: 'objects', type: { kind: 'ConfigMap' }, selector: {}, allowMissing: true }]);
  t.notOk('namespace' in loaded.set!.policies[0]!.params, 'no namespace: the request\'s');
});

t.test('params.configMap takes exactly one of name and selector', async (t) => {
  for (const configMap of ['{}', '{ namespace: shop }', '{ name: limits, selector: {} }']) {
    const dir = await policyDir({ 'p.yaml': policyYaml('p', `${REPLICAS}params:\n  configMap: ${configMap}\n`) });
    const result = await loadPolicySet([dir]);
    t.match(result.errors.map((e) => e.message), [/p\.yaml:\d+:\d+: params\.configMap needs exactly one of name \(one object\) and selector/], configMap);
  }
  const dir = await policyDir({ 'p.yaml': policyYaml('p', `${REPLICAS}params:\n  configMap: { name: limits, parameterNotFoundAction: Ignore }\n`) });
  t.match((await loadPolicySet([dir])).errors.map((e) => e.message), [/parameterNotFoundAction: must be one of "Allow", "Deny"/]);
});

t.test('params from each request\'s namespace on a rule that matches cluster-scoped objects: a warning where the rule is', async (t) => {
  const warningsOf = async (rules: string, configMap = '{ name: limits }') => {
    const dir = await policyDir({ 'p.yaml': policyYaml('p', `match:\n  resources:\n${rules}\nparams:\n  configMap: ${configMap}\nvalidations:\n  - expression: "params.data.x == 'y'"\n`) });
    const result = await loadPolicySet([dir]);
    t.same(result.errors, []);
    return result.set!.warnings.map((w) => w.message.replaceAll(`${dir}/`, ''));
  };
  t.match(await warningsOf('    - { apiGroups: [""], resources: [pods, namespaces], operations: [CREATE] }'), [/^p\.yaml:8:9: params are read from the namespace of each request, but this rule matches namespaces, whose requests have no namespace/]);
  t.match(await warningsOf('    - { apiGroups: ["*"], resources: ["*"], operations: [CREATE] }'), [/matches every resource, cluster-scoped ones included/]);
  t.match(await warningsOf('    - { apiGroups: [example.com], resources: [widgets], operations: [CREATE], scope: Cluster }'), [/matches scope: Cluster/]);
  t.same(await warningsOf('    - { apiGroups: ["*"], resources: ["*"], operations: [CREATE], scope: Namespaced }'), [], 'scope: Namespaced');
  t.same(await warningsOf('    - { apiGroups: [""], resources: [pods], operations: [CREATE] }'), [], 'namespaced resources only');
  t.same(await warningsOf('    - { apiGroups: [""], resources: [namespaces], operations: [CREATE] }', '{ namespace: trustgate, name: limits }'), [], 'params in a named namespace');

  const vap = await policyDir({ 'vap.yaml': `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: limits }
spec:
  paramKind: { apiVersion: v1, kind: ConfigMap }
  matchConstraints:
    resourceRules:
      - { apiGroups: ["*"], apiVersions: ["*"], operations: [CREATE], resources: ["*"] }
  validations: [{ expression: "params.data.x == 'y'" }]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: per-namespace }
spec: { policyName: limits, validationActions: [Deny], paramRef: { name: limits } }
` });
  const loaded = await loadPolicySet([vap]);
  t.match(loaded.set?.warnings.map((w) => w.message.replaceAll(`${vap}/`, '')), [/^vap\.yaml:8:9: params are read from the namespace of each request, but this rule matches every resource/], 'as Kubernetes warns, in the policy file');
  const narrowed = await loadPolicySet([await policyDir({ 'vap.yaml': (await readFile(join(vap, 'vap.yaml'), 'utf8')).replace('paramRef: { name: limits } }', 'paramRef: { name: limits }, matchResources: { resourceRules: [{ apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods] }] } }') })]);
  t.same(narrowed.errors, []);
  t.same(narrowed.set?.warnings, [], "a binding's namespaced rules narrow it");
});

t.test('a params name or selector the API server would refuse is refused at load, where it is written', async (t) => {
  const errorsOf = async (configMap: string) => {
    const dir = await policyDir({ 'p.yaml': policyYaml('p', `${REPLICAS}params:\n  configMap: ${configMap}\n`) });
    return (await loadPolicySet([dir])).errors.map((e) => e.message.replaceAll(`${dir}/`, ''));
  };
  t.match(await errorsOf('{ name: "limits,other" }'), [/^p\.yaml:13:\d+: name a lowercase RFC 1123 subdomain must consist of/], 'a comma would split the field selector');
  t.match(await errorsOf('{ selector: { matchLabels: { "bad key!": x } } }'), [/label key "bad key!": name part must consist of alphanumeric/]);
  t.match(await errorsOf('{ selector: { matchLabels: { tier: "a b" } } }'), [/label value "a b": a valid label must be an empty string/]);
  t.match(await errorsOf('{ selector: { matchExpressions: [{ key: tier, operator: In }] } }'), [/In needs values/]);
  t.match(await errorsOf('{ selector: { matchExpressions: [{ key: tier, operator: Exists, values: [x] }] } }'), [/Exists takes no values/]);
  t.same(await errorsOf('{ selector: { matchLabels: { example.com/tier: gold }, matchExpressions: [{ key: team, operator: NotIn, values: [a, b] }] } }'), []);
  const vap = await policyDir({ 'vap.yaml': `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: limits }
spec:
  paramKind: { apiVersion: rules.example.com/v1, kind: Limit }
  matchConstraints: { resourceRules: [{ apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments] }] }
  validations: [{ expression: "object.spec.replicas <= params.max" }]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: b }
spec:
  policyName: limits
  validationActions: [Deny]
  paramRef: { selector: { matchLabels: { "-tier": gold } } }
` });
  t.match((await loadPolicySet([vap])).errors.map((e) => e.message.replaceAll(`${vap}/`, '')), [/^vap\.yaml:15:\d+: label key "-tier"/], "a binding's selector, at its paramRef");
});

t.test('params.object: a custom kind, from the cluster (here a cluster file), in the kind\'s own scope', async (t) => {
  const dir = await policyDir({
    'p.yaml': policyYaml('tiered', `match:
  resources:
    - { apiGroups: [apps], resources: [deployments], operations: [CREATE] }
params:
  object: { apiVersion: rules.example.com/v1, kind: ReplicaLimit, name: standard }
validations:
  - expression: object.spec.replicas <= params.maxReplicas
    messageExpression: "'at most ' + string(params.maxReplicas) + ' replicas'"
`),
    'cases.test.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: PolicyTest
metadata: { name: tiered }
spec:
  configMaps:
    - { apiVersion: rules.example.com/v1, kind: ReplicaLimit, metadata: { name: standard, namespace: shop }, maxReplicas: 3 }
    - { apiVersion: rules.example.com/v1, kind: ReplicaLimit, metadata: { name: standard, namespace: batch }, maxReplicas: 40 }
  cases:
    - { name: "shop's own limit", expect: deny, namespace: shop, object: ${deployment(4)}, messages: ["[tiered] at most 3 replicas"] }
    - { name: "batch's own limit", expect: allow, namespace: batch, object: ${deployment(40)} }
    - { name: no limit here, expect: deny, namespace: empty, object: ${deployment(1)}, messages: ["params ReplicaLimit empty/standard not found"] }
`,
  });
  const tested = await trustgate('test', dir);
  t.equal(tested.code, 0, tested.stdout + tested.stderr);
  t.match(tested.stdout, /3 passed, 0 failed/);
  const missing = await policyDir({ 'p.yaml': policyYaml('p', `${REPLICAS}params:\n  object: { name: standard }\n`) });
  t.match((await loadPolicySet([missing])).errors.map((e) => e.message), [/params\.object: missing required field "apiVersion"/]);
});

t.test('a params kind or namespace that could point a cluster call elsewhere, or at Secrets, is refused at load', async (t) => {
  const errorsOf = async (params: string) => {
    const dir = await policyDir({ 'p.yaml': policyYaml('p', `${REPLICAS}params:\n  ${params}\n`) });
    return (await loadPolicySet([dir])).errors.map((e) => e.message.replaceAll(`${dir}/`, ''));
  };
  t.match(await errorsOf('object: { apiVersion: "a/../../api/v1", kind: Pod, name: x }'), [/apiVersion "a\/\.\.\/\.\.\/api\/v1" is not GROUP\/VERSION/], 'no path traversal into discovery');
  t.match(await errorsOf('object: { apiVersion: rules.example.com/v1, kind: "Replica/Limit", name: x }'), [/kind "Replica\/Limit" is not a Kubernetes kind/]);
  t.match(await errorsOf('object: { apiVersion: v1, kind: Secret, name: x }'), [/Secrets cannot be params/]);
  t.match(await errorsOf('configMap: { namespace: "../kube-system", name: x }'), [/^p\.yaml:\d+:\d+: namespace a lowercase RFC 1123 label/]);
  t.same(await errorsOf('object: { apiVersion: rules.example.com/v1beta1, kind: ReplicaLimit, namespace: shop, name: x }'), []);
  const vap = await policyDir({ 'vap.yaml': `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: leak }
spec:
  paramKind: { apiVersion: v1, kind: Secret }
  matchConstraints: { resourceRules: [{ apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments] }] }
  validations: [{ expression: "params.data.token == ''" }]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: b }
spec: { policyName: leak, validationActions: [Deny], paramRef: { name: creds, namespace: shop } }
` });
  t.match((await loadPolicySet([vap])).errors.map((e) => e.message), [/Secrets cannot be params/], 'a binding too');
});
