// Decision records and an HTTP receiver for the audit tests.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { buildDecisionRecord, type DecisionRecord } from '../../src/audit/index.js';

let n = 0;
export function makeRecord(over: Partial<{ namespace: string; allowed: boolean; user: string }> = {}): DecisionRecord {
  n++;
  return buildDecisionRecord({
    decisionId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    replica: 'r-0',
    request: {
      uid: `uid-${n}`, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: over.namespace ?? 'shop', name: `pod-${n}`, operation: 'CREATE', userInfo: { username: over.user ?? 'alice', groups: [] },
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: `pod-${n}` } },
    },
    endpoint: 'validate', allowed: over.allowed ?? true, startedAt: performance.now(), policySetRevision: 'rev', results: [], patch: [],
  });
}

/** An HTTP receiver that can refuse (down) or accept (up) batches, and keeps what it got. */
export class Receiver {
  received: DecisionRecord[] = [];
  up = true;
  /** bodies (as sent, gzipped) over this many bytes are refused with 413, as a proxy's body limit does */
  maxBody = Infinity;
  /** the record count of every batch answered, 413s included */
  batches: { count: number; status: number }[] = [];
  server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (!this.up) {
          res.writeHead(503).end();
          return;
        }
        const raw = Buffer.concat(chunks);
        const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
        const records = JSON.parse(body.toString('utf8')) as DecisionRecord[];
        const status = raw.length > this.maxBody ? 413 : 200;
        this.batches.push({ count: records.length, status });
        if (status === 413) {
          res.writeHead(413).end();
          return;
        }
        this.received.push(...records);
        this.headers = req.headers;
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/logs`;
    return this;
  }

  headers: Record<string, unknown> = {};

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
