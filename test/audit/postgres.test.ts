// The PostgreSQL sink against a real PostgreSQL: rows with indexed query columns, verification
// and queries straight from the database, and no loss or duplicate when the database dies.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import t from 'tap';
import { recordHash, type DecisionRecord } from '../../src/audit/index.js';
import { generateSigningKey } from '../../src/audit/checkpoint.js';
import { postgresOrSkip, type Postgres } from '../helpers/postgres.js';
import { exceptionYaml, policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { readFixture, startTestServer } from '../helpers/server.js';

const run = promisify(execFile);
const cli = new URL('../../src/cli.ts', import.meta.url).pathname;
const trustgate = (...args: string[]) => run(process.execPath, ['--import', 'tsx', cli, ...args]).catch((e) => e as { code: number; stdout: string; stderr: string });

let db: Postgres | undefined;
t.before(async () => {
  db = await postgresOrSkip(t);
});
t.teardown(() => db?.close());

const policies = policyYaml('team-label', `${POD_RULE}\nvalidations:\n  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"\n    message: pods need a team label`);
// a ValidatingAdmissionPolicy beside it, recorded as vap.example.com/b, so a query can name it without its binding
const vap = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: vap.example.com }
spec:
  matchConstraints: { resourceRules: [{ apiGroups: [""], apiVersions: ["*"], operations: [CREATE], resources: [pods] }] }
  validations: [{ expression: "true" }]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: b }
spec: { policyName: vap.example.com, validationActions: [Deny] }
`;

async function review(i: number, team?: string) {
  const r = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  r.request.uid = `pg-${i}`;
  if (team) r.request.object.metadata.labels = { team };
  return r;
}

t.test('decisions land as rows; audit verify and query read the database', async (t) => {
  if (!db) return;
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policies, 'vap.yaml': vap })], audit: [db.url] });
  t.teardown(() => server.close());
  for (let i = 0; i < 10; i++) await server.post('/validate', await review(i, i % 3 ? 'web' : undefined));
  t.ok(await server.audit.drained(20_000), 'all acknowledged by PostgreSQL');

  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  t.teardown(() => client.end());
  const { rows } = await client.query('SELECT seq, allowed, namespace, username, policies FROM trustgate_decisions ORDER BY seq');
  t.equal(rows.length, 10);
  t.same(rows[0].policies, ['team-label', 'vap.example.com/b']);

  const ok = await trustgate('audit', 'verify', db.url);
  t.match(ok.stdout, /verified: 10 records, every chain intact/);
  const denied = await trustgate('audit', 'query', db.url, '--denied', '--format', 'table');
  t.equal(denied.stdout.trim().split('\n').length, 4, 'seq 1, 4, 7, 10 were denied');
  t.match(denied.stdout, /DENY\s+CREATE/);
  const url = db.url;
  const count = async (...filter: string[]) => (await trustgate('audit', 'query', url, ...filter)).stdout.trim().split('\n').filter(Boolean).length;
  t.equal(await count('--policy', 'team-label'), 10);
  t.equal(await count('--policy', 'vap.example.com'), 10, 'a VAP by its name, whatever the binding');
  t.equal(await count('--policy', 'vap.example'), 0, 'not a part of a name');
  t.equal(await count('--policy', 'team'), 0);

  const secret = await review(99, 'web');
  secret.request.object.spec.containers[0].env = [{ name: 'PASSWORD', value: 'pg-s3cr3t-value' }];
  secret.request.userInfo.extra = { token: ['pg-extra-token'] };
  await server.post('/validate', secret);
  t.ok(await server.audit.drained(20_000));
  const all = (await client.query('SELECT record::text AS t FROM trustgate_decisions')).rows.map((r) => r.t).join('\n');
  t.notMatch(all, /pg-s3cr3t-value|pg-extra-token/, 'no secret in the database');
  await client.query('DELETE FROM trustgate_decisions WHERE seq = 11');

  await client.query("DELETE FROM trustgate_decisions WHERE seq = 5");
  const gap = await trustgate('audit', 'verify', db.url);
  t.equal((gap as { code?: number }).code, 1);
  t.match(gap.stdout, /FAILED gap at postgres:\/\/trustgate@127\.0\.0\.1:\d+\/postgres row 5 \(replica test-0, seq 6\): seq 5…5 missing/);
  await client.query(`UPDATE trustgate_decisions SET record = jsonb_set(record, '{allowed}', 'true') WHERE seq = 7`);
  t.match((await trustgate('audit', 'verify', db.url)).stdout, /FAILED gap/, 'the first problem is still reported first');
  await client.query('TRUNCATE trustgate_decisions');
});

t.test('audit query --exception finds the decisions a PolicyException waived something in', async (t) => {
  if (!db) return;
  const exception = exceptionYaml('first-pod', `policies: [team-label]
