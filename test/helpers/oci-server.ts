// A small in-memory OCI distribution server that has what Debian's registry (distribution 2.8)
// lacks: the referrers API, answered as the OCI distribution spec v1.1 describes it (200 with an
// image index for any digest, artifactType filtering announced by OCI-Filters-Applied), and
// bearer-token auth (401 challenge -> token realm). Pushes use the same monolithic upload calls.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent } from 'undici';
import { digestOf, Pusher } from './registry.js';

export interface OciServer {
  host: string;
  push: Pusher;
  /** tokens handed out by the realm, and pulls made with them */
  stats: { tokens: number; referrersCalls: number };
  /** make every request hang (a registry that stopped answering) */
  hang(on: boolean): void;
  /** answer the next `times` pulls 429, with this Retry-After header (none when undefined) */
  rateLimit(times: number, retryAfter?: string): void;
  /** pulls answered so far, 429s included */
  readonly pulls: number;
  stop(): Promise<void>;
}

interface Stored { bytes: Buffer; mediaType: string }

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function startOciServer(options: { bearer?: { user: string; password: string } } = {}): Promise<OciServer> {
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, Stored>(); // `${repo}@${digest}`
  const tags = new Map<string, string>(); // `${repo}:${tag}` -> digest
  const referrers = new Map<string, { repo: string; descriptor: Record<string, unknown> }[]>(); // subject digest
  const stats = { tokens: 0, referrersCalls: 0 };
  const TOKEN = randomUUID();
  let hanging = false;
  let limited = { times: 0, retryAfter: undefined as string | undefined };
  let pulls = 0;
  let host = '';

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    if (hanging) return; // never answer
    const url = new URL(req.url ?? '/', `http://${host}`);
    const send = (status: number, payload?: Buffer | object, headers: Record<string, string> = {}) => {
      const bytes = payload === undefined ? Buffer.alloc(0) : Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload));
      res.writeHead(status, { 'content-length': String(bytes.length), ...headers });
      res.end(bytes);
    };
    if (url.pathname === '/token') {
      const expected = `Basic ${Buffer.from(`${options.bearer?.user}:${options.bearer?.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) return send(401, { errors: [{ code: 'UNAUTHORIZED' }] });
      stats.tokens++;
      return send(200, { token: TOKEN, expires_in: 300 });
    }
    const isPull = req.method === 'GET' || req.method === 'HEAD';
    if (isPull && url.pathname !== '/v2/') pulls++;
    if (isPull && url.pathname !== '/v2/' && limited.times > 0) {
      limited.times--;
      return send(429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'pull rate limit exceeded' }] }, limited.retryAfter ? { 'retry-after': limited.retryAfter } : {});
    }
    if (options.bearer && isPull && req.headers.authorization !== `Bearer ${TOKEN}`) {
      const m = /^\/v2\/(.+?)\/(manifests|blobs|referrers|tags)\//.exec(url.pathname);
      return send(401, { errors: [{ code: 'UNAUTHORIZED' }] }, {
        'www-authenticate': `Bearer realm="http://${host}/token",service="test-registry"${m ? `,scope="repository:${m[1]}:pull"` : ''}`,
      });
    }
    if (url.pathname === '/v2/') return send(200, {});
    const upload = /^\/v2\/(.+)\/blobs\/uploads\/(.*)$/.exec(url.pathname);
    if (upload) {
      if (req.method === 'POST') return send(202, undefined, { location: `/v2/${upload[1]}/blobs/uploads/${randomUUID()}` });
      const bytes = await body(req);
      const digest = url.searchParams.get('digest') ?? '';
      if (digestOf(bytes) !== digest) return send(400, { errors: [{ code: 'DIGEST_INVALID' }] });
      blobs.set(digest, bytes);
      return send(201, undefined, { location: `/v2/${upload[1]}/blobs/${digest}` });
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/.exec(url.pathname);
    if (!m) return send(404, { errors: [{ code: 'NAME_UNKNOWN' }] });
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (kind === 'blobs') {
      const b = blobs.get(ref);
      return b ? send(200, b, { 'content-type': 'application/octet-stream', 'docker-content-digest': ref }) : send(404, { errors: [{ code: 'BLOB_UNKNOWN' }] });
    }
    if (kind === 'referrers') {
      stats.referrersCalls++;
      const artifactType = url.searchParams.get('artifactType');
      const all = (referrers.get(ref) ?? []).filter((r) => r.repo === repo).map((r) => r.descriptor);
      const manifestsOut = artifactType ? all.filter((d) => d.artifactType === artifactType) : all;
      return send(200, { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: manifestsOut }, {
        'content-type': 'application/vnd.oci.image.index.v1+json', ...(artifactType ? { 'oci-filters-applied': 'artifactType' } : {}),
      });
    }
    if (req.method === 'PUT') {
      const bytes = await body(req);
      const digest = digestOf(bytes);
      const mediaType = String(req.headers['content-type'] ?? '');
      manifests.set(`${repo}@${digest}`, { bytes, mediaType });
      if (!ref.startsWith('sha256:')) tags.set(`${repo}:${ref}`, digest);
      // a test may store garbage on purpose, to see what a client does with a broken registry
      let parsed: { subject?: { digest: string }; artifactType?: string; config?: { mediaType: string }; annotations?: Record<string, string> } = {};
      try {
        parsed = JSON.parse(bytes.toString('utf8'));
      } catch {
        // kept as is
      }
      if (parsed.subject) {
        const list = referrers.get(parsed.subject.digest) ?? [];
        list.push({ repo, descriptor: { mediaType, digest, size: bytes.length, artifactType: parsed.artifactType ?? parsed.config?.mediaType, ...(parsed.annotations ? { annotations: parsed.annotations } : {}) } });
        referrers.set(parsed.subject.digest, list);
      }
      return send(201, undefined, { 'docker-content-digest': digest, ...(parsed.subject ? { 'oci-subject': parsed.subject.digest } : {}) });
    }
    const digest = ref.startsWith('sha256:') ? ref : tags.get(`${repo}:${ref}`);
    const stored = digest ? manifests.get(`${repo}@${digest}`) : undefined;
    if (!stored) return send(404, { errors: [{ code: 'MANIFEST_UNKNOWN' }] });
    return send(200, stored.bytes, { 'content-type': stored.mediaType, 'docker-content-digest': digest! });
  };

  const server: Server = createServer((req, res) => {
    handler(req, res).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const dispatcher = new Agent();
  return {
    host,
    push: new Pusher(`http://${host}`, host, dispatcher),
    stats,
    hang(on) {
      hanging = on;
    },
    rateLimit(times, retryAfter) {
      limited = { times, retryAfter };
    },
    get pulls() {
      return pulls;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await dispatcher.close();
    },
  };
}
