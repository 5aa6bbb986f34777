// The README's policy examples that say so (a marker comment before the block) load as
// written, so the documentation cannot drift from what trustgate accepts.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { loadPolicySet } from '../../src/policy/index.js';
import { parseImageReference } from '../../src/supplychain/oci/index.js';
import { policyDir } from '../helpers/policies.js';

const MARKER = '<!-- test/policy/readme-examples.test.ts loads this block -->';

async function markedBlocks(): Promise<string[]> {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  return readme.split(MARKER).slice(1).map((after) => {
    const block = /^\s*```yaml\n([\s\S]*?)\n```/.exec(after);
    if (!block) throw new Error(`a marker is not followed by a yaml block: ${after.slice(0, 80)}`);
    return block[1]!;
  });
}

t.test('every marked README example loads, without warnings', async (t) => {
  const blocks = await markedBlocks();
  t.ok(blocks.length >= 1, 'the README marks its examples');
  for (const [i, yaml] of blocks.entries()) {
    const result = await loadPolicySet([await policyDir({ 'example.yaml': yaml })]);
    t.same(result.errors.map((e) => e.message), [], `block ${i + 1} loads`);
    t.same(result.set?.warnings.map((w) => w.message), [], `block ${i + 1} has no warnings`);
  }
});

t.test('the policy-controller example selects what its glob says', async (t) => {
  const yaml = (await markedBlocks()).find((b) => b.includes('image-policy-keyless-with-identities'));
  const set = (await loadPolicySet([await policyDir({ 'example.yaml': yaml! })])).set!;
  const rule = set.policies[0]!.images[0]!;
  t.ok(rule.matches(parseImageReference('registry.example.com/team/demo-app:1.0')));
  t.notOk(rule.matches(parseImageReference('ghcr.io/team/demo-app:1.0')), 'another registry');
  t.same([...set.registries], ['registry.example.com'], 'the only registry it may contact');
});

t.test('the ValidatingAdmissionPolicy example decides as its text says', async (t) => {
  const { admit } = await import('../../src/admission/index.js');
  const { reviewForObject } = await import('../../src/admission/synthesize.js');
  const { NullDecisionRecorder } = await import('../../src/audit/index.js');
  const { StaticCluster } = await import('../../src/kube/index.js');
  const yaml = (await markedBlocks()).find((b) => b.includes('max-replicas.example.com'));
  const set = (await loadPolicySet([await policyDir({ 'example.yaml': yaml! })])).set!;
  t.same(set.policies.map((p) => p.name), ['max-replicas.example.com/tenants']);
  const cluster = StaticCluster.fromLabels({ shop: { role: 'tenant' }, ops: {} });
  const decide = (namespace: string, replicas: number) => admit(
    reviewForObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace }, spec: { replicas } }),
    'validate', { policies: () => set, recorder: new NullDecisionRecorder(), namespaces: cluster, params: cluster, replica: 't', deadlineMs: 8000 });
  const denied = (await decide('shop', 6)).review.response;
  t.match(denied, { allowed: false, status: { code: 422, reason: 'Invalid', message: /\[max-replicas\.example\.com\/tenants\] at most 5 replicas here/ } });
  t.equal((await decide('shop', 5)).review.response.allowed, true);
  t.equal((await decide('ops', 6)).review.response.allowed, true, 'not a tenant namespace');
});

t.test('the authorization example\'s own test cases pass', async (t) => {
  const { runPolicyTests } = await import('../../src/policy/index.js');
  const yaml = (await markedBlocks()).find((b) => b.includes('name: release-label'));
  const set = (await loadPolicySet([await policyDir({ 'example.yaml': yaml! })])).set!;
  const outcomes = await runPolicyTests(set);
  t.equal(outcomes.length, 3);
  t.same(outcomes.filter((o) => !o.passed), []);
});

t.test('the MutatingAdmissionPolicy example changes what its text says', async (t) => {
  const { admit } = await import('../../src/admission/index.js');
  const { reviewForObject } = await import('../../src/admission/synthesize.js');
  const { NullDecisionRecorder } = await import('../../src/audit/index.js');
  const { applyJsonPatch } = await import('../../src/policy/mutation/json-patch.js');
  const yaml = (await markedBlocks()).find((b) => b.includes('pull-always.example.com'));
  const set = (await loadPolicySet([await policyDir({ 'example.yaml': yaml! })])).set!;
  t.same(set.policies.map((p) => p.name), ['pull-always.example.com/everywhere']);
  const mutated = async (metadata: Record<string, unknown>) => {
    const review = reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop', ...metadata }, spec: { containers: [{ name: 'a', image: 'nginx:1.27' }, { name: 'b', image: 'redis:7' }] } });
    const r = (await admit(review, 'mutate', { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000 })).review.response;
    t.equal(r.allowed, true);
    return applyJsonPatch(review.request.object, JSON.parse(Buffer.from(r.patch!, 'base64').toString('utf8'))) as { metadata: { annotations: Record<string, string> }; spec: { containers: { imagePullPolicy: string }[] } };
  };
  const bare = await mutated({});
  t.same(bare.spec.containers.map((c) => c.imagePullPolicy), ['Always', 'Always']);
  t.same(bare.metadata.annotations, { 'example.com/pull-policy': 'enforced' }, 'the map is created when missing');
  t.same((await mutated({ annotations: { keep: 'me' } })).metadata.annotations, { keep: 'me', 'example.com/pull-policy': 'enforced' }, 'and added to when present');
});
