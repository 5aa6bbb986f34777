// trustgate exceptions (the review list) and lint --max-exception-days (the organisation's limit),
// with expiries relative to today so the test means the same every day.
import t from 'tap';
import { trustgate } from '../helpers/cli.js';
import { exceptionYaml, policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';

const DAY = 86_400_000;
const at = (days: number) => new Date(Date.now() + days * DAY).toISOString().replace(/\.\d+Z$/, 'Z');
const exception = (name: string, days: number, extra = '') => exceptionYaml(name, `policies: [no-privileged]
reason: reason of ${name}
expires: "${at(days)}"
match: { namespaces: [monitoring] }
${extra}`);

async function dir() {
  return policyDir({
    'p.yaml': policyYaml('no-privileged', `${POD_RULE}\nvalidations:\n  - expression: "object.spec.containers.all(c, !c.?securityContext.?privileged.orValue(false))"`),
    'e.yaml': [exception('long', 200.5, 'ticket: SEC-9'), exception('soon', 3.5), exception('gone', -1)].join('---\n'),
  });
}

t.test('exceptions: soonest first, with status, days left, scope, reason and position; json too', async (t) => {
  const d = await dir();
  const out = await trustgate('exceptions', d);
  t.equal(out.code, 0, out.stderr);
  const heads = out.stdout.split('\n').filter((l) => !l.startsWith(' ') && l);
  t.match(heads, [/^EXPIRED  \S+ +-1 days {2}gone {2}waives no-privileged$/, /^EXPIRING \S+ +3 days {2}soon/, /^ACTIVE   \S+ +200 days {2}long {2}waives no-privileged {2}ticket SEC-9$/]);
  t.match(out.stdout, /\n {4}namespaces=monitoring: reason of long \(.*e\.yaml:\d+:\d+\)\n/);
  t.match(out.stderr, /3 exception\(s\): 1 active, 1 expiring within 14 days, 1 expired/);
  const json = (await trustgate('exceptions', '--format', 'json', d)).stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.match(json, [{ name: 'gone', status: 'expired' }, { name: 'soon', status: 'expiring', daysLeft: 3 }, { name: 'long', status: 'active', daysLeft: 200, ticket: 'SEC-9', scope: 'namespaces=monitoring', policies: ['no-privileged'] }]);
  t.equal((await trustgate('exceptions', '--format', 'xml', d)).code, 2);
  t.equal((await trustgate('exceptions')).code, 2);
});

t.test('lint: expired and expiring exceptions are warnings; --max-exception-days makes a longer one an error', async (t) => {
  const d = await dir();
  const plain = await trustgate('lint', d);
  t.equal(plain.code, 0);
  t.match(plain.stderr, /e\.yaml:\d+:\d+: warning: expired on /);
  t.match(plain.stderr, /e\.yaml:\d+:\d+: warning: expires in 3 day\(s\)/);
  t.equal((await trustgate('lint', '--strict', d)).code, 1);
  const limited = await trustgate('lint', '--max-exception-days', '90', d);
  t.equal(limited.code, 1);
  t.match(limited.stderr, /e\.yaml:\d+:12: exception long runs until \S+, 200 days from now: over the limit of 90 days \(--max-exception-days\)/);
  t.notMatch(limited.stderr, /exception soon runs/);
  t.equal((await trustgate('lint', '--max-exception-days', '365', d)).code, 0);
  t.match((await trustgate('lint', '--max-exception-days', '0', d)).stderr, /--max-exception-days must be a positive whole number/);
});

t.test('eval --now: the decision at another time, as once an exception has run out', async (t) => {
  const d = await dir();
  const pod = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'agent', namespace: 'monitoring' }, spec: { containers: [{ name: 'c', image: 'x:1', securityContext: { privileged: true } }] } });
  const file = `${await policyDir({ 'pod.json': pod })}/pod.json`;
  const today = await trustgate('eval', '--policies', d, '--object', file);
  t.equal(today.code, 0, 'waived today');
  t.match(JSON.parse(today.stdout).response.warnings, [/excepted by long \(SEC-9\)/], 'the first exception in the files that covers it');
  const after = await trustgate('eval', '--policies', d, '--object', file, '--now', at(201));
  t.equal(after.code, 1, 'denied once every exception has run out');
  t.match(JSON.parse(after.stdout).response.status.message, /privileged|no-privileged/);
  t.match((await trustgate('eval', '--policies', d, '--object', file, '--now', 'tomorrow')).stderr, /--now "tomorrow" is not an RFC 3339 time or a date/);
});
