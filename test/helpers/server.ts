// Starts the real trustgate HTTPS server on a loopback port, with its own certificates.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { defaultConfig, type ServeConfig } from '../../src/config.js';
import { startServer, type RunningServer } from '../../src/server/index.js';

export interface TestServer extends RunningServer {
  ca: Buffer;
  dir: string;
  post(path: string, body: string | object, headers?: Record<string, string>): Promise<HttpResult>;
  get(path: string): Promise<HttpResult>;
}

export interface HttpResult { status: number; headers: Record<string, unknown>; text: string; json(): any }

export function https(url: string, ca: Buffer, options: { method?: string; body?: string | Buffer; headers?: Record<string, string>; minVersion?: string; maxVersion?: string; cert?: string; key?: string } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: options.method ?? 'GET', ca, headers: options.headers, agent: false, minVersion: options.minVersion as never, maxVersion: options.maxVersion as never, cert: options.cert, key: options.key }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on('error', reject);
    // in one piece, so Node sends a Content-Length as the API server does (a write before end
    // would send it chunked, which the server must treat as a body as large as its limit)
    req.end(options.body);
  });
}

/** ca: the CA that signed a given --tls-cert; by default the generated development CA */
export async function startTestServer(overrides: Partial<ServeConfig> = {}, givenCa?: Buffer): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-test-'));
  const config: ServeConfig = {
    ...defaultConfig(), listen: { host: '127.0.0.1', port: 0 }, certDir: join(dir, 'certs'), logLevel: 'silent', replica: 'test-0',
    auditSpool: join(dir, 'spool'), audit: [], ...overrides,
  };
  const server = await startServer(config, pino({ level: 'silent' }));
  const ca = givenCa ?? (await readFile(server.caCertFile!));
  return {
    ...server,
    ca,
    dir,
    post: (path, body, headers = { 'content-type': 'application/json' }) =>
      https(`${server.url}${path}`, ca, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers }),
    get: (path) => https(`${server.url}${path}`, ca),
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;
export async function readFixture(name: string): Promise<any> {
  return JSON.parse(await readFile(fixture(name), 'utf8'));
}
