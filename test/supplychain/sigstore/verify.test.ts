// Real, publicly produced cosign and Sigstore material verified offline against the embedded
// public-good root: cosign's legacy .sig layers (keyless and key-based) and a cosign v3 bundle.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { legacyLayerToBundle, simpleSigningDigest } from '../../../src/supplychain/sigstore/cosign-legacy.js';
import {
  compileAuthority, inTotoStatement, parseBundle, publicGoodTrustRoot, statementNamesDigest, verifyBundle, type AuthoritySpec,
} from '../../../src/supplychain/sigstore/index.js';

const FIX = join(import.meta.dirname, '../../fixtures/sigstore');
const CONNAISSEUR = join(FIX, 'cosign-legacy/connaisseur-testimage');
const roots = (name: string) => (name === 'sigstore-public-good' ? publicGoodTrustRoot() : undefined);
const authority = (spec: Omit<AuthoritySpec, 'name'>) => compileAuthority({ name: 'test', ...spec }, roots);

function sigLayer(manifestDigestHex: string, layer = 0): { annotations: Record<string, string>; payload: Buffer } {
  const manifest = JSON.parse(readFileSync(join(CONNAISSEUR, `manifests/sha256-${manifestDigestHex}.sig.json`), 'utf8'));
  const l = manifest.layers[layer];
  return { annotations: l.annotations, payload: readFileSync(join(CONNAISSEUR, `blobs/${l.digest.replace(':', '-')}.json`)) };
}

const KEYLESS_DIGEST = '31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee';
const ALICE_DIGEST = '071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81';

t.test('a keyless cosign .sig layer verifies as a v0.1 bundle and names its digest', async (t) => {
  const { annotations, payload } = sigLayer(KEYLESS_DIGEST);
  const bundle = parseBundle(legacyLayerToBundle(annotations, payload), 'sig');
  const keyless = authority({ keyless: { identities: [{ subject: 'philipp.belitz@securesystems.de', issuer: 'https://github.com/login/oauth' }] } });
  const verified = verifyBundle(bundle, payload, keyless);
  t.equal(verified.identity?.subject, 'philipp.belitz@securesystems.de');
  t.equal(simpleSigningDigest(verified.payload).digest, `sha256:${KEYLESS_DIGEST}`);
});

t.test('denies the keyless signature for another identity, and an identity regexp that only matches a prefix', async (t) => {
  const { annotations, payload } = sigLayer(KEYLESS_DIGEST);
  const bundle = parseBundle(legacyLayerToBundle(annotations, payload), 'sig');
  t.throws(() => verifyBundle(bundle, payload, authority({ keyless: { identities: [{ subject: 'bob@gmail.com', issuer: 'https://github.com/login/oauth' }] } })), { code: 'IDENTITY_MISMATCH' });
  t.throws(() => verifyBundle(bundle, payload, authority({ keyless: { identities: [{ subjectRegExp: 'philipp', issuer: 'https://github.com/login/oauth' }] } })), { code: 'IDENTITY_MISMATCH' });
  t.throws(() => verifyBundle(bundle, payload, authority({ keyless: { identities: [{ subject: 'philipp.belitz@securesystems.de', issuerRegExp: 'https://github\\.com/login' }] } })), { code: 'IDENTITY_MISMATCH' });
  const ok = verifyBundle(bundle, payload, authority({ keyless: { identities: [{ subjectRegExp: '[a-z.]+@securesystems\\.de', issuer: 'https://github.com/login/oauth' }] } }));
  t.equal(ok.authority, 'test');
});

t.test('a tampered payload or a swapped signature is refused', async (t) => {
  const { annotations, payload } = sigLayer(KEYLESS_DIGEST);
  const keyless = authority({ keyless: { identities: [{ subject: 'philipp.belitz@securesystems.de', issuer: 'https://github.com/login/oauth' }] } });
  const tampered = Buffer.from(payload.toString('utf8').replace(KEYLESS_DIGEST, ALICE_DIGEST));
  t.throws(() => verifyBundle(parseBundle(legacyLayerToBundle(annotations, tampered), 'sig'), tampered, keyless), { code: /TLOG_INVALID|SIGNATURE_INVALID/ });
  const other = sigLayer(ALICE_DIGEST);
  const swapped = { ...annotations, 'dev.cosignproject.cosign/signature': other.annotations['dev.cosignproject.cosign/signature']! };
  t.throws(() => verifyBundle(parseBundle(legacyLayerToBundle(swapped, payload), 'sig'), payload, keyless), { code: /TLOG_INVALID|SIGNATURE_INVALID/ });
});

