// The per-replica hash chain: hash = sha256(prevHash ‖ canonical JSON of the record without
// its hash), seq counting up from 1. Editing, removing or reordering a record breaks it.
import { hash } from 'node:crypto';
import { canonicalJson, sortKeys } from './canonical.js';
import type { CheckpointSigner } from './checkpoint.js';
import { replaceUnstorableText, type DecisionRecord } from './record.js';

export const GENESIS_HASH = '0'.repeat(64);

/** how JSON text writes a NUL or an unpaired surrogate (a pair is written as itself) */
const UNSTORABLE_ESCAPE = /\\u(?:0000|d[89a-f])/;

export interface ChainState { seq: number; hash: string }

/**
 * The record without its hash as canonical JSON, in two runs of members: those that sort before
 * "hash" and those after it, so the line can take the hash between them without a second pass.
 */
function unsealedHalves(record: DecisionRecord): [before: string, after: string] {
  // no prototype: a "__proto__" member of a record read back from a file stays a member
  const before: Record<string, unknown> = Object.create(null);
  const after: Record<string, unknown> = Object.create(null);
  // filled in key order, so canonicalJson finds them in order and copies neither
  const keys = Object.keys(record);
  sortKeys(keys);
  for (const key of keys) {
    if (key !== 'hash') (key < 'hash' ? before : after)[key] = (record as unknown as Record<string, unknown>)[key];
  }
  return [canonicalJson(before).slice(1, -1), canonicalJson(after).slice(1, -1)];
}

/**
 * An object's text from runs of members (any may be empty), by concatenation: V8 keeps the
 * pieces as a rope until the text is read, so the record is copied once for the hash and once
 * for the line, not once per step.
 */
function objectOf(before: string, middle: string, after: string): string {
  let text = `{${before}`;
  if (middle !== '') text += before === '' ? middle : `,${middle}`;
  if (after !== '') text += text.length > 1 ? `,${after}` : after;
  return `${text}}`;
}

const hashOf = (prevHash: string | undefined, [before, after]: [string, string]) => hash('sha256', (prevHash ?? GENESIS_HASH) + objectOf(before, '', after));

export function recordHash(record: DecisionRecord): string {
  return hashOf(record.prevHash, unsealedHalves(record));
}

export class HashChain {
  /** with a signer, records now and then carry a signed checkpoint of the head before them */
  constructor(private state: ChainState = { seq: 0, hash: GENESIS_HASH }, private readonly signer?: CheckpointSigner) {}

  get head(): ChainState {
    return { ...this.state };
  }

  /** Links the record into the chain (mutates and returns it). */
  seal(record: DecisionRecord): DecisionRecord {
    this.#link(record);
    return record;
  }

  /**
   * Links the record into the chain and returns its canonical JSON, hash included: the record
   * is serialised once, for the hash and the line alike (this is on every admission's path).
   */
  sealToLine(record: DecisionRecord): string {
    const [before, after] = this.#link(record);
    return objectOf(before, `"hash":"${record.hash}"`, after);
  }

  /** Sets seq, prevHash and hash; returns the canonical text the hash was taken over. */
  #link(record: DecisionRecord): [string, string] {
    record.seq = this.state.seq + 1;
    record.prevHash = this.state.hash;
    // signed over the replica name and time, which hold no unstorable text (config and
    // toISOString), so the replacement below never invalidates it
    const checkpoint = this.signer?.checkpointFor(record);
    if (checkpoint) record.checkpoint = checkpoint;
    let halves = unsealedHalves(record);
    // A NUL or an unpaired surrogate (in a message quoting the object, a user name) is text
    // PostgreSQL's jsonb refuses, and a record a sink can never take blocks that sink for good:
    // such text is replaced before the hash is taken, so the record stays verifiable. It shows
    // as an escape in the serialised text: one scan per record, and a second serialisation only
    // for the rare record that holds some.
    if (UNSTORABLE_ESCAPE.test(halves[0]) || UNSTORABLE_ESCAPE.test(halves[1])) {
      replaceUnstorableText(record);
      halves = unsealedHalves(record);
    }
    record.hash = hashOf(record.prevHash, halves);
    this.state = { seq: record.seq, hash: record.hash };
    return halves;
  }
}
