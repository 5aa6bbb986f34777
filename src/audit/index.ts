// The audit trail: decision records, the hash chain, the spool and the sinks fed from it.
import type { DecisionRecord } from './record.js';

export { buildDecisionRecord, objectDigest, type Caller, type DecisionRecord } from './record.js';
export { canonicalJson } from './canonical.js';
export { AuditPipeline, AuditUnavailableError, type AuditMetrics } from './pipeline.js';
export { HashChain, recordHash, GENESIS_HASH } from './chain.js';
export { verifyRecords, type VerifyResult, type ChainProblem } from './verify.js';
export { query, tableRow, type QueryFilter } from './query.js';
export { summarize, summaryText, type AuditSummary } from './summary.js';
export { createSink, HEADER_LINE_ERROR, isHeaderLine, parseHeaderLines } from './sinks/index.js';
export type { AuditSink } from './sinks/types.js';

export interface DecisionRecorder {
  /** resolves once the record is durable enough to answer the API server */
  record(record: DecisionRecord): Promise<void> | void;
  readonly ready: boolean;
}

export class NullDecisionRecorder implements DecisionRecorder {
  readonly ready = true;
  record(): void {}
}
