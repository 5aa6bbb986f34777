// Cluster state trustgate reads while deciding: Namespace labels (for namespaceSelector) and
// the ConfigMaps policies take params from. Both are watch-backed caches (list, then watch,
// reconnecting with backoff), so no API call happens on the admission path. ConfigMaps are
// watched no wider than the policies read them: whole namespaces the policies name, or, for
// params from each request's namespace, cluster-wide but narrowed by name or label selector.
// Params of other kinds (a binding's custom resources) are found by discovery and watched whole.
import { CoreV1Api, KubeConfig, KubernetesObjectApi, ListWatch, Watch, type KubernetesObject, type V1APIResource, type V1Namespace } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeObject } from '../admission/types.js';
import { isConfigMap, paramKindKey, ParamsUnavailableError, selectObjects, selectorString, type LabelSelector, type NamespaceLookup, type ParamKind, type ParamsLookup, type ParamWatches } from '../policy/index.js';

export function loadKubeConfig(options: { kubeconfig?: string; inCluster?: boolean }): KubeConfig {
  const kc = new KubeConfig();
  if (options.inCluster) kc.loadFromCluster();
  else if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
  else kc.loadFromDefault();
  return kc;
}

interface Cache<T extends KubernetesObject> {
  watch: ListWatch<T>;
  synced: boolean;
  /** the objects as plain JSON (client-node's model classes carry Date objects), by namespace ('' if none), then name */
  plain: Map<string, Map<string, KubeObject>>;
  /** the delay before the next start after a failure; 0 once a list succeeds */
  retryMs: number;
  retry?: NodeJS.Timeout;
  /** set once no policy reads the cache: it stops when this fires */
  retire?: NodeJS.Timeout;
  stopped?: boolean;
  /** failed lists and watches, for /metrics */
  failures: number;
}

const NAMESPACE_NOT_FOUND_MS = 2000;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;
/** the next delay of a backoff that starts at 0.5 s and doubles up to 30 s */
const backoff = (lastMs: number) => Math.min(lastMs ? lastMs * 2 : RETRY_FIRST_MS, RETRY_MAX_MS);

const where = (namespace: string, name: string) => (namespace ? `${namespace}/${name}` : name);

/** A cache's objects, once it has listed: before that, what is not in it may exist all the same. */
function listed(cache: Cache<KubernetesObject> | undefined, type: ParamKind, namespace: string, which: string | LabelSelector): Map<string, Map<string, KubeObject>> {
  if (cache?.synced) return cache.plain;
  // described only here: a lookup that succeeds builds no message
  const what = typeof which === 'string' ? `${type.kind} ${where(namespace, which)}` : `the ${type.kind} objects ${namespace ? `in ${namespace} ` : ''}labelled ${selectorString(which)}`;
  throw new ParamsUnavailableError(`${what} cannot be read yet: ${cache ? 'its cluster cache has not listed them (see the log for the reason)' : 'no cluster cache covers it yet'}`);
}

/** Stores an object as plain JSON, converted once per change so the admission path reads it for free. */
function storePlain(plain: Map<string, Map<string, KubeObject>>, o: KubernetesObject): void {
  const namespace = o.metadata?.namespace ?? '';
  let inNamespace = plain.get(namespace);
  if (!inNamespace) plain.set(namespace, (inNamespace = new Map()));
  inNamespace.set(o.metadata?.name ?? '', JSON.parse(JSON.stringify(o)) as KubeObject);
}

function stopCache(cache: Cache<KubernetesObject> | undefined): void {
  if (!cache) return;
  cache.stopped = true;
  clearTimeout(cache.retry);
  void cache.watch.stop();
}

/** client-node's discovery (protected there): the resource that serves a kind, cached per apiVersion. */
class Discovery extends KubernetesObjectApi {
  find(apiVersion: string, kind: string): Promise<V1APIResource | undefined> {
    return this.resource(apiVersion, kind);
  }
}

/** A params kind other than ConfigMap: where the cluster serves it, and its cache once known. */
interface KindState {
  resource?: { plural: string; namespaced: boolean };
  cache?: Cache<KubernetesObject>;
  retryMs: number;
  retry?: NodeJS.Timeout;
  retire?: NodeJS.Timeout;
  stopped?: boolean;
  /** failed discoveries, for /metrics */
  failures: number;
}

