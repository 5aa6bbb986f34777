// cosign's legacy tag scheme (`sha256-<hex>.sig`): one simplesigning layer per signature, the
// signature, certificate and Rekor bundle in layer annotations. Each layer becomes a v0.1
// Sigstore bundle (the only version that takes a SET without an inclusion proof) so that one
// verifier checks everything; the chain annotation is ignored, the chain comes from the trust root.
import { createHash } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { VerificationFailure } from './failures.js';

export const SIMPLESIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
const ANNOTATION_SIGNATURE = 'dev.cosignproject.cosign/signature';
const ANNOTATION_CERTIFICATE = 'dev.sigstore.cosign/certificate';
const ANNOTATION_BUNDLE = 'dev.sigstore.cosign/bundle';
const ANNOTATION_TIMESTAMP = 'dev.sigstore.cosign/rfc3161timestamp';

/** The Rekor bundle cosign stores in the `dev.sigstore.cosign/bundle` annotation. */
interface RekorBundle {
  SignedEntryTimestamp: string;
  Payload: { body: string; integratedTime: number; logIndex: number; logID: string };
}

function kindVersion(body: string): { kind: string; version: string } {
  try {
    const decoded = JSON.parse(Buffer.from(body, 'base64').toString('utf8')) as { kind?: string; apiVersion?: string };
    return { kind: decoded.kind ?? '', version: decoded.apiVersion ?? '' };
  } catch {
    throw new VerificationFailure('BUNDLE_INVALID', 'the Rekor bundle annotation holds a body that is not JSON');
  }
}

/** A v0.1 bundle (JSON form) equivalent to one `.sig` layer; the artifact to verify it over is the payload. */
export function legacyLayerToBundle(annotations: Record<string, string>, payload: Buffer): unknown {
  const signature = annotations[ANNOTATION_SIGNATURE];
  if (!signature) throw new VerificationFailure('BUNDLE_INVALID', `the signature layer has no ${ANNOTATION_SIGNATURE} annotation`);
  return {
    mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
    verificationMaterial: legacyMaterial(annotations),
    messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(payload).digest('base64') }, signature },
  };
}

export const DSSE_LAYER_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';

/** A v0.1 bundle equivalent to one `.att` layer: the layer is a DSSE envelope, the annotations say who signed and where it was logged. */
export function legacyAttestationToBundle(annotations: Record<string, string>, layer: Buffer): unknown {
  let envelope: { payloadType?: unknown; payload?: unknown; signatures?: { sig?: unknown; keyid?: unknown }[] };
  try {
    envelope = JSON.parse(layer.toString('utf8'));
  } catch {
    throw new VerificationFailure('BUNDLE_INVALID', 'the attestation layer is not a JSON DSSE envelope');
  }
  if (typeof envelope?.payload !== 'string' || typeof envelope.payloadType !== 'string' || !Array.isArray(envelope.signatures) || envelope.signatures.length !== 1 || typeof envelope.signatures[0]?.sig !== 'string') {
    throw new VerificationFailure('BUNDLE_INVALID', 'the attestation layer is not a DSSE envelope with exactly one signature');
  }
  return {
    mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
    verificationMaterial: legacyMaterial(annotations),
    dsseEnvelope: { payload: envelope.payload, payloadType: envelope.payloadType, signatures: [{ sig: envelope.signatures[0].sig, keyid: typeof envelope.signatures[0].keyid === 'string' ? envelope.signatures[0].keyid : '' }] },
  };
}

function legacyMaterial(annotations: Record<string, string>): Record<string, unknown> {
  const pem = annotations[ANNOTATION_CERTIFICATE];
  let verificationMaterial: Record<string, unknown>;
  if (pem) {
    let der: Buffer;
    try {
      der = new X509Certificate(pem).raw;
    } catch {
      throw new VerificationFailure('BUNDLE_INVALID', `${ANNOTATION_CERTIFICATE} is not a PEM certificate`);
    }
    verificationMaterial = { x509CertificateChain: { certificates: [{ rawBytes: der.toString('base64') }] } };
  } else {
    verificationMaterial = { publicKey: { hint: '' } };
  }
  const tlogEntries: unknown[] = [];
  const rekor = annotations[ANNOTATION_BUNDLE];
  if (rekor) {
    let parsed: RekorBundle;
    try {
      parsed = JSON.parse(rekor) as RekorBundle;
    } catch {
      throw new VerificationFailure('BUNDLE_INVALID', `${ANNOTATION_BUNDLE} is not JSON`);
    }
    const p = parsed.Payload;
    if (!p || typeof p.body !== 'string' || !/^[0-9a-f]+$/i.test(p.logID ?? '')) throw new VerificationFailure('BUNDLE_INVALID', `${ANNOTATION_BUNDLE} lacks Payload.body or logID`);
    tlogEntries.push({
      logIndex: String(p.logIndex),
      logId: { keyId: Buffer.from(p.logID, 'hex').toString('base64') },
      kindVersion: kindVersion(p.body),
      integratedTime: String(p.integratedTime),
      inclusionPromise: { signedEntryTimestamp: parsed.SignedEntryTimestamp },
      canonicalizedBody: p.body,
    });
  }
  // cosign sign --timestamp-server-url: {"SignedRFC3161Timestamp": base64 DER}
  const rfc3161Timestamps: { signedTimestamp: string }[] = [];
  const ts = annotations[ANNOTATION_TIMESTAMP];
  if (ts) {
    let parsed: { SignedRFC3161Timestamp?: string };
    try {
      parsed = JSON.parse(ts);
    } catch {
      throw new VerificationFailure('BUNDLE_INVALID', `${ANNOTATION_TIMESTAMP} is not JSON`);
    }
    if (typeof parsed.SignedRFC3161Timestamp !== 'string') throw new VerificationFailure('BUNDLE_INVALID', `${ANNOTATION_TIMESTAMP} has no SignedRFC3161Timestamp`);
    rfc3161Timestamps.push({ signedTimestamp: parsed.SignedRFC3161Timestamp });
  }
  return { ...verificationMaterial, tlogEntries, timestampVerificationData: { rfc3161Timestamps } };
}

export interface SimpleSigningPayload {
  critical: { identity?: { 'docker-reference'?: string }; image: { 'docker-manifest-digest': string }; type: string };
  optional?: Record<string, unknown> | null;
}

/** The digest a verified simplesigning payload vouches for; malformed payloads are failures. */
export function simpleSigningDigest(payload: Buffer): { digest: string; reference?: string; optional?: Record<string, unknown> } {
  let parsed: SimpleSigningPayload;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new VerificationFailure('BUNDLE_INVALID', 'the signed payload is not JSON');
  }
  const type = parsed?.critical?.type;
  if (type !== 'cosign container image signature' && type !== 'atomic container signature') {
    throw new VerificationFailure('BUNDLE_INVALID', `the signed payload's critical.type ${JSON.stringify(type)} is not a container image signature`);
  }
  const digest = parsed.critical.image?.['docker-manifest-digest'];
  if (typeof digest !== 'string') throw new VerificationFailure('BUNDLE_INVALID', 'the signed payload names no docker-manifest-digest');
  return { digest: digest.toLowerCase(), reference: parsed.critical.identity?.['docker-reference'], optional: parsed.optional ?? undefined };
}
