// Every reason an image or bundle can fail verification, each with a stable code that reaches
// the response, the decision record and the metrics unchanged.

export type VerificationCode =
  | 'SIGNATURE_NOT_FOUND' // no signature in any place cosign puts them
  | 'IDENTITY_MISMATCH' // signed, but by another identity or key
  | 'DIGEST_MISMATCH' // a valid signature, of another digest
  | 'CERTIFICATE_INVALID' // the certificate does not chain to the trust root, or was not valid at signing time
  | 'TLOG_INVALID' // transparency-log entry missing or invalid
  | 'TIMESTAMP_INVALID' // an RFC 3161 timestamp that does not verify
  | 'SIGNATURE_INVALID' // the signature does not verify over the payload (tampered)
  | 'BUNDLE_INVALID' // malformed bundle, envelope or payload
  | 'IMAGE_NOT_FOUND' // the registry has no such tag or manifest
  | 'REGISTRY_UNAVAILABLE' // unreachable, timed out or failing
  | 'REGISTRY_AUTH_FAILED' // credentials refused
  | 'REGISTRY_NOT_ALLOWED' // a host no policy names (never contacted)
  | 'INVALID_IMAGE_REFERENCE'
  | 'DEADLINE_EXCEEDED'
  | 'INTERNAL_ERROR'
  | 'IMAGE_VERIFICATION_UNAVAILABLE'
  | 'ATTESTATION_NOT_FOUND' // no attestation of the required predicate type
  | 'ATTESTATION_FAILED' // a verified attestation whose expression is false
  | 'ATTESTATION_ERROR'; // an attestation expression that could not be evaluated

export class VerificationFailure extends Error {
  /** weak: the evidence is of another kind than the authority takes (a key vs a certificate), so says little */
  constructor(readonly code: VerificationCode, message: string, readonly weak = false) {
    super(message);
  }
}

/** Which failure says most to a developer when several signatures failed differently. */
const SPECIFICITY: VerificationCode[] = [
  'IDENTITY_MISMATCH', 'DIGEST_MISMATCH', 'CERTIFICATE_INVALID', 'TLOG_INVALID', 'TIMESTAMP_INVALID', 'SIGNATURE_INVALID', 'BUNDLE_INVALID', 'SIGNATURE_NOT_FOUND',
];

export function mostSpecific(all: VerificationFailure[]): VerificationFailure | undefined {
  const strong = all.filter((f) => !f.weak);
  const failures = strong.length ? strong : all;
  let best: VerificationFailure | undefined;
  for (const f of failures) {
    const rank = SPECIFICITY.indexOf(f.code);
    if (!best || (rank >= 0 && (SPECIFICITY.indexOf(best.code) < 0 || rank < SPECIFICITY.indexOf(best.code)))) best = f;
  }
  return best;
}
