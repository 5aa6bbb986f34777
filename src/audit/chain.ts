// The per-replica hash chain: hash = sha256(prevHash ‖ canonical JSON of the record without
// its hash), seq counting up from 1. Editing, removing or reordering a record breaks it.
import { hash } from 'node:crypto';
import { canonicalJson } from './canonical.js';
import type { DecisionRecord } from './record.js';

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainState { seq: number; hash: string }

/** The record's top-level members without its hash, in canonical order, each as `"key":value`. */
function members(record: DecisionRecord): { key: string; json: string }[] {
  const out: { key: string; json: string }[] = [];
  for (const key of Object.keys(record).sort()) {
    const value = (record as unknown as Record<string, unknown>)[key];
    if (key === 'hash' || value === undefined) continue;
    out.push({ key, json: `${JSON.stringify(key)}:${canonicalJson(value)}` });
  }
  return out;
}

const hashOf = (prevHash: string | undefined, body: { json: string }[]) => hash('sha256', `${prevHash ?? GENESIS_HASH}{${body.map((m) => m.json).join(',')}}`);

export function recordHash(record: DecisionRecord): string {
  return hashOf(record.prevHash, members(record));
}

export class HashChain {
  constructor(private state: ChainState = { seq: 0, hash: GENESIS_HASH }) {}

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
    const body = this.#link(record);
    const at = body.findIndex((m) => m.key > 'hash');
    body.splice(at < 0 ? body.length : at, 0, { key: 'hash', json: `"hash":"${record.hash}"` });
    return `{${body.map((m) => m.json).join(',')}}`;
  }

  /** Sets seq, prevHash and hash; returns the members the hash was taken over. */
  #link(record: DecisionRecord): { key: string; json: string }[] {
    record.seq = this.state.seq + 1;
    record.prevHash = this.state.hash;
    const body = members(record);
    record.hash = hashOf(record.prevHash, body);
    this.state = { seq: record.seq, hash: record.hash };
    return body;
  }
}
