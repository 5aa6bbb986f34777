// Batched JSON arrays over HTTP(S), gzip'd, as OPA's decision-log upload does: a 2xx answer
// acknowledges the batch; anything else (or no answer) leaves it in the spool for a retry.
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createGzip } from 'node:zlib';
import { BatchTooLargeError, type AuditSink } from './types.js';
import { toECS } from '../ecs.js';
import { jsonArrayOf, jsonArrayOfLines, type JsonArrayParts } from './json-lines.js';
import { inSlices } from './slices.js';
import type { DecisionRecord } from '../record.js';

export interface HttpSinkOptions {
  headers?: Record<string, string>;
  /** json: the records as written; ecs: Elastic Common Schema documents */
  format?: 'json' | 'ecs';
  ca?: Buffer;
  timeoutMs?: number;
}

/** The records as one JSON array of ECS documents, converted and encoded a slice at a time. */
async function ecsArray(lines: readonly string[]): Promise<JsonArrayParts> {
  const parts: Buffer[] = [];
  for await (const slice of inSlices(lines)) {
    parts.push(Buffer.from(`${parts.length ? ',' : '['}${slice.map((l) => JSON.stringify(toECS(JSON.parse(l) as DecisionRecord))).join(',')}`));
  }
  parts.push(Buffer.from(parts.length ? ']' : '[]'));
  return { parts, count: lines.length };
}

/**
 * gzip on the thread pool, the parts fed one after the other: compressing a 1.2 MB batch on
 * the event loop (and before that, joining it into one buffer) held it for milliseconds while
 * a backlog drained, and every admission in flight waited.
 */
function gzipParts(parts: readonly Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const gz = createGzip();
    const out: Buffer[] = [];
    gz.on('data', (chunk: Buffer) => out.push(chunk));
    gz.on('end', () => resolve(Buffer.concat(out)));
    gz.on('error', reject);
    for (const part of parts) gz.write(part);
    gz.end();
  });
}

export class HttpSink implements AuditSink {
  readonly id: string;
  readonly name: string;
  readonly #url: URL;
  /** json format: the spool's bytes become the JSON array as they are, no string of the batch is made */
  readonly sendJsonLines?: (bytes: Buffer) => Promise<void>;

  constructor(url: string, private readonly options: HttpSinkOptions = {}) {
    if (options.format !== 'ecs') {
      this.sendJsonLines = (bytes) => this.#post(jsonArrayOfLines(bytes));
    }
    this.#url = new URL(url);
    if (this.#url.username || this.#url.password) throw new Error('put credentials for the audit HTTP sink in a header, not in its URL');
    this.id = `http-${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
    this.name = `${this.#url.protocol}//${this.#url.host}${this.#url.pathname}`;
  }

  async send(lines: readonly string[]): Promise<void> {
    return this.#post(this.options.format === 'ecs' ? await ecsArray(lines) : jsonArrayOf(lines));
  }

  async #post({ parts, count }: JsonArrayParts): Promise<void> {
    const body = await gzipParts(parts);
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
