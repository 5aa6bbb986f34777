// --client-ca: /validate and /mutate answer only callers with a client certificate the CA
// issued (and, with --client-name, one of those names); health and metrics stay open. A
// rotation of the serving certificate must keep the client CA in the new TLS context.
import { X509Certificate } from 'node:crypto';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { generateCa, generateCertificates, issueClientCertificate } from '../../src/server/certs.js';
import { eventually } from '../helpers/eventually.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { https, readFixture, startTestServer, type TestServer } from '../helpers/server.js';

const dir = await mkdtemp(join(tmpdir(), 'tg-client-auth-'));
const clientCa = await generateCa('API server client CA');
await writeFile(join(dir, 'client-ca.crt'), clientCa.cert);
const apiServer = await issueClientCertificate(clientCa, 'kube-apiserver');
const otherCaller = await issueClientCertificate(clientCa, 'some-pod');
const stranger = await issueClientCertificate(await generateCa('another CA'), 'kube-apiserver');
const policies = await policyDir({ 'p.yaml': policyYaml('any', `${POD_RULE}\nvalidations:\n  - expression: "true"`) });
const review = JSON.stringify(await readFixture('admissionreviews/pod-create-with-init-container.review.json'));

function post(server: TestServer, client?: { cert: string; key: string }) {
  return https(`${server.url}/validate`, server.ca, { method: 'POST', body: review, headers: { 'content-type': 'application/json' }, ...client });
}

t.test('only a certificate from the client CA gets its review decided', async (t) => {
  const server = await startTestServer({ policies: [policies], clientCa: join(dir, 'client-ca.crt') });
  t.teardown(() => server.close());
  const none = await post(server);
  t.equal(none.status, 401);
  t.match(none.json(), { error: 'Unauthorized', message: /client certificate issued by the --client-ca \(no certificate was presented\)/ });
  const foreign = await post(server, stranger);
  t.equal(foreign.status, 401, 'a certificate from another CA');
  t.match(foreign.json().message, /--client-ca \(.+\)/);
  const ok = await post(server, apiServer);
  t.equal(ok.status, 200);
  t.equal(ok.json().response.allowed, true);
  t.equal((await post(server, otherCaller)).status, 200, 'without --client-name any certificate the CA issued');
  t.equal((await https(`${server.url}/healthz`, server.ca)).status, 200, 'probes need no certificate');
  t.equal((await https(`${server.url}/metrics`, server.ca)).status, 200, 'nor do scrapers');
  t.match((await https(`${server.url}/metrics`, server.ca)).text, /trustgate_bad_requests_total\{error="Unauthorized"\} 2/);
});

t.test('--client-name narrows the accepted certificates to those names', async (t) => {
  const server = await startTestServer({ policies: [policies], clientCa: join(dir, 'client-ca.crt'), clientNames: ['kube-apiserver'] });
  t.teardown(() => server.close());
  const other = await post(server, otherCaller);
  t.equal(other.status, 403);
  t.match(other.json(), { error: 'Forbidden', message: /\(some-pod\) is not one of --client-name kube-apiserver/ });
  t.equal((await post(server, apiServer)).status, 200);
});

t.test('a rotated serving certificate keeps the client CA', async (t) => {
  const first = await generateCertificates(join(dir, 'a'), ['localhost', '127.0.0.1']);
  const live = join(dir, 'live');
  await cp(join(dir, 'a'), live, { recursive: true });
  const server = await startTestServer({ policies: [policies], clientCa: join(dir, 'client-ca.crt'), tlsCert: join(live, 'tls.crt'), tlsKey: join(live, 'tls.key') }, await readFile(first.caCert));
  t.teardown(() => server.close());
  const second = await generateCertificates(join(dir, 'b'), ['localhost', '127.0.0.1']);
  await writeFile(join(live, 'tls.key'), await readFile(second.key));
  await writeFile(join(live, 'tls.crt'), await readFile(second.cert));
  const ca2 = await readFile(second.caCert);
  await eventually(async () => (await https(`${server.url}/healthz`, ca2).catch(() => ({ status: 0 }))).status === 200, 'the new serving certificate');
  const withCa2 = (client?: { cert: string; key: string }) => https(`${server.url}/validate`, ca2, { method: 'POST', body: review, headers: { 'content-type': 'application/json' }, ...client });
  t.equal((await withCa2(apiServer)).status, 200, 'the API server\'s certificate still verifies');
  t.equal((await withCa2()).status, 401, 'and a caller without one is still refused');
  t.equal((await withCa2(stranger)).status, 401);
});

t.test('the decision record names the authenticated caller and its certificate', async (t) => {
  const file = join(dir, 'decisions.jsonl');
  const server = await startTestServer({ policies: [policies], clientCa: join(dir, 'client-ca.crt'), audit: [`file:${file}`] });
  t.teardown(() => server.close());
  t.equal((await post(server, apiServer)).status, 200);
  t.equal((await post(server, otherCaller)).status, 200);
  t.ok(await server.audit.drained());
  const records = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const sha256 = (pem: string) => new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
  t.same(records.map((r) => r.caller), [
    { name: 'kube-apiserver', certificateSha256: sha256(apiServer.cert) },
    { name: 'some-pod', certificateSha256: sha256(otherCaller.cert) },
  ]);
  // without --client-ca nobody is authenticated, and the record claims no caller
  const open = await startTestServer({ policies: [policies], audit: [`file:${join(dir, 'open.jsonl')}`] });
  t.teardown(() => open.close());
  t.equal((await open.post('/validate', review)).status, 200);
  t.ok(await open.audit.drained());
  t.notOk('caller' in JSON.parse(await readFile(join(dir, 'open.jsonl'), 'utf8')));
});
