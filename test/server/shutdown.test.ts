// SIGTERM (a rolling update, a node drain) lets a review already in flight finish before the
// process exits; the API server never sees a reset connection for it.
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

t.test('a review in flight when SIGTERM arrives is answered, then the process exits', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-drain-'));
  const certs = await generateCertificates(join(dir, 'certs'), ['127.0.0.1']);
  const ca = await readFile(certs.caCert);
  const port = await freePort();
  const policies = await policyDir({ 'p.yaml': policyYaml('any', `${POD_RULE}\nvalidations:\n  - expression: "true"`) });
  const proc = spawn(process.execPath, ['--import', 'tsx', new URL('../../src/cli.ts', import.meta.url).pathname, 'serve', '--policies', policies,
    '--listen', `127.0.0.1:${port}`, '--tls-cert', certs.cert, '--tls-key', certs.key, '--audit-spool', join(dir, 'spool'), '--audit', `file:${join(dir, 'decisions.jsonl')}`, '--log-level', 'silent'], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  await eventually(async () => (await https(`https://127.0.0.1:${port}/healthz`, ca).catch(() => ({ status: 0 }))).status === 200, 'serving');

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
