// A private Sigstore for tests, built from @sigstore/mock's pieces: our own Fulcio CA, CT log and
// Rekor log keys, and a trusted_root.json naming them. It signs the way cosign does: legacy .sig
// layers (simplesigning payload + certificate/bundle annotations), v0.3 bundles (DSSE with the
// cosign/sign/v1 predicate) and key-based signatures, all verifiable fully offline.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { dsse } from '@sigstore/core';
import { initializeCA, initializeCTLog, initializeTLog, initializeTSA } from '@sigstore/mock';

type CA = Awaited<ReturnType<typeof initializeCA>>;
type TLog = Awaited<ReturnType<typeof initializeTLog>>;
type TSA = Awaited<ReturnType<typeof initializeTSA>>;

export interface Identity {
  subject: string;
  issuer: string;
  /** Fulcio extension OIDs (1.3.6.1.4.1.57264.1.N) -> value */
  extensions?: Record<string, string>;
}

export interface SignOptions {
  /** no transparency-log entry at all */
  noTlog?: boolean;
  /** a certificate issued at another time than the log entry (not valid at signing time) */
  stale?: boolean;
  /** an RFC 3161 timestamp from the private TSA over the signature */
  timestamp?: boolean;
}

export interface LegacyLayer {
  payload: Buffer;
  annotations: Record<string, string>;
}

