// Verifying one bundle for one artifact (a file's bytes or just its digest): what
// `trustgate verify-bundle` does, in the sigstore-conformance verify protocol's terms.
import { createHash } from 'node:crypto';
import { VerificationFailure } from './failures.js';
import { compileAuthority, inTotoStatement, parseBundle, statementNamesDigest, verifyBundle, type AuthoritySpec, type VerifiedSignature } from './verify.js';
import { publicGoodTrustRoot, type CompiledTrustRoot } from './trust-root.js';

export type Artifact = { bytes: Buffer } | { digest: string };

export interface ArtifactCheck {
  bundle: unknown;
  artifact: Artifact;
  /** keyless: exact SAN and OIDC issuer */
  identity?: { subject: string; issuer: string };
  /** key-based: a PEM public key */
  publicKey?: string;
  trustRoot?: CompiledTrustRoot;
}

function digestOf(artifact: Artifact): string {
  if ('digest' in artifact) return artifact.digest.toLowerCase();
  return `sha256:${createHash('sha256').update(artifact.bytes).digest('hex')}`;
}

export function verifyArtifact(check: ArtifactCheck): VerifiedSignature {
  const root = check.trustRoot ?? publicGoodTrustRoot();
  const spec: AuthoritySpec = check.publicKey
    ? { name: 'key', key: { publicKey: check.publicKey, trustRoot: root.name } }
    : { name: 'identity', keyless: { trustRoot: root.name, identities: [{ subject: check.identity?.subject, issuer: check.identity?.issuer }] } };
  const authority = compileAuthority(spec, (name) => (name === root.name ? root : undefined));
  const bundle = parseBundle(check.bundle, 'bundle');
  const digest = digestOf(check.artifact);
  if (bundle.content.$case === 'messageSignature') {
    const md = bundle.content.messageSignature.messageDigest;
    // the library checks the signature over the bytes; the digest alone can only be compared
    if (!('bytes' in check.artifact)) {
      throw new VerificationFailure('BUNDLE_INVALID', 'a message-signature bundle is verified over the artifact\'s bytes: give the file, not its digest');
    }
    if (md && Buffer.from(md.digest).toString('hex') !== digest.split(':')[1]) {
      throw new VerificationFailure('DIGEST_MISMATCH', `the bundle signs digest ${Buffer.from(md.digest).toString('hex')}, not the artifact's ${digest}`);
    }
    return verifyBundle(bundle, check.artifact.bytes, authority);
  }
  const verified = verifyBundle(bundle, undefined, authority);
  const statement = inTotoStatement(verified);
  // a subject may name the artifact by any of the usual algorithms (npm uses sha512)
  const named = 'bytes' in check.artifact
    ? ['sha256', 'sha384', 'sha512'].some((alg) => statementNamesDigest(statement, `${alg}:${createHash(alg).update((check.artifact as { bytes: Buffer }).bytes).digest('hex')}`))
    : statementNamesDigest(statement, digest);
  if (!named) {
    throw new VerificationFailure('DIGEST_MISMATCH', `the statement's subjects do not include ${digest}`);
  }
  return verified;
}
