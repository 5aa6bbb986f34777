// The local spool: sealed records appended to segment files (JSON lines), written in groups
// before their admission responses leave: fsync'd first (sync 'fsync', the default; a group's
// fsync may run beside the previous group's, and groups are answered in order), or
// fsync'd in the background within syncIntervalMs (sync 'write': the record survives a crash
// of trustgate at once, a crash of the node after the interval). Sinks read it through their
// own cursors; a segment is deleted once every sink has acknowledged all of it.
import { closeSync, existsSync, ftruncateSync, fstatSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChainState } from './chain.js';

const SEGMENT = /^segment-(\d{9})\.jsonl$/;
const segmentName = (n: number) => `segment-${String(n).padStart(9, '0')}.jsonl`;

/** The batch's lines as UTF-8 in one buffer, without joining them into one string first. */
function encodeLines(batch: readonly { line: string }[]): Buffer {
  if (batch.length === 1) return Buffer.from(batch[0]!.line);
  let size = 0;
  for (const p of batch) size += Buffer.byteLength(p.line);
  const data = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of batch) at += data.write(p.line, at);
  return data;
}

export class SpoolFullError extends Error {
  readonly code = 'AUDIT_SPOOL_FULL';
}

export interface Cursor { segment: number; offset: number }

/** What an append waits for: the disk (fsync) or the kernel (write; fsync follows in the background). */
export type SpoolSync = 'fsync' | 'write';

export interface SpoolOptions {
  maxBytes: number;
  segmentBytes: number;
  sync: SpoolSync;
  /** with sync 'write': the longest a written record waits for its fsync */
  syncIntervalMs: number;
  /** with sync 'fsync': how many group fsyncs may run at once (a group need not wait for the one before to start) */
  syncsInFlight: number;
}

type Pending = { line: string; resolve: () => void; reject: (e: Error) => void };

/** One group's fsync: answered in the order groups were written, never ahead of an earlier one. */
interface Commit {
  batch: Pending[];
  done: boolean;
  error?: Error;
  answered: Promise<void>;
  answer: () => void;
}

const EMPTY = Buffer.alloc(0);

/** Records read from the spool: JSON lines as bytes, decoded only for a sink that wants strings. */
export class SpoolBatch {
  constructor(
    /** whole lines, each ending in a newline */
    readonly bytes: Buffer,
    readonly count: number,
    /** the cursor after these records */
    readonly next: Cursor,
  ) {}

  lines(): string[] {
    return this.count ? this.bytes.toString('utf8', 0, this.bytes.length - 1).split('\n') : [];
  }

  firstLine(): string {
    const end = this.bytes.indexOf(10);
    return this.bytes.toString('utf8', 0, end < 0 ? this.bytes.length : end);
  }
}

export class Spool {
  #active!: number;
  #handle!: FileHandle;
  #activeSize = 0;
  #totalBytes = 0;
  #pending: Pending[] = [];
  #flushing?: Promise<void>;
  /** group fsyncs started and not yet answered, oldest first */
  #commits: Commit[] = [];
  #segments: number[] = [];
  /** written but not yet fsync'd (sync 'write') */
  #dirty = false;
  #syncTimer?: NodeJS.Timeout;
  #syncing?: Promise<void>;
  /** a failed background fsync: the next write fails with it, so the loss is not silent */
  #syncError?: Error;
  /** where a write cut short should have been undone but could not: undone before the next */
  #tornAt?: number;

  private constructor(readonly dir: string, readonly options: SpoolOptions) {}

