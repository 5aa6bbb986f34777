// `trustgate scan`: the policies over a set of manifests (what kubectl apply, Flux or a CI job
// would send), each object judged as its CREATE would be, to see before a merge or before a
// switch to enforce what would be denied. The same admission path as the server's.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMap, isSeq, LineCounter, parseAllDocuments, type Node as YamlNode } from 'yaml';
import { admit, AdmissionInputError, type AdmissionServices } from '../admission/index.js';
import { reviewForObject } from '../admission/synthesize.js';
import type { KubeObject, UserInfo } from '../admission/types.js';
import type { PolicyResult } from './evaluate.js';

/** An object from a manifest, with where it was written. */
export interface ManifestObject {
  object: KubeObject;
  /** file:line of the document, or of the item in a List; `cluster` for objects read from one */
  where: string;
  /** the manifest file and line, when it came from one (`-` reads as <stdin>) */
  file?: string;
  line?: number;
  /**
   * where the cluster serves it, when known (objects read from a cluster): the true plural
   * and scope, which a manifest leaves to be guessed from its kind
   */
  served?: { resource: string; namespaced: boolean };
}

export interface ManifestReading {
  objects: ManifestObject[];
  /** what makes documents unreadable (YAML errors), as file:line:col: message */
  errors: string[];
  /** how many documents could not be read */
  unreadable: number;
  /** documents that are not Kubernetes objects (no apiVersion or kind), as file:line */
  skipped: string[];
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/** Every manifest file under the paths: directories recursively (hidden ones left out), sorted for a stable report. */
async function manifestFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  const walk = async (path: string, given: boolean): Promise<void> => {
    const info = await stat(path).catch(() => undefined);
    if (!info) {
      if (given) throw new Error(`${path}: no such file or directory`);
      return;
    }
    if (info.isDirectory()) {
      const entries = (await readdir(path)).filter((e) => !e.startsWith('.')).sort();
      for (const e of entries) await walk(join(path, e), false);
    } else if (given || MANIFEST_FILE.test(path)) {
      files.push(path);
    }
  };
  for (const p of paths) await walk(p, true);
  return files;
}

