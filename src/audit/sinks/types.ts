/** A destination for decision records. send() resolving means the sink acknowledged them. */
export interface AuditSink {
  /** stable across restarts for the same configuration: names the sink's spool cursor */
  readonly id: string;
  /** for logs and metrics: never contains credentials */
  readonly name: string;
  send(lines: readonly string[]): Promise<void>;
  /** the same, for sinks that write JSON lines unchanged: the spool's bytes, each line ending in a newline */
  sendJsonLines?(bytes: Buffer): Promise<void>;
  close?(): Promise<void>;
}

/** A sink's receiver refused a batch for its size (HTTP 413): fewer records at a time may pass. */
export class BatchTooLargeError extends Error {
  readonly code = 'AUDIT_BATCH_TOO_LARGE';
}
