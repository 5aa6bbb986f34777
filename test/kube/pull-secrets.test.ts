// Registry auth from the admitted pod's imagePullSecrets and its service account's, read through
// client-node from an API-server stand-in, used against docker-registry with htpasswd auth.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { reviewForObject } from '../../src/admission/synthesize.js';
import type { AdmissionRequest, KubeObject } from '../../src/admission/types.js';
import { loadKubeConfig, PullSecretReader } from '../../src/kube/index.js';
import { RegistryClient } from '../../src/supplychain/oci/index.js';
import { startFakeApiServer } from '../helpers/fake-apiserver.js';
import { startRegistry } from '../helpers/registry.js';
import { serviceOrSkip } from '../helpers/services.js';

const dockerconfig = (host: string, user: string, pass: string) => Buffer.from(JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${pass}`).toString('base64') } } })).toString('base64');
const secret = (name: string, host: string, user: string, pass: string) => ({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name, namespace: 'team' }, data: { '.dockerconfigjson': dockerconfig(host, user, pass) } });
const request = (spec: object): AdmissionRequest => reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team' }, spec } as KubeObject, { namespace: 'team' }).request as AdmissionRequest;

t.test('pull secrets of the pod and of its service account authenticate registry reads', async (t) => {
  const reg = await serviceOrSkip(t, 'docker-registry', () => startRegistry({ tls: true, users: { puller: 'pw' } }));
  if (!reg) return;
  t.teardown(() => reg.stop());
  await reg.push.image('private/app', 'v1');
  const api = await startFakeApiServer(await mkdtemp(join(tmpdir(), 'tg-pull-')), {
    '/api/v1/namespaces/team/secrets': [secret('regcred', reg.host, 'puller', 'pw'), secret('wrong', reg.host, 'puller', 'nope')],
    '/api/v1/namespaces/team/serviceaccounts': [{ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'builder', namespace: 'team' }, imagePullSecrets: [{ name: 'regcred' }] }],
  });
  t.teardown(() => api.close());
  const reader = new PullSecretReader(loadKubeConfig({ kubeconfig: api.kubeconfig }), pino({ level: 'silent' }));
  const client = new RegistryClient({ ca: [reg.ca!] });
  t.teardown(() => client.close());
  const pull = async (spec: object) => client.getManifest(reg.host, 'private/app', 'v1', { credentials: await reader.credentialsFor(request(spec)) });

  t.ok(await pull({ imagePullSecrets: [{ name: 'regcred' }], containers: [] }), "the pod's own secret");
  t.ok(await pull({ serviceAccountName: 'builder', containers: [] }), "the service account's secret");
  await t.rejects(pull({ containers: [] }), { code: 'REGISTRY_AUTH_FAILED' }, 'no secret: anonymous, refused');
  await t.rejects(pull({ imagePullSecrets: [{ name: 'wrong' }], containers: [] }), { code: 'REGISTRY_AUTH_FAILED' });
  await t.rejects(pull({ imagePullSecrets: [{ name: 'missing' }], containers: [] }), { code: 'REGISTRY_AUTH_FAILED' }, 'a missing secret is no credential, not a crash');
  const reads = api.requests.filter((r) => r.includes('/secrets/regcred')).length;
  await pull({ imagePullSecrets: [{ name: 'regcred' }], containers: [] });
  t.equal(api.requests.filter((r) => r.includes('/secrets/regcred')).length, reads, 'secrets are kept briefly, not read per request');
});
