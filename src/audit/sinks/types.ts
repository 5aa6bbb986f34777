/** A destination for decision records. send() resolving means the sink acknowledged them. */
export interface AuditSink {
  /** stable across restarts for the same configuration: names the sink's spool cursor */
  readonly id: string;
  /** for logs and metrics: never contains credentials */
  readonly name: string;
  send(lines: readonly string[]): Promise<void>;
  /**
   * The same, for sinks that take JSON lines as they are: the spool's bytes, each line ending in
   * a newline. The bytes are the sink's for this call: it may change them in place.
   */
  sendJsonLines?(bytes: Buffer): Promise<void>;
  close?(): Promise<void>;
}

/** A sink's receiver refused a batch for its size (HTTP 413): fewer records at a time may pass. */
export class BatchTooLargeError extends Error {
  readonly code = 'AUDIT_BATCH_TOO_LARGE';
}
