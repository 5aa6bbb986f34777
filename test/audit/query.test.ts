// audit query's filters over records read from files and spools (PostgreSQL filters in SQL:
// test/audit/postgres.test.ts checks the same cases there).
import t from 'tap';
import { matchesFilter } from '../../src/audit/query.js';
import type { DecisionRecord } from '../../src/audit/record.js';

const record = (...names: string[]) => ({
  time: '2026-11-30T00:00:00Z', allowed: true, images: [],
  request: { namespace: 'shop', userInfo: { username: 'alice', groups: [] } },
  policies: names.map((name) => ({ name, revision: 'r', mode: 'enforce', result: 'pass', messages: [] })),
}) as unknown as DecisionRecord;

t.test('--policy finds a policy by its name, and a ValidatingAdmissionPolicy under any of its bindings', async (t) => {
  const r = record('team-label', 'vap.example.com/tenants');
  t.ok(matchesFilter(r, { policy: 'team-label' }));
  t.ok(matchesFilter(r, { policy: 'vap.example.com' }), 'the VAP without its binding');
  t.ok(matchesFilter(r, { policy: 'vap.example.com/tenants' }), 'the VAP with its binding');
  t.notOk(matchesFilter(r, { policy: 'vap.example' }), 'not a part of a name');
  t.notOk(matchesFilter(r, { policy: 'team' }));
});

t.test('--exception finds the decisions in which that PolicyException waived something', async (t) => {
  const r = record('team-label', 'no-privileged');
  (r.policies[1] as { exceptions?: unknown[] }).exceptions = [{ name: 'node-agent', expires: '2030-01-01T00:00:00.000Z', reason: 'r', messages: ['m'] }];
  t.ok(matchesFilter(r, { exception: 'node-agent' }));
  t.notOk(matchesFilter(r, { exception: 'node' }), 'not a part of a name');
  t.notOk(matchesFilter(record('team-label'), { exception: 'node-agent' }));
});
