// trustgate audit summary: decisions made on the admission path (denied, warned, excepted, dry
// run), written as a file sink writes them, summarised by the CLI as an auditor reads it.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { admit } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import type { KubeObject } from '../../src/admission/types.js';
import { NullDecisionRecorder, summarize, type DecisionRecord } from '../../src/audit/index.js';
import { StaticCluster } from '../../src/kube/cluster-file.js';
import { loadPolicySet } from '../../src/policy/index.js';
import { trustgate } from '../helpers/cli.js';
import { exceptionYaml, policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';

const POLICIES = [
  policyYaml('no-privileged', `${POD_RULE}\nvalidations:\n  - expression: "object.spec.containers.all(c, !(c.?securityContext.?privileged.orValue(false)))"\n    message: privileged containers are not allowed`),
  policyYaml('team-label', `mode: warn\n${POD_RULE}\nvalidations:\n  - expression: "'team' in object.metadata.?labels.orValue({})"\n    message: needs a team label`),
  exceptionYaml('node-agent', 'policies: [no-privileged, team-label]\nreason: the node agent needs privileged mode until v3\nexpires: "2030-01-01"\nmatch:\n  namespaces: [monitoring]'),
].join('---\n');

const pod = (namespace: string, privileged: boolean, labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace, labels }, spec: { containers: [{ name: 'c', image: 'x:1', securityContext: { privileged } }] },
});

async function decisions(): Promise<DecisionRecord[]> {
  const set = (await loadPolicySet([await policyDir({ 'p.yaml': POLICIES })], { now: Date.parse('2029-06-01T00:00:00Z') })).set!;
  const cluster = new StaticCluster(['shop', 'monitoring', 'dev'].map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })));
  const services = { policies: () => set, recorder: new NullDecisionRecorder(), replica: 'r-0', deadlineMs: 8000, namespaces: cluster, params: cluster };
  const out: DecisionRecord[] = [];
  const decide = async (object: KubeObject, options: { user?: string; dryRun?: boolean } = {}) => {
    const review = reviewForObject(object, { operation: 'CREATE', userInfo: { username: options.user ?? 'alice', groups: [] } }) as { request: { dryRun?: boolean } };
    if (options.dryRun) review.request.dryRun = true;
    out.push((await admit(review, 'validate', services)).record);
  };
  await decide(pod('shop', true), { user: 'mallory' }); // denied by no-privileged, warned by team-label
  await decide(pod('shop', true), { user: 'mallory', dryRun: true }); // the same, as a dry run
  await decide(pod('dev', true, { team: 'a' }), { user: 'bob' }); // denied
  await decide(pod('monitoring', true)); // admitted: the exception waives both
  await decide(pod('shop', false, { team: 'a' })); // clean
  return out;
}

t.test('the summary counts decisions, denials by policy, what exceptions waived and who was denied', async (t) => {
  const records = await decisions();
  const s = summarize(records);
  t.match(s, { decisions: 5, allowed: 2, denied: 3, dryRun: 1, byEndpoint: { validate: 5 }, byReplica: { 'r-0': 5 } });
  t.same(s.policies['no-privileged'], { results: { fail: 3, excepted: 1, pass: 1 }, denied: 3 });
  t.same(s.policies['team-label'], { results: { fail: 2, pass: 2, excepted: 1 }, denied: 0 }, 'a warn-mode failure denies nothing');
  t.same(s.exceptions, { 'node-agent': { decisions: 1, policies: ['no-privileged', 'team-label'] } }, 'one decision, though it waived two policies');
  t.same(s.deniedNamespaces, [['shop', 2], ['dev', 1]]);
  t.same(s.deniedUsers, [['mallory', 2], ['bob', 1]]);
  t.equal(s.from, records[0]!.time);
});

t.test('trustgate audit summary reads a file sink\'s records, with the filters of query', async (t) => {
  const records = await decisions();
  const dir = await policyDir({});
  const file = join(dir, 'audit.jsonl');
  // a sink may deliver a record twice (at least once): it is counted once
  // and a line that is no record (a torn write) is passed over, as query passes it over
  await writeFile(file, [...records.map((r) => JSON.stringify(r)), JSON.stringify(records[0]), '{"decisionId": "torn'].join('\n') + '\n');
  const text = await trustgate('audit', 'summary', file);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^decisions 5 from \S+ to \S+\n {2}allowed 2 \(40\.0 %\), denied 3 \(60\.0 %\), dry runs 1\n/);
  t.match(text.stdout, /^ {2}no-privileged: excepted 1, fail 3, pass 1; denied 3$/m);
  t.match(text.stdout, /^ {2}node-agent: 1, waiving no-privileged, team-label$/m);
  t.match(text.stdout, /^denied most, by user: mallory 2, bob 1$/m);
  const shop = await trustgate('audit', 'summary', file, '--namespace', 'shop', '--format', 'json');
  t.match(JSON.parse(shop.stdout), { decisions: 3, denied: 2, exceptions: {} });
  const bad = await trustgate('audit', 'summary', file, '--format', 'xml');
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--format is json or table/);
});
