// The audit pipeline behind the admission path: seal the record into the chain, append it to
// the spool (durable before the response leaves), and feed every sink from the spool in the
// background, advancing a sink's cursor only when it acknowledged. A restart replays the rest.
import { isUtf8 } from 'node:buffer';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { HashChain } from './chain.js';
import type { CheckpointSigner } from './checkpoint.js';
import type { DecisionRecord } from './record.js';
import { readCursor, saveCursor, Spool, SpoolFullError, type Cursor, type SpoolSync } from './spool.js';
import { BatchTooLargeError, type AuditSink } from './sinks/types.js';

export class AuditUnavailableError extends Error {
  readonly code = 'AUDIT_UNAVAILABLE';
}

/** A sink's failure to acknowledge a batch, with the age of the oldest record it left waiting. */
class SinkRefusal extends Error {
  constructor(
    message: string,
    readonly oldestAgeSeconds: number,
    /** the batch's record count, when the receiver refused it for its size */
    readonly tooLargeAt?: number,
  ) {
    super(message);
  }
}

export interface AuditMetrics {
  written(): void;
  lost(): void;
  acked(sink: string, n: number): void;
  sinkError(sink: string): void;
  spoolBytes(bytes: number): void;
  /** the spool's size limit, once at start: spoolBytes against it is how full it is */
  spoolLimit(bytes: number): void;
  /** a record carrying a signed checkpoint reached the spool */
  checkpoint(seq: number): void;
  backlog(sink: string, bytes: number, oldestAgeSeconds: number): void;
}

export interface AuditPipelineOptions {
  spoolDir: string;
  sinks: AuditSink[];
  /** when the spool is full: deny admissions (default) or admit and count the loss */
  whenFull: 'deny' | 'allow';
  maxSpoolBytes?: number;
  /** what a response waits for: fsync (default) or write (fsync'd in the background) */
  spoolSync?: SpoolSync;
  batchSize?: number;
  /** how long a caught-up sink gathers records before the next delivery */
  batchDelayMs?: number;
  logger: Logger;
  metrics?: AuditMetrics;
  /** signs checkpoints into the chain (--audit-signing-key) */
  checkpoints?: CheckpointSigner;
}

const NO_METRICS: AuditMetrics = { written() {}, lost() {}, acked() {}, sinkError() {}, spoolBytes() {}, spoolLimit() {}, checkpoint() {}, backlog() {} };

/**
 * Spool bytes a disk turned bad reach a sink decoded as every other reader of the spool decodes
 * them (U+FFFD for what is not UTF-8): PostgreSQL, or a receiver, that refuses invalid UTF-8
 * would refuse the batch on every retry, and the sink would stop for good.
 */
function validUtf8(bytes: Buffer): Buffer {
  return isUtf8(bytes) ? bytes : Buffer.from(bytes.toString('utf8'));
}

export class AuditPipeline {
  #running = true;
  /** aborted by close(): cuts the feeders' pauses short */
  readonly #stopping = new AbortController();
  #wake: (() => void)[] = [];
  #loops: Promise<void>[] = [];
  #cursors = new Map<string, Cursor>();
  readonly #metrics: AuditMetrics;

  private constructor(private readonly spool: Spool, private readonly chain: HashChain, private readonly options: AuditPipelineOptions) {
    this.#metrics = options.metrics ?? NO_METRICS;
  }

  static async start(options: AuditPipelineOptions): Promise<AuditPipeline> {
    const spool = await Spool.open(options.spoolDir, { maxBytes: options.maxSpoolBytes, sync: options.spoolSync });
    const chain = new HashChain(await spool.chainHead(), options.checkpoints);
    const pipeline = new AuditPipeline(spool, chain, options);
    pipeline.#metrics.spoolLimit(spool.options.maxBytes);
    pipeline.#metrics.spoolBytes(spool.bytes);
    for (const sink of options.sinks) {
      pipeline.#cursors.set(sink.id, await readCursor(pipeline.#cursorPath(sink)));
      pipeline.#loops.push(pipeline.#feed(sink));
    }
    return pipeline;
  }

  readonly ready = true;

  get chainHead() {
    return this.chain.head;
  }

