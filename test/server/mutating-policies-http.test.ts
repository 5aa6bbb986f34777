// A MutatingAdmissionPolicy through the real TLS server: /mutate answers the patch the API server
// applies, /validate leaves the object alone, and the file sink records the patch by digest.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { policyDir } from '../helpers/policies.js';
import { readFixture, startTestServer } from '../helpers/server.js';

const POLICY = `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: { name: pull-always }
spec:
  matchConstraints:
    resourceRules:
      - { apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods] }
  mutations:
    - patchType: ApplyConfiguration
      applyConfiguration:
        expression: >-
          Object{spec: Object.spec{containers: object.spec.containers.map(c, Object.spec.containers{name: c.name, imagePullPolicy: "Always"})}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: { name: all }
spec: { policyName: pull-always }
`;

t.test('/mutate answers a MutatingAdmissionPolicy\'s patch over HTTPS; /validate does not run it', async (t) => {
  const records = join(await mkdtemp(join(tmpdir(), 'trustgate-map-')), 'decisions.jsonl');
  const server = await startTestServer({ policies: [await policyDir({ 'm.yaml': POLICY })], audit: [`file:${records}`] });
  t.teardown(() => server.close());
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  const mutated = (await server.post('/mutate', review)).json().response;
  t.match(mutated, { allowed: true, patchType: 'JSONPatch' });
  const patch = JSON.parse(Buffer.from(mutated.patch, 'base64').toString('utf8'));
  const containers = review.request.object.spec.containers as { name: string; imagePullPolicy?: string }[];
  t.same(patch, containers.map((c, i) => ({ op: c.imagePullPolicy === undefined ? 'add' : 'replace', path: `/spec/containers/${i}/imagePullPolicy`, value: 'Always' })).filter((_, i) => containers[i]!.imagePullPolicy !== 'Always'));
  const validated = (await server.post('/validate', review)).json().response;
  t.equal(validated.patch, undefined);
  t.match((await server.get('/metrics')).text, new RegExp(`trustgate_patch_operations_total\\{endpoint="mutate",policy="pull-always/all"\\} ${patch.length}\\n`), 'the patch operations each policy made, counted');
  // the file sink is fed from the spool: wait for both records
  let lines: string[] = [];
  for (let i = 0; i < 100 && lines.length < 2; i++) {
    lines = (await readFile(records, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    if (lines.length < 2) await new Promise((r) => setTimeout(r, 50));
  }
  const [mutateRecord, validateRecord] = lines.map((l) => JSON.parse(l));
  t.match(mutateRecord, { endpoint: 'mutate', allowed: true, policies: [{ name: 'pull-always/all', result: 'pass' }] });
  t.ok(mutateRecord.patch.length > 0 && mutateRecord.patch.every((o: Record<string, unknown>) => typeof o.valueSha256 === 'string' && !('value' in o)), 'the values by digest');
  t.match(validateRecord, { endpoint: 'validate', policies: [], patch: [] });
});