t.test('key-based cosign signatures without a log entry verify only when the authority says tlog: none', async (t) => {
  const { annotations, payload } = sigLayer(ALICE_DIGEST);
  const bundle = parseBundle(legacyLayerToBundle(annotations, payload), 'sig');
  const alice = readFileSync(join(CONNAISSEUR, 'keys/alice.pub'), 'utf8');
  const bob = readFileSync(join(CONNAISSEUR, 'keys/bob.pub'), 'utf8');
  const verified = verifyBundle(bundle, payload, authority({ key: { publicKey: alice }, tlog: 'none' }));
  t.equal(simpleSigningDigest(verified.payload).digest, `sha256:${ALICE_DIGEST}`);
  t.throws(() => verifyBundle(bundle, payload, authority({ key: { publicKey: alice } })), { code: 'TLOG_INVALID' }, 'tlog required by default: never silently skipped');
  t.throws(() => verifyBundle(bundle, payload, authority({ key: { publicKey: bob }, tlog: 'none' })), { code: 'SIGNATURE_INVALID' });
  t.throws(() => verifyBundle(bundle, payload, authority({ keyless: { identities: [{ subject: 'x', issuer: 'y' }] } })), { code: 'IDENTITY_MISMATCH' });
});

t.test('three signers on one .sig manifest verify each with their own key', async (t) => {
  for (const [i, who] of ['alice', 'bob', 'charlie'].entries()) {
    const { annotations, payload } = sigLayer('bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533', i);
    const key = readFileSync(join(CONNAISSEUR, `keys/${who}.pub`), 'utf8');
    t.ok(verifyBundle(parseBundle(legacyLayerToBundle(annotations, payload), 'sig'), payload, authority({ key: { publicKey: key }, tlog: 'none' })), who);
  }
});

const KUBEWARDEN = join(FIX, 'bundles/cosign/kubewarden-controller-v1.34.0.cosign-sign.sigstore.json');
const KUBEWARDEN_DIGEST = 'sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172';
const KUBEWARDEN_ID = { subject: 'https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0', issuer: 'https://token.actions.githubusercontent.com' };

t.test('a cosign v3 bundle (DSSE, cosign/sign/v1) verifies and its statement names the image digest', async (t) => {
  const bundle = parseBundle(JSON.parse(readFileSync(KUBEWARDEN, 'utf8')), 'bundle');
  const verified = verifyBundle(bundle, undefined, authority({ keyless: { identities: [KUBEWARDEN_ID] } }));
  const statement = inTotoStatement(verified);
  t.equal(statement.predicateType, 'https://sigstore.dev/cosign/sign/v1');
  t.ok(statementNamesDigest(statement, KUBEWARDEN_DIGEST));
  t.notOk(statementNamesDigest(statement, `sha256:${ALICE_DIGEST}`));
  t.equal(verified.identity?.extensions.githubWorkflowRepository, 'kubewarden/kubewarden-controller');
  t.equal(verified.identity?.extensions.githubWorkflowRef, 'refs/tags/v1.34.0');
  t.equal(verified.identity?.extensions.buildSignerURI, KUBEWARDEN_ID.subject);
  t.equal(verified.identity?.extensions.sourceRepositoryURI, 'https://github.com/kubewarden/kubewarden-controller');
});

t.test('identity rules may pin Fulcio extensions exactly', async (t) => {
  const bundle = parseBundle(JSON.parse(readFileSync(KUBEWARDEN, 'utf8')), 'bundle');
  const pinned = (repo: string) => authority({ keyless: { identities: [{ ...KUBEWARDEN_ID, extensions: { githubWorkflowRepository: repo } }] } });
  t.ok(verifyBundle(bundle, undefined, pinned('kubewarden/kubewarden-controller')));
  t.throws(() => verifyBundle(bundle, undefined, pinned('kubewarden/other')), { code: 'IDENTITY_MISMATCH' });
  t.throws(() => authority({ keyless: { identities: [{ ...KUBEWARDEN_ID, extensions: { nonsense: 'x' } }] } }), /unknown certificate extension/);
  t.throws(() => verifyBundle(bundle, undefined, authority({ keyless: { identities: [{ ...KUBEWARDEN_ID, subject: `${KUBEWARDEN_ID.subject.slice(0, -1)}` }] } })), { code: 'IDENTITY_MISMATCH' }, 'a prefix of the identity is another identity');
});

t.test('an authority condition in CEL sees the signer and its Fulcio extensions', async (t) => {
  const { compileExpression } = await import('../../../src/policy/cel/index.js');
  const bundle = parseBundle(JSON.parse(readFileSync(KUBEWARDEN, 'utf8')), 'bundle');
  const withCondition = (source: string) => {
    const a = authority({ keyless: { identities: [KUBEWARDEN_ID] } });
    a.condition = compileExpression(source, { expect: 'bool', extraVariables: ['signer'] });
    return a;
  };
  t.ok(verifyBundle(bundle, undefined, withCondition("signer.extensions.githubWorkflowRef.startsWith('refs/tags/v') && signer.issuer == 'https://token.actions.githubusercontent.com'")));
  t.throws(() => verifyBundle(bundle, undefined, withCondition("signer.extensions.githubWorkflowTrigger == 'workflow_dispatch'")), { code: 'IDENTITY_MISMATCH', message: /condition .* is false \(signer extensions: .*githubWorkflowTrigger/ });
});
