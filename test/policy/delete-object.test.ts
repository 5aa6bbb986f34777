// A policy matching DELETE whose validations read `object` (null on DELETE) is warned about at load.
import t from 'tap';
import { loadPolicySet } from '../../src/policy/index.js';
import { policyDir, policyYaml } from '../helpers/policies.js';

const rule = (ops: string) => `match:
  resources:
    - apiGroups: [""]
      resources: [pods]
      operations: [${ops}]`;

async function warnings(spec: string): Promise<string[]> {
  const loaded = await loadPolicySet([await policyDir({ 'p.yaml': policyYaml('p', spec) })]);
  if (!loaded.set) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  return loaded.set.warnings.map((w) => w.message);
}

t.test('object read by a policy that matches DELETE', async (t) => {
  const [w] = await warnings(`${rule('CREATE, DELETE')}
validations:
  - expression: "object.metadata.name != ''"`);
  t.match(w, /p\.yaml:\d+:\d+: this expression reads object, which is null on DELETE: it fails to evaluate there and failurePolicy Fail denies every delete it matches; read oldObject/);
  t.match(await warnings(`failurePolicy: Ignore\n${rule('"*"')}\nvalidations:\n  - expression: "object.metadata.name != ''"`), [/every delete it matches is allowed with a warning/], '"*" includes DELETE');
  t.match(await warnings(`${rule('DELETE')}
variables:
  - name: meta
    expression: object.metadata
  - name: name
    expression: variables.meta.name
validations:
  - expression: "variables.name != ''"`), [/reads object, which is null on DELETE/], 'through variables');
});

t.test('nothing when DELETE is not matched, object is not read, or the policy is written for it', async (t) => {
  const reads = `validations:\n  - expression: "object.metadata.name != ''"`;
  t.same(await warnings(`${rule('CREATE, UPDATE')}\n${reads}`), []);
  t.same(await warnings(`${rule('DELETE')}\nvalidations:\n  - expression: "oldObject.metadata.name != 'protected'"`), []);
  t.same(await warnings(`${rule('CREATE, DELETE')}
  conditions:
    - name: not-a-delete
      expression: "request.operation != 'DELETE'"
${reads}`), [], 'a condition leaves deletes out');
  t.same(await warnings(`${rule('CREATE, DELETE')}\nvalidations:\n  - expression: "request.operation == 'DELETE' || object.metadata.name != ''"`), [], 'the expression handles DELETE');
  t.same(await warnings(`${rule('CREATE, DELETE')}\nvalidations:\n  - expression: "object == null || object.metadata.name != ''"`), [], 'the expression tests for null');
});
