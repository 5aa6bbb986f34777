// images rules end to end, in process: Debian's docker-registry (no referrers API, so the
// tag-schema fallback) and the spec-shaped referrers server on loopback, images pushed by the
// test, signatures made by the test's private Sigstore, decisions through admit().
import { writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { admit, type AdmissionServices } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import type { KubeObject } from '../../src/admission/types.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { loadPolicySet, type PolicySet } from '../../src/policy/index.js';
import { ImageVerifier } from '../../src/supplychain/image-verifier.js';
import { parseImageReference, RegistryClient, RegistryError } from '../../src/supplychain/oci/index.js';
import { eventually } from '../helpers/eventually.js';
import { attachBundle, attachLegacySignatures } from '../helpers/cosign.js';
import { startOciServer } from '../helpers/oci-server.js';
import { exceptionYaml, policyDir } from '../helpers/policies.js';
import { startRegistry } from '../helpers/registry.js';
import { serviceOrSkip } from '../helpers/services.js';
import { CI_IDENTITY, cosignStatement, keyPair, OTHER_IDENTITY, PrivateSigstore, privateRootPolicyDir, simpleSigningPayload, type Identity } from '../helpers/sigstore.js';
import { pushSignedImage } from '../helpers/signing.js';

const CI: Identity = { ...CI_IDENTITY, extensions: { '1.3.6.1.4.1.57264.1.5': 'acme/app' } };
const OTHER = OTHER_IDENTITY;

function pod(...images: string[]): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team' }, spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } } as KubeObject;
}
function deployment(image: string): KubeObject {
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd', namespace: 'team' }, spec: { template: { spec: { containers: [{ name: 'c', image }] } } } } as KubeObject;
}

