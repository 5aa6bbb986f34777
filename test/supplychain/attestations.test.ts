// Attestation rules end to end against docker-registry: provenance, SBOMs, vulnerability reports
// with VEX exceptions and licences, made by the tests' private Sigstore as cosign `.att` layers and
// as v0.3 bundle referrers; plus the real public attestation bundle of cosign's own tests.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { admit, type AdmissionServices } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import type { KubeObject } from '../../src/admission/types.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { loadPolicySet } from '../../src/policy/index.js';
import { ImageVerifier } from '../../src/supplychain/image-verifier.js';
import { RegistryClient } from '../../src/supplychain/oci/index.js';
import { predicateFacts } from '../../src/supplychain/sigstore/predicates.js';
import { attachBundle, attachLegacyAttestations, attachLegacySignatures } from '../helpers/cosign.js';
import { policyDir } from '../helpers/policies.js';
import { CI_IDENTITY, OTHER_IDENTITY, simpleSigningPayload, statement, type Identity } from '../helpers/sigstore.js';
import { pushSignedImage, signingRig } from '../helpers/signing.js';

const CI = CI_IDENTITY;
const SCANNER: Identity = { subject: 'https://github.com/acme/security/.github/workflows/scan.yml@refs/heads/main', issuer: 'https://token.actions.githubusercontent.com' };
const OTHER = OTHER_IDENTITY;
const FIX = join(import.meta.dirname, '../fixtures/sigstore');

const slsa = (repository: string, ref: string) => ({
  buildDefinition: { buildType: 'https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1', externalParameters: { workflow: { ref, repository, path: '.github/workflows/release.yml' } }, resolvedDependencies: [{ uri: `git+${repository}@${ref}`, digest: { gitCommit: 'abc123' } }] },
  runDetails: { builder: { id: 'https://github.com/actions/runner/github-hosted' } },
});
const cyclonedx = (components: { name: string; license: string }[]) => ({ bomFormat: 'CycloneDX', specVersion: '1.6', components: components.map((c) => ({ type: 'library', name: c.name, version: '1.0.0', purl: `pkg:npm/${c.name}@1.0.0`, licenses: [{ license: { id: c.license } }] })) });
const spdx = (packages: { name: string; license: string }[]) => ({ spdxVersion: 'SPDX-2.3', packages: packages.map((p) => ({ name: p.name, versionInfo: '2.0', licenseConcluded: p.license, externalRefs: [{ referenceType: 'purl', referenceLocator: `pkg:golang/${p.name}@2.0` }] })) });
const trivy = (vulns: { id: string; severity: string }[]) => ({ scanner: { uri: 'pkg:github/aquasecurity/trivy', result: { Results: [{ Vulnerabilities: vulns.map((v) => ({ VulnerabilityID: v.id, Severity: v.severity, PkgName: 'openssl' })) }] } } });
const openvex = (notAffected: string[]) => ({ '@context': 'https://openvex.dev/ns/v0.2.0', statements: notAffected.map((id) => ({ vulnerability: { name: id }, status: 'not_affected', justification: 'vulnerable_code_not_in_execute_path' })) });

