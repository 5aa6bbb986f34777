// The per-replica hash chain: hash = sha256(prevHash ‖ canonical JSON of the record without
// its hash), seq counting up from 1. Editing, removing or reordering a record breaks it.
import { hash } from 'node:crypto';
import { canonicalJson } from './canonical.js';
import type { DecisionRecord } from './record.js';

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainState { seq: number; hash: string }

export function recordHash(record: DecisionRecord): string {
  const { hash: _omit, ...rest } = record;
  return hash('sha256', `${record.prevHash ?? GENESIS_HASH}${canonicalJson(rest)}`);
}

export class HashChain {
  constructor(private state: ChainState = { seq: 0, hash: GENESIS_HASH }) {}

  get head(): ChainState {
    return { ...this.state };
  }

  /** Links the record into the chain (mutates and returns it). */
  seal(record: DecisionRecord): DecisionRecord {
    record.seq = this.state.seq + 1;
    record.prevHash = this.state.hash;
    record.hash = recordHash(record);
    this.state = { seq: record.seq, hash: record.hash };
    return record;
  }
}