  #cursorPath(sink: AuditSink): string {
    return join(this.options.spoolDir, `cursor-${sink.id}.json`);
  }

  /** Seals and spools the record; resolves once it is in the spool (fsync'd, unless spoolSync is write). */
  async record(record: DecisionRecord): Promise<void> {
    if (this.spool.full) {
      this.#metrics.lost();
      if (this.options.whenFull === 'deny') {
        throw new AuditUnavailableError('the audit spool is full (its sinks are not acknowledging): refusing admissions rather than admitting unrecorded');
      }
      this.options.logger.error({ decisionId: record.decisionId }, 'audit spool full: decision admitted without a record (--audit-full=allow)');
      return;
    }
    const line = this.chain.sealToLine(record);
    try {
      await this.spool.append(line);
    } catch (err) {
      this.#metrics.lost();
      if (err instanceof SpoolFullError && this.options.whenFull === 'allow') {
        this.options.logger.error({ decisionId: record.decisionId }, 'audit spool full: decision admitted without a record (--audit-full=allow)');
        return;
      }
      // the chain has moved past this record: verification will show the gap, which is true
      // (the admission is refused below, unrecorded)
      throw new AuditUnavailableError(`the decision could not be written to the audit spool: ${(err as Error).message}`);
    }
    this.#metrics.written();
    this.#metrics.spoolBytes(this.spool.bytes);
    if (record.checkpoint) this.#metrics.checkpoint(record.seq!);
    for (const wake of this.#wake.splice(0)) wake();
  }

  /** Waits up to ms, or until a new record arrives; a timed-out waiter leaves no trace behind. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        const i = this.#wake.indexOf(done);
        if (i >= 0) this.#wake.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake.push(done);
    });
  }

  /** waiters for new records (for tests: an idle pipeline must not accumulate them) */
  get waiting(): number {
    return this.#wake.length;
  }

  async #feed(sink: AuditSink): Promise<void> {
    while (this.#running) {
      try {
        await this.#feedLoop(sink);
      } catch (err) {
        // a feeder must never die: records would pile up unnoticed; log, pause, go on
        this.options.logger.error({ sink: sink.name, err }, 'audit feeder failed; restarting it');
        await this.#pause(1000);
      }
    }
  }

  /**
   * Reads the next batch after the cursor and hands it to the sink. The batch's bytes die with
   * this call: kept across the feeder's pause (250 ms, two scavenges), a batch was promoted to
   * the old generation, and its buffer then stayed allocated until a full mark-compact (0.8 MB/s
   * of buffers at 500 req/s, a 6-10 ms mark-compact every 5 s).
   */
  async #deliver(sink: AuditSink, cursor: Cursor, limit: number): Promise<{ count: number; next: Cursor }> {
    const batch = await this.spool.read(cursor, limit);
    const delivered = { count: batch.count, next: batch.next }; // not the batch: its bytes must not outlive this call
    if (!batch.count) return delivered;
    // read before the sink has the bytes, which it may change in place
    const firstLine = batch.firstLine();
    try {
      // sinks that write JSON lines take the spool's bytes as they are, never decoded
      await (sink.sendJsonLines ? sink.sendJsonLines(validUtf8(batch.bytes)) : sink.send(batch.lines()));
    } catch (err) {
      const oldest = (Date.now() - Date.parse((JSON.parse(firstLine) as DecisionRecord).time)) / 1000;
      throw new SinkRefusal((err as Error).message, oldest, err instanceof BatchTooLargeError ? batch.count : undefined);
    }
    return delivered;
  }

  async #feedLoop(sink: AuditSink): Promise<void> {
    let failures = 0;
    const batchSize = this.options.batchSize ?? 500;
    // records per delivery: halved while the receiver refuses a batch for its size, then grown
    // back, though not to a count it refused in the last ten minutes
    let limit = batchSize;
    let refused: { count: number; at: number } | undefined;
    while (this.#running) {
      const cursor = this.#cursors.get(sink.id)!;
      let delivered: { count: number; next: Cursor };
      try {
        delivered = await this.#deliver(sink, cursor, limit);
      } catch (err) {
        if (!(err instanceof SinkRefusal)) throw err;
        if (err.tooLargeAt !== undefined && err.tooLargeAt > 1) {
          // not a failure of the sink: the same records, fewer at a time, at once
          refused = { count: err.tooLargeAt, at: Date.now() };
          limit = Math.ceil(err.tooLargeAt / 2);
          continue;
        }
        failures++;
        this.#metrics.sinkError(sink.name);
        this.#metrics.backlog(sink.name, await this.spool.backlogBytes(cursor), err.oldestAgeSeconds);
        if (failures === 1 || failures % 20 === 0) this.options.logger.warn({ sink: sink.name, failures, reason: err.message }, 'audit sink did not acknowledge; records stay in the spool and are retried');
        // a backoff that new records cannot cut short: a dead sink is not hammered at request rate
        const backoff = Math.min(30_000, 200 * 2 ** Math.min(failures, 8)) * (0.75 + Math.random() / 2);
        await this.#pause(backoff);
        continue;
      }
      const { count, next } = delivered;
      if (!count) {
        this.#cursors.set(sink.id, next);
        this.#metrics.backlog(sink.name, 0, 0);
        await this.#sleep(1000);
        continue;
      }
      if (failures) this.options.logger.info({ sink: sink.name, after: failures }, 'audit sink acknowledging again');
      failures = 0;
      this.#cursors.set(sink.id, next);
      await saveCursor(this.#cursorPath(sink), next);
      this.#metrics.acked(sink.name, count);
      await this.spool.release([...this.#cursors.values()], this.chain.head);
      this.#metrics.spoolBytes(this.spool.bytes);
      // a short batch means the sink has caught up: gather for a moment instead of reading the
      // spool (and writing the cursor) once per admission
      const full = count >= limit;
      if (refused && Date.now() - refused.at > 600_000) refused = undefined;
      limit = Math.min(batchSize, limit * 2, refused ? refused.count - 1 : batchSize);
      if (!full) await this.#pause(this.options.batchDelayMs ?? 250);
    }
  }

  /** Resolves when every sink has acknowledged everything spooled so far (tests, shutdown). */
  async drained(timeoutMs = 10_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      let behind = 0;
      for (const c of this.#cursors.values()) behind += await this.spool.backlogBytes(c);
      if (!behind) return true;
      for (const wake of this.#wake.splice(0)) wake();
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  /** Waits ms, or until close(); new records do not cut it short (unlike #sleep). */
  #pause(ms: number): Promise<void> {
    return delay(ms, undefined, { signal: this.#stopping.signal }).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.#running = false;
    this.#stopping.abort();
    for (const wake of this.#wake.splice(0)) wake();
    await Promise.all(this.#loops);
    for (const sink of this.options.sinks) await sink.close?.();
    await this.spool.close();
  }
}
