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
  put(collection: string, object: Obj): void;
  remove(collection: string, name: string): void;
  close(): Promise<void>;
}

export async function startFakeApiServer(dir: string, seed: Record<string, Obj[]>): Promise<FakeApiServer> {
  let rv = 100;
  const collections = new Map<string, Map<string, Obj>>();
  const watchers = new Map<string, Set<ServerResponse>>();
  const requests: string[] = [];
  const stamp = (o: Obj): Obj => ({ ...o, metadata: { ...o.metadata, resourceVersion: String(++rv) } });
  for (const [path, items] of Object.entries(seed)) collections.set(path, new Map(items.map((o) => [o.metadata.name, stamp(o)])));

  const certs = await generateCertificates(join(dir, 'apiserver-certs'), ['127.0.0.1', 'localhost']);
  const ca = await readFile(certs.caCert);
  const server = createServer({ cert: await readFile(certs.cert), key: await readFile(certs.key) }, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}${url.searchParams.get('watch') ? '?watch' : ''}`);
    const items = collections.get(url.pathname);
    // GET of one object: /api/v1/namespaces/ns/secrets/name
    const parent = url.pathname.slice(0, url.pathname.lastIndexOf('/'));
    const single = !items ? collections.get(parent)?.get(url.pathname.slice(parent.length + 1)) : undefined;
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
      let set = watchers.get(url.pathname);
      if (!set) watchers.set(url.pathname, (set = new Set()));
      set.add(res);
      req.on('close', () => set!.delete(res));
      return;
    }
    const kind = `${[...items.values()][0]?.kind ?? 'Object'}List`;
    res.end(JSON.stringify({ apiVersion: 'v1', kind, metadata: { resourceVersion: String(rv) }, items: [...items.values()] }));
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
  const emit = (path: string, type: string, object: Obj) => {
    for (const w of watchers.get(path) ?? []) w.write(`${JSON.stringify({ type, object })}\n`);
  };
  return {
    url, kubeconfig, requests,
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
    async close() {
      for (const set of watchers.values()) for (const w of set) w.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
