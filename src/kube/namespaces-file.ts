// Namespace objects from a file, so namespaceSelector works offline (eval, test, no cluster).
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../admission/types.js';
import type { NamespaceLookup } from '../policy/index.js';

export class StaticNamespaces implements NamespaceLookup {
  readonly #byName = new Map<string, KubeObject>();
  constructor(objects: Iterable<KubeObject>) {
    for (const o of objects) if (o?.metadata?.name) this.#byName.set(o.metadata.name, o);
  }
  get(name: string): KubeObject | undefined {
    return this.#byName.get(name);
  }
  /** from a name -> labels map, as policy test suites write them */
  static fromLabels(map: Record<string, Record<string, string>>): StaticNamespaces {
    return new StaticNamespaces(Object.entries(map).map(([name, labels]) => ({
      apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
    })));
  }
}

/** Reads Namespace objects: YAML documents, a v1 List, or a plain list. */
export function readNamespacesFile(path: string): StaticNamespaces {
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    if (!('toJS' in doc)) continue;
    const v = doc.toJS() as unknown;
    const items = Array.isArray(v) ? v : (v as { kind?: string; items?: unknown[] })?.kind?.endsWith('List') ? (v as { items: unknown[] }).items : [v];
    for (const o of items) if ((o as KubeObject)?.kind === 'Namespace') objects.push(o as KubeObject);
  }
  return new StaticNamespaces(objects);
}
