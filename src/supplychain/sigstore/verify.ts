// Pure verification: (trust material, evidence, authority) -> the verified signer and payload, or a
// typed failure. No network here; evidence is fetched by discovery.ts at the edge.
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { toSignedEntity, Verifier, VerificationError, type VerifierOptions } from '@sigstore/verify';
import { compileIdentity, signerIdentity, type IdentityMatcher, type IdentitySpec, type SignerIdentity } from './identity.js';
import { VerificationFailure } from './failures.js';
import { trustMaterialOf, type CompiledTrustRoot } from './trust-root.js';
import { describeEvaluationError, toCel, type CompiledExpression } from '../../policy/cel/index.js';

export type LogRequirement = 'required' | 'optional' | 'none';

export interface AuthoritySpec {
  name: string;
  keyless?: { trustRoot?: string; identities: IdentitySpec[] };
  key?: { publicKey: string; trustRoot?: string };
  /** per authority: required (default) | optional (checked when present) | none */
  tlog?: LogRequirement;
  /** keyless only: required (default) | none */
  sct?: 'required' | 'none';
  /** CEL over `signer` (subject, issuer, extensions) that must also hold */
  condition?: string;
}

export interface CompiledAuthority {
  name: string;
  kind: 'keyless' | 'key';
  trustRoot: CompiledTrustRoot;
  identities: IdentityMatcher[];
  tlog: LogRequirement;
  verifier: Verifier;
  /** what a developer is told this authority accepts */
  describe: string;
  /** trust-root revision plus key: part of every cache key */
  revision: string;
  /** the compiled `condition`, set by the images rule compiler */
  condition?: CompiledExpression;
}

export class AuthoritySpecError extends Error {}

export function compileAuthority(spec: AuthoritySpec, roots: (name: string) => CompiledTrustRoot | undefined): CompiledAuthority {
  if (!!spec.keyless === !!spec.key) throw new AuthoritySpecError(`authority ${spec.name}: give exactly one of keyless or key`);
  const tlog = spec.tlog ?? 'required';
  const rootName = spec.keyless?.trustRoot ?? spec.key?.trustRoot ?? 'sigstore-public-good';
  const trustRoot = roots(rootName);
  if (!trustRoot) throw new AuthoritySpecError(`authority ${spec.name}: unknown trustRoot ${rootName}`);
  if (spec.keyless) {
    if (!spec.keyless.identities?.length) throw new AuthoritySpecError(`authority ${spec.name}: keyless needs at least one identity`);
    const identities = spec.keyless.identities.map((i) => compileIdentity(i));
    // a short-lived certificate needs a trusted time: the log's integrated time or an RFC 3161 timestamp
    const options: VerifierOptions = { tlogThreshold: tlog === 'required' ? 1 : 0, ctlogThreshold: spec.sct === 'none' ? 0 : 1, timestampThreshold: 1 };
    return {
      name: spec.name, kind: 'keyless', trustRoot, identities, tlog,
      verifier: new Verifier(trustMaterialOf(trustRoot), options),
      describe: identities.map((i) => i.describe).join(' or '),
      revision: `${trustRoot.revision}:${spec.sct ?? 'required'}:${tlog}`,
    };
  }
  let key: KeyObject;
  try {
    key = createPublicKey(spec.key!.publicKey);
  } catch (err) {
    throw new AuthoritySpecError(`authority ${spec.name}: publicKey is not a PEM public key: ${(err as Error).message}`);
  }
  const fingerprint = createHash('sha256').update(key.export({ format: 'der', type: 'spki' })).digest('hex');
  // the authority names its key: a bundle's hint (often empty for cosign) never selects another
  const material = trustMaterialOf(trustRoot, () => ({ publicKey: key, validFor: () => true }));
  const options: VerifierOptions = { tlogThreshold: tlog === 'required' ? 1 : 0, ctlogThreshold: 0, timestampThreshold: tlog === 'required' ? 1 : 0 };
  return {
    name: spec.name, kind: 'key', trustRoot, identities: [], tlog,
    verifier: new Verifier(material, options),
    describe: `key sha256:${fingerprint.slice(0, 16)}…`,
    revision: `${trustRoot.revision}:${fingerprint}:${tlog}`,
  };
}

export function parseBundle(json: unknown, origin: string): Bundle {
  try {
    return bundleFromJSON(json);
  } catch (err) {
    throw new VerificationFailure('BUNDLE_INVALID', `${origin}: not a valid Sigstore bundle: ${(err as Error).message}`);
  }
}

function translate(err: unknown, authority: CompiledAuthority): VerificationFailure {
  if (err instanceof VerificationFailure) return err;
  const e = err as VerificationError;
  const message = e?.message ?? String(err);
  switch (e?.code) {
    case 'CERTIFICATE_ERROR':
      return new VerificationFailure('CERTIFICATE_INVALID', `certificate rejected against trust root ${authority.trustRoot.name}: ${message} (it must chain to a Fulcio CA of the root and be valid at the log's integrated time or the timestamp)`);
    case 'TIMESTAMP_ERROR':
      if (/expected \d+ timestamps, got 0/.test(message)) {
        return new VerificationFailure('TLOG_INVALID', authority.tlog === 'required'
          ? 'no transparency-log entry: this authority requires one (tlog: required)'
          : 'no trusted time: neither a transparency-log entry nor an RFC 3161 timestamp vouches for when the certificate was used');
      }
      return new VerificationFailure('TIMESTAMP_INVALID', `timestamp rejected: ${message}`);
    case 'TLOG_ERROR': case 'TLOG_BODY_ERROR': case 'TLOG_INCLUSION_PROOF_ERROR': case 'TLOG_INCLUSION_PROMISE_ERROR': case 'TLOG_MISSING_INCLUSION_ERROR':
      return new VerificationFailure('TLOG_INVALID', `transparency-log entry rejected: ${message}`);
    case 'SIGNATURE_ERROR': case 'PUBLIC_KEY_ERROR':
      return new VerificationFailure('SIGNATURE_INVALID', authority.kind === 'key'
        ? `the signature does not verify with ${authority.describe} (another key, or a tampered payload)`
        : `the signature does not verify: ${message}`);
    default:
      return new VerificationFailure('BUNDLE_INVALID', `verification failed: ${message}`);
  }
}

