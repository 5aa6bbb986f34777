// Every rendered object validated against the schema of its kind: the Kubernetes OpenAPI
// schemas as compiled by kubernetes-models (generated from the upstream OpenAPI spec), and
// cert-manager's CRD schemas (@kubernetes-models/cert-manager) for the prod overlay, and
// prometheus-operator's (@kubernetes-models/prometheus-operator) for the monitoring component.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };

/** The schema-checking model class of an apiVersion/kind; core kinds live under "v1". */
async function modelOf(o: Obj): Promise<new (data: object) => { validate(): void }> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const path = group === 'cert-manager.io' ? `@kubernetes-models/cert-manager/cert-manager.io/${version}/${o.kind}`
    : group === 'monitoring.coreos.com' ? `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${o.kind}`
      : `kubernetes-models/${group ? `${group}/` : ''}${version}/${o.kind}`;
  const module = await import(path) as Record<string, new (data: object) => { validate(): void }>;
  const model = module[o.kind];
  if (!model) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`);
  return model;
}

async function validateAll(t: { doesNotThrow(fn: () => void, message: string): unknown }, objects: Obj[], what: string): Promise<void> {
  for (const o of objects) {
    const Model = await modelOf(o);
    t.doesNotThrow(() => new Model(o).validate(), `${what}: ${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name} matches its schema`);
  }
}

const manifests = async (...flags: string[]) => parseAllDocuments((await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--policies', `${root}policies`, '--ca-file', `${root}test/fixtures/sigstore/cosign-legacy/sigstore-rs-2021/keyless.cert.pem`, ...flags], { cwd: root })).stdout).map((d) => d.toJS() as Obj);

t.test('trustgate manifests, with every option, match the Kubernetes schemas', async (t) => {
  await validateAll(t, await manifests(), 'manifests');
  await validateAll(t, await manifests('--pull-secrets', '--self-managed-certs', '--replicas', '3', '--audit', 'postgres://audit.example/trustgate',
    '--client-ca-file', `${root}test/fixtures/sigstore/cosign-legacy/sigstore-rs-2021/keyless.cert.pem`, '--client-name', 'kube-apiserver', '--audit-signing-secret', 'trustgate-audit-signing', '--scan-schedule', '@hourly', '--scan-policy-reports', '--monitoring'), 'manifests --pull-secrets --self-managed-certs --client-ca-file --audit-signing-secret --scan-schedule --scan-policy-reports --monitoring');
});

t.test('the kustomize overlays match the Kubernetes and cert-manager schemas', async (t) => {
  const hasKubectl = await run('kubectl', ['version', '--client']).then(() => true, () => false);
  if (!hasKubectl) {
    if (process.env.CI === 'true') t.fail('kubectl is missing: CI must run the kustomize tests');
    return void t.comment('NOTICE: skipping: kubectl is not installed');
  }
  for (const overlay of ['deploy/base', 'deploy/overlays/prod']) {
    const objects = parseAllDocuments((await run('kubectl', ['kustomize', `${root}${overlay}`], { maxBuffer: 16 << 20 })).stdout).map((d) => d.toJS() as Obj);
    await validateAll(t, objects, overlay);
  }
  // the monitoring component added to the prod overlay, as a user's own overlay would (paths must be relative)
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-overlay-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'kustomization.yaml'), `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [${relative(dir, `${root}deploy/overlays/prod`)}]\ncomponents: [${relative(dir, `${root}deploy/components/monitoring`)}]\n`);
  const monitored = parseAllDocuments((await run('kubectl', ['kustomize', dir], { maxBuffer: 16 << 20 })).stdout).map((d) => d.toJS() as Obj);
  t.same(monitored.filter((o) => o.apiVersion === 'monitoring.coreos.com/v1').map((o) => o.kind).sort(), ['PrometheusRule', 'ServiceMonitor']);
  await validateAll(t, monitored, 'deploy/overlays/prod + components/monitoring');
});

t.test('the check has teeth: a wrongly typed or missing field is refused', async (t) => {
  const [deployment] = (await manifests()).filter((o) => o.kind === 'Deployment') as (Obj & { spec: Record<string, unknown> })[];
  const Model = await modelOf(deployment!);
  t.throws(() => new Model({ ...deployment, spec: { ...deployment!.spec, replicas: 'two' } }).validate(), /replicas must be integer/);
  t.throws(() => new Model({ ...deployment, spec: { ...deployment!.spec, selector: undefined } }).validate(), /required property/);
});
