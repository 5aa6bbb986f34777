// deploy/ rendered with the real `kubectl kustomize`: the base is exactly what
// `trustgate manifests` renders (so they cannot drift), and the overlays do what they say.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { generateCertificates } from '../../src/server/index.js';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const kustomize = async (dir: string) => parseAllDocuments((await run('kubectl', ['kustomize', `${root}${dir}`], { maxBuffer: 16 << 20 })).stdout).map((d) => d.toJS());
const key = (o: { kind: string; metadata: { namespace?: string; name: string } }) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

let hasKubectl = true;
t.before(async () => {
  hasKubectl = await run('kubectl', ['version', '--client']).then(() => true, () => false);
  if (!hasKubectl) {
    if (process.env.CI === 'true') t.fail('kubectl is missing: CI must run the kustomize tests');
    else t.comment('NOTICE: skipping kustomize tests: kubectl is not installed');
  }
});

t.test('the base is exactly trustgate manifests (regenerate with npm run manifests:base)', async (t) => {
  if (!hasKubectl) return void t.comment('skipped: kubectl missing');
  const rendered = (await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--policies', `${root}policies`], { cwd: root })).stdout;
  const manifests = parseAllDocuments(rendered).map((d) => d.toJS());
  const base = await kustomize('deploy/base');
  const byKey = new Map(base.map((o) => [key(o), o]));
  t.same([...byKey.keys()].sort(), manifests.map(key).sort(), 'same objects');
  for (const o of manifests) t.same(byKey.get(key(o)), o, `${key(o)} unchanged`);
});

t.test('dev overlay: one replica, generated certificates, caBundle from the CA', async (t) => {
  if (!hasKubectl) return void t.comment('skipped: kubectl missing');
  const certs = await generateCertificates(`${root}deploy/overlays/dev/certs`, ['trustgate.trustgate.svc']);
  const objects = await kustomize('deploy/overlays/dev');
  const ca = await readFile(certs.caCert, 'utf8');
  t.equal(objects.find((o) => o.kind === 'Deployment').spec.replicas, 1);
  t.equal(objects.find((o) => o.kind === 'Secret' && o.metadata.name === 'trustgate-tls').type, 'kubernetes.io/tls');
  for (const kind of ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration']) {
    const bundle = objects.find((o) => o.kind === kind).webhooks[0].clientConfig.caBundle as string;
    t.equal(Buffer.from(bundle.replace(/\s/g, ''), 'base64').toString('utf8'), ca, `${kind} trusts the generated CA`);
  }
});

t.test('prod overlay: cert-manager issues the serving certificate and injects the CA', async (t) => {
  if (!hasKubectl) return void t.comment('skipped: kubectl missing');
  const objects = await kustomize('deploy/overlays/prod');
  const serving = objects.find((o) => o.kind === 'Certificate' && o.metadata.name === 'trustgate-serving');
  t.match(serving.spec, { secretName: 'trustgate-tls', dnsNames: ['trustgate.trustgate.svc', 'trustgate.trustgate.svc.cluster.local'] });
  const deployment = objects.find((o) => o.kind === 'Deployment');
  t.equal(deployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'certs').secret.secretName, 'trustgate-tls', 'the pod mounts what cert-manager writes');
  for (const kind of ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration']) {
    t.equal(objects.find((o) => o.kind === kind).metadata.annotations['cert-manager.io/inject-ca-from'], 'trustgate/trustgate-serving');
  }
  t.ok(deployment.spec.replicas >= 2);
});
