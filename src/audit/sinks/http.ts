// Batched JSON arrays over HTTP(S), gzip'd, as OPA's decision-log upload does: a 2xx answer
// acknowledges the batch; anything else (or no answer) leaves it in the spool for a retry.
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { BatchTooLargeError, type AuditSink } from './types.js';
import { toECS } from '../ecs.js';
import { jsonArrayOf, jsonArrayOfLines } from './json-lines.js';
import type { DecisionRecord } from '../record.js';

export interface HttpSinkOptions {
  headers?: Record<string, string>;
  /** json: the records as written; ecs: Elastic Common Schema documents */
  format?: 'json' | 'ecs';
  ca?: Buffer;
  timeoutMs?: number;
}

// compressed on the thread pool: a 500-record batch (~1.2 MB) took the event loop for tens of
// milliseconds while a backlog drained, and every admission in flight waited for it
const gzipAsync = promisify(gzip);

export class HttpSink implements AuditSink {
  readonly id: string;
  readonly name: string;
  readonly #url: URL;
  /** json format: the spool's bytes become the JSON array as they are, no string of the batch is made */
  readonly sendJsonLines?: (bytes: Buffer) => Promise<void>;

  constructor(url: string, private readonly options: HttpSinkOptions = {}) {
    if (options.format !== 'ecs') {
      this.sendJsonLines = (bytes) => {
        const { array, count } = jsonArrayOfLines(bytes);
        return this.#post(array, count);
      };
    }
    this.#url = new URL(url);
    if (this.#url.username || this.#url.password) throw new Error('put credentials for the audit HTTP sink in a header, not in its URL');
    this.id = `http-${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
    this.name = `${this.#url.protocol}//${this.#url.host}${this.#url.pathname}`;
  }

  send(lines: readonly string[]): Promise<void> {
    const payload = this.options.format === 'ecs' ? Buffer.from(JSON.stringify(lines.map((l) => toECS(JSON.parse(l) as DecisionRecord)))) : jsonArrayOf(lines);
    return this.#post(payload, lines.length);
  }

  async #post(payload: Buffer, count: number): Promise<void> {
    const body = await gzipAsync(payload);
    const request = this.#url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(this.#url, {
        method: 'POST',
        ca: this.options.ca,
        timeout: this.options.timeoutMs ?? 10_000,
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length, ...this.options.headers },
      }, (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve();
        else if (status === 413) reject(new BatchTooLargeError(`${this.name} answered HTTP 413: ${count} records (${body.length} bytes gzipped) are more than it takes at once`));
        else reject(new Error(`${this.name} answered HTTP ${status}`));
      });
      req.on('timeout', () => req.destroy(new Error(`${this.name} did not answer in time`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}
