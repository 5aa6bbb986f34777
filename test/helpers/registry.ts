// Debian's docker-registry (CNCF distribution 2.8) on a loopback port, optionally with TLS and
// htpasswd basic auth, plus a small push client for tests (trustgate's own client is pull-only).
// Missing docker-registry skips with a notice, except under CI=true, where that is a failure.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { generateCertificates } from '../../src/server/index.js';
import { freePort } from './services.js';

export interface TestRegistry {
  /** 127.0.0.1:PORT, as it appears in image references */
  host: string;
  /** PEM of the CA that signed its certificate, when started with TLS */
  ca?: string;
  push: Pusher;
  stop(): Promise<void>;
}

export interface StartOptions {
  tls?: boolean;
  /** user -> password, enforced with htpasswd basic auth */
  users?: Record<string, string>;
}

const BINARY = '/usr/bin/docker-registry';

async function waitForHttp(url: string, dispatcher: Agent): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const res = await request(url, { dispatcher });
      await res.body.dump();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`docker-registry did not answer at ${url}`);
}

export async function startRegistry(options: StartOptions = {}): Promise<TestRegistry | string> {
  if (!existsSync(BINARY)) return 'docker-registry is not installed (apt-get install docker-registry)';
  const dir = mkdtempSync(join(tmpdir(), 'tg-registry-'));
  const port = await freePort();
  let tls = '';
  let ca: string | undefined;
  if (options.tls) {
    const certs = await generateCertificates(join(dir, 'certs'), ['localhost', '127.0.0.1']);
    ca = readFileSync(certs.caCert, 'utf8');
    tls = `\n  tls:\n    certificate: ${certs.cert}\n    key: ${certs.key}`;
  }
  let auth = '';
  if (options.users) {
    const lines = Object.entries(options.users).map(([u, p]) => execFileSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' }).trim());
    writeFileSync(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
    auth = `auth:\n  htpasswd:\n    realm: trustgate-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  writeFileSync(join(dir, 'config.yml'), `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
${auth}http:
  addr: 127.0.0.1:${port}
  secret: trustgate-test${tls}
`);
  const proc: ChildProcess = spawn(BINARY, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d) => (stderr += d));
  const host = `127.0.0.1:${port}`;
  const base = `${options.tls ? 'https' : 'http'}://${host}`;
  const dispatcher = new Agent({ connect: { ca } });
  try {
    await waitForHttp(`${base}/v2/`, dispatcher);
  } catch (err) {
    proc.kill('SIGKILL');
    return `${(err as Error).message}: ${stderr.slice(0, 500)}`;
  }
  const basic = options.users ? `Basic ${Buffer.from(Object.entries(options.users)[0]!.join(':')).toString('base64')}` : undefined;
  return {
    host,
    ca,
    push: new Pusher(base, host, dispatcher, basic),
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      await dispatcher.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function digestOf(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface PushedManifest {
  digest: string;
  bytes: Buffer;
  /** host/repo@digest */
  ref: string;
}

/** Pushes blobs and manifests with the distribution API's monolithic upload. */
export class Pusher {
  constructor(readonly base: string, readonly host: string, readonly dispatcher: Agent, readonly authorization?: string) {}

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.authorization ? { authorization: this.authorization, ...extra } : extra;
  }

  async blob(repo: string, bytes: Buffer | string): Promise<{ digest: string; size: number }> {
    const body = Buffer.from(bytes);
    const digest = digestOf(body);
    const start = await request(`${this.base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: this.#headers(), dispatcher: this.dispatcher });
    await start.body.dump();
    if (start.statusCode !== 202) throw new Error(`blob upload start: HTTP ${start.statusCode}`);
    const location = new URL(String(start.headers.location), this.base);
    location.searchParams.set('digest', digest);
    const put = await request(location.toString(), { method: 'PUT', body, headers: this.#headers({ 'content-type': 'application/octet-stream', 'content-length': String(body.length) }), dispatcher: this.dispatcher });
    await put.body.dump();
    if (put.statusCode !== 201) throw new Error(`blob upload: HTTP ${put.statusCode}`);
    return { digest, size: body.length };
  }

  async manifest(repo: string, reference: string | undefined, manifest: object | Buffer, mediaType?: string): Promise<PushedManifest> {
    const bytes = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
    const digest = digestOf(bytes);
    const type = mediaType ?? (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
    const res = await request(`${this.base}/v2/${repo}/manifests/${reference ?? digest}`, { method: 'PUT', body: bytes, headers: this.#headers({ 'content-type': type }), dispatcher: this.dispatcher });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`manifest push ${repo}:${reference}: HTTP ${res.statusCode} ${text}`);
    return { digest, bytes, ref: `${this.host}/${repo}@${digest}` };
  }

  /** A small runnable-looking image: an OCI manifest with a config and one layer of random bytes. */
  async image(repo: string, tag: string, seed = tag): Promise<PushedManifest> {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] }, seed }));
    const layer = Buffer.from(`layer of ${repo}:${seed} ${Math.random()}`);
    const c = await this.blob(repo, config);
    const l = await this.blob(repo, layer);
    return this.manifest(repo, tag, {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: c.digest, size: c.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size }],
    });
  }

  /** An OCI index over the given platform manifests. */
  async index(repo: string, tag: string, platforms: { manifest: PushedManifest; architecture: string }[]): Promise<PushedManifest> {
    return this.manifest(repo, tag, {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: platforms.map((p) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: p.manifest.digest, size: p.manifest.bytes.length, platform: { architecture: p.architecture, os: 'linux' } })),
    });
  }
}
