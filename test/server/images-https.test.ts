// The whole server with an images rule: /mutate over HTTPS pins the tag, the decision record in the
// file sink says what was verified, and /metrics shows the cache and the registry exchanges.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { eventually } from '../helpers/eventually.js';
import { startTestServer } from '../helpers/server.js';
import { CI_IDENTITY as CI } from '../helpers/sigstore.js';
import { pushSignedImage, signingRig } from '../helpers/signing.js';

t.test('serve with an images rule', async (t) => {
  const rig = await signingRig(t);
  if (!rig) return;
  const { reg, sigstore, dir } = rig;
  const img = await pushSignedImage(reg, sigstore, 'acme/app', 'v1', CI);
  await writeFile(join(dir, 'p.yaml'), `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: signed }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["${reg.host}/acme/**"]
      mutateDigest: true
      authorities:
        - name: ci
          keyless: { trustRoot: private, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] }
          condition: "signer.subject.endsWith('@refs/heads/main')"
`);
  const auditFile = join(dir, 'audit.jsonl');
  const server = await startTestServer({ policies: [dir], insecureRegistries: [reg.host], audit: [`file:${auditFile}`] });
  t.teardown(() => server.close());
  const review = (image: string, uid: string) => ({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'team', operation: 'CREATE', userInfo: { username: 'alice' },
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team' }, spec: { containers: [{ name: 'c', image }] } } },
  });
  const res = await server.post('/mutate', review(`${reg.host}/acme/app:v1`, 'u-1'));
  t.equal(res.status, 200);
  const response = res.json().response;
  t.equal(response.allowed, true);
  t.equal(response.patchType, 'JSONPatch');
  t.same(JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')), [{ op: 'replace', path: '/spec/containers/0/image', value: `${reg.host}/acme/app:v1@${img.digest}` }]);

  const denied = (await server.post('/validate', review(`${reg.host}/acme/unsigned:v1`, 'u-2'))).json().response;
  t.equal(denied.allowed, false);
  t.same(denied.status.details.causes.map((c: { reason: string }) => c.reason), ['IMAGE_NOT_FOUND']);

  const read = async () => (await readFile(auditFile, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  await eventually(async () => (await read()).length >= 2, 'both decision records in the file sink');
  const records = await read();
  t.match(records[0], { request: { uid: 'u-1' }, endpoint: 'mutate', images: [{ policy: 'signed', digest: img.digest, tag: 'v1', verified: true, authority: 'ci', source: 'cosign-tag', identity: { subject: CI.subject } }], timings: { imagesMs: Number } });
  t.match(records[1], { request: { uid: 'u-2' }, allowed: false, images: [{ verified: false, code: 'IMAGE_NOT_FOUND' }] });

  const metrics = (await server.get('/metrics')).text;
  t.match(metrics, /trustgate_image_cache_total\{result="miss"\} 1/);
  t.match(metrics, new RegExp(`trustgate_registry_request_seconds_count\\{registry="${reg.host.replace(/\./g, '\\.')}",outcome="200"\\} \\d+`));
  t.match(metrics, /trustgate_image_verification_seconds_count\{result="verified"\} 1/);
});