/** A list-watch's scope: a path, and the selectors that narrow a cluster-wide one. */
interface WatchScope {
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
}

export class ClusterState implements NamespaceLookup, ParamsLookup {
  readonly #core: CoreV1Api;
  readonly #watch: Watch;
  #namespaces?: Cache<V1Namespace>;
  /** by scope: namespace:NS, name:NAME or selector:SELECTOR */
  readonly #configMaps = new Map<string, Cache<KubernetesObject>>();
  readonly #kinds = new Map<string, KindState>();
  readonly #discovery: Discovery;
  #ready = false;
  #stopped = false;
  readonly #namespaceLookups = new Map<string, Promise<void>>();
  /** namespaces a look-up found missing, until when they are not asked for again */
  readonly #namespacesNotFound = new Map<string, number>();
  /** a policy's selector is the same object on every request: its key is built once */
  readonly #selectorKeys = new WeakMap<LabelSelector, string>();

  /**
   * @param retireAfterMs how long a cache no policy reads any more is kept after a reload:
   * requests still deciding with the previous policy set may read it (twice the deadline)
   */
  constructor(kc: KubeConfig, private readonly log: Logger, private readonly retireAfterMs = 16_000) {
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#watch = new Watch(kc);
    this.#discovery = kc.makeApiClient(Discovery);
  }