t.test('attestation rules against a real registry', async (t) => {
  const rig = await signingRig(t);
  if (!rig) return;
  const { reg, sigstore, dir } = rig;
  const authorities = `
      authorities:
        - name: release
          keyless: { trustRoot: private, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] }
        - name: scanner
          keyless: { trustRoot: private, identities: [{ issuer: "${SCANNER.issuer}", subject: "${SCANNER.subject}" }] }`;
  await writeFile(join(dir, 'p.yaml'), `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: supply-chain }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["${reg.host}/acme/**"]${authorities}
      attestations:
        - name: provenance
          predicateType: slsaprovenance
          authorities: [release]
          expression: "facts.sourceRepository == 'https://github.com/acme/app' && facts.sourceRef == 'refs/heads/main'"
          messageExpression: "'built from ' + facts.sourceRepository + '@' + facts.sourceRef + ', not acme/app on main'"
        - name: sbom
          predicateType: sbom
          authorities: [release]
          expression: "!facts.licenses.exists(l, l.startsWith('GPL-3.0') || l.startsWith('AGPL-3.0'))"
          message: GPL-3.0 components are not allowed here
        - name: vex
          predicateType: openvex
          optional: true
          authorities: [scanner]
        - name: vulns
          predicateType: vuln
          authorities: [scanner]
          expression: "facts.vulnerabilities.filter(v, v.severity == 'critical').all(v, v.id in attestations.?vex.?notAffected.orValue([]))"
          messageExpression: "'unaccepted critical vulnerabilities: ' + facts.vulnerabilities.filter(v, v.severity == 'critical' && !(v.id in attestations.?vex.?notAffected.orValue([]))).map(v, v.id).join(', ')"
---
apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: attested-only }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["${reg.host}/attested/**"]
      requireSignature: false${authorities}
      attestations:
        - name: provenance
          predicateType: https://slsa.dev/provenance/v1
          expression: "signer.subject == '${CI.subject}' && predicate.runDetails.builder.id.startsWith('https://github.com/actions/')"
`);
  const loaded = await loadPolicySet([dir]);
  if (!loaded.set) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  const set = loaded.set;
  const client = new RegistryClient({ insecure: [reg.host] });
  t.teardown(() => client.close());
  const verifier = new ImageVerifier(client, { allowedRegistries: () => set.registries });
  const services: AdmissionServices = { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000, images: verifier };
  const run = (image: string, s = services) => admit(reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team' }, spec: { containers: [{ name: 'c', image }] } } as KubeObject, { namespace: 'team' }), 'validate', s);

  /** an image signed by CI with the given attestations: [identity, predicateType, predicate, place] */
  async function image(name: string, atts: [Identity, string, unknown, 'att' | 'referrer'][], options: { subject?: string; sign?: boolean } = {}) {
    const img = await reg!.push.image(name, 'v1');
    if (options.sign !== false) await attachLegacySignatures(reg!.push, name, img.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), CI)]);
    const subject = options.subject ?? img.digest;
    const legacy = [];
    const bundles = [];
    for (const [who, type, predicate, place] of atts) {
      if (place === 'att') legacy.push(await sigstore.legacyAttestation(statement(subject, type, predicate), who));
      else bundles.push(await sigstore.dsseBundle(statement(subject, type, predicate), who));
    }
    if (legacy.length) await attachLegacyAttestations(reg!.push, name, img.digest, legacy);
    if (bundles.length) await attachBundle(reg!.push, name, img, bundles, { tagFallback: true });
    return `${reg!.host}/${name}:v1`;
  }
  const good = (): [Identity, string, unknown, 'att' | 'referrer'][] => [
    [CI, 'https://slsa.dev/provenance/v1', slsa('https://github.com/acme/app', 'refs/heads/main'), 'att'],
    [CI, 'https://cyclonedx.org/bom/v1.6', cyclonedx([{ name: 'left-pad', license: 'MIT' }, { name: 'zlib', license: 'Zlib' }]), 'referrer'],
    [SCANNER, 'https://cosign.sigstore.dev/attestation/vuln/v1', trivy([{ id: 'CVE-2024-0001', severity: 'CRITICAL' }, { id: 'CVE-2024-0002', severity: 'LOW' }]), 'att'],
    [SCANNER, 'https://openvex.dev/ns/v0.2.0', openvex(['CVE-2024-0001']), 'referrer'],
  ];
  const codes = (o: Awaited<ReturnType<typeof run>>) => o.decision.causes?.map((c) => c.code) ?? [];

  t.test('admits an image with signed provenance, SBOM, and a critical CVE accepted by a signed VEX', async (t) => {
    const out = await run(await image('acme/good', good()));
    t.ok(out.decision.allowed, out.decision.denials.join());
    t.match(out.record.images[0]?.attestations, ['provenance (https://slsa.dev/provenance/v1)', 'sbom (https://cyclonedx.org/bom/v1.6)', /^vex/, /^vulns/]);
  });

  t.test('provenance from another repository fails its expression, naming the values', async (t) => {
    const atts = good();
    atts[0] = [CI, 'https://slsa.dev/provenance/v1', slsa('https://github.com/acme/fork', 'refs/heads/dev'), 'referrer'];
    const out = await run(await image('acme/fork', atts));
    t.same(codes(out), ['ATTESTATION_FAILED']);
    t.match(out.decision.denials[0], /attestation provenance .*built from https:\/\/github\.com\/acme\/fork@refs\/heads\/dev, not acme\/app on main \[builderId=https:\/\/github\.com\/actions\/runner\/github-hosted/);
  });

  t.test('a missing SBOM is named; an SBOM signed by someone else counts as absent', async (t) => {
    const missing = good().filter(([, type]) => !type.includes('cyclonedx'));
    const out = await run(await image('acme/nosbom', missing));
    t.same(codes(out), ['ATTESTATION_NOT_FOUND']);
    t.match(out.decision.denials[0], /attestation sbom: no https:\/\/spdx\.dev\/Document or https:\/\/cyclonedx\.org\/bom attestation found/);
    const foreign = good().map((a) => (a[1].includes('cyclonedx') ? [OTHER, a[1], a[2], a[3]] : a)) as ReturnType<typeof good>;
    const out2 = await run(await image('acme/foreignsbom', foreign));
    t.same(codes(out2), ['IDENTITY_MISMATCH']);
    t.match(out2.decision.denials[0], /attestation sbom .*signed by https:\/\/github\.com\/evil/);
  });

  t.test('an SPDX SBOM with a GPL-3.0 component is refused, listing the licences', async (t) => {
    const atts = good().map((a) => (a[1].includes('cyclonedx') ? [CI, 'https://spdx.dev/Document', spdx([{ name: 'readline', license: 'GPL-3.0-only' }, { name: 'zlib', license: 'Zlib' }]), 'att'] : a)) as ReturnType<typeof good>;
    const out = await run(await image('acme/gpl', atts));
    t.same(codes(out), ['ATTESTATION_FAILED']);
    t.match(out.decision.denials[0], /GPL-3\.0 components are not allowed here \[2 components, licenses: GPL-3\.0-only, Zlib\]/);
  });

  t.test('a critical CVE without a VEX exception is refused with its id', async (t) => {
    const atts = good().filter(([, type]) => !type.includes('openvex'));
    const out = await run(await image('acme/cve', atts));
    t.same(codes(out), ['ATTESTATION_FAILED']);
    t.match(out.decision.denials[0], /unaccepted critical vulnerabilities: CVE-2024-0001/);
  });

  t.test('an attestation whose subject is another digest does not count', async (t) => {
    const other = await reg.push.image('acme/elsewhere', 'v1');
    const out = await run(await image('acme/mismatch', good(), { subject: other.digest }));
    t.same(codes(out), ['DIGEST_MISMATCH']);
  });

  t.test('a malformed DSSE layer is not an attestation', async (t) => {
    const img = await pushSignedImage(reg, sigstore, 'acme/malformed', 'v1', CI);
    await attachLegacyAttestations(reg.push, 'acme/malformed', img.digest, [{ payload: Buffer.from('{"payloadType": 1}'), annotations: {} }]);
    const out = await run(`${reg.host}/acme/malformed:v1`);
    t.same(codes(out), ['ATTESTATION_NOT_FOUND']);
  });

  t.test('requireSignature: false admits on attestations alone; an unsigned image without them is refused', async (t) => {
    const ok = await run(await image('attested/app', [[CI, 'https://slsa.dev/provenance/v1', slsa('https://github.com/acme/app', 'refs/heads/main'), 'referrer']], { sign: false }));
    t.ok(ok.decision.allowed, ok.decision.denials.join());
    const bare = await run(await image('attested/bare', [], { sign: false }));
    t.same(codes(bare), ['ATTESTATION_NOT_FOUND']);
  });

  t.test('a 50,000-component SBOM is parsed and judged within the deadline; an oversized one is refused', async (t) => {
    const big = Array.from({ length: 50_000 }, (_, i) => ({ name: `pkg-${i}`, license: i % 2 ? 'MIT' : 'Apache-2.0' }));
    const atts = good().map((a) => (a[1].includes('cyclonedx') ? [CI, a[1], cyclonedx(big), 'referrer'] : a)) as ReturnType<typeof good>;
    const ref = await image('acme/bigsbom', atts);
    const started = performance.now();
    const out = await run(ref);
    const took = performance.now() - started;
    t.ok(out.decision.allowed, out.decision.denials.join());
    t.ok(took < 4000, `judged in ${took.toFixed(0)} ms`);
    t.comment(`50,000-component CycloneDX SBOM: fetched, verified and judged in ${took.toFixed(0)} ms`);
    const small = new ImageVerifier(client, { allowedRegistries: () => set.registries, maxAttestationBytes: 1024 * 1024 });
    const refused = await run(ref, { ...services, images: small });
    t.same(codes(refused), ['ATTESTATION_NOT_FOUND']);
    t.match(refused.decision.denials[0], /exceeds the 1048576-byte/);
  });

  t.test("the real public attestation of cosign's own tests, attached as a referrer and verified offline", async (t) => {
    const manifest = readFileSync(join(FIX, 'bundles/cosign/empty-image.manifest.json'));
    const config = readFileSync(join(FIX, 'bundles/cosign/empty-image.config.sha256-5b943e2b943f6c81dbbd4e2eca5121f4fcc39139e3d1219d6d89bd925b77d9fe.json'));
    await reg.push.blob('public/empty', config);
    const pushed = await reg.push.manifest('public/empty', 'v1', manifest, 'application/vnd.docker.distribution.manifest.v2+json');
    t.equal(pushed.digest, 'sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4');
    await attachBundle(reg.push, 'public/empty', pushed, [JSON.parse(readFileSync(join(FIX, 'bundles/cosign/empty-image.attestation.sigstore.json'), 'utf8'))], { tagFallback: true });
    const pdir = await policyDir({
      'p.yaml': `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: public }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["${reg.host}/public/**"]
      requireSignature: false
      authorities: [{ name: cody, keyless: { identities: [{ issuer: "https://github.com/login/oauth", subject: "cody@soyland.com" }] } }]
      attestations:
        - name: custom
          predicateType: https://cosign.sigstore.dev/attestation/v1
          expression: "predicate.Data.contains('foo')"
`,
    });
    const pset = (await loadPolicySet([pdir])).set!;
    const out = await run(`${reg.host}/public/empty:v1`, { ...services, policies: () => pset, images: new ImageVerifier(client, { allowedRegistries: () => pset.registries }) });
    t.ok(out.decision.allowed, out.decision.denials.join());
    t.match(out.record.images[0], { verified: true, identity: { subject: 'cody@soyland.com' }, attestations: ['custom (https://cosign.sigstore.dev/attestation/v1)'] });
  });
});

t.test('helpers read real SLSA provenance produced by GitHub Actions (npm provenance, v0.2 and v1)', async (t) => {
  const statementOf = (f: string) => JSON.parse(Buffer.from(JSON.parse(readFileSync(join(FIX, f), 'utf8')).dsseEnvelope.payload, 'base64').toString('utf8'));
  const v1 = statementOf('bundles/npm/sigstore-2.0.0.provenance.sigstore.json');
  t.match(predicateFacts(v1.predicateType, v1.predicate), { builderId: 'https://github.com/actions/runner/github-hosted', sourceRepository: 'https://github.com/sigstore/sigstore-js', sourceRef: 'refs/heads/main', sourceDigest: 'f0b49a04e5a62250e0f60fb128004a73110fe311' });
  const v02 = statementOf('bundles/npm/sigstore-1.3.0.provenance.sigstore.json');
  t.match(predicateFacts(v02.predicateType, v02.predicate), { builderId: 'https://github.com/actions/runner', sourceRepository: 'https://github.com/sigstore/sigstore-js', sourceRef: 'refs/heads/main', sourceDigest: 'dae8bd8eb433a4147b4655c00fe73e0f22bc0fb1' });
});
