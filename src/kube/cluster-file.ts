// Cluster objects from a file (Namespaces and ConfigMaps), so namespaceSelector, params and
// allowlists work offline: trustgate eval, policy tests, a serve without cluster access.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../admission/types.js';
import { selectConfigMaps, type LabelSelector, type NamespaceLookup, type ParamsLookup } from '../policy/index.js';

export class StaticCluster implements NamespaceLookup, ParamsLookup {
  readonly #namespaces = new Map<string, KubeObject>();
  /** by namespace, then name */
  readonly #configMaps = new Map<string, Map<string, KubeObject>>();

  constructor(objects: Iterable<KubeObject>) {
    for (const o of objects) {
      const name = o?.metadata?.name;
      if (!name) continue;
      if (o.kind === 'Namespace') this.#namespaces.set(name, o);
      if (o.kind !== 'ConfigMap') continue;
      const namespace = o.metadata?.namespace ?? 'default';
      let inNamespace = this.#configMaps.get(namespace);
      if (!inNamespace) this.#configMaps.set(namespace, (inNamespace = new Map()));
      inNamespace.set(name, o);
    }
  }

  get(name: string): KubeObject | undefined {
    return this.#namespaces.get(name);
  }

  configMap(namespace: string, name: string): KubeObject | undefined {
    return this.#configMaps.get(namespace)?.get(name);
  }

  configMaps(namespace: string, selector: LabelSelector): KubeObject[] {
    return selectConfigMaps(this.#configMaps.get(namespace), selector);
  }

  /** from a name -> labels map, as policy test suites write them, plus ConfigMap objects */
  static fromLabels(map: Record<string, Record<string, string>>, configMaps: KubeObject[] = []): StaticCluster {
    return new StaticCluster([
      ...Object.entries(map).map(([name, labels]) => ({
        apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
      })),
      ...configMaps,
    ]);
  }
}

/** Reads Namespace and ConfigMap objects: YAML documents, v1 Lists, or plain lists. */
export function readClusterFile(path: string): StaticCluster {
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    if (!('toJS' in doc)) continue;
    const v = doc.toJS() as unknown;
    const items = Array.isArray(v) ? v : (v as { kind?: string; items?: unknown[] })?.kind?.endsWith('List') ? (v as { items: unknown[] }).items : [v];
    objects.push(...(items as KubeObject[]).filter((o) => o?.kind === 'Namespace' || o?.kind === 'ConfigMap'));
  }
  return new StaticCluster(objects);
}
