// Cluster state trustgate reads while deciding: Namespace labels (for namespaceSelector) and
// the ConfigMaps policies take params from. Both are watch-backed caches (list, then watch,
// reconnecting with backoff), so no API call happens on the admission path. ConfigMaps are
// watched no wider than the policies read them: whole namespaces the policies name, or, for
// params from each request's namespace, cluster-wide but narrowed by name or label selector.
import { CoreV1Api, KubeConfig, ListWatch, Watch, type KubernetesObject, type V1ConfigMap, type V1Namespace } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeObject } from '../admission/types.js';
import { selectConfigMaps, selectorString, type ConfigMapWatches, type LabelSelector, type NamespaceLookup, type ParamsLookup } from '../policy/index.js';

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
  readonly #configMaps = new Map<string, Cache<V1ConfigMap>>();
  /** a policy's selector is the same object on every request: its key is built once */
  readonly #selectorKeys = new WeakMap<LabelSelector, string>();

  constructor(kc: KubeConfig, private readonly log: Logger) {
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#watch = new Watch(kc);
  }

  #start<T extends KubernetesObject>(what: string, scope: WatchScope, list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>): Cache<T> {
    const cache = { synced: false, plain: new Map() } as Cache<T>;
    // synced means a list succeeded and its items are cached, not merely that start() returned
    const listed = async () => {
      const result = await list();
      setImmediate(() => {
        if (!cache.synced) this.log.info({ what, objects: result.items.length }, 'cluster cache synced');
        cache.synced = true;
      });
      return result;
    };
    const watch = new ListWatch<T>(scope.path, this.#watch, listed as never, false, scope.labelSelector, scope.fieldSelector);
    cache.watch = watch;
    // converted once per change, so the admission path reads plain objects for free
    const store = (o: T) => {
      const namespace = o.metadata?.namespace ?? '';
      let inNamespace = cache.plain.get(namespace);
      if (!inNamespace) cache.plain.set(namespace, (inNamespace = new Map()));
      inNamespace.set(o.metadata?.name ?? '', JSON.parse(JSON.stringify(o)) as KubeObject);
    };
    watch.on('add', store);
    watch.on('update', store);
    watch.on('delete', (o) => {
      const inNamespace = cache.plain.get(o.metadata?.namespace ?? '');
      inNamespace?.delete(o.metadata?.name ?? '');
      if (inNamespace?.size === 0) cache.plain.delete(o.metadata?.namespace ?? '');
    });
    watch.on('error', (err) => this.log.warn({ what, reason: (err as Error)?.message ?? String(err) }, 'cluster watch failed; the cache keeps its last state and reconnects'));
    watch.on('connect', () => this.log.debug({ what }, 'cluster watch connected'));
    watch.start().catch((err) => this.log.warn({ what, reason: (err as Error).message }, 'cluster list failed; retrying'));
    return cache;
  }

  /** Watches Namespaces (for namespaceSelector and namespaceObject). */
  watchNamespaces(): void {
    this.#namespaces ??= this.#start<V1Namespace>('namespaces', { path: '/api/v1/namespaces' }, () => this.#core.listNamespace());
  }

  /** Watches the ConfigMaps the policies read; caches already running are kept. */
  watchConfigMaps(w: ConfigMapWatches): void {
    const start = (key: string, what: string, scope: WatchScope, list: () => Promise<{ items: V1ConfigMap[] }>) => {
      if (!this.#configMaps.has(key)) this.#configMaps.set(key, this.#start<V1ConfigMap>(what, scope, list));
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
  }

  get(name: string): KubeObject | undefined {
    return this.#namespaces?.plain.get('')?.get(name);
  }

  configMap(namespace: string, name: string): KubeObject | undefined {
    return this.#configMaps.get(`namespace:${namespace}`)?.plain.get(namespace)?.get(name)
      ?? this.#configMaps.get(`name:${name}`)?.plain.get(namespace)?.get(name);
  }

  configMaps(namespace: string, selector: LabelSelector): KubeObject[] {
    let key = this.#selectorKeys.get(selector);
    if (key === undefined) this.#selectorKeys.set(selector, (key = `selector:${selectorString(selector)}`));
    const cache = this.#configMaps.get(`namespace:${namespace}`) ?? this.#configMaps.get(key);
    return selectConfigMaps(cache?.plain.get(namespace), selector);
  }

  /** true once every cache has listed at least once: before that, readiness says no */
  synced(): boolean {
    return (this.#namespaces?.synced ?? true) && [...this.#configMaps.values()].every((c) => c.synced);
  }

  async stop(): Promise<void> {
    await Promise.all([this.#namespaces?.watch.stop(), ...[...this.#configMaps.values()].map((c) => c.watch.stop())]);
  }
}
