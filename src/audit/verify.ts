// Verifies decision logs: every replica's chain must run seq 1, 2, 3 … (or continue from its
// first record) with each prevHash equal to the previous hash and each hash recomputable.
// Reports the first gap, edit, reorder or deletion per replica, with its position.
import { recordHash } from './chain.js';
import type { DecisionRecord } from './record.js';

export interface ChainProblem {
  replica: string;
  /** 1-based position in the input (line number for files, row for PostgreSQL) */
  position: number;
  /** file:line, where known */
  where?: string;
  seq: number | undefined;
  kind: 'edited' | 'gap' | 'reordered' | 'broken-link' | 'unparseable' | 'duplicate';
  detail: string;
}

export interface VerifyResult {
  records: number;
  replicas: Record<string, { first: number; last: number; count: number }>;
  problems: ChainProblem[];
}

export function verifyRecords(entries: Iterable<{ position: number; where?: string; text?: string; record?: DecisionRecord }>): VerifyResult {
  const heads = new Map<string, { seq: number; hash: string }>();
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
    const stats = (replicas[replica] ??= { first: seq, last: seq, count: 0 });
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
  }
  return { records, replicas, problems };
}