const b64 = (b: Buffer | Uint8Array) => Buffer.from(b).toString('base64');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();
const toPem = (der: Buffer | Uint8Array, label: string) => `-----BEGIN ${label}-----\n${b64(der).replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
const ecKeys = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

/** The CI workflow the tests and benchmarks sign as, and another repository's workflow. */
export const CI_IDENTITY: Identity = { subject: 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main', issuer: 'https://token.actions.githubusercontent.com' };
export const OTHER_IDENTITY: Identity = { subject: 'https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main', issuer: 'https://token.actions.githubusercontent.com' };

export function simpleSigningPayload(ref: string, digest: string): Buffer {
  return Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': ref }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' }, optional: null }));
}

export function statement(digest: string, predicateType: string, predicate: unknown): Buffer {
  return Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'image', digest: { sha256: digest.replace(/^sha256:/, '') } }], predicateType, predicate }));
}

export function cosignStatement(digest: string, name = 'image'): Buffer {
  return Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name, digest: { sha256: digest.replace(/^sha256:/, '') } }], predicateType: 'https://sigstore.dev/cosign/sign/v1', predicate: {} }));
}

export class PrivateSigstore {
  private constructor(
    readonly ca: CA,
    readonly staleCa: CA,
    readonly tlog: TLog,
    readonly trustedRoot: Record<string, unknown>,
    readonly tlogKey: KeyObject,
    readonly tsa: TSA,
    readonly tsaClock: Date,
  ) {}

  async #timestamp(signature: Buffer): Promise<string> {
    // whole seconds: @sigstore/core's GeneralizedTime parser refuses some fractional forms the mock TSA writes
    this.tsaClock.setTime(Math.ceil(Date.now() / 1000) * 1000);
    const der = await this.tsa.timestamp({ artifactHash: sha256(signature), hashAlgorithmOID: '2.16.840.1.101.3.4.2.1', nonce: Math.floor(Math.random() * 1e9), policyOID: '1.2.3.4', certReq: true });
    return b64(Buffer.from(der.buffer, der.byteOffset, der.byteLength));
  }

  static async create(): Promise<PrivateSigstore> {
    const caKeys = ecKeys();
    const ctKeys = ecKeys();
    const rekorKeys = ecKeys();
    const ctlog = await initializeCTLog(ctKeys);
    const ca = await initializeCA(caKeys, ctlog);
    // the same CA key an hour ago: its leaves chain fine but expired long before the log saw them
    const staleCa = await initializeCA(caKeys, ctlog, new Date(Date.now() - 3600_000));
    const tlog = await initializeTLog('https://rekor.private.test', rekorKeys);
    const tsaClock = new Date();
    const tsa = await initializeTSA(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }), tsaClock);
    const der = (c: ArrayBufferView) => b64(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    const start = new Date(Date.now() - 24 * 3600_000).toISOString();
    const logEntry = (keys: { publicKey: KeyObject }, url: string) => {
      const der = keys.publicKey.export({ format: 'der', type: 'spki' });
      return { baseUrl: url, hashAlgorithm: 'SHA2_256', publicKey: { rawBytes: b64(der), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } }, logId: { keyId: b64(sha256(der)) } };
    };
    const trustedRoot = {
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [logEntry(rekorKeys, 'https://rekor.private.test')],
      ctlogs: [logEntry(ctKeys, 'https://ct.private.test')],
      certificateAuthorities: [{ subject: { organization: 'trustgate-test', commonName: 'private fulcio' }, uri: 'https://fulcio.private.test', certChain: { certificates: [{ rawBytes: b64(Buffer.from(ca.rootCertificate.buffer)) }] }, validFor: { start } }],
      timestampAuthorities: [{ subject: { organization: 'sigstore.mock', commonName: 'tsa' }, uri: 'https://tsa.private.test', certChain: { certificates: [{ rawBytes: der(tsa.intCertificate) }, { rawBytes: der(tsa.rootCertificate) }] }, validFor: { start } }],
    };
    return new PrivateSigstore(ca, staleCa, tlog, trustedRoot, rekorKeys.publicKey, tsa, tsaClock);
  }

  /** PEM pieces of the same root, for TrustRoot documents written without trusted_root.json. */
  pems(): { fulcio: string; rekor: string; ctlog: string } {
    const root = this.trustedRoot as { tlogs: { publicKey: { rawBytes: string } }[]; ctlogs: { publicKey: { rawBytes: string } }[] };
    return {
      fulcio: toPem(Buffer.from(this.ca.rootCertificate.buffer), 'CERTIFICATE'),
      rekor: toPem(Buffer.from(root.tlogs[0]!.publicKey.rawBytes, 'base64'), 'PUBLIC KEY'),
      ctlog: toPem(Buffer.from(root.ctlogs[0]!.publicKey.rawBytes, 'base64'), 'PUBLIC KEY'),
    };
  }

  async #certificate(publicKey: KeyObject, identity: Identity, stale = false): Promise<Buffer> {
    // as Fulcio does: 1.1-1.6 hold raw bytes, 1.8 on a DER UTF8String
    const legacy = (oid: string) => Number(oid.split('.').at(-1)) <= 6;
    const extensions = [{ oid: '1.3.6.1.4.1.57264.1.8', value: identity.issuer }, ...Object.entries(identity.extensions ?? {}).map(([oid, value]) => ({ oid, value, legacy: legacy(oid) }))];
    const der = await (stale ? this.staleCa : this.ca).issueCertificate({ publicKey: publicKey.export({ format: 'der', type: 'spki' }) as Buffer<ArrayBuffer>, subjectAltName: identity.subject, extensions });
    return Buffer.from(der as unknown as Uint8Array);
  }

  async #log(entry: object): Promise<{ body: string; integratedTime: number; logID: string; logIndex: number; set: string; proof: { logIndex: number; treeSize: number; rootHash: string; hashes: string[]; checkpoint: string } }> {
    const logged = Object.values(await this.tlog.log(entry))[0] as unknown as { body: string; integratedTime: number; logID: string; logIndex: number; verification: { signedEntryTimestamp: string; inclusionProof: { logIndex: number; treeSize: number; rootHash: string; hashes: string[]; checkpoint: string } } };
    return { body: logged.body, integratedTime: logged.integratedTime, logID: logged.logID, logIndex: logged.logIndex, set: logged.verification.signedEntryTimestamp, proof: logged.verification.inclusionProof };
  }

  /** A cosign `.sig` layer signed keyless by `identity`. */
  async legacyKeyless(payload: Buffer, identity: Identity, options: SignOptions = {}): Promise<LegacyLayer> {
    const keys = ecKeys();
    const cert = await this.#certificate(keys.publicKey, identity, options.stale);
    const signature = sign('sha256', payload, keys.privateKey);
    const certPem = toPem(cert, 'CERTIFICATE');
    const annotations: Record<string, string> = {
      'dev.cosignproject.cosign/signature': b64(signature),
      'dev.sigstore.cosign/certificate': certPem,
      'dev.sigstore.cosign/chain': toPem(Buffer.from(this.ca.rootCertificate.buffer), 'CERTIFICATE'),
    };
    if (options.timestamp) annotations['dev.sigstore.cosign/rfc3161timestamp'] = JSON.stringify({ SignedRFC3161Timestamp: await this.#timestamp(signature) });
    if (!options.noTlog) {
      const e = await this.#log({ apiVersion: '0.0.1', kind: 'hashedrekord', spec: { data: { hash: { algorithm: 'sha256', value: sha256(payload).toString('hex') } }, signature: { content: b64(signature), publicKey: { content: b64(Buffer.from(certPem)) } } } });
      annotations['dev.sigstore.cosign/bundle'] = JSON.stringify({ SignedEntryTimestamp: e.set, Payload: { body: e.body, integratedTime: e.integratedTime, logIndex: e.logIndex, logID: e.logID } });
    }
    return { payload, annotations };
  }

  /** A cosign `.sig` layer signed with a key (cosign sign --key), logged unless noTlog. */
  async legacyWithKey(payload: Buffer, privateKey: KeyObject, publicKeyPem: string, options: SignOptions = {}): Promise<LegacyLayer> {
    // Ed25519 signs the message itself; the others a SHA-256 digest of it
    const signature = sign(privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256', payload, privateKey);
    const annotations: Record<string, string> = { 'dev.cosignproject.cosign/signature': b64(signature) };
    if (!options.noTlog) {
      const e = await this.#log({ apiVersion: '0.0.1', kind: 'hashedrekord', spec: { data: { hash: { algorithm: 'sha256', value: sha256(payload).toString('hex') } }, signature: { content: b64(signature), publicKey: { content: b64(Buffer.from(publicKeyPem)) } } } });
      annotations['dev.sigstore.cosign/bundle'] = JSON.stringify({ SignedEntryTimestamp: e.set, Payload: { body: e.body, integratedTime: e.integratedTime, logIndex: e.logIndex, logID: e.logID } });
    }
    return { payload, annotations };
  }

  /** A cosign `.att` layer: a DSSE envelope over `statement`, certificate and Rekor bundle (dsse 0.0.1) in annotations. */
  async legacyAttestation(statement: Buffer, identity: Identity, options: SignOptions = {}): Promise<LegacyLayer> {
    const bundle = await this.dsseBundle(statement, identity, options) as { verificationMaterial: { certificate: { rawBytes: string }; tlogEntries: { canonicalizedBody: string; integratedTime: string; logIndex: string; logId: { keyId: string }; inclusionPromise: { signedEntryTimestamp: string } }[] }; dsseEnvelope: object };
    const annotations: Record<string, string> = { 'dev.sigstore.cosign/certificate': toPem(Buffer.from(bundle.verificationMaterial.certificate.rawBytes, 'base64'), 'CERTIFICATE') };
    const e = bundle.verificationMaterial.tlogEntries[0];
    if (e) {
      annotations['dev.sigstore.cosign/bundle'] = JSON.stringify({ SignedEntryTimestamp: e.inclusionPromise.signedEntryTimestamp, Payload: { body: e.canonicalizedBody, integratedTime: Number(e.integratedTime), logIndex: Number(e.logIndex), logID: Buffer.from(e.logId.keyId, 'base64').toString('hex') } });
    }
    return { payload: Buffer.from(JSON.stringify(bundle.dsseEnvelope)), annotations };
  }

  /** A v0.3 bundle with a DSSE envelope over `statement` (what cosign v3 attaches as a referrer). */
  async dsseBundle(statement: Buffer, identity: Identity, options: SignOptions = {}): Promise<Record<string, unknown>> {
    const keys = ecKeys();
    const cert = await this.#certificate(keys.publicKey, identity, options.stale);
    const payloadType = 'application/vnd.in-toto+json';
    const signature = sign('sha256', dsse.preAuthEncoding(payloadType, statement), keys.privateKey);
    const tlogEntries = [];
    if (!options.noTlog) {
      const certPem = toPem(cert, 'CERTIFICATE');
      const envelope = { payloadType, payload: b64(statement), signatures: [{ sig: b64(signature), keyid: '' }] };
      const e = await this.#log({
        apiVersion: '0.0.1', kind: 'dsse',
        spec: { envelopeHash: { algorithm: 'sha256', value: sha256(JSON.stringify(envelope)).toString('hex') }, payloadHash: { algorithm: 'sha256', value: sha256(statement).toString('hex') }, signatures: [{ signature: b64(signature), verifier: b64(Buffer.from(certPem)) }] },
      });
      tlogEntries.push({
        logIndex: String(e.logIndex), logId: { keyId: b64(Buffer.from(e.logID, 'hex')) }, kindVersion: { kind: 'dsse', version: '0.0.1' }, integratedTime: String(e.integratedTime),
        inclusionPromise: { signedEntryTimestamp: e.set },
        inclusionProof: { logIndex: String(e.proof.logIndex), rootHash: b64(Buffer.from(e.proof.rootHash, 'hex')), treeSize: String(e.proof.treeSize), hashes: e.proof.hashes, checkpoint: { envelope: e.proof.checkpoint } },
        canonicalizedBody: e.body,
      });
    }
    const rfc3161Timestamps = options.timestamp ? [{ signedTimestamp: await this.#timestamp(signature) }] : [];
    return {
      mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      verificationMaterial: { certificate: { rawBytes: b64(cert) }, tlogEntries, timestampVerificationData: { rfc3161Timestamps } },
      dsseEnvelope: { payload: b64(statement), payloadType, signatures: [{ sig: b64(signature), keyid: '' }] },
    };
  }
}

/** A policy directory holding this Sigstore's trusted root as the TrustRoot `private`, plus `files`. */
export async function privateRootPolicyDir(sigstore: PrivateSigstore, files: Record<string, string> = {}): Promise<string> {
  const { policyDir } = await import('./policies.js');
  return policyDir({
    'root.json': JSON.stringify(sigstore.trustedRoot),
    'root.yaml': 'apiVersion: trustgate.dev/v1alpha1\nkind: TrustRoot\nmetadata: { name: private }\nspec: { trustedRootFile: ./root.json }\n',
    ...files,
  });
}

export function keyPair(): { privateKey: KeyObject; publicKeyPem: string } {
  const keys = ecKeys();
  return { privateKey: keys.privateKey, publicKeyPem: keys.publicKey.export({ format: 'pem', type: 'spki' }) as string };
}
