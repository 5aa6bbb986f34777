// Sigstore for trustgate: trust roots, identities, bundle and cosign verification.
export { checkTrustedRoot, compileTrustRoot, publicGoodTrustRoot, readTrustedRootFile, PUBLIC_GOOD, TrustRootError, type CompiledTrustRoot, type TrustRootSpec } from './trust-root.js';
export { compileIdentity, signerIdentity, FULCIO_EXTENSION_NAMES, IdentitySpecError, type IdentitySpec, type SignerIdentity } from './identity.js';
export { compileAuthority, AuthoritySpecError, inTotoStatement, parseBundle, statementNamesDigest, verifyBundle, type AuthoritySpec, type CompiledAuthority, type InTotoStatement, type VerifiedSignature } from './verify.js';
export { mostSpecific, VerificationFailure, type VerificationCode } from './failures.js';
export { verifyArtifact, type Artifact, type ArtifactCheck } from './artifact.js';
