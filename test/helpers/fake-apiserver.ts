// A local stand-in for the Kubernetes API server (HTTPS, its own CA): list and watch of a few resources,
// answering in the API server's wire format, so client-node runs its real list/watch code.
import { createServer } from 'node:https';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { generateCertificates } from '../../src/server/index.js';
import { join } from 'node:path';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown }; [k: string]: unknown };

export interface FakeApiServer {
  url: string;
  kubeconfig: string;
  requests: string[];
  /** every request with its query string (selectors included) */
  queries: string[];
  /** the watches open now, as path and query */
  openWatches(): string[];
  put(collection: string, object: Obj): void;
  remove(collection: string, name: string): void;
  /** the object as stored, for assertions */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  get(collection: string, name: string): any;
  /** ends every open watch stream, as an API server restart or a load balancer does */
  disconnectWatches(): void;
  /** the next watch of this collection answers 410 Gone (its resourceVersion is too old): the client must list again */
  expireNextWatch(collection: string): void;
  /** changes the collection without telling open watches (what a client misses while disconnected) */
  putSilently(collection: string, object: Obj): void;
  /** the next request with this method to this path answers this status (e.g. a 409 race) */
  failNext(method: string, path: string, status: number): void;
  /** every request to this path answers 403 Forbidden until allowed again (RBAC that lacks a rule) */
  forbid(path: string, forbidden?: boolean): void;
  /** discovery: the API server starts serving a resource (a CustomResourceDefinition is installed) */
  serveResource(apiVersion: string, resource: { name: string; kind: string; namespaced: boolean }): void;
  /** the API server stops serving a resource (its CRD is deleted): discovery and the collection go */
  dropResource(apiVersion: string, plural: string): void;
  /** how SubjectAccessReviews are answered (default: allowed), as the API server's authorizer would */
  answerAccessReviews(answer: (spec: AccessReviewSpec) => { allowed: boolean; reason?: string; evaluationError?: string } | Promise<{ allowed: boolean; reason?: string; evaluationError?: string }>): void;
  /** every SubjectAccessReview's spec received */
  accessReviews: AccessReviewSpec[];
  close(): Promise<void>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AccessReviewSpec = { user?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]>; resourceAttributes?: Record<string, any>; nonResourceAttributes?: { verb: string; path: string } };