/** Parses one manifest text: YAML documents (JSON is YAML), each an object or a List of them. */
export function parseManifests(text: string, file: string, into: ManifestReading): void {
  const lineCounter = new LineCounter();
  const lineOf = (node: YamlNode | null | undefined, fallback: number) => lineCounter.linePos(node?.range?.[0] ?? fallback).line;
  for (const doc of parseAllDocuments(text, { lineCounter, prettyErrors: false })) {
    if (!('toJS' in doc)) continue;
    if (doc.errors.length) {
      into.unreadable++;
      for (const e of doc.errors) {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        into.errors.push(`${file}:${line}:${col}: ${e.message.split('\n')[0]}`);
      }
      continue;
    }
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (value === null || value === undefined) continue;
    const root = doc.contents as YamlNode | null;
    const isList = typeof value === 'object' && !Array.isArray(value) && typeof (value as KubeObject).kind === 'string'
      && (value as KubeObject).kind!.endsWith('List') && Array.isArray((value as { items?: unknown }).items);
    const items = isList ? (value as { items: unknown[] }).items : Array.isArray(value) ? value : [value];
    const itemNodes = isList && isMap(root) ? root.get('items', true) : isSeq(root) ? root : undefined;
    items.forEach((item, i) => {
      const node = isList || Array.isArray(value) ? (isSeq(itemNodes) ? (itemNodes.items[i] as YamlNode) : undefined) : root;
      const line = lineOf(node, doc.range[0]);
      const where = `${file}:${line}`;
      const o = item as KubeObject;
      if (o === null || typeof o !== 'object' || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') into.skipped.push(where);
      else into.objects.push({ object: o, where, file, line });
    });
  }
}

/** Reads manifests from files and directories; `-` is standard input. */
export async function readManifests(paths: readonly string[], stdin: () => Promise<string> = readStdin): Promise<ManifestReading> {
  const reading: ManifestReading = { objects: [], errors: [], unreadable: 0, skipped: [] };
  const files = await manifestFiles(paths.filter((p) => p !== '-'));
  if (paths.includes('-')) parseManifests(await stdin(), '<stdin>', reading);
  for (const file of files) parseManifests(await readFile(file, 'utf8'), file, reading);
  return reading;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * deny: denied as the policies stand; warn: admitted, but it fails a warn- or audit-mode
 * policy, so it would be denied once that policy enforces, or an exception waives what it
 * fails until the exception expires; allow: fails nothing.
 */
export type ScanVerdict = 'deny' | 'warn' | 'allow';

export interface ScanFinding {
  where: string;
  file?: string;
  line?: number;
  apiVersion: string;
  kind: string;
  namespace?: string;
  name?: string;
  /** the object's uid, when it was read from a cluster (policy reports link results to it) */
  uid?: string;
  verdict: ScanVerdict;
  /** the policies that judged it and passed */
  passed: string[];
  /** the policies it fails, or that could not judge it */
  policies: { name: string; mode: string; result: PolicyResult['result']; code?: string; messages: string[]; exceptions?: { name: string; expires: string; ticket?: string }[] }[];
}

export interface ScanOptions {
  /** for objects that name no namespace, as kubectl apply -n does (default: default) */
  namespace?: string;
  userInfo?: UserInfo;
  /** objects judged at once (image look-ups overlap) */
  concurrency?: number;
}

/**
 * The kinds CustomResourceDefinitions among the manifests define, as the cluster would serve
 * them once applied: their objects in the same manifests get the CRD's plural and scope, which
 * a kind alone leaves to be guessed (a cluster-scoped ClusterIssuer is no namespaced request).
 * Objects the cluster already placed (`served`) keep that.
 */
export function withManifestCrds(objects: readonly ManifestObject[]): void {
  const byKind = new Map<string, NonNullable<ManifestObject['served']>>();
  for (const { object } of objects) {
    if (object.kind !== 'CustomResourceDefinition' || !String(object.apiVersion).startsWith('apiextensions.k8s.io/')) continue;
    const spec = (object as { spec?: { group?: unknown; scope?: unknown; names?: { kind?: unknown; plural?: unknown }; versions?: { name?: unknown }[] } }).spec;
    const { group, names, scope, versions } = spec ?? {};
    if (typeof group !== 'string' || typeof names?.kind !== 'string' || typeof names.plural !== 'string' || !Array.isArray(versions)) continue;
    for (const v of versions) {
      if (typeof v?.name === 'string') byKind.set(`${group}/${v.name}|${names.kind}`, { resource: names.plural, namespaced: scope !== 'Cluster' });
    }
  }
  for (const m of objects) m.served ??= byKind.get(`${m.object.apiVersion}|${m.object.kind}`);
}

/** a result that denies under enforce: a failure, or an error the policy does not ignore; or one an exception waives for now */
const failing = (r: PolicyResult) => r.result === 'fail' || r.result === 'excepted' || (r.result === 'error' && r.failurePolicy !== 'Ignore');

/** what the policy found: what still counts, then what exceptions waive (until they expire) */
function findingOf(r: PolicyResult): ScanFinding['policies'][number] {
  const waived = r.exceptions ?? [];
  const messages = [...r.messages, ...waived.flatMap((e) => e.messages.map((m) => `${m} (excepted by ${e.name} until ${e.expires})`))];
  const exceptions = waived.map((e) => ({ name: e.name, expires: e.expires, ...(e.ticket ? { ticket: e.ticket } : {}) }));
  return { name: r.name, mode: r.mode, result: r.result, ...(r.code ? { code: r.code } : {}), messages, ...(exceptions.length ? { exceptions } : {}) };
}

async function judge(m: ManifestObject, services: AdmissionServices, options: ScanOptions): Promise<ScanFinding> {
  const meta = m.object.metadata;
  const review = reviewForObject(m.object, { operation: 'CREATE', namespace: meta?.namespace ?? options.namespace, userInfo: options.userInfo });
  if (m.served) {
    review.request.resource.resource = m.served.resource;
    if (!m.served.namespaced) delete review.request.namespace;
  }
  const object = {
    where: m.where, ...(m.file !== undefined ? { file: m.file, line: m.line } : {}),
    apiVersion: m.object.apiVersion!, kind: m.object.kind!, namespace: review.request.namespace, name: meta?.name ?? meta?.generateName,
    ...(typeof meta?.uid === 'string' ? { uid: meta.uid } : {}),
  };
  let outcome;
  try {
    outcome = await admit(review, 'scan', services);
  } catch (err) {
    // what the server would refuse before any policy (too deep, too large): denied, and said why
    if (!(err instanceof AdmissionInputError)) throw err;
    return { ...object, verdict: 'deny', passed: [], policies: [{ name: 'trustgate', mode: 'enforce', result: 'error', code: err.error, messages: [err.message] }] };
  }
  const { decision, results } = outcome;
  const verdict: ScanVerdict = !decision.allowed ? 'deny' : results.some(failing) ? 'warn' : 'allow';
  const policies = results.filter((r) => r.result !== 'pass').map(findingOf);
  return { ...object, verdict, passed: results.filter((r) => r.result === 'pass').map((r) => r.name), policies };
}

/**
 * Judges every object as its CREATE and hands each finding on in the order of the objects,
 * `concurrency` at a time (image look-ups overlap): objects read from a cluster stream through
 * and only what the caller keeps stays in memory.
 */
export async function scanEach(objects: Iterable<ManifestObject> | AsyncIterable<ManifestObject>, services: AdmissionServices, options: ScanOptions, found: (f: ScanFinding) => void): Promise<void> {
  const width = Math.max(1, options.concurrency ?? 8);
  let batch: ManifestObject[] = [];
  const judgeBatch = async () => {
    for (const f of await Promise.all(batch.map((m) => judge(m, services, options)))) found(f);
    batch = [];
  };
  for await (const m of objects) {
    batch.push(m);
    if (batch.length >= width) await judgeBatch();
  }
  if (batch.length) await judgeBatch();
}

/**
 * Namespaces the manifests create, as the API server stores them (with the
 * kubernetes.io/metadata.name label it sets), so namespaceSelector sees them.
 */
export function namespacesIn(objects: readonly ManifestObject[]): KubeObject[] {
  return objects.filter((m) => m.object.kind === 'Namespace' && m.object.apiVersion === 'v1' && m.object.metadata?.name).map(({ object }) => ({
    ...object, metadata: { ...object.metadata, labels: { ...object.metadata!.labels, 'kubernetes.io/metadata.name': object.metadata!.name! } },
  }));
}

/** what would turn an admitted finding into a denial */
function until(f: ScanFinding): string {
  const waived = f.policies.some((p) => p.exceptions);
  const unwaived = f.policies.some((p) => p.result !== 'excepted');
  return waived ? (unwaived ? 'these policies enforce or their exceptions expire' : 'its exceptions expire') : 'these policies enforce';
}

export function findingLine(f: ScanFinding): string {
  const id = `${f.apiVersion} ${f.kind} ${f.namespace ? `${f.namespace}/` : ''}${f.name ?? '(unnamed)'}`;
  const head = `${f.where}: ${f.verdict.toUpperCase()} ${id}${f.verdict === 'warn' ? ` (admitted now; denied once ${until(f)})` : ''}`;
  return [head, ...f.policies.map((p) => `    [${p.name}] ${p.mode} ${p.result}${p.code ? ` ${p.code}` : ''}: ${p.messages.join('; ')}`)].join('\n');
}
