// The API server's `?timeout=` shortens a request's deadline: the answer (and the policy's
// failurePolicy) is trustgate's, given before the API server stops waiting.
import { createServer, type Socket } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseGoDuration, requestDeadlineMs } from '../../src/server/deadline.js';
import { startTestServer } from '../helpers/server.js';
import { CI_IDENTITY as CI } from '../helpers/sigstore.js';

t.test('Go durations, as the API server writes its timeout', async (t) => {
  t.equal(parseGoDuration('10s'), 10_000);
  t.equal(parseGoDuration('1m30s'), 90_000);
  t.equal(parseGoDuration('1.5s'), 1500);
  t.equal(parseGoDuration('500ms'), 500);
  t.equal(parseGoDuration('2µs'), 0.002);
  for (const bad of ['', '10', 's', '10x', '-1s', '0s', '10s ', ' 10s', '1e3s', 'NaNs', '9'.repeat(70) + 's']) t.equal(parseGoDuration(bad), undefined, JSON.stringify(bad));
});

t.test('a request\'s deadline: the internal one, or 80 % of a shorter caller timeout', async (t) => {
  t.equal(requestDeadlineMs({}, 8000), 8000, 'no timeout given');
  t.equal(requestDeadlineMs({ timeout: '10s' }, 8000), 8000, 'the default webhook timeout leaves the internal deadline');
  t.equal(requestDeadlineMs({ timeout: '30s' }, 8000), 8000, 'a longer timeout never lengthens it');
  t.equal(requestDeadlineMs({ timeout: '2s' }, 8000), 1600);
  t.equal(requestDeadlineMs({ timeout: 'soon' }, 8000), 8000, 'not a duration: ignored');
  t.equal(requestDeadlineMs({ timeout: ['1s', '2s'] }, 8000), 8000, 'repeated: ignored');
  t.equal(requestDeadlineMs(undefined, 8000), 8000);
});

t.test('over HTTPS: with ?timeout=1s an image rule stuck on a silent registry is decided within 0.8 s', async (t) => {
  // accepts connections and never answers: a registry that stopped responding
  const sockets: Socket[] = [];
  const silent = createServer((s) => { sockets.push(s); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => { for (const s of sockets) s.destroy(); silent.close(); });
  const host = `127.0.0.1:${(silent.address() as { port: number }).port}`;
  const dir = await mkdtemp(join(tmpdir(), 'tg-deadline-'));
  await writeFile(join(dir, 'p.yaml'), `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: signed }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["${host}/**"]
      authorities: [{ name: ci, keyless: { trustRoot: sigstore-public-good, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] } }]
`);
  const server = await startTestServer({ policies: [dir], insecureRegistries: [host] });
  t.teardown(() => server.close());
  const review = (uid: string) => ({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'team', operation: 'CREATE', userInfo: { username: 'alice' },
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team' }, spec: { containers: [{ name: 'c', image: `${host}/team/app:v1` }] } } },
  });
  const started = Date.now();
  const res = await server.post('/validate?timeout=1s', review('u-1'));
  const took = Date.now() - started;
  t.equal(res.status, 200);
  const response = res.json().response;
  t.equal(response.uid, 'u-1');
  t.equal(response.allowed, false, 'failurePolicy Fail: what could not finish is denied');
  t.match(response.status.message, /signed/);
  t.ok(took >= 700 && took < 1000, `answered at the shortened deadline, before the caller gives up (${took} ms)`);
});
