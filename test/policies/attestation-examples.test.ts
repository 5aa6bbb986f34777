// The shipped attestation examples (policies/attestations/*.yaml), their own expressions and
// messages, judged against docker-registry with attestations signed by the tests' private
// Sigstore. Only the registry host, the trust root and the mode are substituted.
import { readdirSync, readFileSync } from 'node:fs';
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
import { attachBundle, attachLegacySignatures } from '../helpers/cosign.js';
import { simpleSigningPayload, statement, type Identity } from '../helpers/sigstore.js';
import { signingRig } from '../helpers/signing.js';

const EXAMPLES = join(import.meta.dirname, '../../policies/attestations');
const RELEASE: Identity = { subject: 'https://github.com/acme-corp/web/.github/workflows/release.yml@refs/heads/main', issuer: 'https://token.actions.githubusercontent.com' };
const SCANNER: Identity = { subject: 'https://github.com/acme-corp/security/.github/workflows/scan.yml@refs/heads/main', issuer: 'https://token.actions.githubusercontent.com' };

t.test('the shipped attestation policies', async (t) => {
  const rig = await signingRig(t);
  if (!rig) return;
  const { reg, sigstore, dir } = rig;
  for (const f of readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml') && !f.endsWith('.test.yaml'))) {
    const text = readFileSync(join(EXAMPLES, f), 'utf8').replaceAll('ghcr.io/acme-corp/', `${reg.host}/acme-corp/`).replaceAll('trustRoot: sigstore-public-good', 'trustRoot: private').replace('mode: warn', 'mode: enforce');
    await writeFile(join(dir, f), text);
  }
  const loaded = await loadPolicySet([dir]);
  if (!loaded.set) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  const set = loaded.set;
  const client = new RegistryClient({ insecure: [reg.host] });
  t.teardown(() => client.close());
  const services: AdmissionServices = { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000, images: new ImageVerifier(client, { allowedRegistries: () => set.registries }) };
  const run = (image: string, namespace: string) => admit(reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace }, spec: { containers: [{ name: 'c', image }] } } as KubeObject, { namespace }), 'validate', services);

  type Parts = { sourceRef?: string; licenses?: string[]; critical?: string[]; vex?: string[] };
  let n = 0;
  async function image(p: Parts): Promise<string> {
    const name = `acme-corp/app-${n++}`;
    const img = await reg!.push.image(name, 'v1');
    await attachLegacySignatures(reg!.push, name, img.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), RELEASE)]);
    const att = (who: Identity, type: string, predicate: unknown) => sigstore.dsseBundle(statement(img.digest, type, predicate), who);
    const bundles = [
      await att(RELEASE, 'https://slsa.dev/provenance/v1', { buildDefinition: { externalParameters: { workflow: { repository: 'https://github.com/acme-corp/web', ref: p.sourceRef ?? 'refs/heads/main' } } }, runDetails: { builder: { id: 'https://github.com/actions/runner/github-hosted' } } }),
      await att(RELEASE, 'https://spdx.dev/Document/v2.3', { spdxVersion: 'SPDX-2.3', packages: (p.licenses ?? ['MIT']).map((l, i) => ({ name: `pkg${i}`, versionInfo: '1.0', licenseConcluded: l })) }),
      await att(SCANNER, 'https://cosign.sigstore.dev/attestation/vuln/v1', { scanner: { result: { matches: (p.critical ?? []).map((id) => ({ vulnerability: { id, severity: 'Critical' }, artifact: { name: 'openssl' } })) } } }),
    ];
    if (p.vex) bundles.push(await att(SCANNER, 'https://openvex.dev/ns/v0.2.0', { statements: p.vex.map((id) => ({ vulnerability: { name: id }, status: 'not_affected' })) }));
    await attachBundle(reg!.push, name, img, bundles, { tagFallback: true });
    return `${reg!.host}/${name}:v1`;
  }
  const denials = async (p: Parts, ns = 'payments') => (await run(await image(p), ns)).decision.denials;

  t.same(await denials({}), [], 'a release build with an SBOM, no critical CVE: admitted by all four');
  t.match((await denials({ sourceRef: 'refs/heads/feature' })).join(), /\[require-release-provenance\].*provenance says https:\/\/github\.com\/acme-corp\/web@refs\/heads\/feature built by/);
  t.same(await denials({ sourceRef: 'refs/tags/v1.2.0' }), [], 'a release tag is fine');
  t.match((await denials({ licenses: ['MIT', 'GPL-3.0-or-later'] })).join(), /\[no-gpl3-in-regulated\].*GPL-3\.0 components: pkg1 1\.0 \(GPL-3\.0-or-later\)/);
  t.same(await denials({ licenses: ['LGPL-3.0-only', 'GPL-2.0-only'] }), [], 'LGPL-3.0 and GPL-2.0 are not GPL-3.0');
  t.same(await denials({ licenses: ['GPL-3.0-only'] }, 'shop'), [], 'licences are only judged in the regulated namespaces');
  t.match((await denials({ critical: ['CVE-2024-3094', 'CVE-2024-6387'], vex: ['CVE-2024-6387'] })).join(), /critical vulnerabilities without an accepted exception: CVE-2024-3094 \(openssl\) \[vulnerabilities: 2 critical\]$/);
  t.same(await denials({ critical: ['CVE-2024-6387'], vex: ['CVE-2024-6387'] }), [], 'a signed VEX not_affected accepts the CVE');
});
