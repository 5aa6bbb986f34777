// Key-based signatures with every key type cosign users have: ECDSA P-256 and P-384, Ed25519,
// RSA; logged in the private Rekor, verified offline; another key of the same type is refused.
import { generateKeyPairSync } from 'node:crypto';
import t from 'tap';
import { legacyLayerToBundle } from '../../../src/supplychain/sigstore/cosign-legacy.js';
import { checkTrustedRoot, compileAuthority, parseBundle, verifyBundle, type CompiledTrustRoot } from '../../../src/supplychain/sigstore/index.js';
import { PrivateSigstore, simpleSigningPayload } from '../../helpers/sigstore.js';

const KEYS = {
  'ECDSA P-256': () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }),
  'ECDSA P-384': () => generateKeyPairSync('ec', { namedCurve: 'secp384r1' }),
  Ed25519: () => generateKeyPairSync('ed25519'),
  'RSA 3072': () => generateKeyPairSync('rsa', { modulusLength: 3072 }),
};

t.test('key-based signatures of every supported key type', async (t) => {
  const sigstore = await PrivateSigstore.create();
  const root: CompiledTrustRoot = { name: 'private', revision: 'r', trustedRoot: checkTrustedRoot(sigstore.trustedRoot, 'private') };
  const payload = simpleSigningPayload('registry.example/app', `sha256:${'cd'.repeat(32)}`);
  for (const [name, make] of Object.entries(KEYS)) {
    const keys = make();
    const pem = keys.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    const layer = await sigstore.legacyWithKey(payload, keys.privateKey, pem);
    const bundle = parseBundle(legacyLayerToBundle(layer.annotations, layer.payload), name);
    const authority = (publicKey: string) => compileAuthority({ name: 'release-key', key: { publicKey, trustRoot: 'private' } }, () => root);
    t.ok(verifyBundle(bundle, layer.payload, authority(pem)), `${name}: verified`);
    const other = make().publicKey.export({ format: 'pem', type: 'spki' }) as string;
    t.throws(() => verifyBundle(bundle, layer.payload, authority(other)), { code: 'SIGNATURE_INVALID' }, `${name}: another key is refused`);
  }
});