t.test('images rules against real registries', async (t) => {
  const reg = await serviceOrSkip(t, 'docker-registry', () => startRegistry());
  if (!reg) return;
  t.teardown(() => reg.stop());
  const api = await startOciServer();
  t.teardown(() => api.stop());
  const sigstore = await PrivateSigstore.create();
  const release = keyPair();

  const dir = await policyDir({});
  await writeFile(join(dir, 'private-root.json'), JSON.stringify(sigstore.trustedRoot));
  const pems = sigstore.pems();
  const indent = (pem: string, n: number) => pem.trim().split('\n').map((l) => ' '.repeat(n) + l).join('\n');
  await writeFile(join(dir, 'policies.yaml'), `apiVersion: trustgate.dev/v1alpha1
kind: TrustRoot
metadata: { name: private-sigstore }
spec:
  trustedRootFile: ./private-root.json
---
apiVersion: trustgate.dev/v1alpha1
kind: TrustRoot
metadata: { name: private-pems }
spec:
  fulcio:
    - certChain: |
${indent(pems.fulcio, 8)}
  rekor:
    - publicKey: |
${indent(pems.rekor, 8)}
  ctlog:
    - publicKey: |
${indent(pems.ctlog, 8)}
---
apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: signed-images }
spec:
  match:
    resources:
      - { apiGroups: ["", apps], resources: [pods, deployments], operations: [CREATE, UPDATE] }
  images:
    - match: ["${reg.host}/signed/**", "${api.host}/**"]
      exclude: ["${reg.host}/signed/excluded"]
      mutateDigest: true
      authorities:
        - name: ci-keyless
          keyless:
            trustRoot: private-sigstore
            identities:
              - issuer: ${CI.issuer}
                subjectRegExp: 'https://github\\.com/acme/[^/]+/\\.github/workflows/release\\.yml@refs/heads/main'
                extensions: { githubWorkflowRepository: acme/app }
        - name: release-key
          key:
            trustRoot: private-pems
            publicKey: |
${indent(release.publicKeyPem, 14)}
---
apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: pinned-templates }
spec:
  match:
    resources:
      - { apiGroups: [apps], resources: [deployments], operations: [CREATE] }
  images:
    - match: ["${reg.host}/templated/**"]
      mutateDigest: true
      mutateTemplates: true
      authorities:
        - name: ci-keyless
          keyless: { trustRoot: private-pems, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] }
`);
  const loaded = await loadPolicySet([dir]);
  if (!loaded.set) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  const set: PolicySet = loaded.set;
  t.same([...set.registries].sort(), [api.host, reg.host].sort(), 'the registries the policies name');

  const client = new RegistryClient({ insecure: [reg.host, api.host], timeoutMs: 2000, retries: 1 });
  t.teardown(() => client.close());
  const lookups: string[] = [];
  const verifier = new ImageVerifier(client, { allowedRegistries: () => set.registries, metrics: { cache: (r) => lookups.push(r), verification: () => {} } });
  const services: AdmissionServices = { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 4000, images: verifier };
  const run = (object: KubeObject, endpoint: 'validate' | 'mutate' = 'validate', s = services) => admit(reviewForObject(object, { namespace: 'team' }), endpoint, s);
  const causes = (o: Awaited<ReturnType<typeof run>>) => o.decision.causes?.map((c) => c.code) ?? [];

  const signedTag = await reg.push.image('signed/app', 'v1');
  await attachLegacySignatures(reg.push, 'signed/app', signedTag.digest, [await sigstore.legacyKeyless(simpleSigningPayload(`${reg.host}/signed/app`, signedTag.digest), CI)]);

  t.test('admits an image signed keyless (cosign .sig tag) by the CI identity, and records what was verified', async (t) => {
    const out = await run(pod(`${reg.host}/signed/app:v1`));
    t.ok(out.decision.allowed, out.decision.denials.join());
    t.match(out.record.images, [{ policy: 'signed-images', ref: `${reg.host}/signed/app:v1`, digest: signedTag.digest, tag: 'v1', verified: true, authority: 'ci-keyless', source: 'cosign-tag', identity: { subject: CI.subject, issuer: CI.issuer } }]);
  });

  t.test('denies an unsigned image naming image, digest and the reason', async (t) => {
    const unsigned = await reg.push.image('signed/unsigned', 'v1');
    const out = await run(pod(`${reg.host}/signed/unsigned:v1`));
    t.notOk(out.decision.allowed);
    t.same(causes(out), ['SIGNATURE_NOT_FOUND']);
    t.match(out.review.response.status?.message, `${reg.host}/signed/unsigned:v1`);
    t.match(out.review.response.status?.message, unsigned.digest.slice(0, 19));
    t.match(out.review.response.status?.message, /no signature found \(searched cosign tag sha256-[0-9a-f]+\.sig, referrers tag/);
    t.same(out.record.images.map((i) => [i.verified, i.code]), [[false, 'SIGNATURE_NOT_FOUND']]);
  });

  t.test('a PolicyException naming images waives only their failures, and says which', async (t) => {
    await reg.push.image('signed/legacy', 'v1');
    const other = await reg.push.image('signed/unsigned-too', 'v1');
    const withException = await loadPolicySet([dir, await policyDir({ 'exception.yaml': exceptionYaml('legacy-images', `policies: [signed-images]
reason: rebuilt signed by SEC-7
ticket: SEC-7
expires: "2999-01-01"
match: { namespaces: [team] }
images: ["${reg.host}/signed/legacy"]`) })]);
    if (!withException.set) throw new Error(withException.errors.map((e) => e.message).join('\n'));
    const s = { ...services, policies: () => withException.set };
    const legacy = `${reg.host}/signed/legacy:v1`;

    const waived = await run(pod(legacy, `${reg.host}/signed/app:v1`), 'mutate', s);
    t.ok(waived.decision.allowed, waived.decision.denials.join());
    t.match(waived.review.response.warnings, [new RegExp(`^\\[signed-images\\] excepted by legacy-images \\(SEC-7\\) until 2999-01-01T00:00:00\\.000Z: image ${legacy} .*SIGNATURE_NOT_FOUND`)]);
    const [policy] = waived.record.policies;
    t.same([policy!.result, policy!.code, policy!.messages], ['excepted', 'SIGNATURE_NOT_FOUND', []]);
    t.match(policy!.exceptions, [{ name: 'legacy-images', ticket: 'SEC-7', reason: 'rebuilt signed by SEC-7', messages: [new RegExp(`image ${legacy}`)] }]);
    t.same(waived.record.images.map((i) => [i.ref, i.verified]), [[legacy, false], [`${reg.host}/signed/app:v1`, true]], 'the record still says the image is unverified');
    t.same(JSON.parse(Buffer.from(waived.review.response.patch!, 'base64').toString('utf8')), [{ op: 'replace', path: '/spec/containers/1/image', value: `${reg.host}/signed/app:v1@${signedTag.digest}` }],
      'the verified image is pinned though the policy failed for the other (admitted by the exception); the waived one is not');

    const mixed = await run(pod(legacy, `${reg.host}/signed/unsigned-too:v1`), 'validate', s);
    t.notOk(mixed.decision.allowed, 'another unsigned image still denies');
    t.match(mixed.review.response.status?.message, other.digest.slice(0, 19));
    t.notMatch(mixed.review.response.status?.message, 'signed/legacy', 'the denial names only what still counts');
    t.same(mixed.decision.causes?.map((c) => c.message.includes('unsigned-too')), [true]);
    t.match(mixed.review.response.warnings, [/excepted by legacy-images/]);
    t.same([mixed.record.policies[0]!.result, mixed.record.policies[0]!.messages.length, mixed.record.policies[0]!.exceptions?.[0]?.messages.length], ['fail', 1, 1]);

    const elsewhere = await admit(reviewForObject({ ...pod(legacy), metadata: { name: 'p', namespace: 'prod' } } as KubeObject, { namespace: 'prod' }), 'validate', s);
    t.notOk(elsewhere.decision.allowed, 'a namespace the exception does not name');
  });

  t.test('a Pod padded with over 100 distinct images is denied before any registry look-up', async (t) => {
    const before = lookups.length;
    const padded = Array.from({ length: 101 }, (_, i) => `${reg.host}/signed/app:pad-${i}`);
    const out = await run(pod(...padded));
    t.notOk(out.decision.allowed);
    t.same(causes(out), ['TOO_MANY_IMAGES']);
    t.match(out.review.response.status?.message, /names 101 distinct images .* at most 100 per policy and request/);
    t.equal(lookups.length, before, 'no verification was attempted');
    // 100 images that the rules do not apply to do not count
    const others = Array.from({ length: 150 }, (_, i) => `elsewhere.example/app:${i}`);
    const mixed = await run(pod(`${reg.host}/signed/app:v1`, ...others));
    t.ok(mixed.decision.allowed, mixed.decision.denials.join());
  });

  t.test('denies a signature by another identity', async (t) => {
    const img = await reg.push.image('signed/other', 'v1');
    await attachLegacySignatures(reg.push, 'signed/other', img.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), OTHER)]);
    const out = await run(pod(`${reg.host}/signed/other:v1`));
    t.same(causes(out), ['IDENTITY_MISMATCH']);
    t.match(out.decision.denials[0], /signed by https:\/\/github\.com\/evil\/app/);
  });

  t.test('denies a valid signature of another digest copied onto this image', async (t) => {
    const img = await reg.push.image('signed/copied', 'v1');
    await attachLegacySignatures(reg.push, 'signed/copied', img.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', signedTag.digest), CI)]);
    const out = await run(pod(`${reg.host}/signed/copied:v1`));
    t.same(causes(out), ['DIGEST_MISMATCH']);
  });

  t.test('denies a certificate that was not valid when the log saw the signature', async (t) => {
    const img = await reg.push.image('signed/stale', 'v1');
    await attachLegacySignatures(reg.push, 'signed/stale', img.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), CI, { stale: true })]);
    t.same(causes(await run(pod(`${reg.host}/signed/stale:v1`))), ['CERTIFICATE_INVALID']);
  });

  t.test('denies a keyless signature without a transparency-log entry (tlog required by default)', async (t) => {
    const img = await reg.push.image('signed/nolog', 'v1');
    await attachLegacySignatures(reg.push, 'signed/nolog', img.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), CI, { noTlog: true })]);
    t.same(causes(await run(pod(`${reg.host}/signed/nolog:v1`))), ['TLOG_INVALID']);
  });

  t.test('denies a signature whose certificate was swapped for another signer\'s', async (t) => {
    const img = await reg.push.image('signed/swapped', 'v1');
    const real = await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), CI);
    const other = await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), CI);
    real.annotations['dev.sigstore.cosign/certificate'] = other.annotations['dev.sigstore.cosign/certificate']!;
    await attachLegacySignatures(reg.push, 'signed/swapped', img.digest, [real]);
    t.match(causes(await run(pod(`${reg.host}/signed/swapped:v1`)))[0], /TLOG_INVALID|SIGNATURE_INVALID/);
  });

  t.test('admits a key-based signature logged in the private Rekor (root from PEM pieces)', async (t) => {
    const img = await reg.push.image('signed/keyed', 'v1');
    await attachLegacySignatures(reg.push, 'signed/keyed', img.digest, [await sigstore.legacyWithKey(simpleSigningPayload('x', img.digest), release.privateKey, release.publicKeyPem)]);
    const out = await run(pod(`${reg.host}/signed/keyed:v1`));
    t.ok(out.decision.allowed, out.decision.denials.join());
    t.equal(out.record.images[0]?.authority, 'release-key');
  });

  t.test('admits a v0.3 bundle found through the referrers tag-schema fallback (distribution 2.8)', async (t) => {
    const img = await reg.push.image('signed/bundled', 'v1');
    await attachBundle(reg.push, 'signed/bundled', img, [await sigstore.dsseBundle(cosignStatement(img.digest), CI)], { tagFallback: true });
    const out = await run(pod(`${reg.host}/signed/bundled:v1`));
    t.ok(out.decision.allowed, out.decision.denials.join());
    t.equal(out.record.images[0]?.source, 'referrers-tag');
  });

  t.test('admits a v0.3 bundle found through the referrers API, and refuses one whose subject is another digest', async (t) => {
    const img = await api.push.image('team/app', 'v1');
    await attachBundle(api.push, 'team/app', img, [await sigstore.dsseBundle(cosignStatement(img.digest), CI)], { tagFallback: false });
    const out = await run(pod(`${api.host}/team/app:v1`));
    t.ok(out.decision.allowed, out.decision.denials.join());
    t.equal(out.record.images[0]?.source, 'referrers-api');
    const img2 = await api.push.image('team/other', 'v1');
    await attachBundle(api.push, 'team/other', img2, [await sigstore.dsseBundle(cosignStatement(img.digest), CI)], { tagFallback: false });
    t.same(causes(await run(pod(`${api.host}/team/other:v1`))), ['DIGEST_MISMATCH']);
  });

  t.test('multi-arch: the digest the pod names must carry the signature', async (t) => {
    const amd = await reg.push.image('signed/multi', 'amd64');
    const arm = await reg.push.image('signed/multi', 'arm64');
    const index = await reg.push.index('signed/multi', 'v1', [{ manifest: amd, architecture: 'amd64' }, { manifest: arm, architecture: 'arm64' }]);
    await attachLegacySignatures(reg.push, 'signed/multi', index.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', index.digest), CI)]);
    const byTag = await run(pod(`${reg.host}/signed/multi:v1`));
    t.ok(byTag.decision.allowed);
    t.equal(byTag.record.images[0]?.digest, index.digest, 'the record names the index digest that was verified');
    t.same(causes(await run(pod(`${reg.host}/signed/multi@${arm.digest}`))), ['SIGNATURE_NOT_FOUND'], 'an unsigned platform manifest named directly is not covered by the index signature');
  });

  t.test('/mutate pins verified tags to digests in Pods only, unless mutateTemplates', async (t) => {
    const out = await run(pod(`${reg.host}/signed/app:v1`, `${reg.host}/signed/app@${signedTag.digest}`), 'mutate');
    t.ok(out.decision.allowed);
    const patch = JSON.parse(Buffer.from(out.review.response.patch!, 'base64').toString('utf8'));
    t.same(patch, [{ op: 'replace', path: '/spec/containers/0/image', value: `${reg.host}/signed/app:v1@${signedTag.digest}` }], 'only the tag reference is rewritten');
    const dep = await run(deployment(`${reg.host}/signed/app:v1`), 'mutate');
    t.ok(dep.decision.allowed);
    t.notOk(dep.review.response.patch, 'Deployments are not rewritten by default (GitOps drift)');
    const tmpl = await pushSignedImage(reg, sigstore, 'templated/app', 'v1', CI);
    const pinned = await run(deployment(`${reg.host}/templated/app:v1`), 'mutate');
    t.same(JSON.parse(Buffer.from(pinned.review.response.patch!, 'base64').toString('utf8')), [{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: `${reg.host}/templated/app:v1@${tmpl.digest}` }]);
  });

  t.test('/mutate verifies and pins what a MutatingAdmissionPolicy adds, after its change in one patch', async (t) => {
    const sidecarPolicy = (image: string) => `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: { name: sidecar }
spec:
  matchConstraints:
    resourceRules: [{ apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods] }]
  matchConditions: [{ name: none-yet, expression: "!object.spec.containers.exists(c, c.name == 'proxy')" }]
  mutations:
    - patchType: JSONPatch
      jsonPatch:
        expression: '[JSONPatch{op: "add", path: "/spec/containers/-", value: Object.spec.containers{name: "proxy", image: "${image}"}}]'
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: { name: all }
spec: { policyName: sidecar }
`;
    const withSidecar = async (image: string) => {
      const loaded = await loadPolicySet([dir, await policyDir({ 'sidecar.yaml': sidecarPolicy(image) })]);
      if (!loaded.set) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
      return { ...services, policies: () => loaded.set };
    };
    const out = await run(pod(`${reg.host}/signed/app:v1`), 'mutate', await withSidecar(`${reg.host}/signed/app:v1`));
    t.ok(out.decision.allowed, out.decision.denials.join());
    const pinnedRef = `${reg.host}/signed/app:v1@${signedTag.digest}`;
    t.same(JSON.parse(Buffer.from(out.review.response.patch!, 'base64').toString('utf8')), [
      { op: 'add', path: '/spec/containers/1', value: { name: 'proxy', image: `${reg.host}/signed/app:v1` } },
      { op: 'replace', path: '/spec/containers/0/image', value: pinnedRef },
      { op: 'replace', path: '/spec/containers/1/image', value: pinnedRef },
    ], 'the sidecar added, then every image pinned in the object as mutated');

    const unsigned = await reg.push.image('signed/unsigned-sidecar', 'v1');
    const denied = await run(pod(`${reg.host}/signed/app:v1`), 'mutate', await withSidecar(`${reg.host}/signed/unsigned-sidecar:v1`));
    t.notOk(denied.decision.allowed, 'an unsigned image a mutation adds is judged like any other');
    t.match(denied.review.response.status?.message, unsigned.digest.slice(0, 19));
    t.equal(denied.review.response.patch, undefined, 'a denied request carries no patch');
  });

  t.test('/validate checks a pinned digest again', async (t) => {
    t.ok((await run(pod(`${reg.host}/signed/app:v1@${signedTag.digest}`))).decision.allowed);
    const unsigned = await reg.push.image('signed/pinned-unsigned', 'v1');
    t.same(causes(await run(pod(`${reg.host}/signed/pinned-unsigned:v1@${unsigned.digest}`))), ['SIGNATURE_NOT_FOUND']);
  });

  t.test('images no rule matches, excluded ones and unnamed registries', async (t) => {
    t.ok((await run(pod(`${reg.host}/elsewhere/app:v1`))).decision.allowed, 'no rule matches: not this policy\'s business');
    t.ok((await run(pod(`${reg.host}/signed/excluded:v1`))).decision.allowed, 'excluded');
  });

  t.test('verified results are cached and concurrent look-ups of one digest share one', async (t) => {
    const img = await pushSignedImage(reg, sigstore, 'signed/cached', 'v1', CI);
    lookups.length = 0;
    const outs = await Promise.all(Array.from({ length: 10 }, () => run(pod(`${reg.host}/signed/cached@${img.digest}`))));
    t.ok(outs.every((o) => o.decision.allowed));
    t.same([lookups.filter((l) => l === 'miss').length, lookups.filter((l) => l === 'coalesced').length], [1, 9]);
    const hit = await run(pod(`${reg.host}/signed/cached@${img.digest}`));
    t.equal(lookups.at(-1), 'hit');
    t.same(hit.record.images, outs[0]!.record.images, 'a cached verdict records what the first one did (the cache keeps less, not other)');
    t.match(hit.record.images[0], { verified: true, authority: String, identity: { issuer: String, subject: String } });
    // the synchronous path a warm admission takes: a cached verdict at once, nothing for what is not cached
    const rule = set.policies.find((p) => p.name === 'signed-images')!.images[0]!;
    const cachedRef = parseImageReference(`${reg.host}/signed/cached@${img.digest}`);
    t.match(verifier.cachedVerdict(cachedRef.normalized, cachedRef, rule), { verified: true, cached: true, digest: img.digest });
    const unknownRef = parseImageReference(`${reg.host}/signed/cached:never-resolved`);
    t.equal(verifier.cachedVerdict(unknownRef.normalized, unknownRef, rule), undefined, 'an unresolved tag is for verify()');
    lookups.length = 0;
    await run(pod(`${reg.host}/signed/unsigned:v1`));
    await run(pod(`${reg.host}/signed/unsigned:v1`));
    t.same(lookups, ['miss', 'miss'], 'failures are never cached as passes');
  });

  t.test('a verdict near the end of its life is verified again in the background; one that no longer holds is dropped', async (t) => {
    const img = await pushSignedImage(reg, sigstore, 'signed/aging', 'v1', CI);
    const sigTag = `${img.digest.replace(':', '-')}.sig`;
    class FlakyClient extends RegistryClient {
      gate?: Promise<void>;
      answer: 'signature' | 'none' | 'down' = 'signature';
      override async getManifest(...args: Parameters<RegistryClient['getManifest']>) {
        if (args[1] === 'signed/aging' && args[2] === sigTag) {
          await this.gate;
          if (this.answer === 'none') throw new RegistryError('IMAGE_NOT_FOUND', 'no such tag');
          if (this.answer === 'down') throw new RegistryError('REGISTRY_UNAVAILABLE', 'connection refused');
        }
        return super.getManifest(...args);
      }
    }
    const flaky = new FlakyClient({ insecure: [reg.host] });
    t.teardown(() => flaky.close());
    const seen: string[] = [];
    // verdict ages by a clock the test moves, so a slow machine cannot shift a step past its mark
    // (lru-cache reads a start time of 0 as none: the clock starts later)
    const T = 100_000;
    const clock = { ms: T, now: () => clock.ms };
    let verifications = 0;
    const svc = { ...services, images: new ImageVerifier(flaky, { allowedRegistries: () => set.registries, cacheTtlMs: 2000, clock, metrics: { cache: (r) => seen.push(r), verification: () => verifications++ } }) };
    const admitted = () => run(pod(`${reg.host}/signed/aging@${img.digest}`), 'validate', svc);
    /** until the background verification started so far has landed in the cache */
    const refreshed = async (count: number) => eventually(async () => verifications >= count, `${count} verifications`);

    t.ok((await admitted()).decision.allowed);
    t.same(seen, ['miss']);

    // past 80 % of its life: answered from the cache at once (the registry held shut), one re-verification
    clock.ms = T + 1700;
    let open!: () => void;
    flaky.gate = new Promise((r) => (open = r));
    seen.length = 0;
    const during = await Promise.all(Array.from({ length: 5 }, admitted));
    t.ok(during.every((o) => o.decision.allowed));
    t.same(seen.filter((r) => r === 'refresh').length, 1, 'five admissions, one re-verification');
    t.same(seen.filter((r) => r === 'hit').length, 5);
    open();
    await refreshed(2); // re-verified at 1700: lives to 3700
    clock.ms = T + 2300; // past the first verdict's end of life
    seen.length = 0;
    t.ok((await admitted()).decision.allowed);
    t.same(seen, ['hit'], 'the re-verified verdict lives on');

    // a registry failure during a refresh: the verdict stays until it expires
    clock.ms = T + 3400;
    flaky.answer = 'down';
    seen.length = 0;
    t.ok((await admitted()).decision.allowed);
    await refreshed(3);
    t.ok((await admitted()).decision.allowed, 'still answered from the verdict');
    await refreshed(4);
    t.same(seen, ['hit', 'refresh', 'hit', 'refresh']);
    clock.ms = T + 3800;
    t.match(causes(await admitted()), ['REGISTRY_UNAVAILABLE'], 'expired: the registry is asked again');

    // a refresh that finds the signature gone drops the verdict at once
    flaky.answer = 'signature';
    clock.ms = T + 10_000;
    t.ok((await admitted()).decision.allowed);
    clock.ms = T + 11_700;
    flaky.answer = 'none';
    const before = verifications;
    t.ok((await admitted()).decision.allowed, 'the admission that starts the refresh is answered from the verdict');
    await refreshed(before + 1);
    seen.length = 0;
    const after = await admitted();
    t.notOk(after.decision.allowed, 'the next one is judged afresh, before the verdict would have expired');
    t.same(seen, ['miss']);
  });

  t.test('a registry that refuses credentials, is down or hangs: failurePolicy decides, in time', async (t) => {
    const down = await startOciServer({ bearer: { user: 'u', password: 'p' } });
    const img = await down.push.image('team/app', 'v1');
    const downHost = down.host;
    const policies = await policyDir({
      'p.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: fail-closed }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["${downHost}/**"]
      authorities: [{ name: ci, keyless: { trustRoot: sigstore-public-good, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] } }]
---
apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: fail-open }
spec:
  failurePolicy: Ignore
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["${downHost}/**"]
      authorities: [{ name: ci, keyless: { trustRoot: sigstore-public-good, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] } }]
`,
    });
    const s2 = (await loadPolicySet([policies])).set!;
    const c2 = new RegistryClient({ insecure: [downHost], timeoutMs: 300, retries: 0 });
    t.teardown(() => c2.close());
    const v2 = new ImageVerifier(c2, { allowedRegistries: () => s2.registries });
    const svc: AdmissionServices = { ...services, policies: () => s2, images: v2, deadlineMs: 1000 };
    const auth = await run(pod(`${downHost}/team/app@${img.digest}`), 'validate', svc);
    t.notOk(auth.decision.allowed);
    t.same(causes(auth), ['REGISTRY_AUTH_FAILED'], 'fail-closed denies; fail-open only warns');
    t.match(auth.decision.warnings.join(), /fail-open.*REGISTRY_AUTH_FAILED/);

    down.hang(true);
    const started = Date.now();
    const hung = await run(pod(`${downHost}/team/app:v2`), 'validate', svc);
    t.ok(Date.now() - started < 1500, 'answered before the deadline');
    t.same(causes(hung), ['REGISTRY_UNAVAILABLE']);
    await down.stop();
    t.same(causes(await run(pod(`${downHost}/team/app:v3`), 'validate', svc)), ['REGISTRY_UNAVAILABLE'], 'connection refused');
  });

  t.test('a registry no policy names is never contacted', async (t) => {
    let connections = 0;
    const sockets: Socket[] = [];
    const trap = createServer((s) => { connections++; sockets.push(s); s.destroy(); });
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r));
    t.teardown(() => { trap.close(); });
    const trapHost = `127.0.0.1:${(trap.address() as { port: number }).port}`;
    const policies = await policyDir({
      'p.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: everything }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["**"]
      authorities: [{ name: ci, keyless: { trustRoot: sigstore-public-good, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] } }]
`,
    });
    const s3 = (await loadPolicySet([policies])).set!;
    t.same([...s3.registries], [], 'a wildcard host names no registry');
    const c3 = new RegistryClient({ insecure: [trapHost] });
    t.teardown(() => c3.close());
    const out = await run(pod(`${trapHost}/smuggled/app:v1`), 'validate', { ...services, policies: () => s3, images: new ImageVerifier(c3, { allowedRegistries: () => s3.registries }) });
    t.same(causes(out), ['REGISTRY_NOT_ALLOWED']);
    t.equal(connections, 0);
  });

  t.test('Flux OCIRepository: a semver range resolves to the highest matching tag, and the record says which', async (t) => {
    for (const tag of ['1.0.0', '1.2.0', '2.0.0']) {
      await pushSignedImage(reg, sigstore, 'signed/manifests', tag, CI);
    }
    const policies = await privateRootPolicyDir(sigstore, {
      'p.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: flux-oci }
spec:
  match: { resources: [{ apiGroups: [source.toolkit.fluxcd.io], resources: [ocirepositories], operations: [CREATE] }] }
  images:
    - match: ["${reg.host}/signed/**"]
      authorities: [{ name: ci, keyless: { trustRoot: private, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] } }]
`,
    });
    const s4 = (await loadPolicySet([policies])).set!;
    const svc = { ...services, policies: () => s4, images: new ImageVerifier(client, { allowedRegistries: () => s4.registries }) };
    const repo = (ref: object) => ({ apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', metadata: { name: 'm', namespace: 'team' }, spec: { url: `oci://${reg.host}/signed/manifests`, ref } }) as KubeObject;
    const out = await run(repo({ semver: '>=1.0.0 <2.0.0' }), 'validate', svc);
    t.ok(out.decision.allowed, out.decision.denials.join());
    t.match(out.record.images, [{ ref: `${reg.host}/signed/manifests:1.2.0`, tag: '1.2.0', verified: true }]);
    t.same(causes(await run(repo({ semver: '>=3' }), 'validate', svc)), ['IMAGE_NOT_FOUND']);
  });

  t.test('policies sharing images share the work: one tag listing per semver range, one pin per field', async (t) => {
    const rule = (name: string, kind: string) => `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: ${name} }
spec:
  match: { resources: [{ apiGroups: ["", source.toolkit.fluxcd.io], resources: [${kind}], operations: [CREATE] }] }
  images:
    - match: ["${reg.host}/signed/**"]
      mutateDigest: true
      authorities: [{ name: ci, keyless: { trustRoot: private, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] } }]
`;
    const policies = await privateRootPolicyDir(sigstore, { 'p.yaml': [rule('pods-a', 'pods'), rule('pods-b', 'pods'), rule('oci-a', 'ocirepositories'), rule('oci-b', 'ocirepositories')].join('---\n') });
    const s5 = (await loadPolicySet([policies])).set!;
    class CountingClient extends RegistryClient {
      listings = 0;
      override async listTags(...args: Parameters<RegistryClient['listTags']>): Promise<string[]> {
        this.listings++;
        return super.listTags(...args);
      }
    }
    const counting = new CountingClient({ insecure: [reg.host] });
    t.teardown(() => counting.close());
    const svc = { ...services, policies: () => s5, images: new ImageVerifier(counting, { allowedRegistries: () => s5.registries }) };
    const mutated = await run(pod(`${reg.host}/signed/app:v1`), 'mutate', svc);
    t.ok(mutated.decision.allowed, mutated.decision.denials.join());
    t.same(JSON.parse(Buffer.from(mutated.review.response.patch!, 'base64').toString('utf8')), [{ op: 'replace', path: '/spec/containers/0/image', value: `${reg.host}/signed/app:v1@${signedTag.digest}` }], 'two policies pinning one field: one operation');
    const flux = { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', metadata: { name: 'm', namespace: 'team' }, spec: { url: `oci://${reg.host}/signed/manifests`, ref: { semver: '>=1.0.0 <2.0.0' } } } as KubeObject;
    t.ok((await run(flux, 'validate', svc)).decision.allowed);
    t.equal(counting.listings, 1, 'two policies, one semver range: the tags are listed once');
  });

  t.test('a tag is read once for concurrent admissions, and re-read in the background before it expires', async (t) => {
    const first = await pushSignedImage(reg, sigstore, 'signed/moving', 'v1', CI);
    class GatedClient extends RegistryClient {
      tagReads = 0;
      gate?: Promise<void>;
      override async getManifest(...args: Parameters<RegistryClient['getManifest']>) {
        if (args[1] === 'signed/moving' && args[2] === 'v1') {
          this.tagReads++;
          await this.gate;
        }
        return super.getManifest(...args);
      }
    }
    const gated = new GatedClient({ insecure: [reg.host] });
    t.teardown(() => gated.close());
    const svc = { ...services, images: new ImageVerifier(gated, { allowedRegistries: () => set.registries, tagTtlMs: 4000 }) };
    const digestOf = (o: Awaited<ReturnType<typeof run>>) => (o.record.images as { digest?: string }[])[0]?.digest;
    const readAt = Date.now();
    const outs = await Promise.all(Array.from({ length: 10 }, () => run(pod(`${reg.host}/signed/moving:v1`), 'validate', svc)));
    t.ok(outs.every((o) => o.decision.allowed && digestOf(o) === first.digest));
    t.equal(gated.tagReads, 1, 'ten admissions, one read of the tag');

    // the tag moves; past 80 % of the resolution's life an admission still answers from it at
    // once (the registry is held shut here) and starts one re-read
    const second = await pushSignedImage(reg, sigstore, 'signed/moving', 'v1', CI, 'second');
    await new Promise((r) => setTimeout(r, readAt + 3300 - Date.now())); // past 3,200 ms, well before 4,000
    let open!: () => void;
    gated.gate = new Promise((r) => (open = r));
    const during = await Promise.all(Array.from({ length: 5 }, () => run(pod(`${reg.host}/signed/moving:v1`), 'validate', svc)));
    t.ok(during.every((o) => digestOf(o) === first.digest), 'answered from the resolution while it is re-read');
    t.equal(gated.tagReads, 2, 'one re-read for five admissions');
    open();
    await new Promise((r) => setTimeout(r, 100));
    t.equal(digestOf(await run(pod(`${reg.host}/signed/moving:v1`), 'validate', svc)), second.digest, 'then the new digest');
    t.equal(gated.tagReads, 2);

    // a caller whose deadline passes while the shared read hangs gets its own answer; the read goes on for the others
    const fresh = new ImageVerifier(gated, { allowedRegistries: () => set.registries, tagTtlMs: 4000 });
    const rule = set.policies.find((p) => p.name === 'signed-images')!.images[0]!;
    const ref = parseImageReference(`${reg.host}/signed/moving:v1`);
    gated.gate = new Promise((r) => (open = r));
    const patient = fresh.verify(ref.normalized, ref, rule);
    const hurried = await fresh.verify(ref.normalized, ref, rule, { signal: AbortSignal.timeout(50) });
    t.match(hurried, { verified: false, code: 'REGISTRY_UNAVAILABLE', message: /the request deadline passed/ });
    open();
    t.match(await patient, { verified: true, digest: second.digest });
    t.equal(gated.tagReads, 3, 'one read for both');

    // nothing older than the TTL is served: an expired resolution is not an answer while the registry is shut
    const brief = new ImageVerifier(gated, { allowedRegistries: () => set.registries, tagTtlMs: 200 });
    t.match(await brief.verify(ref.normalized, ref, rule), { verified: true, digest: second.digest });
    await new Promise((r) => setTimeout(r, 250));
    gated.gate = new Promise((r) => (open = r));
    t.match(await brief.verify(ref.normalized, ref, rule, { signal: AbortSignal.timeout(100) }), { verified: false, code: 'REGISTRY_UNAVAILABLE' }, 'expired: the registry is asked, not the stale entry');
    open();

    // tagTtlMs 0: a tag is read on every use, and only verify() (never the synchronous path) answers it
    const never = new ImageVerifier(gated, { allowedRegistries: () => set.registries, tagTtlMs: 0 });
    const reads = gated.tagReads;
    t.match(await never.verify(ref.normalized, ref, rule), { verified: true, digest: second.digest });
    t.match(await never.verify(ref.normalized, ref, rule), { verified: true, cached: true });
    t.equal(gated.tagReads, reads + 2, 'read each time');
    t.equal(never.cachedVerdict(ref.normalized, ref, rule), undefined, 'no resolution to answer from');
  });
});
