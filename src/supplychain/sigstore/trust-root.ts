// Trust roots: Sigstore trusted_root.json documents (public-good embedded, private ones from a
// file or from PEM pieces), checked before use and turned into @sigstore/verify trust material.
// Nothing here touches the network: an organisation's own Fulcio and Rekor work fully offline.
import { createHash, createPublicKey, X509Certificate as NodeX509 } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial, type KeyFinderFunc, type TrustMaterial } from '@sigstore/verify';
import publicGoodJson from './public-good.trusted_root.json' with { type: 'json' };

export const PUBLIC_GOOD = 'sigstore-public-good';
const TRUSTED_ROOT_MEDIA_TYPE = /^application\/vnd\.dev\.sigstore\.trustedroot(\.v0\.\d+)?\+json(;version=0\.\d+)?$/;

export class TrustRootError extends Error {
  readonly code = 'TRUST_ROOT_INVALID';
}

interface ValidFor { start?: string; end?: string }
/** A TrustRoot document's spec as written in a policy file. */
export interface TrustRootSpec {
  trustedRootFile?: string;
  fulcio?: { certChain: string; uri?: string; validFor?: ValidFor }[];
  rekor?: { publicKey: string; baseUrl?: string; validFor?: ValidFor }[];
  ctlog?: { publicKey: string; baseUrl?: string; validFor?: ValidFor }[];
  tsa?: { certChain: string; uri?: string; validFor?: ValidFor }[];
}

export interface CompiledTrustRoot {
  name: string;
  /** sha256 of the trusted root's canonical content: part of every verification cache key */
  revision: string;
  trustedRoot: TrustedRoot;
}

/** Strict checks the library leaves out (a tlog key without validFor.start is read as "since 1970"). */
export function checkTrustedRoot(json: unknown, origin: string): TrustedRoot {
  const fail = (why: string): never => {
    throw new TrustRootError(`${origin}: not a usable Sigstore trusted root: ${why}`);
  };
  if (!json || typeof json !== 'object') fail('not a JSON object');
  const doc = json as Record<string, unknown>;
  if (typeof doc.mediaType !== 'string' || !TRUSTED_ROOT_MEDIA_TYPE.test(doc.mediaType)) fail(`unknown mediaType ${JSON.stringify(doc.mediaType)}`);
  const list = (key: string) => (Array.isArray(doc[key]) ? (doc[key] as Record<string, unknown>[]) : []);
  for (const key of ['tlogs', 'ctlogs']) {
    list(key).forEach((log, i) => {
      const pk = log.publicKey as { rawBytes?: string; validFor?: ValidFor } | undefined;
      if (!pk?.rawBytes) fail(`${key}[${i}] has no publicKey.rawBytes`);
      if (!pk!.validFor?.start) fail(`${key}[${i}] has no publicKey.validFor.start (refusing to trust a key since the beginning of time)`);
      if (!(log.logId as { keyId?: string } | undefined)?.keyId) fail(`${key}[${i}] has no logId.keyId`);
    });
  }
  for (const key of ['certificateAuthorities', 'timestampAuthorities']) {
    list(key).forEach((ca, i) => {
      const certs = (ca.certChain as { certificates?: { rawBytes?: string }[] } | undefined)?.certificates;
      if (!certs?.length) fail(`${key}[${i}] has no certChain.certificates`);
      if (!(ca.validFor as ValidFor | undefined)?.start) fail(`${key}[${i}] has no validFor.start`);
      for (const c of certs!) {
        try {
          new NodeX509(Buffer.from(c.rawBytes ?? '', 'base64'));
        } catch {
          fail(`${key}[${i}] holds a certificate that does not parse`);
        }
      }
    });
  }
  if (!list('tlogs').length && !list('certificateAuthorities').length) fail('it names neither a transparency log nor a certificate authority');
  try {
    return TrustedRoot.fromJSON(doc);
  } catch (err) {
    return fail((err as Error).message);
  }
}