reason: the first pod predates the label
expires: "2999-01-01"
match: { conditions: [{ name: first, expression: "request.uid == 'pg-0'" }] }`);
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policies, 'e.yaml': exception })], audit: [db.url] });
  t.teardown(() => server.close());
  for (let i = 0; i < 3; i++) await server.post('/validate', await review(i));
  t.ok(await server.audit.drained(20_000));
  const waived = await trustgate('audit', 'query', db.url, '--exception', 'first-pod', '--format', 'table');
  t.equal(waived.stdout.trim().split('\n').length, 1, 'one of three');
  t.match(waived.stdout, /ALLOW\s+CREATE .* team-label:excepted\(first-pod\)/);
  t.equal((await trustgate('audit', 'query', db.url, '--denied')).stdout.trim().split('\n').length, 2, 'the other two are denied');
  t.equal((await trustgate('audit', 'query', db.url, '--exception', 'first')).stdout.trim(), '', 'not a part of a name');
  t.equal((await trustgate('audit', 'query', db.url, '--endpoint', 'validate')).stdout.trim().split('\n').length, 3, '--endpoint, in SQL');
  t.equal((await trustgate('audit', 'query', db.url, '--endpoint', 'scan')).stdout.trim(), '');
  const summary = JSON.parse((await trustgate('audit', 'summary', db.url, '--format', 'json')).stdout);
  t.match(summary, { decisions: 3, denied: 2, exceptions: { 'first-pod': { decisions: 1, policies: ['team-label'] } } }, 'audit summary reads PostgreSQL too');
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await client.query('TRUNCATE trustgate_decisions');
  await client.end();
});

t.test('a database administrator rewriting a decision and every hash after it is caught by the signed checkpoints', async (t) => {
  if (!db) return;
  const keys = generateSigningKey();
  const dir = t.testdir({ 'k.key': keys.privateKey, 'k.pub': keys.publicKey });
  await writeFile(join(dir, 'k.key'), keys.privateKey, { mode: 0o600 });
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policies })], audit: [db.url], auditSigningKey: join(dir, 'k.key'), auditCheckpointRecords: 4 });
  t.teardown(() => server.close());
  for (let i = 0; i < 10; i++) await server.post('/validate', await review(i));
  t.ok(await server.audit.drained(20_000));
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  t.teardown(async () => {
    await client.query('TRUNCATE trustgate_decisions');
    await client.end();
  });
  t.match((await trustgate('audit', 'verify', db.url, '--key', join(dir, 'k.pub'))).stdout, /replica test-0: 10 records, seq 1…10, \d+ checkpoints, signed through seq \d+.*\nverified: 10 records, every chain intact and signed/);

  // seq 2 denied: turn it into an allow, and make the chain whole again, as only a key-less hash allows
  const records = (await client.query('SELECT record FROM trustgate_decisions ORDER BY seq')).rows.map((r) => r.record as DecisionRecord);
  records[1]!.allowed = true;
  for (let i = 1; i < records.length; i++) {
    records[i]!.prevHash = records[i - 1]!.hash;
    delete records[i]!.hash;
    records[i]!.hash = recordHash(records[i]!);
    await client.query('UPDATE trustgate_decisions SET record = $1, allowed = $2 WHERE seq = $3', [records[i], records[i]!.allowed, records[i]!.seq]);
  }
  t.match((await trustgate('audit', 'verify', db.url)).stdout, /note: \d+ records carry signed checkpoints; give .*\nverified: 10 records, every chain intact\n/, 'without the key, the rewrite passes');
  const caught = await trustgate('audit', 'verify', db.url, '--key', join(dir, 'k.pub'));
  t.equal((caught as { code?: number }).code, 1);
  t.match(caught.stdout, /FAILED checkpoint at postgres:\/\/\S+ row \d+ \(replica test-0, seq \d+\): the checkpoint's signature does not hold/);
});

t.test('the database going away mid-stream loses nothing and duplicates nothing', async (t) => {
  if (!db) return;
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policies })], audit: [db.url], replica: 'outage-0' });
  t.teardown(() => server.close());
  for (let i = 0; i < 5; i++) await server.post('/validate', await review(100 + i, 'web'));
  t.ok(await server.audit.drained(20_000));
  db.stop();
  for (let i = 0; i < 20; i++) {
    const answer = (await server.post('/validate', await review(200 + i, 'web'))).json().response;
    t.equal(answer.allowed, true, 'admissions go on while the sink is down: the spool holds the records');
  }
  db.start();
  t.ok(await server.audit.drained(60_000), 'delivered after the database came back');
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  t.teardown(() => client.end());
  const { rows } = await client.query("SELECT count(*)::int AS n, count(DISTINCT decision_id)::int AS d, max(seq)::int AS top FROM trustgate_decisions WHERE replica = 'outage-0'");
  t.same(rows[0], { n: 25, d: 25, top: 25 });
  t.match((await trustgate('audit', 'verify', db.url)).stdout, /verified: 25 records/);
});

t.test('a record with a NUL or an unpaired surrogate in it is stored, not a batch the database refuses for good', async (t) => {
  if (!db) return;
  // the message quotes the object: what the API server sends is the attacker's to choose
  const quoting = policyYaml('quote-team', `${POD_RULE}\nvalidations:\n  - expression: "false"\n    messageExpression: "'team ' + object.metadata.labels.team + ' refused'"`);
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': quoting })], audit: [db.url], replica: 'nul-0' });
  t.teardown(() => server.close());
  for (const [i, team] of ['web\u0000x', 'web\ud800y', 'web'].entries()) {
    const answer = (await server.post('/validate', await review(300 + i, team))).json().response;
    t.equal(answer.allowed, false);
  }
  t.ok(await server.audit.drained(20_000), 'all three acknowledged by PostgreSQL');
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  t.teardown(() => client.end());
  const { rows } = await client.query("SELECT record->'policies'->0->'messages'->>0 AS m FROM trustgate_decisions WHERE replica = 'nul-0' ORDER BY seq");
  t.same(rows.map((r) => r.m), ['team web\ufffdx refused', 'team web\ufffdy refused', 'team web refused']);
  t.match((await trustgate('audit', 'verify', db.url)).stdout, /verified: \d+ records, every chain intact/);
});

t.test('a spool line with bytes that are not UTF-8 is stored decoded (U+FFFD), not a batch the database refuses for good', async (t) => {
  if (!db) return;
  const { AuditPipeline, createSink } = await import('../../src/audit/index.js');
  const { makeRecord } = await import('../helpers/audit.js');
  const { pino } = await import('pino');
  const { mkdtemp, readdir, readFile, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const spoolDir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const logger = pino({ level: 'silent' });
  const first = await AuditPipeline.start({ spoolDir, sinks: [], whenFull: 'deny', logger });
  for (const user of ['alice', 'bobZ']) await first.record({ ...makeRecord({ user }), replica: 'utf8-0' });
  await first.close();
  // a disk's bit flip: the Z becomes 0xFF, which no UTF-8 text contains
  const segment = join(spoolDir, (await readdir(spoolDir)).find((f) => f.startsWith('segment-'))!);
  const bytes = await readFile(segment);
  bytes[bytes.indexOf('bobZ') + 3] = 0xff;
  await writeFile(segment, bytes);
  const second = await AuditPipeline.start({ spoolDir, sinks: [createSink(db.url)], whenFull: 'deny', logger });
  t.teardown(() => second.close());
  t.ok(await second.drained(20_000), 'acknowledged by PostgreSQL');
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  t.teardown(() => client.end());
  const { rows } = await client.query("SELECT username FROM trustgate_decisions WHERE replica = 'utf8-0' ORDER BY seq");
  t.same(rows.map((r) => r.username), ['alice', 'bob\ufffd']);
});

t.test('a batch that outlasts the statement timeout is cut in two, not retried whole for good', async (t) => {
  if (!db) return;
  const { AuditPipeline } = await import('../../src/audit/index.js');
  const { PostgresSink } = await import('../../src/audit/sinks/postgres.js');
  const { makeRecord } = await import('../helpers/audit.js');
  const { pino } = await import('pino');
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const sink = new PostgresSink(db.url, { statementTimeoutMs: 400 });
  await sink.send([]); // creates the table
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  // every row takes 20 ms to insert: 64 rows (1.3 s) outlast the timeout, 16 (0.3 s) do not
  await client.query(`CREATE OR REPLACE FUNCTION slow_row() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$ LANGUAGE plpgsql;
    CREATE TRIGGER slow_rows BEFORE INSERT ON trustgate_decisions FOR EACH ROW EXECUTE FUNCTION slow_row();`);
  t.teardown(async () => {
    await client.query('DROP TRIGGER IF EXISTS slow_rows ON trustgate_decisions; DROP FUNCTION IF EXISTS slow_row(); TRUNCATE trustgate_decisions');
    await client.end();
  });
  const audit = await AuditPipeline.start({ spoolDir: await mkdtemp(join(tmpdir(), 'tg-spool-')), sinks: [sink], whenFull: 'deny', logger: pino({ level: 'silent' }), batchSize: 64 });
  t.teardown(() => audit.close());
  for (let i = 0; i < 64; i++) {
    const r = makeRecord();
    r.replica = 'slow-0';
    await audit.record(r);
  }
  t.ok(await audit.drained(30_000), 'all acknowledged, in smaller statements');
  const { rows } = await client.query("SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d FROM trustgate_decisions WHERE replica = 'slow-0'");
  t.same(rows[0], { n: 64, d: 64 });
});