  static async open(dir: string, options: Partial<SpoolOptions> = {}): Promise<Spool> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const spool = new Spool(dir, {
      maxBytes: options.maxBytes ?? 1 << 30, segmentBytes: options.segmentBytes ?? 8 << 20,
      sync: options.sync ?? 'fsync', syncIntervalMs: options.syncIntervalMs ?? 50,
      // two: a group written while the previous group's fsync runs starts its own at once
      // instead of waiting a whole fsync for it (p99 at 500 requests/s ~1 ms lower, bench/HISTORY.md)
      syncsInFlight: options.syncsInFlight ?? 2,
    });
    await spool.#scan();
    if (spool.options.sync === 'write') {
      spool.#syncTimer = setInterval(() => spool.#background(), spool.options.syncIntervalMs);
      spool.#syncTimer.unref();
    }
    return spool;
  }

  async #scan(): Promise<void> {
    this.#segments = (await readdir(this.dir)).flatMap((f) => (SEGMENT.test(f) ? [Number(SEGMENT.exec(f)![1])] : [])).sort((a, b) => a - b);
    this.#totalBytes = 0;
    for (const n of this.#segments) this.#totalBytes += (await stat(join(this.dir, segmentName(n)))).size;
    this.#active = this.#segments.at(-1) ?? 1;
    if (!this.#segments.length) this.#segments.push(this.#active);
    await this.#openActive();
  }

  async #openActive(): Promise<void> {
    const path = join(this.dir, segmentName(this.#active));
    await truncateTornLine(path);
    this.#handle = await open(path, 'a', 0o600);
    this.#activeSize = (await this.#handle.stat()).size;
  }

  get bytes(): number {
    return this.#totalBytes;
  }

  get full(): boolean {
    return this.#totalBytes >= this.options.maxBytes;
  }

  /** The chain head as the spool last recorded it (after a restart, the chain continues). */
  async chainHead(): Promise<ChainState | undefined> {
    for (const n of [...this.#segments].reverse()) {
      const last = lastLine(join(this.dir, segmentName(n)));
      if (last) {
        const r = JSON.parse(last) as { seq: number; hash: string };
        return { seq: r.seq, hash: r.hash };
      }
    }
    try {
      return JSON.parse(await readFile(join(this.dir, 'chain-head.json'), 'utf8')) as ChainState;
    } catch {
      return undefined;
    }
  }

  /** Resolves once the line is written (and fsync'd, with sync 'fsync'); appends in one turn share one write. */
  append(line: string): Promise<void> {
    if (this.full) return Promise.reject(new SpoolFullError(`the audit spool in ${this.dir} holds ${this.#totalBytes} bytes, its limit`));
    return new Promise((resolve, reject) => {
      this.#pending.push({ line: `${line}\n`, resolve, reject });
      this.#flushing ??= new Promise<void>((r) => setImmediate(r)).then(() => this.#flush());
    });
  }

  async #flush(): Promise<void> {
    while (this.#pending.length) {
      if (this.#commits.length >= this.options.syncsInFlight) {
        await this.#commits[0]!.answered;
        continue;
      }
      const batch = this.#pending;
      this.#pending = [];
      try {
        if (this.#syncError) {
          const err = this.#syncError;
          this.#syncError = undefined;
          throw new Error(`the spool's background fsync failed (records written before it may not be on disk): ${err.message}`);
        }
        const data = encodeLines(batch);
        this.#writeAll(data);
        // counted once in the file, even if the fsync below fails: a later cut-short write is
        // undone back to here, never into lines that are there
        this.#activeSize += data.length;
        this.#totalBytes += data.length;
        if (this.options.sync === 'fsync') this.#commit(batch);
        else {
          this.#dirty = true;
          for (const p of batch) p.resolve();
        }
        if (this.#activeSize >= this.options.segmentBytes) {
          await this.#allAnswered();
          await this.#rotate();
        }
      } catch (err) {
        for (const p of batch) p.reject(err as Error);
      }
    }
    this.#flushing = undefined;
  }

  /**
   * Starts the group's fsync without waiting for the one before it (up to syncsInFlight), and
   * answers groups in order. A failed fsync fails every group still waiting: the kernel reports
   * a write-back error to one fsync of a file only, so a concurrent one that succeeded proves
   * nothing about the pages the failed one covered.
   */
  #commit(batch: Pending[]): void {
    let answer!: () => void;
    const answered = new Promise<void>((r) => { answer = r; });
    const commit: Commit = { batch, done: false, answered, answer };
    this.#commits.push(commit);
    this.#handle.datasync().then(
      () => { commit.done = true; },
      (err: Error) => {
        commit.done = true;
        for (const c of this.#commits) c.error ??= err;
      },
    ).finally(() => this.#answerInOrder());
  }

  #answerInOrder(): void {
    while (this.#commits[0]?.done) {
      const c = this.#commits.shift()!;
      if (c.error) for (const p of c.batch) p.reject(c.error);
      else for (const p of c.batch) p.resolve();
      c.answer();
    }
  }

  async #allAnswered(): Promise<void> {
    while (this.#commits.length) await this.#commits.at(-1)!.answered;
  }

  /**
   * Appends a batch to the page cache, synchronously: tens of microseconds for a batch, which a
   * trip through the thread pool cost again in waiting (the event loop sat idle under load).
   * A write cut short (a full disk) is undone, so the segment never holds half a line that the
   * next batch would be glued to.
   */
  #writeAll(data: Buffer): void {
    const fd = this.#handle.fd;
    if (this.#tornAt !== undefined) {
      ftruncateSync(fd, this.#tornAt);
      this.#tornAt = undefined;
    }
    let written = 0;
    try {
      while (written < data.length) written += writeSync(fd, data, written);
    } catch (err) {
      if (written) {
        try {
          ftruncateSync(fd, this.#activeSize);
        } catch {
          this.#tornAt = this.#activeSize;
        }
      }
      throw err;
    }
  }

  /** The background fsync of sync 'write'; a failure is handed to the next write to report. */
  #background(): void {
    if (!this.#dirty || this.#syncing) return;
    this.#dirty = false;
    this.#syncing = this.#handle.datasync()
      .catch((err: Error) => { this.#syncError = err; })
      .finally(() => { this.#syncing = undefined; });
  }

  /** Before the handle closes: whatever sync 'write' has not fsync'd yet is, now. */
  async #syncNow(): Promise<void> {
    await this.#syncing;
    if (!this.#dirty) return;
    this.#dirty = false;
    await this.#handle.datasync();
  }

  async #rotate(): Promise<void> {
    await this.#syncNow();
    await this.#handle.close();
    this.#active += 1;
    this.#segments.push(this.#active);
    await this.#openActive();
  }

  /**
   * Up to maxRecords complete lines from a cursor, and the cursor after them; a cursor at the
   * end of a finished segment moves on to the next one.
   */
  async read(cursor: Cursor, maxRecords: number, maxBytes = 4 << 20): Promise<SpoolBatch> {
    let { segment, offset } = cursor;
    const first = this.#segments[0] ?? this.#active;
    if (segment < first) (segment = first), (offset = 0);
    for (;;) {
      const path = join(this.dir, segmentName(segment));
      const size = existsSync(path) ? (await stat(path)).size : 0;
      if (offset < size) {
        const fh = await open(path, 'r');
        try {
          const buf = Buffer.allocUnsafe(Math.min(size - offset, maxBytes));
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          // whole lines only, no more than asked for; nothing is decoded here
          let end = 0;
          let count = 0;
          for (let nl = buf.indexOf(10); count < maxRecords && nl >= 0 && nl < bytesRead; nl = buf.indexOf(10, end)) {
            end = nl + 1;
            count++;
          }
          if (!count) return new SpoolBatch(EMPTY, 0, { segment, offset });
          return new SpoolBatch(buf.subarray(0, end), count, { segment, offset: offset + end });
        } finally {
          await fh.close();
        }
      }
      if (segment >= this.#active) return new SpoolBatch(EMPTY, 0, { segment, offset });
      (segment += 1), (offset = 0);
    }
  }

  /** Deletes segments every cursor has left behind (never the active one). */
  async release(cursors: readonly Cursor[], head: ChainState): Promise<void> {
    const oldest = Math.min(...cursors.map((c) => c.segment), this.#active);
    const gone = this.#segments.filter((n) => n < oldest);
    if (!gone.length) return;
    // the chain head must survive the deletion of every record that carried it
    await writeAtomic(join(this.dir, 'chain-head.json'), JSON.stringify(head));
    for (const n of gone) {
      const path = join(this.dir, segmentName(n));
      this.#totalBytes -= (await stat(path)).size;
      await rm(path, { force: true });
    }
    this.#segments = this.#segments.filter((n) => n >= oldest);
  }

  /** Records waiting for a cursor: bytes between it and the end of the spool. */
  async backlogBytes(cursor: Cursor): Promise<number> {
    let total = 0;
    for (const n of this.#segments) {
      if (n < cursor.segment) continue;
      const size = (await stat(join(this.dir, segmentName(n)))).size;
      total += n === cursor.segment ? Math.max(0, size - cursor.offset) : size;
    }
    return total;
  }

  async close(): Promise<void> {
    clearInterval(this.#syncTimer);
    await this.#flushing;
    await this.#allAnswered();
    await this.#syncNow();
    await this.#handle.close();
  }
}

/**
 * A crash between write and fsync can leave half a line at the end of the active segment.
 * That record was never acknowledged to anyone, so it is cut off rather than read as garbage.
 */
async function truncateTornLine(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const fh = await open(path, 'r+');
  try {
    const size = (await fh.stat()).size;
    if (!size) return;
    const tail = Buffer.alloc(Math.min(size, 1 << 20));
    await fh.read(tail, 0, tail.length, size - tail.length);
    if (tail[tail.length - 1] === 0x0a) return;
    const lastNewline = tail.lastIndexOf(0x0a);
    await fh.truncate(lastNewline < 0 ? size - tail.length : size - tail.length + lastNewline + 1);
  } finally {
    await fh.close();
  }
}

/** The last complete line of a file (a trailing partial line is ignored). */
function lastLine(path: string): string | undefined {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (!size) return undefined;
    const length = Math.min(size, 1 << 20);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    const text = buf.toString('utf8');
    const complete = text.slice(0, text.lastIndexOf('\n') + 1);
    return complete.split('\n').filter(Boolean).at(-1);
  } finally {
    closeSync(fd);
  }
}

export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

export async function readCursor(path: string): Promise<Cursor> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Cursor;
  } catch {
    return { segment: 0, offset: 0 };
  }
}

/** Atomic but not fsync'd: a cursor lost in a crash only means a replay, which is de-duplicated by decisionId. */
export async function saveCursor(path: string, cursor: Cursor): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(cursor), { mode: 0o600 });
  await rename(tmp, path);
}
