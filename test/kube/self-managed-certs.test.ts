// Certificates without cert-manager, against the API-server stand-in: one CA for all replicas in a
// Secret (a create race resolved by 409), a serving certificate per replica, the Lease deciding
// the one writer, and the caBundle of both webhook configurations kept in step.
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { loadKubeConfig, SelfManagedCertificates } from '../../src/kube/index.js';
import { startFakeApiServer } from '../helpers/fake-apiserver.js';
import { https, startTestServer } from '../helpers/server.js';

const VWC = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations';
const MWC = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
const SECRETS = '/api/v1/namespaces/trustgate/secrets';
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/trustgate/leases';
const webhookConfig = (kind: string) => ({
  apiVersion: 'admissionregistration.k8s.io/v1', kind, metadata: { name: 'trustgate' },
  webhooks: [{ name: 'validate.trustgate.dev', clientConfig: { service: { name: 'trustgate', namespace: 'trustgate', path: '/validate' } } }, { name: 'pods.trustgate.dev', clientConfig: { service: { name: 'trustgate', namespace: 'trustgate', path: '/validate' }, caBundle: 'b2xk' } }],
});

t.test('a shared CA, per-replica serving certificates, one caBundle writer', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-smc-'));
  const api = await startFakeApiServer(dir, { [VWC]: [webhookConfig('ValidatingWebhookConfiguration')], [MWC]: [webhookConfig('MutatingWebhookConfiguration')], [SECRETS]: [], [LEASES]: [] });
  t.teardown(() => api.close());
  const kc = loadKubeConfig({ kubeconfig: api.kubeconfig });
  const replica = (identity: string) => new SelfManagedCertificates(kc, {
    namespace: 'trustgate', secretName: 'trustgate-ca', webhookName: 'trustgate', leaseName: 'trustgate-ca-bundle', identity,
    dnsNames: ['trustgate.trustgate.svc'], certDir: join(dir, identity), log: pino({ level: 'silent' }),
  });
  const a = replica('a');
  const b = replica('b');

  const [pa, pb] = await Promise.all([a.prepare(), b.prepare()]);
  const caA = await readFile(pa.caCert, 'utf8');
  t.equal(caA, await readFile(pb.caCert, 'utf8'), 'two replicas racing to create the CA end with the same one');
  t.equal(api.requests.filter((r) => r === `POST ${SECRETS}`).length, 2, 'both tried to create it; one got 409 and read the other\'s');
  const stored = api.get(SECRETS, 'trustgate-ca') as { data: Record<string, string> };
  t.equal(Buffer.from(stored.data['ca.crt']!, 'base64').toString('utf8'), caA);
  const serving = new X509Certificate(await readFile(pa.cert));
  t.ok(serving.verify(new X509Certificate(caA).publicKey), 'the serving certificate is signed by the shared CA');
  t.ok(serving.checkHost('trustgate.trustgate.svc'));
  t.not(await readFile(pa.cert, 'utf8'), await readFile(pb.cert, 'utf8'), 'each replica has its own serving certificate');

  t.equal(await a.tryLead(), true, 'the first replica takes the Lease');
  t.equal(await b.tryLead(), false, 'the second does not while it is held');
  t.equal(await a.syncCaBundle(), 4, 'both webhooks of both configurations get the CA');
  const bundle = Buffer.from(caA).toString('base64');
  for (const path of [VWC, MWC]) t.same((api.get(path, 'trustgate') as { webhooks: { clientConfig: { caBundle: string } }[] }).webhooks.map((w) => w.clientConfig.caBundle), [bundle, bundle]);
  t.equal(await a.syncCaBundle(), 0, 'nothing to do when it is in step');

  api.failNext('PUT', `${LEASES}/trustgate-ca-bundle`, 409);
  t.equal(await a.tryLead(), false, 'a conflicting renewal loses the round, not the process');
  t.equal(await a.tryLead(), true, 'and the next round renews');

  t.equal(await b.tryLead(new Date(Date.now() + 31_000)), true, 'an expired lease is taken over');
  t.match(api.get(LEASES, 'trustgate-ca-bundle'), { spec: { holderIdentity: 'b', leaseTransitions: 1 } });

  // someone edits the configuration back; the holder repairs it, retrying after a conflict
  api.put(VWC, webhookConfig('ValidatingWebhookConfiguration') as never);
  api.failNext('PATCH', `${VWC}/trustgate`, 409);
  await b.round();
  t.not((api.get(VWC, 'trustgate') as { webhooks: { clientConfig: { caBundle?: string } }[] }).webhooks[0]!.clientConfig.caBundle, bundle, 'the conflicting patch did not land');
  await b.round();
  t.same((api.get(VWC, 'trustgate') as { webhooks: { clientConfig: { caBundle: string } }[] }).webhooks.map((w) => w.clientConfig.caBundle), [bundle, bundle], 'the next round did');
});

t.test('serve --self-managed-certs serves a certificate of the shared CA and patches the caBundle', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-smc-serve-'));
  const api = await startFakeApiServer(dir, { [VWC]: [webhookConfig('ValidatingWebhookConfiguration')], [MWC]: [webhookConfig('MutatingWebhookConfiguration')], [SECRETS]: [], [LEASES]: [], '/api/v1/namespaces': [] });
  t.teardown(() => api.close());
  const server = await startTestServer({ policies: [join(import.meta.dirname, '../../policies/workloads')], kubeconfig: api.kubeconfig, selfManagedCerts: true, namespace: 'trustgate', certDnsNames: ['127.0.0.1', 'localhost'] }, Buffer.alloc(0));
  t.teardown(() => server.close());
  const stored = api.get(SECRETS, 'trustgate-ca') as { data: Record<string, string> };
  const ca = Buffer.from(stored.data['ca.crt']!, 'base64');
  t.equal((await https(`${server.url}/healthz`, ca)).status, 200, 'TLS verifies against the CA in the Secret');
  for (let i = 0; i < 50 && (api.get(MWC, 'trustgate') as { webhooks: { clientConfig: { caBundle?: string } }[] }).webhooks[0]!.clientConfig.caBundle !== ca.toString('base64'); i++) await new Promise((r) => setTimeout(r, 100));
  t.equal((api.get(MWC, 'trustgate') as { webhooks: { clientConfig: { caBundle?: string } }[] }).webhooks[0]!.clientConfig.caBundle, ca.toString('base64'));
});