function pemBlocks(pem: string, label: string): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`, 'g');
  return [...pem.matchAll(re)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

/** The PublicKeyDetails name of a PEM key, as trusted_root.json spells it. */
export function keyDetailsOf(pem: string): { der: Buffer; keyDetails: string } {
  const key = createPublicKey(pem);
  const der = key.export({ format: 'der', type: 'spki' });
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { der, keyDetails: 'PKIX_ECDSA_P256_SHA_256' };
    if (curve === 'secp384r1') return { der, keyDetails: 'PKIX_ECDSA_P384_SHA_384' };
    if (curve === 'secp521r1') return { der, keyDetails: 'PKIX_ECDSA_P521_SHA_512' };
    throw new TrustRootError(`unsupported EC curve ${curve}`);
  }
  if (type === 'ed25519') return { der, keyDetails: 'PKIX_ED25519' };
  if (type === 'rsa') return { der, keyDetails: 'PKIX_RSA_PKCS1V15_2048_SHA256' };
  throw new TrustRootError(`unsupported key type ${type}`);
}

const EPOCH_OF_PIECES = '1970-01-01T00:00:00Z';

/** A trusted_root.json built from PEM pieces; a piece without validFor is trusted from the epoch explicitly. */
export function trustedRootFromPem(spec: TrustRootSpec, origin: string): unknown {
  const validFor = (v?: ValidFor) => ({ start: v?.start ?? EPOCH_OF_PIECES, ...(v?.end ? { end: v.end } : {}) });
  const log = (piece: { publicKey: string; baseUrl?: string; validFor?: ValidFor }, i: number, what: string) => {
    let key;
    try {
      key = keyDetailsOf(piece.publicKey);
    } catch (err) {
      throw new TrustRootError(`${origin}: ${what}[${i}].publicKey: ${(err as Error).message}`);
    }
    return {
      baseUrl: piece.baseUrl ?? '',
      hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: key.der.toString('base64'), keyDetails: key.keyDetails, validFor: validFor(piece.validFor) },
      logId: { keyId: createHash('sha256').update(key.der).digest('base64') },
    };
  };
  const ca = (piece: { certChain: string; uri?: string; validFor?: ValidFor }, i: number, what: string) => {
    const certs = pemBlocks(piece.certChain, 'CERTIFICATE');
    if (!certs.length) throw new TrustRootError(`${origin}: ${what}[${i}].certChain holds no PEM certificate`);
    return { uri: piece.uri ?? '', certChain: { certificates: certs.map((c) => ({ rawBytes: c.toString('base64') })) }, validFor: validFor(piece.validFor) };
  };
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: (spec.rekor ?? []).map((p, i) => log(p, i, 'rekor')),
    ctlogs: (spec.ctlog ?? []).map((p, i) => log(p, i, 'ctlog')),
    certificateAuthorities: (spec.fulcio ?? []).map((p, i) => ca(p, i, 'fulcio')),
    timestampAuthorities: (spec.tsa ?? []).map((p, i) => ca(p, i, 'tsa')),
  };
}

function compiled(name: string, json: unknown, origin: string): CompiledTrustRoot {
  const trustedRoot = checkTrustedRoot(json, origin);
  const revision = createHash('sha256').update(JSON.stringify(TrustedRoot.toJSON(trustedRoot))).digest('hex').slice(0, 16);
  return { name, revision, trustedRoot };
}

let publicGood: CompiledTrustRoot | undefined;
/** The embedded public-good root (sigstore/root-signing targets/trusted_root.json): no TUF fetch, no network. */
export function publicGoodTrustRoot(): CompiledTrustRoot {
  return (publicGood ??= compiled(PUBLIC_GOOD, publicGoodJson, 'embedded sigstore-public-good'));
}

/** A trusted_root.json file, checked; `name` is how policies refer to it. */
export async function readTrustedRootFile(path: string, name = path): Promise<CompiledTrustRoot> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new TrustRootError(`cannot read trusted root ${path}: ${(err as Error).message.split('\n')[0]}`);
  }
  return compiled(name, json, path);
}

/** A TrustRoot document of a policy directory; trustedRootFile is relative to the file naming it. */
export async function compileTrustRoot(name: string, spec: TrustRootSpec, file: string): Promise<CompiledTrustRoot> {
  if (name === PUBLIC_GOOD) throw new TrustRootError(`${PUBLIC_GOOD} is embedded and cannot be redefined; give your root another name`);
  if (spec.trustedRootFile) return readTrustedRootFile(resolve(dirname(file), spec.trustedRootFile), name);
  return compiled(name, trustedRootFromPem(spec, `TrustRoot ${name}`), `TrustRoot ${name}`);
}

/** Trust material for one verification; `key` replaces hint lookup for key-based authorities. */
export function trustMaterialOf(root: CompiledTrustRoot, key?: KeyFinderFunc): TrustMaterial {
  return toTrustMaterial(root.trustedRoot, key);
}
