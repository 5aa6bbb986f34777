// The objects a cluster holds of the resources some policy matches, for `trustgate scan
// --kubeconfig`: discovery says what the API server serves (each group at its preferred version
// first), the policy index says which of those a policy can match, and each is listed in pages.
import { KubernetesObjectApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AdmissionRequest, KubeObject } from '../admission/types.js';
import { paramWatches, type ManifestObject, type PolicySet } from '../policy/index.js';
import { ClusterState } from './cluster.js';

export interface ServedResource {
  group: string;
  version: string;
  kind: string;
  /** plural name, as resource rules write it */
  resource: string;
  namespaced: boolean;
}

const apiVersionOf = (r: { group: string; version: string }) => (r.group ? `${r.group}/${r.version}` : r.version);

/** a page of a list: small enough for any API server, large enough to take few round trips */
const PAGE = 500;

/** what the API server's JSON answers hold, as the wire has them */
interface APIVersions { versions: string[] }
interface APIGroupList { groups: { name: string; versions: { version: string }[]; preferredVersion?: { version: string } }[] }
interface APIResourceList { resources: { name: string; kind: string; namespaced: boolean; verbs: string[] }[] }
interface ObjectList { items: KubeObject[]; metadata?: { continue?: string } }

const RAW = 'raw JSON';

export class ApiRequestError extends Error {
  constructor(readonly path: string, readonly statusCode: number, readonly reason: string) {
    super(`GET ${path}: HTTP ${statusCode}${reason ? ` (${reason})` : ''}`);
  }
}

/**
 * GETs by path with client-node's authentication and TLS, answered as plain JSON: its typed
 * models would turn timestamps into Dates and rename fields, and policies judge the wire form.
 */
export class ApiReader extends KubernetesObjectApi {
  static of(kc: KubeConfig): ApiReader {
    return kc.makeApiClient(ApiReader);
  }

  async get<T>(path: string, query: Record<string, string> = {}): Promise<T> {
    const request = this.configuration.baseServer.makeRequestContext(path, 'GET' as never);
    request.setHeaderParam('Accept', 'application/json');
    for (const [k, v] of Object.entries(query)) request.setQueryParam(k, v);
    try {
      return (await this.requestPromise(request as never, RAW)) as T;
    } catch (err) {
      if (err instanceof ApiRequestError) throw new ApiRequestError(path, err.statusCode, err.reason);
      throw err;
    }
  }

  protected override async processResponse<T>(response: Parameters<KubernetesObjectApi['processResponse']>[0], type?: string): Promise<T> {
    if (type !== RAW) return super.processResponse(response, type) as Promise<T>;
    const text = await response.body.text();
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) return JSON.parse(text) as T;
    let reason = '';
    try {
      reason = (JSON.parse(text) as { message?: string }).message ?? '';
    } catch {
      // not a Status: the code says enough
    }
    throw new ApiRequestError('', response.httpStatusCode, reason);
  }
}

/**
 * Every listable top-level resource the API server serves, each group's preferred version
 * first. A group version whose discovery fails (an aggregated API whose backend is down, as
 * metrics.k8s.io often is) is named in failures; the others are still found.
 */
export async function servedResources(api: ApiReader): Promise<{ resources: ServedResource[]; failures: string[] }> {
  const core = await api.get<APIVersions>('/api');
  const groups = await api.get<APIGroupList>('/apis');
  const groupVersions: { group: string; version: string }[] = core.versions.map((version) => ({ group: '', version }));
  for (const g of groups.groups) {
    const preferred = g.preferredVersion?.version;
    const versions = g.versions.map((v) => v.version).sort((a, b) => Number(b === preferred) - Number(a === preferred));
    for (const version of versions) groupVersions.push({ group: g.name, version });
  }
  const resources: ServedResource[] = [];
  const failures: string[] = [];
  for (const gv of groupVersions) {
    const path = gv.group ? `/apis/${gv.group}/${gv.version}` : `/api/${gv.version}`;
    let list: APIResourceList;
    try {
      list = await api.get<APIResourceList>(path);
    } catch (err) {
      failures.push(`${apiVersionOf(gv)} (discovery): ${(err as Error).message}`);
      continue;
    }
    for (const r of list.resources ?? []) {
      // subresources (pods/status) and what cannot be listed (reviews, bindings) hold no objects to judge
      if (r.name.includes('/') || !r.verbs?.includes('list')) continue;
      resources.push({ ...gv, kind: r.kind, resource: r.name, namespaced: r.namespaced });
    }
  }
  return { resources, failures };
}

