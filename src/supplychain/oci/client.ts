// Our OCI distribution client (there is no JavaScript ORAS): manifests and indexes, blobs with
// digest checks, tags, referrers with the tag-schema fallback. Pull only. Every read is bounded
// in size and time, retried a bounded number of times, and limited per registry.
import { createHash } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { Agent, request, type Dispatcher } from 'undici';
import { basicAuthorization, CredentialStore, parseChallenge, type Credential } from './auth.js';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;
const MANIFEST_ACCEPT = Object.values(MEDIA_TYPES).join(', ');
const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList]);

export type RegistryErrorCode = 'REGISTRY_UNAVAILABLE' | 'REGISTRY_AUTH_FAILED' | 'IMAGE_NOT_FOUND' | 'REGISTRY_NOT_ALLOWED' | 'CONTENT_INVALID';

export class RegistryError extends Error {
  constructor(readonly code: RegistryErrorCode, message: string) {
    super(message);
  }
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string; variant?: string };
}

export interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  manifest: Manifest;
  isIndex: boolean;
}

export interface RegistryClientOptions {
  credentials?: CredentialStore;
  /** HOST:PORT reached over plain HTTP; every other registry is HTTPS only */
  insecure?: Iterable<string>;
  /** extra CAs (PEM) trusted for registry TLS, besides the system roots */
  ca?: string[];
  timeoutMs?: number;
  retries?: number;
  maxManifestBytes?: number;
  maxConcurrencyPerRegistry?: number;
  /** every HTTP exchange: host, outcome (HTTP status or "error"), milliseconds; for metrics */
  observe?: (host: string, outcome: string, ms: number) => void;
}

/** What one look-up may carry: the request deadline, and pull-secret credentials of the pod. */
export interface RequestScope {
  signal?: AbortSignal;
  credentials?: CredentialStore;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A small semaphore: at most `limit` requests in flight to one registry. */
class Gate {
  #active = 0;
  #waiting: (() => void)[] = [];
  constructor(readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.limit) await new Promise<void>((r) => this.#waiting.push(r));
    this.#active++;
    try {
      return await fn();
    } finally {
      this.#active--;
      this.#waiting.shift()?.();
    }
  }
}

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export class RegistryClient {
  readonly #credentials: CredentialStore;
  readonly #insecure: Set<string>;
  readonly #dispatcher: Dispatcher;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #maxManifestBytes: number;
  readonly #gates = new Map<string, Gate>();
  readonly #maxConcurrency: number;
  readonly #observe?: RegistryClientOptions['observe'];
  /** bearer tokens by registry + scope, until shortly before they expire */
  readonly #tokens = new Map<string, { token: string; until: number }>();
  /** registries known to lack the referrers API (404 on /referrers), so the fallback is used at once */
  readonly #noReferrersApi = new Set<string>();

  constructor(options: RegistryClientOptions = {}) {
    this.#credentials = options.credentials ?? new CredentialStore();
    this.#insecure = new Set([...(options.insecure ?? [])].map((h) => h.toLowerCase()));
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#retries = options.retries ?? 2;
    this.#maxManifestBytes = options.maxManifestBytes ?? 4 * 1024 * 1024;
    this.#maxConcurrency = options.maxConcurrencyPerRegistry ?? 8;
    this.#observe = options.observe;
    // custom CAs are added to, not instead of, the system roots
    const ca = options.ca?.length ? [...options.ca, ...rootCertificates] : undefined;
    this.#dispatcher = new Agent({ connect: { ca, minVersion: 'TLSv1.2' }, keepAliveTimeout: 30_000, connections: this.#maxConcurrency });
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  #base(registry: string): string {
    const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
    return `${this.#insecure.has(registry) ? 'http' : 'https'}://${host}`;
  }

  #gate(registry: string): Gate {
    let g = this.#gates.get(registry);
    if (!g) this.#gates.set(registry, (g = new Gate(this.#maxConcurrency)));
    return g;
  }

