// RFC 3161 timestamps from the private Sigstore's TSA: with `tlog: none` a keyless signature rests
// on the timestamp for its certificate's validity; without a log entry or a timestamp it cannot.
import t from 'tap';
import { legacyLayerToBundle } from '../../../src/supplychain/sigstore/cosign-legacy.js';
import { checkTrustedRoot, compileAuthority, parseBundle, verifyBundle, type AuthoritySpec, type CompiledTrustRoot } from '../../../src/supplychain/sigstore/index.js';
import { CI_IDENTITY, cosignStatement, PrivateSigstore, simpleSigningPayload } from '../../helpers/sigstore.js';

const CI = CI_IDENTITY;
const DIGEST = `sha256:${'ab'.repeat(32)}`;

t.test('timestamps instead of a log entry', async (t) => {
  const sigstore = await PrivateSigstore.create();
  const root: CompiledTrustRoot = { name: 'private', revision: 'r', trustedRoot: checkTrustedRoot(sigstore.trustedRoot, 'private') };
  const authority = (tlog: AuthoritySpec['tlog']) => compileAuthority({ name: 'ci', tlog, keyless: { trustRoot: 'private', identities: [CI] } }, () => root);

  const stamped = parseBundle(await sigstore.dsseBundle(cosignStatement(DIGEST), CI, { noTlog: true, timestamp: true }), 'bundle');
  t.equal(verifyBundle(stamped, undefined, authority('none')).identity?.subject, CI.subject, 'the TSA time vouches for the certificate');
  t.throws(() => verifyBundle(stamped, undefined, authority('required')), { code: 'TLOG_INVALID' }, 'never silently skipped when required');

  const bare = parseBundle(await sigstore.dsseBundle(cosignStatement(DIGEST), CI, { noTlog: true }), 'bundle');
  t.throws(() => verifyBundle(bare, undefined, authority('none')), { code: 'TLOG_INVALID', message: /no trusted time/ });

  const both = parseBundle(await sigstore.dsseBundle(cosignStatement(DIGEST), CI, { timestamp: true }), 'bundle');
  t.ok(verifyBundle(both, undefined, authority('required')), 'a log entry and a timestamp together');

  const layer = await sigstore.legacyKeyless(simpleSigningPayload('x', DIGEST), CI, { noTlog: true, timestamp: true });
  t.ok(verifyBundle(parseBundle(legacyLayerToBundle(layer.annotations, layer.payload), 'sig'), layer.payload, authority('optional')), "cosign's rfc3161timestamp annotation is read");
  const corrupt = { ...layer.annotations, 'dev.sigstore.cosign/rfc3161timestamp': '{"SignedRFC3161Timestamp": "AAAA"}' };
  t.throws(() => verifyBundle(parseBundle(legacyLayerToBundle(corrupt, layer.payload), 'sig'), layer.payload, authority('optional')), { code: 'BUNDLE_INVALID' }, 'a corrupt timestamp is malformed evidence, not a pass');
  t.throws(() => legacyLayerToBundle({ ...layer.annotations, 'dev.sigstore.cosign/rfc3161timestamp': 'not json' }, layer.payload), { code: 'BUNDLE_INVALID', message: /is not JSON/ });
});