export interface VerifiedSignature {
  authority: string;
  identity?: SignerIdentity;
  /** the bytes that were signed: the simplesigning payload or the DSSE payload */
  payload: Buffer;
  payloadType?: string;
}

/**
 * Verifies one bundle against one authority. `artifact` is what a message signature signs
 * (a cosign simplesigning payload, or the manifest bytes); DSSE bundles carry their payload.
 */
export function verifyBundle(bundle: Bundle, artifact: Buffer | undefined, authority: CompiledAuthority): VerifiedSignature {
  const material = bundle.verificationMaterial.content.$case;
  if (authority.kind === 'key' && material !== 'publicKey') {
    throw new VerificationFailure('IDENTITY_MISMATCH', `signed with a certificate, but authority ${authority.name} accepts only ${authority.describe}`, true);
  }
  if (authority.kind === 'keyless' && material === 'publicKey') {
    throw new VerificationFailure('IDENTITY_MISMATCH', `signed with a key, but authority ${authority.name} accepts only keyless identities ${authority.describe}`, true);
  }
  if (bundle.content.$case === 'messageSignature' && !artifact) {
    throw new VerificationFailure('BUNDLE_INVALID', 'a message-signature bundle needs the signed artifact itself');
  }
  let signer;
  try {
    const entity = toSignedEntity(bundle, artifact);
    if (bundle.content.$case === 'messageSignature' && artifact) {
      // the library hashes with the message digest's algorithm; Ed25519 signs the message itself
      const signature = Buffer.from(bundle.content.messageSignature.signature);
      const viaLibrary = entity.signature.verifySignature.bind(entity.signature);
      entity.signature.verifySignature = (key) => (key.asymmetricKeyType === 'ed25519' ? cryptoVerify(null, artifact, key, signature) : viaLibrary(key));
    }
    signer = authority.verifier.verify(entity);
  } catch (err) {
    throw translate(err, authority);
  }
  let identity: SignerIdentity | undefined;
  if (authority.kind === 'keyless') {
    identity = signerIdentity(signer);
    if (!authority.identities.some((m) => m(identity!))) {
      throw new VerificationFailure('IDENTITY_MISMATCH', `signed by ${identity.subject ?? '(no subject)'} from ${identity.issuer ?? '(no issuer)'}, but authority ${authority.name} accepts ${authority.describe}`);
    }
  }
  if (authority.condition) {
    let holds: unknown;
    try {
      holds = authority.condition.evaluate({ signer: toCel({ subject: identity?.subject ?? '', issuer: identity?.issuer ?? '', extensions: identity?.extensions ?? {} }) });
    } catch (err) {
      holds = describeEvaluationError(err);
    }
    if (holds !== true) {
      throw new VerificationFailure('IDENTITY_MISMATCH', `signed by ${identity?.subject ?? authority.describe}, but authority ${authority.name}'s condition ${authority.condition.source} ${holds === false ? 'is false' : `failed: ${String(holds)}`} (signer extensions: ${JSON.stringify(identity?.extensions ?? {})})`);
    }
  }
  if (bundle.content.$case === 'dsseEnvelope') {
    const env = bundle.content.dsseEnvelope;
    return { authority: authority.name, identity, payload: Buffer.from(env.payload), payloadType: env.payloadType };
  }
  return { authority: authority.name, identity, payload: artifact! };
}

export interface InTotoStatement {
  _type: string;
  subject: { name?: string; digest: Record<string, string> }[];
  predicateType: string;
  predicate?: unknown;
}

/** The in-toto statement of a verified DSSE payload; malformed ones are failures, never passes. */
export function inTotoStatement(verified: VerifiedSignature): InTotoStatement {
  if (verified.payloadType !== 'application/vnd.in-toto+json') {
    throw new VerificationFailure('BUNDLE_INVALID', `DSSE payload type ${JSON.stringify(verified.payloadType)} is not an in-toto statement`);
  }
  let statement: InTotoStatement;
  try {
    statement = JSON.parse(verified.payload.toString('utf8'));
  } catch {
    throw new VerificationFailure('BUNDLE_INVALID', 'the DSSE payload is not JSON');
  }
  if (!statement || !Array.isArray(statement.subject) || typeof statement.predicateType !== 'string') {
    throw new VerificationFailure('BUNDLE_INVALID', 'the DSSE payload is not an in-toto statement (subject, predicateType)');
  }
  return statement;
}

/** sha256:HEX (or sha512:…) in the statement's subjects */
export function statementNamesDigest(statement: InTotoStatement, digest: string): boolean {
  const [algorithm, hex] = digest.split(':');
  return statement.subject.some((s) => s?.digest?.[algorithm!]?.toLowerCase() === hex);
}
