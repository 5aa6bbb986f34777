// The audit trail as the server writes it: one record per request, joined to the response by
// the decision id, no secrets anywhere, nothing admitted unrecorded, replay after a restart.
import { mkdtemp, readFile, readdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { verifyRecords } from '../../src/audit/index.js';
import { Receiver } from '../helpers/audit.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { readFixture, startTestServer } from '../helpers/server.js';

const SECRETS = ['s3cr3t-env-value', 'ghp_tokenInAnnotation', 'JTI-credential-id', 'c3VwZXJzZWNyZXQ=', 'registry-password-xyz'];

async function secretReview() {
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  review.request.object.spec.containers[0].env = [{ name: 'PASSWORD', value: SECRETS[0] }];
  review.request.object.metadata.annotations = { token: SECRETS[1] };
  review.request.userInfo.extra = { 'authentication.kubernetes.io/credential-id': [SECRETS[2]] };
  return review;
}

const secretObject = {
  apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
  request: {
    uid: 'secret-uid', kind: { group: '', version: 'v1', kind: 'Secret' }, resource: { group: '', version: 'v1', resource: 'secrets' },
    namespace: 'shop', operation: 'CREATE', userInfo: { username: 'alice', extra: { token: [SECRETS[4]] } },
    object: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, data: { password: SECRETS[3] }, stringData: { registry: SECRETS[4] } },
  },
};

const policies = policyYaml('any-pod', `${POD_RULE}\nvalidations:\n  - expression: "object.metadata.name != 'forbidden'"`) + '---\n' +
  policyYaml('secrets-seen', `match:\n  resources: [{ apiGroups: [""], resources: [secrets], operations: [CREATE] }]\nvalidations:\n  - expression: "true"`);

t.test('no secret from a review reaches any sink or the spool; decision ids join response and record', async (t) => {
  const receiver = await new Receiver().start();
  t.teardown(() => receiver.stop());
  const dir = await mkdtemp(join(tmpdir(), 'tg-audit-'));
  const file = join(dir, 'decisions.jsonl');
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policies })], audit: [`file:${file}`, receiver.url], auditSpool: join(dir, 'spool') });
  t.teardown(() => server.close());
  const ids: string[] = [];
  for (const review of [await secretReview(), secretObject]) {
    const body = (await server.post('/validate', review)).json();
    ids.push(body.response.auditAnnotations['decision-id']);
  }
  t.ok(await server.audit.drained());
  const fileText = await readFile(file, 'utf8');
  const spoolText = (await Promise.all((await readdir(join(dir, 'spool'))).map((f) => readFile(join(dir, 'spool', f), 'utf8')))).join('');
  const httpText = JSON.stringify(receiver.received);
  for (const secret of SECRETS) {
    t.notOk(fileText.includes(secret), `file sink has no ${secret}`);
    t.notOk(spoolText.includes(secret), `spool has no ${secret}`);
    t.notOk(httpText.includes(secret), `http sink has no ${secret}`);
  }
  const records = fileText.trim().split('\n').map((l) => JSON.parse(l));
  t.same(records.map((r) => r.decisionId), ids, 'one record per request, joined by decision id');
  t.match(records[0], { schema: 'trustgate.dev/decision/v1', replica: 'test-0', seq: 1, endpoint: 'validate', request: { objectSha256: /^[0-9a-f]{64}$/ }, labels: { version: /\d+\.\d+\.\d+/ } });
  t.same(verifyRecords(records.map((record, i) => ({ position: i + 1, record }))).problems, []);
});

t.test('a full spool refuses admissions with a message that says why', async (t) => {
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policies })], auditSpoolMaxBytes: 1500 });
  t.teardown(() => server.close());
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  const answers = [];
  for (let i = 0; i < 4; i++) answers.push((await server.post('/validate', { ...review, request: { ...review.request, uid: `u${i}` } })).json().response);
  t.equal(answers[0].allowed, true);
  const refused = answers.at(-1);
  t.equal(refused.allowed, false);
  t.match(refused.status.message, /\[trustgate\] the audit spool is full .* refusing admissions rather than admitting unrecorded/);
  t.match((await server.get('/metrics')).text, /trustgate_audit_records_lost_total [1-9]/);
});

t.test('a full disk under the spool refuses admissions, each answered with the reason, and the server keeps serving', async (t) => {
  const spool = await mkdtemp(join(tmpdir(), 'tg-full-'));
  await symlink('/dev/full', join(spool, 'segment-000000001.jsonl')); // every write: ENOSPC
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policies })], auditSpool: spool });
  t.teardown(() => server.close());
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  for (const uid of ['d1', 'd2']) {
    const res = await server.post('/validate', { ...review, request: { ...review.request, uid } });
    t.equal(res.status, 200, `${uid}: answered`);
    t.match(res.json().response, { uid, allowed: false, status: { code: 403, message: /\[trustgate\] the decision could not be written to the audit spool: ENOSPC/ } });
  }
  t.equal((await server.get('/healthz')).status, 200);
  t.match((await server.get('/metrics')).text, /trustgate_audit_records_lost_total [1-9]/);
});

t.test('records a stopped server had not delivered are delivered by the next one', async (t) => {
  const receiver = await new Receiver().start();
  t.teardown(() => receiver.stop());
  receiver.up = false;
  const spool = await mkdtemp(join(tmpdir(), 'tg-audit-spool-'));
  const dir = await policyDir({ 'p.yaml': policies });
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  const first = await startTestServer({ policies: [dir], audit: [receiver.url], auditSpool: spool });
  for (let i = 0; i < 20; i++) await first.post('/validate', { ...review, request: { ...review.request, uid: `a${i}` } });
  await first.close();
  receiver.up = true;
  const second = await startTestServer({ policies: [dir], audit: [receiver.url], auditSpool: spool });
  t.teardown(() => second.close());
  for (let i = 0; i < 5; i++) await second.post('/validate', { ...review, request: { ...review.request, uid: `b${i}` } });
  t.ok(await second.audit.drained(20_000));
  t.equal(receiver.received.length, 25);
  t.same(receiver.received.map((r) => r.seq), Array.from({ length: 25 }, (_, i) => i + 1), 'one unbroken chain across the restart');
});
