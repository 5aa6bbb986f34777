// Cluster objects from a file (Namespaces, ConfigMaps and other params objects), so
// namespaceSelector, params and allowlists work offline: trustgate eval, policy tests, a serve
// without cluster access.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../admission/types.js';
import { isConfigMap, paramKindKey, selectObjects, type LabelSelector, type NamespaceLookup, type ParamKind, type ParamsLookup } from '../policy/index.js';

export class StaticCluster implements NamespaceLookup, ParamsLookup {
  readonly #namespaces = new Map<string, KubeObject>();
  /** by apiVersion|kind, then namespace ('' for none), then name */
  readonly #objects = new Map<string, Map<string, Map<string, KubeObject>>>();

  constructor(objects: Iterable<KubeObject>) {
    for (const o of objects) {
      const name = o?.metadata?.name;
      if (!name || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') continue;
      if (o.kind === 'Namespace' && o.apiVersion === 'v1') {
        this.#namespaces.set(name, o);
        continue;
      }
      const type = { apiVersion: o.apiVersion, kind: o.kind };
      // a ConfigMap written without a namespace is where `kubectl apply` would put it by default
      const namespace = o.metadata?.namespace ?? (isConfigMap(type) ? 'default' : '');
      let ofType = this.#objects.get(paramKindKey(type));
      if (!ofType) this.#objects.set(paramKindKey(type), (ofType = new Map()));
      let inNamespace = ofType.get(namespace);
      if (!inNamespace) ofType.set(namespace, (inNamespace = new Map()));
      inNamespace.set(name, o);
    }
  }

  get(name: string): KubeObject | undefined {
    return this.#namespaces.get(name);
  }

  /** ConfigMaps live in namespaces; another kind does when the file puts its objects in one */
  namespaced(type: ParamKind): boolean {
    if (isConfigMap(type)) return true;
    const ofType = this.#objects.get(paramKindKey(type));
    return [...(ofType?.keys() ?? [])].some((ns) => ns !== '');
  }

  object(type: ParamKind, namespace: string, name: string): KubeObject | undefined {
    return this.#objects.get(paramKindKey(type))?.get(namespace)?.get(name);
  }

  objects(type: ParamKind, namespace: string, selector: LabelSelector): KubeObject[] {
    return selectObjects(this.#objects.get(paramKindKey(type))?.get(namespace), selector);
  }

  /** from a name -> labels map, as policy test suites write them, plus ConfigMaps and other params objects */
  static fromLabels(map: Record<string, Record<string, string>>, objects: KubeObject[] = []): StaticCluster {
    return new StaticCluster([
      ...Object.entries(map).map(([name, labels]) => ({
        apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
      })),
      ...objects,
    ]);
  }
}

/** Reads cluster objects: YAML documents, v1 Lists, or plain lists. */
export function readClusterFile(path: string): StaticCluster {
  return new StaticCluster(readClusterObjects(path));
}

export function readClusterObjects(path: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    if (!('toJS' in doc)) continue;
    const v = doc.toJS() as unknown;
    const items = Array.isArray(v) ? v : (v as { kind?: string; items?: unknown[] })?.kind?.endsWith('List') ? (v as { items: unknown[] }).items : [v];
    objects.push(...(items as KubeObject[]).filter((o) => typeof o?.kind === 'string'));
  }
  return objects;
}
