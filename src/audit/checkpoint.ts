// Signed checkpoints: a hash chain alone proves nothing to someone who can rewrite the whole
// log (sha256 needs no key), so records now and then carry a signature, by a key only the
// replica holds, over the chain head just before them. A checkpoint in record k signs seq k-1
// and its hash, so it vouches for the whole chain up to there; the cadence it announces
// (`every`) is signed too, which lets a verifier tell stripped checkpoints from a quiet replica.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical.js';

/** How often a replica signs: at the latest after this many records or this much time. */
export interface CheckpointCadence {
  records: number;
  ms: number;
}

export const DEFAULT_CHECKPOINT_CADENCE: CheckpointCadence = { records: 1000, ms: 1000 };

/** The `checkpoint` member of a decision record. */
export interface Checkpoint {
  /** sha256 (hex) of the signing key's public key, DER SubjectPublicKeyInfo */
  keyId: string;
  every: CheckpointCadence;
  /** base64: Ed25519, or ECDSA (DER) with SHA-256 on P-256 and SHA-384 on P-384 */
  signature: string;
}

/** What a checkpoint is taken from: the record that carries it, sealed into the chain. */
export interface CheckpointedRecord {
  replica: string;
  seq?: number;
  prevHash?: string;
  time: string;
  checkpoint?: Checkpoint;
}

export const CHAIN_HEAD_SCHEMA = 'trustgate.dev/chain-head/v1';

/** The signed text: the head before the record (its replica, seq and hash), the record's time, the cadence. */
export function checkpointPayload(record: CheckpointedRecord, every: CheckpointCadence): string {
  return canonicalJson({ every: { ms: every.ms, records: every.records }, hash: record.prevHash, replica: record.replica, schema: CHAIN_HEAD_SCHEMA, seq: (record.seq ?? NaN) - 1, time: record.time });
}

/** Whether the record at (seq, time) must carry a checkpoint, given the last one; an unreadable time counts as due. */
export function checkpointDue(last: { seq: number; timeMs: number; every: CheckpointCadence }, seq: number, timeMs: number): boolean {
  return seq - last.seq >= last.every.records || !(timeMs - last.timeMs < last.every.ms);
}

export class CheckpointKeyError extends Error {}

/** sha256 over the DER SubjectPublicKeyInfo: the same id whichever file format holds the key */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** the digest a signature takes with this key: none for Ed25519 (it hashes itself) */
function digestOf(key: KeyObject, where: string): string | null {
  if (key.asymmetricKeyType === 'ed25519') return null;
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'sha256';
    if (curve === 'secp384r1') return 'sha384';
  }
  const what = key.asymmetricKeyType === 'ec' ? `an EC key on ${key.asymmetricKeyDetails?.namedCurve}` : `a ${key.asymmetricKeyType} key`;
  throw new CheckpointKeyError(`${where}: ${what} cannot sign checkpoints; use Ed25519 (trustgate audit keygen) or ECDSA P-256/P-384`);
}

export interface SigningKey {
  keyId: string;
  sign(payload: string): string;
}

/** A private key in PEM (PKCS#8, or SEC1 for EC): Ed25519, ECDSA P-256 or P-384. */
export function readSigningKey(pem: string, where: string): SigningKey {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    const hint = /PUBLIC KEY/.test(pem) ? ' (this is a public key: it belongs to audit verify --key)' : '';
    throw new CheckpointKeyError(`${where}: not a PEM private key${hint}`);
  }
  const digest = digestOf(key, where);
  const keyId = keyIdOf(createPublicKey(key));
  return { keyId, sign: (payload) => sign(digest, Buffer.from(payload), key).toString('base64') };
}

/** Public keys by key id, for verification; a file may hold the public or the private key. */
export function readVerificationKeys(files: readonly { pem: string; where: string }[]): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const { pem, where } of files) {
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch {
      throw new CheckpointKeyError(`${where}: not a PEM public key`);
    }
    digestOf(key, where);
    keys.set(keyIdOf(key), key);
  }
  return keys;
}

/** Why the record's checkpoint does not hold, or undefined when it does. */
export function checkpointFailure(record: CheckpointedRecord, keys: ReadonlyMap<string, KeyObject>): string | undefined {
  const c = record.checkpoint;
  const every = c?.every;
  if (!c || typeof c.keyId !== 'string' || typeof c.signature !== 'string' || !every || !Number.isInteger(every.records) || every.records < 1 || !Number.isInteger(every.ms) || every.ms < 1) {
    return 'the checkpoint is malformed (keyId, every.records, every.ms and signature are required)';
  }
  const key = keys.get(c.keyId);
  if (!key) return `the checkpoint is signed by key ${c.keyId.slice(0, 16)}…, which is none of the --key keys`;
  const ok = verify(digestOf(key, c.keyId), Buffer.from(checkpointPayload(record, every)), key, Buffer.from(c.signature, 'base64'));
  return ok ? undefined : `the checkpoint's signature does not hold over seq ${(record.seq ?? NaN) - 1}'s hash: the chain up to here was rewritten, or the checkpoint was moved`;
}

/** Decides which records carry a checkpoint, and signs them; one per chain. */
export class CheckpointSigner {
  #last: { seq: number; timeMs: number; every: CheckpointCadence } | undefined;

  constructor(private readonly key: SigningKey, readonly every: CheckpointCadence = DEFAULT_CHECKPOINT_CADENCE) {}

  get keyId(): string {
    return this.key.keyId;
  }

  /**
   * The checkpoint the record (seq and prevHash set) carries, or undefined when none is due.
   * The first record after a start always carries one: it ties this run to the chain it continues.
   */
  checkpointFor(record: CheckpointedRecord): Checkpoint | undefined {
    const seq = record.seq ?? NaN;
    const timeMs = Date.parse(record.time);
    if (this.#last && !checkpointDue(this.#last, seq, timeMs)) return undefined;
    this.#last = { seq, timeMs, every: this.every };
    return { every: { ms: this.every.ms, records: this.every.records }, keyId: this.key.keyId, signature: this.key.sign(checkpointPayload(record, this.every)) };
  }
}

export type KeyAlgorithm = 'ed25519' | 'p256' | 'p384';

/** A new signing key pair as PEM: PKCS#8 private key, SubjectPublicKeyInfo public key. */
export function generateSigningKey(algorithm: KeyAlgorithm = 'ed25519'): { privateKey: string; publicKey: string; keyId: string } {
  const pair = algorithm === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: algorithm === 'p256' ? 'P-256' : 'P-384' });
  return {
    privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    keyId: keyIdOf(pair.publicKey),
  };
}
