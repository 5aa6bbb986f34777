// JSON lines in a file, fsync'd before acknowledging, rotated by size (PATH.1, PATH.2 …).
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditSink } from './types.js';

export class FileSink implements AuditSink {
  readonly id: string;
  readonly name: string;
  #handle?: FileHandle;
  #size = 0;

  constructor(private readonly path: string, private readonly maxBytes = 100 << 20, private readonly keep = 10) {
    this.id = `file-${createHash('sha256').update(path).digest('hex').slice(0, 12)}`;
    this.name = `file:${path}`;
  }

  async #open(): Promise<FileHandle> {
    if (!this.#handle) {
      mkdirSync(dirname(this.path), { recursive: true });
      this.#handle = await open(this.path, 'a', 0o600);
      this.#size = (await this.#handle.stat()).size;
    }
    return this.#handle;
  }

  async #rotate(): Promise<void> {
    await this.#handle?.close();
    this.#handle = undefined;
    for (let i = this.keep - 1; i >= 1; i--) {
      await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(() => undefined);
    }
    await rename(this.path, `${this.path}.1`);
  }

  send(lines: readonly string[]): Promise<void> {
    return this.sendJsonLines(Buffer.from(`${lines.join('\n')}\n`));
  }

  async sendJsonLines(bytes: Buffer): Promise<void> {
    const fh = await this.#open();
    let written = 0;
    while (written < bytes.length) written += (await fh.write(bytes, written)).bytesWritten;
    await fh.datasync();
    this.#size += bytes.length;
    if (this.#size >= this.maxBytes) await this.#rotate();
  }

  async close(): Promise<void> {
    await this.#handle?.close();
    this.#handle = undefined;
  }
}
