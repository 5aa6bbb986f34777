// The facts helpers over each predicate format, and real SLSA provenance produced by GitHub
// Actions verified offline against the public-good root before its facts are read.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { compileAuthority, inTotoStatement, parseBundle, publicGoodTrustRoot, verifyBundle } from '../../../src/supplychain/sigstore/index.js';
import { compilePredicateTypes, predicateFacts } from '../../../src/supplychain/sigstore/predicates.js';

const FIX = join(import.meta.dirname, '../../fixtures/sigstore');

t.test('SPDX 3.0 JSON-LD: packages and their licences through relationships', async (t) => {
  const f = predicateFacts('https://spdx.dev/Document/v3.0', {
    '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld',
    '@graph': [
      { type: 'software_Package', spdxId: 'urn:pkg:1', name: 'openssl', software_packageVersion: '3.0.13', software_packageUrl: 'pkg:deb/debian/openssl@3.0.13' },
      { type: 'software_Package', spdxId: 'urn:pkg:2', name: 'readline', software_packageVersion: '8.2' },
      { type: 'simplelicensing_LicenseExpression', spdxId: 'urn:lic:1', simplelicensing_licenseExpression: 'Apache-2.0' },
      { type: 'simplelicensing_LicenseExpression', spdxId: 'urn:lic:2', simplelicensing_licenseExpression: 'GPL-3.0-or-later' },
      { type: 'Relationship', spdxId: 'urn:rel:1', from: 'urn:pkg:1', relationshipType: 'hasConcludedLicense', to: ['urn:lic:1'] },
      { type: 'Relationship', spdxId: 'urn:rel:2', from: 'urn:pkg:2', relationshipType: 'hasDeclaredLicense', to: ['urn:lic:2'] },
    ],
  });
  t.same(f.components, [
    { name: 'openssl', version: '3.0.13', purl: 'pkg:deb/debian/openssl@3.0.13', licenses: ['Apache-2.0'] },
    { name: 'readline', version: '8.2', purl: '', licenses: ['GPL-3.0-or-later'] },
  ]);
  t.same(f.licenses, ['Apache-2.0', 'GPL-3.0-or-later']);
});

t.test('CycloneDX: nested components and licence expressions; SPDX 2.3 NOASSERTION is no licence', async (t) => {
  const cdx = predicateFacts('https://cyclonedx.org/bom/v1.5', { components: [{ name: 'app', version: '1', licenses: [{ expression: 'MIT OR Apache-2.0' }], components: [{ name: 'inner', version: '2', licenses: [{ license: { name: 'Custom' } }] }] }] });
  t.same(cdx.components.map((c) => [c.name, c.licenses]), [['app', ['MIT OR Apache-2.0']], ['inner', ['Custom']]]);
  const spdx = predicateFacts('https://spdx.dev/Document', { packages: [{ name: 'x', versionInfo: '1', licenseConcluded: 'NOASSERTION', licenseDeclared: 'NONE' }] });
  t.same(spdx.components[0]?.licenses, []);
});

t.test('vulnerability reports from Grype and Trivy, and OpenVEX exceptions with aliases', async (t) => {
  const grype = predicateFacts('https://cosign.sigstore.dev/attestation/vuln/v1', { scanner: { result: { matches: [{ vulnerability: { id: 'CVE-1', severity: 'Critical' }, artifact: { name: 'a' } }, { vulnerability: { id: 'GHSA-x', severity: 'Negligible' }, artifact: { name: 'b' } }] } } });
  t.same(grype.severityCounts, { critical: 1, high: 0, medium: 0, low: 0, unknown: 1 });
  const trivy = predicateFacts('https://cosign.sigstore.dev/attestation/vuln/v1', { scanner: { result: { Results: [{ Vulnerabilities: [{ VulnerabilityID: 'CVE-2', Severity: 'HIGH', PkgName: 'p' }] }] } } });
  t.same(trivy.vulnerabilities, [{ id: 'CVE-2', severity: 'high', package: 'p' }]);
  const vex = predicateFacts('https://openvex.dev/ns/v0.2.0', { statements: [{ vulnerability: { name: 'CVE-3', aliases: ['GHSA-3'] }, status: 'not_affected' }, { vulnerability: 'CVE-4', status: 'affected' }, { vulnerability: 'CVE-5', status: 'fixed' }] });
  t.same(vex.notAffected.sort(), ['CVE-3', 'CVE-5', 'GHSA-3']);
});

t.test('predicate types: aliases, versioned families, exact URIs', async (t) => {
  const sbom = compilePredicateTypes('sbom');
  t.ok(sbom.matches('https://spdx.dev/Document/v2.3') && sbom.matches('https://cyclonedx.org/bom/v1.4') && sbom.matches('https://spdx.dev/Document'));
  t.notOk(sbom.matches('https://spdx.dev/DocumentX'), 'a family prefix must end at a path segment');
  const custom = compilePredicateTypes(['https://example.com/scan/v1']);
  t.ok(custom.matches('https://example.com/scan/v1'));
  t.notOk(custom.matches('https://example.com/scan/v1/extra'));
  t.throws(() => compilePredicateTypes('slsa'), /neither a URI nor one of/);
  for (const inherited of ['constructor', 'toString', '__proto__']) t.throws(() => compilePredicateTypes(inherited), /neither a URI nor one of/, `${inherited} is no alias`);
});

t.test('real SLSA provenance from GitHub Actions (npm provenance) verifies offline, then yields its facts', async (t) => {
  const bundle = parseBundle(JSON.parse(readFileSync(join(FIX, 'bundles/npm/sigstore-2.0.0.provenance.sigstore.json'), 'utf8')), 'provenance');
  const authority = compileAuthority({ name: 'sigstore-js-release', keyless: { identities: [{ issuer: 'https://token.actions.githubusercontent.com', subject: 'https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main' }] } }, (n) => (n === 'sigstore-public-good' ? publicGoodTrustRoot() : undefined));
  const statement = inTotoStatement(verifyBundle(bundle, undefined, authority));
  t.equal(statement.predicateType, 'https://slsa.dev/provenance/v1');
  t.match(predicateFacts(statement.predicateType, statement.predicate), { builderId: 'https://github.com/actions/runner/github-hosted', sourceRepository: 'https://github.com/sigstore/sigstore-js', sourceRef: 'refs/heads/main' });
});
