// Policy files: schema and compile errors point at file:line:col; a set loads whole or not at all.
import { rename, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { loadPolicySet } from '../../src/policy/index.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';

async function errorsOf(files: Record<string, string>): Promise<string[]> {
  const dir = await policyDir(files);
  const result = await loadPolicySet([dir]);
  return result.errors.map((e) => e.message.replaceAll(`${dir}/`, ''));
}

t.test('a valid directory loads recursively, with several documents a file', async (t) => {
  const dir = await policyDir({
    'a.yaml': `${policyYaml('one', `${POD_RULE}\nvalidations:\n  - expression: "true"`)}---\n${policyYaml('two', `${POD_RULE}\nvalidations:\n  - expression: "true"`)}`,
    'nested/deeper/b.yml': policyYaml('three', `${POD_RULE}\nschema:\n  type: object`),
    'nested/notes.txt': 'ignored',
  });
  const result = await loadPolicySet([dir]);
  t.same(result.set?.policies.map((p) => p.name), ['one', 'two', 'three']);
  t.match(result.set?.revision, /^[0-9a-f]{12}$/);
});

t.test('a mounted ConfigMap loads once, by its keys, across the kubelet\'s update swap', async (t) => {
  // the kubelet's layout: each key a symlink through ..data into a timestamped directory; on an
  // update it writes a new directory, swaps ..data, and removes the old one a moment later
  const dir = await policyDir({
    '..2026_11_30_15_00_00.1/p.yaml': policyYaml('mounted', `${POD_RULE}\nvalidations:\n  - expression: "true"`),
    '..2026_11_30_15_05_00.2/p.yaml': policyYaml('mounted', `${POD_RULE}\nvalidations:\n  - expression: "false"`),
    '.p.yaml.swp': 'an editor\'s temporary file: hidden, never read',
  });
  await symlink('..2026_11_30_15_00_00.1', join(dir, '..data'));
  await symlink('..data/p.yaml', join(dir, 'p.yaml'));
  await symlink('.', join(dir, 'loop')); // a symlink loop is read once
  await symlink('..data/gone.yaml', join(dir, 'gone.yaml')); // a dangling key is skipped
  const before = await loadPolicySet([dir]);
  t.same(before.errors, []);
  t.same(before.set?.policies.map((p) => [p.name, p.source.file.slice(dir.length + 1)]), [['mounted', 'p.yaml']], 'the key, not the timestamped file');
  t.equal(before.set?.files, 1);
  // the swap: both versions on disk, one visible
  await symlink('..2026_11_30_15_05_00.2', join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  const after = await loadPolicySet([dir]);
  t.same(after.errors, [], 'no duplicate names while the old version is still on disk');
  t.equal(after.set?.policies[0]?.validations[0]?.expression.source, 'false', 'the new version');
  t.not(after.set?.revision, before.set?.revision);
});

t.test('schema errors name the file, line and column of the offending node', async (t) => {
  const errors = await errorsOf({
    'p.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata:
  name: p
spec:
  mode: enforced
  match:
    resources:
      - apiGroups: [""]
        resources: [pods]
        operations: [CREATE]
  validations:
    - expression: "true"
      mesage: typo
`,
  });
  t.match(errors, [/^p\.yaml:6:9: spec\.mode: must be one of "enforce", "warn", "audit"$/, /^p\.yaml:14:7: spec\.validations\.0: unknown field "mesage" \(did you mean "message"\?\)$/]);
});

t.test('CEL errors point at the expression and say why', async (t) => {
  const errors = await errorsOf({
    'p.yaml': policyYaml('p', `${POD_RULE}\nvalidations:\n  - expression: "size(object.spec.containers) + 'x' == 'y'"`),
  });
  t.equal(errors.length, 1, errors.join('\n'));
  t.match(errors[0], /^p\.yaml:12:20: type error: no such overload: int \+ string \(in "size\(object/);
});

t.test('YAML syntax errors, wrong kinds and duplicate names are reported, nothing half-loads', async (t) => {
  const good = policyYaml('good', `${POD_RULE}\nvalidations:\n  - expression: "true"`);
  const errors = await errorsOf({
    'good.yaml': good,
    'dup.yaml': good,
    'broken.yaml': 'apiVersion: trustgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: x\n',
    'kind.yaml': 'apiVersion: trustgate.dev/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: y}\nspec: {}\n',
  });
  t.match(errors.join('\n'), /broken\.yaml:\d+:\d+: /);
  t.match(errors.join('\n'), /kind\.yaml:2:7: kind: must be one of "Policy", "TrustRoot", "PolicyException", "PolicyTest"/);
  t.match(errors.join('\n'), /good\.yaml:4:9: Policy good is defined twice \(first at .*dup\.yaml:4:9\)/);
});

t.test('a policy that checks nothing, or an unknown variable, fails the load', async (t) => {
  t.match(await errorsOf({ 'p.yaml': policyYaml('empty', POD_RULE) }), [/the policy checks nothing/]);
  t.match(await errorsOf({ 'p.yaml': policyYaml('v', `${POD_RULE}\nvalidations:\n  - expression: "1 == variables.nope"`) }), [/^p\.yaml:12:25: undeclared variable variables\.nope \(declared: none\)/]);
});

t.test('attestation rules are checked at load', async (t) => {
  const rule = (extra: string) => policyYaml('img', `${POD_RULE}\nimages:\n  - match: ["ghcr.io/org/**"]\n    authorities: [{ name: a, keyless: { identities: [{ issuer: i, subject: s }] } }]${extra}`);
  t.match(await errorsOf({ 'p.yaml': rule('\n    attestations: [{ name: slsa }]') }), [/missing required field "predicateType"/]);
  t.match(await errorsOf({ 'p.yaml': rule('\n    attestations: [{ name: slsa, predicateType: slsa }]') }), [/predicateType "slsa" is neither a URI nor one of slsaprovenance02/]);
  t.match(await errorsOf({ 'p.yaml': rule('\n    attestations: [{ name: slsa, predicateType: slsaprovenance, authorities: [nobody] }]') }), [/unknown authorities nobody; this rule has a/]);
  t.match(await errorsOf({ 'p.yaml': rule('\n    attestations: [{ name: slsa, predicateType: slsaprovenance, expression: "facts.builderId == " }]') }), [/p\.yaml:\d+:\d+: syntax error/]);
  t.match(await errorsOf({ 'p.yaml': rule('\n    attestations: [{ name: slsa, predicateType: slsaprovenance, expression: "object.metadata.name == facts.builderId" }]') }), [/attestation expressions see predicate, statement, signer, facts, attestations, not object/]);
  t.match(await errorsOf({ 'p.yaml': rule('\n    requireSignature: false') }), [/requireSignature: false leaves nothing to check/]);
  t.match(await errorsOf({ 'p.yaml': rule('\n    attestations: [{ name: x, predicateType: vuln }, { name: x, predicateType: vuln }]') }), [/attestation x is named twice/]);
});

t.test('images rules and trust roots are checked at load with positions', async (t) => {
  t.match(await errorsOf({ 'p.yaml': policyYaml('img', `${POD_RULE}\nimages:\n  - match: ["ghcr.io/**"]`) }), [/p\.yaml:\d+:\d+: .*authorities/]);
  t.match(await errorsOf({ 'p.yaml': policyYaml('img', `${POD_RULE}\nimages:\n  - match: ["ghcr.io/**"]\n    authorities: [{ name: a, keyless: { trustRoot: nope, identities: [{ issuer: i, subject: s }] } }]`) }), [/unknown trustRoot nope/]);
  t.match(await errorsOf({ 'p.yaml': policyYaml('img', `${POD_RULE}\nimages:\n  - match: ["ghcr.io/**"]\n    authorities: [{ name: a, keyless: { identities: [{ issuer: i, subjectRegExp: "(" }] } }]`) }), [/subjectRegExp "\(" is not a valid RE2 expression/]);
  t.match(await errorsOf({ 'p.yaml': policyYaml('img', `${POD_RULE}\nimages:\n  - match: ["ghcr.io/**"]\n    authorities: [{ name: a, key: { publicKey: "not a key" } }]`) }), [/publicKey is not a PEM public key/]);
  t.match(await errorsOf({ 'r.yaml': 'apiVersion: trustgate.dev/v1alpha1\nkind: TrustRoot\nmetadata: { name: mine }\nspec: { trustedRootFile: ./missing.json }\n' }), [/r\.yaml:4:\d+: cannot read trusted root/]);
  t.match(await errorsOf({ 'r.json': JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [{ publicKey: { rawBytes: 'AA==' }, logId: { keyId: 'AA==' } }] }), 'r.yaml': 'apiVersion: trustgate.dev/v1alpha1\nkind: TrustRoot\nmetadata: { name: mine }\nspec: { trustedRootFile: ./r.json }\n' }), [/refusing to trust a key since the beginning of time/]);
  t.match(await errorsOf({ 'r.yaml': 'apiVersion: trustgate.dev/v1alpha1\nkind: TrustRoot\nmetadata: { name: sigstore-public-good }\nspec: { trustedRootFile: ./x.json }\n' }), [/embedded and cannot be redefined/]);
});

t.test('params from a file are read relative to the policy file', async (t) => {
  const dir = await policyDir({
    'sub/p.yaml': policyYaml('p', `${POD_RULE}\nparams:\n  file: ./allowed.yaml\nvalidations:\n  - expression: "object.metadata.name in params.names"`),
    'sub/allowed.yaml': 'names: [a, b]\n',
  });
  const result = await loadPolicySet([join(dir, 'sub')]);
  t.same(result.set?.policies[0]?.params, { kind: 'value', value: { names: ['a', 'b'] } });
  t.match((await errorsOf({ 'p.yaml': policyYaml('p', `${POD_RULE}\nparams:\n  file: ./missing.yaml\nvalidations:\n  - expression: "true"`) }))[0], /cannot read params file/);
  // the params decide as much as the policy text: the revision records and audit records carry changes with them
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(dir, 'sub/allowed.yaml'), 'names: [a, b, c]\n');
  const changed = await loadPolicySet([join(dir, 'sub')]);
  t.not(changed.set?.policies[0]?.revision, result.set?.policies[0]?.revision, 'a changed params file is a new policy revision');
  t.not(changed.set?.revision, result.set?.revision, 'and a new policy set revision');
});

t.test("documents that are not trustgate's are left alone, a misspelt kind is not", async (t) => {
  const dir = await policyDir({ 'pod.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n', 'p.yaml': 'apiVersion: trustgate.dev/v1alpha1\nkind: Polcy\nmetadata: {name: p}\nspec: {}\n' });
  const result = await loadPolicySet([dir]);
  t.match(result.errors.map((e) => e.message), [/kind: must be one of/]);
});

t.test('another engine\'s policy is not taken for data in silence: it loads with a warning that nothing enforces it', async (t) => {
  const dir = await policyDir({
    'cip.yaml': 'apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: c}\nspec: {images: [{glob: "**"}]}\n',
    'kyverno.yaml': 'apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: k}\nspec: {rules: []}\n',
    'params.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: params}\n',
    'odd.yaml': 'apiVersion: constructor/v1\nkind: Thing\nmetadata: {name: t}\n',
    'webhook.yaml': 'apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: w}\n',
    'p.yaml': policyYaml('p', `${POD_RULE}\nvalidations:\n  - expression: "true"`),
  });
  const set = (await loadPolicySet([dir])).set!;
  t.equal(set.policies.length, 1);
  t.match(set.warnings.map((w) => w.message), [
    /cip\.yaml:2:7: ClusterImagePolicy is Sigstore policy-controller's, which trustgate does not run/,
    /kyverno\.yaml:2:7: ClusterPolicy is Kyverno's, which trustgate does not run/,
  ]);
  t.equal(set.warnings.length, 2, 'an apiVersion group named constructor is no engine, a webhook configuration no policy: no more warnings');
});

t.test('a missing directory is a clear error', async (t) => {
  const result = await loadPolicySet(['/nonexistent/policies']);
  t.match(result.errors[0]?.message, /\/nonexistent\/policies: no such file or directory/);
});
