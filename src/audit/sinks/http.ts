// Batched JSON arrays over HTTP(S), gzip'd, as OPA's decision-log upload does: a 2xx answer
// acknowledges the batch; anything else (or no answer) leaves it in the spool for a retry.
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { gzipSync } from 'node:zlib';
import { BatchTooLargeError, type AuditSink } from './types.js';
import { toECS } from '../ecs.js';
import type { DecisionRecord } from '../record.js';

export interface HttpSinkOptions {
  headers?: Record<string, string>;
  /** json: the records as written; ecs: Elastic Common Schema documents */
  format?: 'json' | 'ecs';
  ca?: Buffer;
  timeoutMs?: number;
}

export class HttpSink implements AuditSink {
  readonly id: string;
  readonly name: string;
  readonly #url: URL;

  constructor(url: string, private readonly options: HttpSinkOptions = {}) {
    this.#url = new URL(url);
    if (this.#url.username || this.#url.password) throw new Error('put credentials for the audit HTTP sink in a header, not in its URL');
    this.id = `http-${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
    this.name = `${this.#url.protocol}//${this.#url.host}${this.#url.pathname}`;
  }

  send(lines: readonly string[]): Promise<void> {
    const payload = this.options.format === 'ecs' ? JSON.stringify(lines.map((l) => toECS(JSON.parse(l) as DecisionRecord))) : `[${lines.join(',')}]`;
    const body = gzipSync(payload);
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
        else if (status === 413) reject(new BatchTooLargeError(`${this.name} answered HTTP 413: ${lines.length} records (${body.length} bytes gzipped) are more than it takes at once`));
        else reject(new Error(`${this.name} answered HTTP ${status}`));
      });
      req.on('timeout', () => req.destroy(new Error(`${this.name} did not answer in time`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}