  #start<T extends KubernetesObject>(what: string, scope: WatchScope, list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>): Cache<T> {
    const cache = { synced: false, plain: new Map(), retryMs: 0, failures: 0 } as unknown as Cache<T>;
    // synced means a list succeeded and its items are cached, not merely that start() returned
    const listed = async () => {
      const result = await list();
      cache.retryMs = 0;
      setImmediate(() => {
        if (!cache.synced) this.log.info({ what, objects: result.items.length }, 'cluster cache synced');
        cache.synced = true;
      });
      return result;
    };
    const watch = new ListWatch<T>(scope.path, this.#watch, listed as never, false, scope.labelSelector, scope.fieldSelector);
    cache.watch = watch;
    const store = (o: T) => storePlain(cache.plain, o);
    watch.on('add', store);
    watch.on('update', store);
    watch.on('delete', (o) => {
      const inNamespace = cache.plain.get(o.metadata?.namespace ?? '');
      inNamespace?.delete(o.metadata?.name ?? '');
      if (inNamespace?.size === 0) cache.plain.delete(o.metadata?.namespace ?? '');
    });
    // client-node's ListWatch gives up after a failed list or a watch that ends in an error (a
    // 403, an API server restart mid-list): started again here, with backoff, or the cache
    // would keep a stale state for good
    watch.on('error', (err) => {
      // stopping aborts the watch, which ends here too
      if (this.#stopped || cache.stopped) return;
      cache.failures++;
      const reason = (err as { body?: { message?: string } })?.body?.message ?? (err as Error)?.message ?? String(err);
      // 404: the resource is no longer served (its CRD deleted); its last state would decide stale
      const status = (err as { code?: unknown; statusCode?: unknown })?.code ?? (err as { statusCode?: unknown })?.statusCode;
      if (status === 404 && cache.synced) {
        cache.synced = false;
        cache.plain.clear();
        this.log.warn({ what }, 'the cluster no longer serves this resource: the policies reading it fail until it is served again');
      }
      cache.retryMs = backoff(cache.retryMs);
      this.log.warn({ what, reason, retryInMs: cache.retryMs }, 'cluster list or watch failed; the cache keeps its last state and starts again');
      cache.retry = setTimeout(() => void watch.start().catch(() => undefined), cache.retryMs);
      cache.retry.unref();
    });
    watch.on('connect', () => this.log.debug({ what }, 'cluster watch connected'));
    // errors reach the handler above
    void watch.start().catch(() => undefined);
    return cache;
  }

  /** Watches Namespaces (for namespaceSelector and namespaceObject). */
  watchNamespaces(): void {
    this.#namespaces ??= this.#start<V1Namespace>('namespaces', { path: '/api/v1/namespaces' }, () => this.#core.listNamespace());
  }

  /** Watches the params objects the policies read; caches already running are kept. */
  watchParams(w: ParamWatches): void {
    const wanted = new Set<string>();
    const start = (key: string, what: string, scope: WatchScope, list: () => Promise<{ items: KubernetesObject[] }>) => {
      wanted.add(key);
      const running = this.#configMaps.get(key);
      if (!running) this.#configMaps.set(key, this.#start(what, scope, list));
      else {
        // wanted again before it stopped: kept
        clearTimeout(running.retire);
        running.retire = undefined;
      }
    };
    for (const namespace of w.namespaces) {
      start(`namespace:${namespace}`, `configmaps in ${namespace}`, { path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps` },
        () => this.#core.listNamespacedConfigMap({ namespace }));
    }
    // RBAC can limit list and watch to these names, because the calls select by metadata.name
    for (const name of w.names) {
      const fieldSelector = `metadata.name=${name}`;
      start(`name:${name}`, `configmaps named ${name} in every namespace`, { path: '/api/v1/configmaps', fieldSelector },
        () => this.#core.listConfigMapForAllNamespaces({ fieldSelector }));
    }
    for (const selector of w.selectors) {
      const labelSelector = selectorString(selector);
      start(`selector:${labelSelector}`, `configmaps labelled ${labelSelector} in every namespace`, { path: '/api/v1/configmaps', labelSelector },
        () => this.#core.listConfigMapForAllNamespaces({ labelSelector }));
    }
    for (const type of w.kinds) this.#watchKind(type);
    // what no policy reads any more stops after a grace period, so policy churn cannot pile up
    // watches (and their API load and memory) for the life of the process
    const kinds = new Set(w.kinds.map(paramKindKey));
    for (const [key, cache] of this.#configMaps) {
      if (!wanted.has(key)) cache.retire ??= this.#retireLater(key, () => {
        this.#configMaps.delete(key);
        stopCache(cache);
      });
    }
    for (const [key, state] of this.#kinds) {
      if (!kinds.has(key)) state.retire ??= this.#retireLater(key, () => {
        this.#kinds.delete(key);
        state.stopped = true;
        clearTimeout(state.retry);
        stopCache(state.cache);
      });
    }
  }

  #retireLater(key: string, stop: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      stop();
      this.log.info({ cache: key }, 'no policy reads this cluster cache any more; stopped');
    }, this.retireAfterMs);
    timer.unref();
    return timer;
  }

  /** Discovery first (the plural and scope come from the cluster, which may install the CRD later), then a cluster-wide watch. */
  #watchKind(type: ParamKind): void {
    const running = this.#kinds.get(paramKindKey(type));
    if (running) {
      clearTimeout(running.retire);
      running.retire = undefined;
      return;
    }
    const state: KindState = { retryMs: 0, failures: 0 };
    this.#kinds.set(paramKindKey(type), state);
    const what = `${type.kind} (${type.apiVersion})`;
    const discover = async () => {
      try {
        const resource = await this.#discovery.find(type.apiVersion, type.kind);
        if (!resource) throw new Error(`the cluster serves no ${type.kind} in ${type.apiVersion} (is its CustomResourceDefinition installed?)`);
        // retired, or the whole state stopped, while discovery was on the way: nothing to start
        if (this.#stopped || state.stopped) return;
        state.resource = { plural: resource.name, namespaced: resource.namespaced };
        const base = type.apiVersion.includes('/') ? `/apis/${type.apiVersion}` : `/api/${type.apiVersion}`;
        state.cache = this.#start(`${resource.name} (${type.apiVersion})`, { path: `${base}/${resource.name}` }, () => this.#discovery.list(type.apiVersion, type.kind));
      } catch (err) {
        state.failures++;
        state.retryMs = backoff(state.retryMs);
        this.log.warn({ what, reason: (err as Error).message, retryInMs: state.retryMs }, 'params kind not found in the cluster; looking again');
        if (this.#stopped || state.stopped) return;
        state.retry = setTimeout(() => void discover(), state.retryMs);
        state.retry.unref();
      }
    };
    void discover();
  }

  get(name: string): KubeObject | undefined {
    return this.#namespaces?.plain.get('')?.get(name);
  }

  /**
   * One GET for a namespace the watch has not delivered yet (applied together with its
   * workloads, say): concurrent requests share it, and a namespace that is not there is not
   * asked for again for a while. Before the first list there is nothing to complete.
   */
  resolve(name: string, timeoutMs: number): Promise<void> {
    const cache = this.#namespaces;
    if (!cache?.synced || timeoutMs <= 0) return Promise.resolve();
    const notFoundUntil = this.#namespacesNotFound.get(name);
    if (notFoundUntil !== undefined && notFoundUntil > Date.now()) return Promise.resolve();
    let pending = this.#namespaceLookups.get(name);
    if (!pending) {
      pending = this.#core.readNamespace({ name }).then((o) => {
        // the watch may have delivered it meanwhile, and is as new
        if (!cache.plain.get('')?.has(name)) storePlain(cache.plain, o);
      }, (err: unknown) => {
        if ((err as { code?: number }).code === 404) {
          // bounded: requests name namespaces, and only a stream of missing ones could grow this
          if (this.#namespacesNotFound.size >= 1000) this.#namespacesNotFound.clear();
          this.#namespacesNotFound.set(name, Date.now() + NAMESPACE_NOT_FOUND_MS);
        }
        else this.log.warn({ namespace: name, reason: (err as Error).message }, 'namespace look-up failed');
      }).finally(() => this.#namespaceLookups.delete(name));
      this.#namespaceLookups.set(name, pending);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)));
    return Promise.race([pending, timeout]).finally(() => clearTimeout(timer));
  }

  namespaced(type: ParamKind): boolean {
    if (isConfigMap(type)) return true;
    const resource = this.#kinds.get(paramKindKey(type))?.resource;
    if (!resource) throw new ParamsUnavailableError(`${type.kind} (${type.apiVersion}) params cannot be read yet: the cluster has not said where it serves them (see the log for the reason)`);
    return resource.namespaced;
  }

  object(type: ParamKind, namespace: string, name: string): KubeObject | undefined {
    const cache = isConfigMap(type)
      ? this.#configMaps.get(`namespace:${namespace}`) ?? this.#configMaps.get(`name:${name}`)
      : this.#kinds.get(paramKindKey(type))?.cache;
    return listed(cache, type, namespace, name).get(namespace)?.get(name);
  }

  objects(type: ParamKind, namespace: string, selector: LabelSelector): KubeObject[] {
    let cache: Cache<KubernetesObject> | undefined;
    if (isConfigMap(type)) {
      let key = this.#selectorKeys.get(selector);
      if (key === undefined) this.#selectorKeys.set(selector, (key = `selector:${selectorString(selector)}`));
      cache = this.#configMaps.get(`namespace:${namespace}`) ?? this.#configMaps.get(key);
    } else {
      cache = this.#kinds.get(paramKindKey(type))?.cache;
    }
    return selectObjects(listed(cache, type, namespace, selector).get(namespace), selector);
  }

  /** Every cache, whether it has listed and how often it failed: what /metrics shows. */
  cacheStates(): { cache: string; synced: boolean; failures: number }[] {
    const states = this.#namespaces ? [{ cache: 'namespaces', synced: this.#namespaces.synced, failures: this.#namespaces.failures }] : [];
    for (const [key, c] of this.#configMaps) states.push({ cache: `configmaps ${key}`, synced: c.synced, failures: c.failures });
    for (const [key, k] of this.#kinds) states.push({ cache: `kind:${key}`, synced: k.cache?.synced ?? false, failures: k.failures + (k.cache?.failures ?? 0) });
    return states;
  }

  /**
   * For readiness: true once every cache has listed at least once, and from then on. A cache a
   * policy reload adds later (and cannot list, say for lack of RBAC) fails the policies that read
   * it, by their failurePolicy, instead of taking the whole webhook out of its Service.
   */
  synced(): boolean {
    if (this.#ready) return true;
    this.#ready = (this.#namespaces?.synced ?? true) && [...this.#configMaps.values()].every((c) => c.synced)
      && [...this.#kinds.values()].every((k) => k.cache?.synced);
    return this.#ready;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const k of this.#kinds.values()) {
      clearTimeout(k.retry);
      clearTimeout(k.retire);
    }
    const caches = [...(this.#namespaces ? [this.#namespaces] : []), ...this.#configMaps.values(), ...[...this.#kinds.values()].flatMap((k) => (k.cache ? [k.cache] : []))];
    for (const c of caches) {
      clearTimeout(c.retry);
      clearTimeout(c.retire);
    }
    await Promise.all(caches.map((c) => c.watch.stop()));
  }
}
