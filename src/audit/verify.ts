// Verifies decision logs: every replica's chain must run seq 1, 2, 3 … (or continue from its
// first record) with each prevHash equal to the previous hash and each hash recomputable.
// Reports the first gap, edit, reorder or deletion per replica, with its position. Given the
// replicas' public keys, also their signed checkpoints: each must hold, and none may be missing
// where the cadence the last one announced makes one due (checkpoint.ts says why).
import type { KeyObject } from 'node:crypto';
import { recordHash } from './chain.js';
import { checkpointDue, checkpointFailure, type CheckpointCadence } from './checkpoint.js';
import type { DecisionRecord } from './record.js';

export interface ChainProblem {
  replica: string;
  /** 1-based position in the input (line number for files, row for PostgreSQL) */
  position: number;
  /** file:line, where known */
  where?: string;
  seq: number | undefined;
  kind: 'edited' | 'gap' | 'reordered' | 'broken-link' | 'unparseable' | 'duplicate' | 'checkpoint' | 'unsigned';
  detail: string;
}

export interface ReplicaSummary {
  first: number;
  last: number;
  count: number;
  /** with keys: the valid checkpoints, and the seq the newest of them vouches for */
  checkpoints: number;
  signedThrough?: number;
}

export interface VerifyResult {
  records: number;
  replicas: Record<string, ReplicaSummary>;
  problems: ChainProblem[];
  /** records that carry a checkpoint (checked only when keys were given) */
  checkpointed: number;
}

export interface VerifyOptions {
  /** public keys by key id: checkpoints are checked, and required, when given */
  keys?: ReadonlyMap<string, KeyObject>;
}

export function verifyRecords(entries: Iterable<{ position: number; where?: string; text?: string; record?: DecisionRecord }>, options: VerifyOptions = {}): VerifyResult {
  const { keys } = options;
  const heads = new Map<string, { seq: number; hash: string }>();
  const lastCheckpoint = new Map<string, { seq: number; timeMs: number; every: CheckpointCadence }>();
  const lastPosition = new Map<string, { position: number; where?: string; seq: number }>();
  let checkpointed = 0;
  const replicas: VerifyResult['replicas'] = {};
  const problems: ChainProblem[] = [];
  const reported = new Set<string>();
  let records = 0;
  let currentWhere: string | undefined;
  const report = (p: ChainProblem) => {
    p.where ??= currentWhere;
    // one problem per replica is enough to fail; the first is the one that matters
    if (reported.has(p.replica)) return;
    reported.add(p.replica);
    problems.push(p);
  };
  for (const { position, where, text, record: given } of entries) {
    currentWhere = where;
    let record = given;
    if (!record) {
      try {
        record = JSON.parse(text!) as DecisionRecord;
      } catch {
        report({ replica: '(unknown)', position, seq: undefined, kind: 'unparseable', detail: 'not a JSON decision record' });
        continue;
      }
    }
    records++;
    const replica = record.replica;
    const seq = record.seq ?? NaN;
    const stats = (replicas[replica] ??= { first: seq, last: seq, count: 0, checkpoints: 0 });
    stats.count++;
    stats.last = seq;
    if (record.hash !== recordHash(record)) {
      report({ replica, position, seq, kind: 'edited', detail: `record ${record.decisionId} does not hash to its recorded hash: it was changed after it was written` });
    }
    const head = heads.get(replica);
    if (head) {
      if (seq === head.seq) report({ replica, position, seq, kind: 'duplicate', detail: `seq ${seq} appears twice` });
      else if (seq < head.seq) report({ replica, position, seq, kind: 'reordered', detail: `seq ${seq} follows seq ${head.seq}` });
      else if (seq > head.seq + 1) report({ replica, position, seq, kind: 'gap', detail: `seq ${head.seq + 1}…${seq - 1} missing (deleted or never delivered)` });
      else if (record.prevHash !== head.hash) report({ replica, position, seq, kind: 'broken-link', detail: `prevHash does not match the hash of seq ${head.seq}` });
    } else if (seq === 1 && record.prevHash !== '0'.repeat(64)) {
      report({ replica, position, seq, kind: 'broken-link', detail: 'seq 1 does not start from the genesis hash' });
    }
    if (!head || seq > head.seq) heads.set(replica, { seq, hash: record.hash! });
    if (record.checkpoint) checkpointed++;
    if (keys) {
      lastPosition.set(replica, { position, where, seq });
      const last = lastCheckpoint.get(replica);
      if (record.checkpoint) {
        const failure = checkpointFailure(record, keys);
        if (failure) report({ replica, position, seq, kind: 'checkpoint', detail: failure });
        else {
          lastCheckpoint.set(replica, { seq, timeMs: Date.parse(record.time), every: record.checkpoint.every });
          stats.checkpoints++;
          stats.signedThrough = seq - 1;
        }
      } else if (last && checkpointDue(last, seq, Date.parse(record.time))) {
        report({ replica, position, seq, kind: 'unsigned', detail: `no checkpoint where one is due (every ${last.every.records} records or ${last.every.ms} ms after seq ${last.seq}'s): checkpoints were removed, or the chain after seq ${last.seq} was rewritten` });
      }
    }
  }
  // a chain stripped of every checkpoint (or rewritten from its start) has none left to fail
  if (keys) {
    for (const [replica, stats] of Object.entries(replicas)) {
      const at = lastPosition.get(replica)!;
      if (!stats.checkpoints) report({ replica, position: at.position, where: at.where, seq: at.seq, kind: 'unsigned', detail: `none of the replica's ${stats.count} records carries a valid checkpoint: nothing vouches for this chain` });
    }
  }
  return { records, replicas, problems, checkpointed };
}
