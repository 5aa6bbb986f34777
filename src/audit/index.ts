// The audit pipeline's entry point. For now decisions go to a structured log line; the
// spool, hash chain and external sinks plug in behind the same DecisionRecorder interface.
import type { Logger } from 'pino';
import type { DecisionRecord } from './record.js';

export { buildDecisionRecord, objectDigest, type DecisionRecord } from './record.js';
export { canonicalJson } from './canonical.js';

export interface DecisionRecorder {
  /** resolves once the record is durable enough to answer the API server */
  record(record: DecisionRecord): Promise<void> | void;
  readonly ready: boolean;
}

export class LogDecisionRecorder implements DecisionRecorder {
  readonly ready = true;
  constructor(private readonly log: Logger) {}
  record(record: DecisionRecord): void {
    this.log.info({ decision: record }, record.allowed ? 'admission allowed' : 'admission denied');
  }
}

export class NullDecisionRecorder implements DecisionRecorder {
  readonly ready = true;
  record(): void {}
}
