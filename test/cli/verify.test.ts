// `trustgate verify IMAGE` and `eval --mutate` against the real registry, as an operator runs them.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { trustgate } from '../helpers/cli.js';
import { CI_IDENTITY as CI } from '../helpers/sigstore.js';
import { pushSignedImage, signingRig } from '../helpers/signing.js';

t.test('verify and eval --mutate against a registry', async (t) => {
  const rig = await signingRig(t);
  if (!rig) return;
  const { reg, sigstore, dir } = rig;
  const signed = await pushSignedImage(reg, sigstore, 'acme/app', 'v1', CI);
  await reg.push.image('acme/app', 'unsigned');
  await writeFile(join(dir, 'p.yaml'), `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: signed }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["${reg.host}/acme/**"]
      mutateDigest: true
      authorities: [{ name: ci, keyless: { trustRoot: private, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] } }]
`);
  const ok = await trustgate('verify', `${reg.host}/acme/app:v1`, '--policies', dir, '--insecure-registry', reg.host);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, `tag v1 -> ${signed.digest}`);
  t.match(ok.stdout, /PASS signed images\[0\]: signed for ci \(https:\/\/github\.com\/acme\/app\/.+ from https:\/\/token\.actions\.githubusercontent\.com\), found in sha256-[0-9a-f]+\.sig layer 0/);

  const bad = await trustgate('verify', `${reg.host}/acme/app:unsigned`, '--policies', dir, '--insecure-registry', reg.host);
  t.equal(bad.code, 1);
  t.match(bad.stdout, /FAIL signed images\[0\]: SIGNATURE_NOT_FOUND: no signature found/);

  const none = await trustgate('verify', 'docker.io/library/nginx:1', '--policies', dir);
  t.equal(none.code, 2);
  t.match(none.stderr, /no images rule .* matches docker\.io\/library\/nginx:1/);

  const podFile = join(dir, 'pod.json');
  await writeFile(podFile, JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team' }, spec: { containers: [{ name: 'c', image: `${reg.host}/acme/app:v1` }] } }));
  const mutated = await trustgate('eval', '--policies', dir, '--object', podFile, '--mutate', '--insecure-registry', reg.host);
  t.equal(mutated.code, 0, mutated.stderr);
  const response = JSON.parse(mutated.stdout).response;
  t.same(JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')), [{ op: 'replace', path: '/spec/containers/0/image', value: `${reg.host}/acme/app:v1@${signed.digest}` }]);
});