  /** One HTTP exchange, body capped at maxBytes; network failures become REGISTRY_UNAVAILABLE. */
  async #send(url: string, headers: Record<string, string>, maxBytes: number, scope: RequestScope, method: 'GET' | 'HEAD' = 'GET'): Promise<Response> {
    const signal = scope.signal ? AbortSignal.any([scope.signal, AbortSignal.timeout(this.#timeoutMs)]) : AbortSignal.timeout(this.#timeoutMs);
    const started = performance.now();
    let outcome = 'error';
    try {
      const res = await request(url, { method, headers, dispatcher: this.#dispatcher, signal, maxRedirections: 0 } as Parameters<typeof request>[1]);
      // an abandoned body errors when destroyed; that error is ours and expected
      res.body.on('error', () => {});
      const length = Number(res.headers['content-length'] ?? 0);
      if (length > maxBytes) {
        res.body.destroy();
        throw new RegistryError('CONTENT_INVALID', `${url}: ${length} bytes exceeds the ${maxBytes}-byte limit`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > maxBytes) {
          res.body.destroy();
          throw new RegistryError('CONTENT_INVALID', `${url}: response exceeds the ${maxBytes}-byte limit`);
        }
        chunks.push(chunk as Buffer);
      }
      outcome = String(res.statusCode);
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
    } catch (err) {
      if (err instanceof RegistryError) throw err;
      const why = scope.signal?.aborted ? 'the request deadline passed' : signal.aborted ? `no answer within ${this.#timeoutMs} ms` : (err as Error).message;
      throw new RegistryError('REGISTRY_UNAVAILABLE', `${new URL(url).host}: ${why}`);
    } finally {
      this.#observe?.(new URL(url).host, outcome, performance.now() - started);
    }
  }

  async #token(registry: string, challenge: Record<string, string>, scopeName: string, credential: Credential | undefined, scope: RequestScope): Promise<string> {
    const key = tokenKey(registry, scopeName, credential);
    const cached = this.#tokens.get(key);
    if (cached && cached.until > Date.now()) return cached.token;
    const realm = challenge.realm;
    if (!realm || !/^https?:\/\//.test(realm)) throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: bearer challenge without a usable realm`);
    const url = new URL(realm);
    if (url.protocol === 'http:' && !this.#insecure.has(registry)) throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: refusing a token realm over plain HTTP (${url.host})`);
    if (challenge.service) url.searchParams.set('service', challenge.service);
    url.searchParams.set('scope', scopeName);
    const headers: Record<string, string> = {};
    if (credential?.username || credential?.password) headers.authorization = basicAuthorization(credential);
    const res = await this.#send(url.toString(), headers, 64 * 1024, scope);
    if (res.status === 401 || res.status === 403) throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: the token service refused ${credential ? `the credentials of ${credential.username}` : 'anonymous access'} (HTTP ${res.status})`);
    if (res.status !== 200) throw new RegistryError('REGISTRY_UNAVAILABLE', `${registry}: token service answered ${statusMessage(res)}`);
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: token service answered no JSON`);
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: token service answered no token`);
    const ttl = Math.max(0, (body.expires_in ?? 60) - 10) * 1000;
    this.#tokens.set(key, { token, until: Date.now() + ttl });
    return token;
  }

  /** GET with auth and bounded retries of transient failures (network, 429, 5xx). */
  async #get(registry: string, repository: string, path: string, accept: string | undefined, maxBytes: number, scope: RequestScope): Promise<Response> {
    const url = `${this.#base(registry)}/v2/${repository}/${path}`;
    const credential = scope.credentials?.get(registry) ?? this.#credentials.get(registry);
    const scopeName = `repository:${repository}:pull`;
    return this.#gate(registry).run(async () => {
      let authorization: string | undefined;
      const known = this.#tokens.get(tokenKey(registry, scopeName, credential));
      if (known && known.until > Date.now()) authorization = `Bearer ${known.token}`;
      for (let attempt = 0; ; attempt++) {
        const headers: Record<string, string> = { 'user-agent': 'trustgate' };
        if (accept) headers.accept = accept;
        if (authorization) headers.authorization = authorization;
        let res: Response;
        try {
          res = await this.#send(url, headers, maxBytes, scope);
        } catch (err) {
          if (err instanceof RegistryError && err.code === 'REGISTRY_UNAVAILABLE' && attempt < this.#retries && !scope.signal?.aborted) {
            await backoff(attempt);
            continue;
          }
          throw err;
        }
        if (res.status === 401) {
          if (authorization?.startsWith('Basic') || (authorization && attempt > 0)) {
            throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: ${credential ? `the credentials of ${credential.username}` : 'anonymous access'} refused for ${repository} (HTTP 401)`);
          }
          const challenge = parseChallenge(res.headers['www-authenticate'] as string | undefined);
          if (!challenge) throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: HTTP 401 without a usable WWW-Authenticate challenge`);
          if (challenge.scheme === 'basic') {
            if (!credential) throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: asks for basic credentials and none are configured (--registry-config or imagePullSecrets)`);
            if (!url.startsWith('https:') && !this.#insecure.has(registry)) throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: refusing to send credentials over plain HTTP`);
            authorization = basicAuthorization(credential);
          } else {
            authorization = `Bearer ${await this.#token(registry, challenge.params, challenge.params.scope ?? scopeName, credential, scope)}`;
          }
          continue;
        }
        if (res.status === 403) throw new RegistryError('REGISTRY_AUTH_FAILED', `${registry}: access to ${repository} forbidden (HTTP 403)`);
        // a registry that asks for a pause longer than a backoff is not asked again within this
        // review (Docker Hub's pull limit answers in hours): its 429 is the answer
        if (res.status === 429 && (retryAfterSeconds(res.headers['retry-after']) ?? 0) > MAX_RETRY_AFTER_S) return res;
        if ((res.status === 429 || res.status >= 500) && attempt < this.#retries) {
          await backoff(attempt);
          continue;
        }
        return res;
      }
    });
  }

  /** A manifest or index by tag or digest; its digest is computed from the bytes, never trusted from headers. */
  async getManifest(registry: string, repository: string, reference: string, scope: RequestScope = {}): Promise<FetchedManifest> {
    const res = await this.#get(registry, repository, `manifests/${reference}`, MANIFEST_ACCEPT, this.#maxManifestBytes, scope);
    if (res.status === 404) throw new RegistryError('IMAGE_NOT_FOUND', `${registry}/${repository}: no manifest ${reference}`);
    if (res.status !== 200) throw new RegistryError('REGISTRY_UNAVAILABLE', `${registry}/${repository}: manifest ${reference}: ${statusMessage(res)}`);
    const digest = sha256Digest(res.body);
    if (reference.includes(':') && reference !== digest) {
      throw new RegistryError('CONTENT_INVALID', `${registry}/${repository}: the registry served ${digest} for ${reference}`);
    }
    let manifest: Manifest;
    try {
      manifest = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new RegistryError('CONTENT_INVALID', `${registry}/${repository}@${digest}: the manifest is not JSON`);
    }
    const mediaType = manifest.mediaType ?? String(res.headers['content-type'] ?? '').split(';')[0]!;
    return { digest, mediaType, bytes: res.body, manifest, isIndex: INDEX_TYPES.has(mediaType) || Array.isArray(manifest.manifests) };
  }

  /** A blob, verified against its digest. */
  async getBlob(registry: string, repository: string, digest: string, maxBytes: number, scope: RequestScope = {}): Promise<Buffer> {
    if (!DIGEST.test(digest)) throw new RegistryError('CONTENT_INVALID', `unsupported blob digest ${JSON.stringify(digest)}`);
    let res = await this.#get(registry, repository, `blobs/${digest}`, undefined, maxBytes, scope);
    // registries commonly redirect blobs to storage; follow once, without our credentials
    if (res.status === 307 || res.status === 302 || res.status === 301) {
      const location = res.headers.location as string | undefined;
      if (!location) throw new RegistryError('REGISTRY_UNAVAILABLE', `${registry}: blob redirect without Location`);
      const target = new URL(location, `${this.#base(registry)}/`);
      if (target.protocol !== 'https:' && !this.#insecure.has(registry)) throw new RegistryError('REGISTRY_UNAVAILABLE', `${registry}: refusing a blob redirect to plain HTTP`);
      res = await this.#send(target.toString(), { 'user-agent': 'trustgate' }, maxBytes, scope);
    }
    if (res.status === 404) throw new RegistryError('IMAGE_NOT_FOUND', `${registry}/${repository}: no blob ${digest}`);
    if (res.status !== 200) throw new RegistryError('REGISTRY_UNAVAILABLE', `${registry}/${repository}: blob ${digest}: ${statusMessage(res)}`);
    if (sha256Digest(res.body) !== digest) throw new RegistryError('CONTENT_INVALID', `${registry}/${repository}: blob ${digest} does not match its digest`);
    return res.body;
  }

  /** All tags of a repository, following Link pagination, at most maxTags. */
  async listTags(registry: string, repository: string, scope: RequestScope = {}, maxTags = 10_000): Promise<string[]> {
    const tags: string[] = [];
    let path: string | undefined = 'tags/list?n=1000';
    while (path && tags.length < maxTags) {
      const res = await this.#get(registry, repository, path, 'application/json', 4 * 1024 * 1024, scope);
      if (res.status === 404) throw new RegistryError('IMAGE_NOT_FOUND', `${registry}/${repository}: no such repository`);
      if (res.status !== 200) throw new RegistryError('REGISTRY_UNAVAILABLE', `${registry}/${repository}: tags: ${statusMessage(res)}`);
      try {
        tags.push(...((JSON.parse(res.body.toString('utf8')) as { tags?: string[] | null }).tags ?? []));
      } catch {
        throw new RegistryError('CONTENT_INVALID', `${registry}/${repository}: the tag list is not JSON`);
      }
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(String(res.headers.link ?? ''));
      path = link ? link[1]!.replace(new RegExp(`^.*?/v2/${repository}/`), '') : undefined;
    }
    return tags.slice(0, maxTags);
  }

  /**
   * Referrers of a manifest: the referrers API when the registry has it, else the tag-schema
   * fallback (an index tagged sha256-<hex>). Filtered by artifactType on our side too, since
   * registries may ignore the filter.
   */
  async referrers(registry: string, repository: string, digest: string, artifactType?: string, scope: RequestScope = {}): Promise<{ descriptors: Descriptor[]; via: 'referrers-api' | 'referrers-tag' }> {
    const keep = (ds: Descriptor[] | undefined) => (ds ?? []).filter((d) => d && typeof d.digest === 'string' && (!artifactType || d.artifactType === artifactType));
    if (!this.#noReferrersApi.has(registry)) {
      const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
      const res = await this.#get(registry, repository, `referrers/${digest}${query}`, MEDIA_TYPES.ociIndex, this.#maxManifestBytes, scope);
      if (res.status === 200) {
        try {
          return { descriptors: keep((JSON.parse(res.body.toString('utf8')) as Manifest).manifests), via: 'referrers-api' };
        } catch {
          throw new RegistryError('CONTENT_INVALID', `${registry}/${repository}: the referrers answer is not JSON`);
        }
      }
      if (res.status !== 404) throw new RegistryError('REGISTRY_UNAVAILABLE', `${registry}/${repository}: referrers: ${statusMessage(res)}`);
      // distribution 2.x and others: no referrers API (spec: 404 means use the tag schema)
      this.#noReferrersApi.add(registry);
    }
    try {
      const index = await this.getManifest(registry, repository, digest.replace(':', '-'), scope);
      return { descriptors: keep(index.manifest.manifests), via: 'referrers-tag' };
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'IMAGE_NOT_FOUND') return { descriptors: [], via: 'referrers-tag' };
      throw err;
    }
  }
}


/** Tokens are per registry, scope and identity: a pull secret's token never serves another pod's anonymous pull. */
function tokenKey(registry: string, scope: string, credential: Credential | undefined): string {
  return `${registry} ${scope} ${credential?.username ?? ''}`;
}

/** the longest Retry-After worth waiting for inside one review's deadline */
const MAX_RETRY_AFTER_S = 1;

/** Retry-After in seconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterSeconds(header: unknown, now = Date.now()): number | undefined {
  if (typeof header !== 'string' || !header.trim()) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/** What a status other than the expected one means, for a RegistryError message. */
function statusMessage(res: Response): string {
  if (res.status !== 429) return `HTTP ${res.status}`;
  const after = retryAfterSeconds(res.headers['retry-after']);
  return `rate limited by the registry (HTTP 429${after === undefined ? '' : `, retry after ${after} s`})`;
}

async function backoff(attempt: number): Promise<void> {
  await new Promise((r) => setTimeout(r, 50 * 2 ** attempt + Math.random() * 50));
}