/**
 * The served resources some policy can match as a CREATE, one version of each (the first that
 * matches, preferred first): an object is stored once, whichever version lists it.
 */
export function resourcesToScan(served: readonly ServedResource[], set: PolicySet): ServedResource[] {
  const chosen = new Map<string, ServedResource>();
  for (const r of served) {
    const key = `${r.group}/${r.resource}`;
    if (chosen.has(key)) continue;
    const shape = {
      uid: '', operation: 'CREATE', subResource: '', userInfo: {},
      kind: { group: r.group, version: r.version, kind: r.kind }, resource: { group: r.group, version: r.version, resource: r.resource },
      ...(r.namespaced ? { namespace: 'any' } : {}),
    } as AdmissionRequest;
    if (set.index.candidates(shape).length) chosen.set(key, r);
  }
  return [...chosen.values()];
}

/** Every object of the resource, across namespaces, page by page; apiVersion and kind set as a review carries them. */
export async function* listObjects(api: ApiReader, r: ServedResource, pageSize = PAGE): AsyncGenerator<KubeObject> {
  let next: string | undefined;
  const base = `${r.group ? `/apis/${r.group}` : '/api'}/${r.version}/${r.resource}`;
  do {
    const page = await api.get<ObjectList>(base, { limit: String(pageSize), ...(next ? { continue: next } : {}) });
    for (const item of page.items ?? []) yield { ...item, apiVersion: apiVersionOf(r), kind: r.kind };
    next = page.metadata?.continue || undefined;
  } while (next);
}

/** The cluster's objects of the resources some policy matches, streamed: a large cluster is never held whole. */
export interface LiveObjects {
  /** how many resources are listed */
  resources: number;
  objects: AsyncIterable<ManifestObject>;
  /** groups not discovered and resources not listed, complete once objects is exhausted */
  failures: string[];
}

/**
 * Discovery first; then each matched resource is listed page by page as the objects are
 * consumed. A resource that cannot be listed (RBAC) is named in failures, and the rest is still read.
 */
export async function liveObjects(kc: KubeConfig, set: PolicySet, pageSize = PAGE): Promise<LiveObjects> {
  const api = ApiReader.of(kc);
  const served = await servedResources(api);
  const resources = resourcesToScan(served.resources, set);
  // a group that could not be discovered may hold resources the policies match: the scan is incomplete
  const failures = [...served.failures];
  async function* objects(): AsyncGenerator<ManifestObject> {
    for (const r of resources) {
      try {
        for await (const object of listObjects(api, r, pageSize)) yield { object, where: 'cluster', served: { resource: r.resource, namespaced: r.namespaced } };
      } catch (err) {
        failures.push(`${apiVersionOf(r)} ${r.resource}: ${(err as Error).message}`);
      }
    }
  }
  return { resources: resources.length, objects: objects(), failures };
}

/**
 * Manifests judged against a cluster take the plural and scope it serves their kinds under
 * (a CRD's plural need not be the English one the kind suggests); kinds it does not serve keep
 * the guess. Returns the discovery failures, which may hide a manifest's kind.
 */
export async function withServedResources(kc: KubeConfig, objects: ManifestObject[]): Promise<string[]> {
  const { resources, failures } = await servedResources(ApiReader.of(kc));
  const byKind = new Map(resources.map((r) => [`${apiVersionOf(r)}|${r.kind}`, r]));
  for (const m of objects) {
    const r = byKind.get(`${m.object.apiVersion}|${m.object.kind}`);
    if (r) m.served = { resource: r.resource, namespaced: r.namespaced };
  }
  return failures;
}

/** The cluster state policies read (namespaces, params), listed once; throws when it does not list in time. */
export async function syncedClusterState(kc: KubeConfig, set: PolicySet, log: Logger, timeoutMs = 30_000): Promise<ClusterState> {
  const state = new ClusterState(kc, log);
  state.watchNamespaces();
  state.watchParams(paramWatches(set));
  const until = Date.now() + timeoutMs;
  while (!state.synced()) {
    if (Date.now() > until) {
      const waiting = state.cacheStates().filter((c) => !c.synced).map((c) => c.cache);
      await state.stop();
      throw new Error(`the cluster's ${waiting.join(', ')} did not list within ${timeoutMs / 1000} s (RBAC? see the log lines above)`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return state;
}
