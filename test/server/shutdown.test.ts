// SIGTERM (a rolling update, a node drain) lets a review already in flight finish before the
// process exits; the API server never sees a reset connection for it. Before closing, the
// replica keeps answering for a while, not ready, closing each connection after its answer:
// routes to a terminating pod disappear only gradually.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { generateCertificates } from '../../src/server/index.js';
import { eventually } from '../helpers/eventually.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { https, readFixture } from '../helpers/server.js';
import { freePort } from '../helpers/services.js';

/** `trustgate serve` in a child process with its own certificates, spool and file sink; resolves once it serves. */
async function serveProcess(extra: string[]) {
  const dir = await mkdtemp(join(tmpdir(), 'tg-drain-'));
  const certs = await generateCertificates(join(dir, 'certs'), ['127.0.0.1']);
  const ca = await readFile(certs.caCert);
  const port = await freePort();
  const policies = await policyDir({ 'p.yaml': policyYaml('any', `${POD_RULE}\nvalidations:\n  - expression: "true"`) });
  const proc = spawn(process.execPath, ['--import', 'tsx', new URL('../../src/cli.ts', import.meta.url).pathname, 'serve', '--policies', policies,
    '--listen', `127.0.0.1:${port}`, '--tls-cert', certs.cert, '--tls-key', certs.key, '--audit-spool', join(dir, 'spool'), '--audit', `file:${join(dir, 'decisions.jsonl')}`, '--log-level', 'silent', ...extra], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  await eventually(async () => (await https(`https://127.0.0.1:${port}/healthz`, ca).catch(() => ({ status: 0 }))).status === 200, 'serving');
  return { dir, ca, port, proc, exited };
}

t.test('a review in flight when SIGTERM arrives is answered, then the process exits', async (t) => {
  const { dir, ca, port, proc, exited } = await serveProcess(['--shutdown-delay-ms', '0']);

  const body = Buffer.from(JSON.stringify(await readFixture('admissionreviews/pod-create-with-init-container.review.json')));
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(`https://127.0.0.1:${port}/validate`, { method: 'POST', ca, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    // half the body now, SIGTERM, the rest after: the review is in flight across the signal
    req.write(body.subarray(0, body.length >> 1));
    setTimeout(() => {
      proc.kill('SIGTERM');
      setTimeout(() => req.end(body.subarray(body.length >> 1)), 300);
    }, 200);
  });
  const res = await answer;
  t.equal(res.status, 200);
  t.equal(JSON.parse(res.text).response.allowed, true);
  t.equal(await exited, 0, 'clean exit after draining');
  t.match(await readFile(join(dir, 'decisions.jsonl'), 'utf8').catch(() => ''), /"uid":"1299d386/, 'and its record reached the sink before exit');
});

t.test('after SIGTERM it answers for the shutdown delay, not ready, closing each connection after its answer', async (t) => {
  const { ca, port, proc, exited } = await serveProcess(['--shutdown-delay-ms', '2000']);
  const review = JSON.stringify(await readFixture('admissionreviews/pod-create-with-init-container.review.json'));
  const before = await https(`https://127.0.0.1:${port}/validate`, ca, { method: 'POST', body: review, headers: { 'content-type': 'application/json' } });
  t.equal(before.status, 200);
  const signalled = Date.now();
  proc.kill('SIGTERM');
  await eventually(async () => (await https(`https://127.0.0.1:${port}/readyz`, ca)).status === 503, 'not ready once signalled');
  const during = await https(`https://127.0.0.1:${port}/validate`, ca, { method: 'POST', body: review, headers: { 'content-type': 'application/json', connection: 'keep-alive' } });
  t.equal(during.status, 200, 'a review on a new connection during the delay is answered');
  t.equal(JSON.parse(during.text).response.allowed, true);
  t.equal(during.headers.connection, 'close', 'and its connection closed after the answer');
  t.equal(await exited, 0, 'then it drains and exits');
  t.ok(Date.now() - signalled >= 2000, 'not before the delay');
});
