// The setting most signed-image tests start from: Debian's docker-registry on loopback (the
// test is skipped, visibly, without it), the tests' private Sigstore, and a policy directory
// that trusts that Sigstore as the TrustRoot `private`.
import { attachLegacySignatures } from './cosign.js';
import { startRegistry, type PushedManifest, type TestRegistry } from './registry.js';
import { serviceOrSkip } from './services.js';
import { CI_IDENTITY, PrivateSigstore, privateRootPolicyDir, simpleSigningPayload, type Identity } from './sigstore.js';

export interface SigningRig {
  reg: TestRegistry;
  sigstore: PrivateSigstore;
  /** policy directory with the private trust root; write policies into it */
  dir: string;
}

export async function signingRig(t: Parameters<typeof serviceOrSkip>[0] & { teardown(fn: () => unknown): void }): Promise<SigningRig | undefined> {
  const reg = await serviceOrSkip(t, 'docker-registry', () => startRegistry());
  if (!reg) return undefined;
  t.teardown(() => reg.stop());
  const sigstore = await PrivateSigstore.create();
  return { reg, sigstore, dir: await privateRootPolicyDir(sigstore) };
}

/** Pushes an image and signs its digest keyless as `identity`, under the cosign .sig tag. */
/** seed: other content under the same tag (a moved tag) */
export async function pushSignedImage(reg: TestRegistry, sigstore: PrivateSigstore, repo: string, tag: string, identity: Identity = CI_IDENTITY, seed = tag): Promise<PushedManifest> {
  const img = await reg.push.image(repo, tag, seed);
  await attachLegacySignatures(reg.push, repo, img.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), identity)]);
  return img;
}
