// trustgate killed with SIGKILL while its sink is down: the next process replays every
// spooled record and continues the chain, and the sink ends up with all of them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { generateCertificates } from '../../src/server/index.js';
import { Receiver } from '../helpers/audit.js';
import { eventually } from '../helpers/eventually.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { https, readFixture } from '../helpers/server.js';
import { freePort } from '../helpers/services.js';

t.test('SIGKILL mid-stream: the restarted process replays what was spooled', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-kill-'));
  const certs = await generateCertificates(join(dir, 'certs'), ['127.0.0.1']);
  const ca = await readFile(certs.caCert);
  const policies = await policyDir({ 'p.yaml': policyYaml('any', `${POD_RULE}\nvalidations:\n  - expression: "true"`) });
  const receiver = await new Receiver().start();
  t.teardown(() => receiver.stop());
  receiver.up = false;
  const port = await freePort();
  const cli = new URL('../../src/cli.ts', import.meta.url).pathname;
  const serve = (): ChildProcess => spawn(process.execPath, ['--import', 'tsx', cli, 'serve', '--policies', policies, '--listen', `127.0.0.1:${port}`,
    '--tls-cert', certs.cert, '--tls-key', certs.key, '--audit', receiver.url, '--audit-spool', join(dir, 'spool'), '--log-level', 'silent', '--replica', 'kill-0'], { stdio: 'ignore' });
  const url = `https://127.0.0.1:${port}`;
  const up = () => eventually(async () => (await https(`${url}/healthz`, ca).catch(() => ({ status: 0 }))).status === 200, 'trustgate to serve');
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  const post = (uid: string) => https(`${url}/validate`, ca, { method: 'POST', body: JSON.stringify({ ...review, request: { ...review.request, uid } }), headers: { 'content-type': 'application/json' } });

  const first = serve();
  await up();
  for (let i = 0; i < 20; i++) t.equal((await post(`k${i}`)).status, 200);
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));

  receiver.up = true;
  const second = serve();
  t.teardown(() => second.kill('SIGKILL'));
  await up();
  for (let i = 0; i < 5; i++) await post(`m${i}`);
  await eventually(async () => receiver.received.length >= 25, 'all 25 records at the sink', 30_000);
  t.same([...new Set(receiver.received.map((r) => r.seq))].sort((a, b) => a! - b!), Array.from({ length: 25 }, (_, i) => i + 1), 'one chain, nothing lost');
});