/** A list or watch's fieldSelector (metadata.name, metadata.namespace) and labelSelector, as the API server applies them. */
function selects(params: URLSearchParams): (o: Obj) => boolean {
  const fields = (params.get('fieldSelector') ?? '').split(',').filter(Boolean).map((f) => f.split('=') as [string, string]);
  const terms = (params.get('labelSelector') ?? '').match(/[^,(]+(\([^)]*\))?/g) ?? [];
  const labelTests = terms.map((term) => {
    const m = /^\s*(!?)([^\s=!]+)\s*(?:(=|==|!=)\s*(\S*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$/.exec(term);
    if (!m) throw new Error(`unparsable label selector term ${term}`);
    const [, not, key, eq, value, set, values] = m;
    const list = (values ?? '').split(',').map((v) => v.trim());
    return (labels: Record<string, string>) => {
      const has = Object.hasOwn(labels, key!);
      if (eq) return eq === '!=' ? labels[key!] !== value : labels[key!] === value;
      if (set) return set === 'in' ? has && list.includes(labels[key!]!) : !has || !list.includes(labels[key!]!);
      return not ? !has : has;
    };
  });
  return (o) => fields.every(([f, v]) => (f === 'metadata.name' ? o.metadata.name === v : f === 'metadata.namespace' ? o.metadata.namespace === v : false))
    && labelTests.every((test) => test((o.metadata.labels ?? {}) as Record<string, string>));
}

/** /api/v1/configmaps is every /api/v1/namespaces/NS/configmaps, as a cluster-wide list or watch (so for a group's /apis/G/V/…) */
const clusterWide = (path: string) => /^(?:\/api\/v1|\/apis\/[^/]+\/[^/]+)\/(?!namespaces$)[a-z]+$/.test(path);
/** the cluster-wide path of a namespaced collection: /api/v1/namespaces/NS/configmaps is under /api/v1/configmaps */
const clusterWideOf = (path: string) => {
  const m = /^(\/api\/v1|\/apis\/[^/]+\/[^/]+)\/namespaces\/[^/]+\/([a-z]+)$/.exec(path);
  return m ? `${m[1]}/${m[2]}` : undefined;
};

export async function startFakeApiServer(dir: string, seed: Record<string, Obj[]>): Promise<FakeApiServer> {
  let rv = 100;
  const collections = new Map<string, Map<string, Obj>>();
  const watchers = new Map<string, Set<{ res: ServerResponse; selects: (o: Obj) => boolean; query: string }>>();
  const requests: string[] = [];
  const queries: string[] = [];
  const accessReviews: AccessReviewSpec[] = [];
  let answerAccessReview: Parameters<FakeApiServer['answerAccessReviews']>[0] = () => ({ allowed: true });
  const stamp = (o: Obj): Obj => ({ ...o, metadata: { ...o.metadata, resourceVersion: String(++rv) } });
  for (const [path, items] of Object.entries(seed)) collections.set(path, new Map(items.map((o) => [o.metadata.name, stamp(o)])));

  // every event, so a watch resumed from a resourceVersion gets what it missed, as from etcd
  const history = new Map<string, { type: string; object: Obj }[]>();
  const emit = (path: string, type: string, object: Obj) => {
    history.set(path, [...(history.get(path) ?? []), { type, object }]);
    const all = clusterWideOf(path);
    if (all) history.set(all, [...(history.get(all) ?? []), { type, object }]);
    for (const w of [...(watchers.get(path) ?? []), ...(all ? watchers.get(all) ?? [] : [])]) {
      if (!w.res.writableEnded && w.selects(object)) w.res.write(`${JSON.stringify({ type, object })}\n`);
    }
  };
  const itemsOf = (path: string): Map<string, Obj> | undefined => {
    // a cluster-scoped resource's own collection, else every namespace's of a namespaced one
    if (!clusterWide(path) || collections.has(path)) return collections.get(path);
    const all = new Map<string, Obj>();
    let stored = false;
    for (const [p, items] of collections) {
      if (clusterWideOf(p) !== path) continue;
      stored = true;
      for (const o of items.values()) all.set(`${o.metadata.namespace}/${o.metadata.name}`, o);
    }
    // a group's resource nothing is stored under: an empty list while discovery serves it, else not found (its CRD is gone)
    if (!stored && path.startsWith('/apis/') && !(discovery.get(path.slice(0, path.lastIndexOf('/'))) ?? []).some((r) => r.name === path.slice(path.lastIndexOf('/') + 1))) return undefined;
    return all;
  };
  const certs = await generateCertificates(join(dir, 'apiserver-certs'), ['127.0.0.1', 'localhost']);
  const ca = await readFile(certs.caCert);
  const failures = new Map<string, number>();
  const forbidden = new Set<string>();
  /** discovery documents by path (/apis/GROUP/VERSION) */
  const discovery = new Map<string, { name: string; kind: string; namespaced: boolean }[]>();
  const expired = new Set<string>();
  const status = (res: ServerResponse, code: number, reason: string) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code }));
  };
  const server = createServer({ cert: await readFile(certs.cert), key: await readFile(certs.key) }, async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}${url.searchParams.get('watch') ? '?watch' : ''}`);
    queries.push(`${req.method} ${url.pathname}${url.search}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    if (forbidden.has(url.pathname)) return status(res, 403, 'Forbidden');
    // group discovery: the core version, and every group some resource is served in (one version each here)
    if (req.method === 'GET' && url.pathname === '/api') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ kind: 'APIVersions', versions: ['v1'] }));
    }
    if (req.method === 'GET' && url.pathname === '/apis') {
      const groups = new Map<string, string[]>();
      for (const path of discovery.keys()) {
        const m = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
        if (m) groups.set(m[1]!, [...(groups.get(m[1]!) ?? []), m[2]!]);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ kind: 'APIGroupList', apiVersion: 'v1', groups: [...groups].map(([name, versions]) => ({
        name, versions: versions.map((version) => ({ groupVersion: `${name}/${version}`, version })), preferredVersion: { groupVersion: `${name}/${versions[0]}`, version: versions[0] },
      })) }));
    }
    const served = discovery.get(url.pathname);
    if (served && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const groupVersion = url.pathname.replace(/^\/apis?\//, '');
      return res.end(JSON.stringify({ kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources: served.map((r) => ({ ...r, singularName: '', verbs: ['get', 'list', 'watch'] })) }));
    }
    const injected = failures.get(`${req.method} ${url.pathname}`);
    if (injected) {
      failures.delete(`${req.method} ${url.pathname}`);
      return status(res, injected, injected === 409 ? 'Conflict' : 'InternalError');
    }
    if (req.method === 'POST' && url.pathname === '/apis/authorization.k8s.io/v1/subjectaccessreviews') {
      accessReviews.push(body.spec);
      const answer = await answerAccessReview(body.spec);
      res.writeHead(201, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ ...body, status: answer }));
    }
    const items = itemsOf(url.pathname);
    if (req.method === 'POST') {
      const target = items ?? new Map<string, Obj>();
      collections.set(url.pathname, target);
      if (target.has(body.metadata.name)) return status(res, 409, 'AlreadyExists');
      const stored = stamp(body);
      target.set(body.metadata.name, stored);
      emit(url.pathname, 'ADDED', stored);
      res.writeHead(201, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(stored));
    }
    // one object: /api/v1/namespaces/ns/secrets/name
    const parent = url.pathname.slice(0, url.pathname.lastIndexOf('/'));
    const name = url.pathname.slice(parent.length + 1);
    const single = !items ? collections.get(parent)?.get(name) : undefined;
    if (single && req.method === 'PUT') {
      if (body.metadata?.resourceVersion !== single.metadata.resourceVersion) return status(res, 409, 'Conflict');
      const stored = stamp(body);
      collections.get(parent)!.set(name, stored);
      emit(parent, 'MODIFIED', stored);
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(stored));
    }
    if (single && req.method === 'PATCH') {
      const doc = structuredClone(single) as Record<string, unknown>;
      for (const op of body as { op: string; path: string; value?: unknown }[]) {
        const parts = op.path.split('/').slice(1);
        const last = parts.pop()!;
        let at: any = doc;
        for (const p of parts) at = at?.[p];
        if (op.op === 'test' && at?.[last] !== op.value) return status(res, 422, 'Invalid');
        if ((op.op === 'replace' || op.op === 'add') && at) at[last] = op.value;
      }
      const stored = stamp(doc as Obj);
      collections.get(parent)!.set(name, stored);
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(stored));
    }
    if (single && req.method === 'DELETE') {
      collections.get(parent)!.delete(name);
      emit(parent, 'DELETED', stamp(single));
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Success', code: 200 }));
    }
    if (single) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(single));
      return;
    }
    if (!items) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    res.setHeader('content-type', 'application/json');
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      res.writeHead(200);
      res.flushHeaders();
      if (expired.delete(url.pathname)) {
        // what the API server sends when a watch starts from a compacted resourceVersion
        res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 } })}\n`);
        return;
      }
      const watcher = { res, selects: selects(url.searchParams), query: `${url.pathname}${url.search}` };
      const since = Number(url.searchParams.get('resourceVersion') ?? NaN);
      if (Number.isFinite(since)) {
        for (const e of history.get(url.pathname) ?? []) if (Number(e.object.metadata.resourceVersion) > since && watcher.selects(e.object)) res.write(`${JSON.stringify(e)}\n`);
      }
      let set = watchers.get(url.pathname);
      if (!set) watchers.set(url.pathname, (set = new Set()));
      set.add(watcher);
      // the response's close, not the request's: a request emits close once its body is read
      res.on('close', () => set!.delete(watcher));
      return;
    }
    const kind = `${[...items.values()][0]?.kind ?? 'Object'}List`;
    // paged as the API server pages: limit, and a continue token for the rest
    const selected = [...items.values()].filter(selects(url.searchParams));
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const from = Number(url.searchParams.get('continue') ?? 0);
    const page = limit ? selected.slice(from, from + limit) : selected;
    const more = limit > 0 && from + limit < selected.length;
    res.end(JSON.stringify({ apiVersion: 'v1', kind, metadata: { resourceVersion: String(rv), ...(more ? { continue: String(from + limit) } : {}) }, items: page }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "${url}", certificate-authority-data: ${ca.toString('base64')}}}]
users: [{name: fake, user: {token: not-a-secret}}]
contexts: [{name: fake, context: {cluster: fake, user: fake}}]
current-context: fake
`);
  return {
    url, kubeconfig, requests, queries,
    openWatches: () => [...watchers.values()].flatMap((set) => [...set].filter((w) => !w.res.writableEnded).map((w) => w.query)),
    put(path, object) {
      const items = collections.get(path) ?? new Map<string, Obj>();
      collections.set(path, items);
      const existed = items.has(object.metadata.name);
      const stamped = stamp(object);
      items.set(object.metadata.name, stamped);
      emit(path, existed ? 'MODIFIED' : 'ADDED', stamped);
    },
    remove(path, name) {
      const o = collections.get(path)?.get(name);
      if (!o) return;
      collections.get(path)!.delete(name);
      emit(path, 'DELETED', stamp(o));
    },
    disconnectWatches() {
      for (const set of watchers.values()) {
        for (const w of set) w.res.end();
        set.clear();
      }
    },
    expireNextWatch(path) {
      expired.add(path);
    },
    putSilently(path, object) {
      const items = collections.get(path) ?? new Map<string, Obj>();
      collections.set(path, items);
      items.set(object.metadata.name, stamp(object));
    },
    get(path, name) {
      return collections.get(path)?.get(name);
    },
    serveResource(apiVersion, resource) {
      const path = `/${apiVersion.includes('/') ? 'apis' : 'api'}/${apiVersion}`;
      discovery.set(path, [...(discovery.get(path) ?? []), resource]);
    },
    dropResource(apiVersion, plural) {
      const base = `/${apiVersion.includes('/') ? 'apis' : 'api'}/${apiVersion}`;
      discovery.set(base, (discovery.get(base) ?? []).filter((r) => r.name !== plural));
      collections.delete(`${base}/${plural}`);
    },
    forbid(path, on = true) {
      if (on) forbidden.add(path);
      else forbidden.delete(path);
    },
    accessReviews,
    answerAccessReviews(answer) {
      answerAccessReview = answer;
    },
    failNext(method, path, code) {
      failures.set(`${method} ${path}`, code);
    },
    async close() {
      for (const set of watchers.values()) for (const w of set) w.res.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
