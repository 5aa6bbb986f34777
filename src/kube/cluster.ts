// Cluster state trustgate reads while deciding: Namespace labels (for namespaceSelector) and
// the ConfigMaps policies take params from. Both are watch-backed caches (list, then watch,
// reconnecting with backoff), so no API call happens on the admission path.
import { CoreV1Api, KubeConfig, ListWatch, Watch, type KubernetesObject, type V1ConfigMap, type V1Namespace } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeObject } from '../admission/types.js';
import type { NamespaceLookup, ParamsLookup } from '../policy/index.js';

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
  /** the objects as plain JSON (client-node's model classes carry Date objects), by namespace/name */
  plain: Map<string, KubeObject>;
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class ClusterState implements NamespaceLookup, ParamsLookup {
  readonly #core: CoreV1Api;
  readonly #watch: Watch;
  #namespaces?: Cache<V1Namespace>;
  readonly #configMaps = new Map<string, Cache<V1ConfigMap>>();

  constructor(kc: KubeConfig, private readonly log: Logger) {
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#watch = new Watch(kc);
  }

  #start<T extends KubernetesObject>(what: string, path: string, list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>): Cache<T> {
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
    const watch = new ListWatch<T>(path, this.#watch, listed as never, false);
    cache.watch = watch;
    // converted once per change, so the admission path reads plain objects for free
    const store = (o: T) => cache.plain.set(keyOf(o), JSON.parse(JSON.stringify(o)) as KubeObject);
    watch.on('add', store);
    watch.on('update', store);
    watch.on('delete', (o) => cache.plain.delete(keyOf(o)));
    watch.on('error', (err) => this.log.warn({ what, reason: (err as Error)?.message ?? String(err) }, 'cluster watch failed; the cache keeps its last state and reconnects'));
    watch.on('connect', () => this.log.debug({ what }, 'cluster watch connected'));
    watch.start().catch((err) => this.log.warn({ what, reason: (err as Error).message }, 'cluster list failed; retrying'));
    return cache;
  }

  /** Watches Namespaces, and the ConfigMaps of the given namespaces (params of the policies). */
  watchNamespaces(): void {
    this.#namespaces ??= this.#start<V1Namespace>('namespaces', '/api/v1/namespaces', () => this.#core.listNamespace());
  }

  watchConfigMapNamespaces(namespaces: Iterable<string>): void {
    for (const namespace of namespaces) {
      if (this.#configMaps.has(namespace)) continue;
      this.#configMaps.set(namespace, this.#start<V1ConfigMap>(`configmaps in ${namespace}`, `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`,
        () => this.#core.listNamespacedConfigMap({ namespace })));
    }
  }

  get(name: string): KubeObject | undefined {
    return this.#namespaces?.plain.get(`/${name}`);
  }

  configMap(namespace: string, name: string): KubeObject | undefined {
    return this.#configMaps.get(namespace)?.plain.get(`${namespace}/${name}`);
  }

  /** true once every cache has listed at least once: before that, readiness says no */
  synced(): boolean {
    return (this.#namespaces?.synced ?? true) && [...this.#configMaps.values()].every((c) => c.synced);
  }

  async stop(): Promise<void> {
    await Promise.all([this.#namespaces?.watch.stop(), ...[...this.#configMaps.values()].map((c) => c.watch.stop())]);
  }
}
