// Kubernetes label selectors (matchLabels and matchExpressions).
import type { KubeObject } from '../admission/types.js';
import type { LabelSelector } from './types.js';

export function selectorMatches(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (!Object.hasOwn(l, k) || l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In': if (!has || !values.includes(l[e.key]!)) return false; break;
      case 'NotIn': if (has && values.includes(l[e.key]!)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
    }
  }
  return true;
}

/** The selector in the API's query syntax (`a=b,c in (d,e),!f`), for list and watch calls. */
export function selectorString(selector: LabelSelector): string {
  const parts = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions ?? []) {
    switch (e.operator) {
      case 'In': parts.push(`${e.key} in (${(e.values ?? []).join(',')})`); break;
      case 'NotIn': parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`); break;
      case 'Exists': parts.push(e.key); break;
      case 'DoesNotExist': parts.push(`!${e.key}`); break;
    }
  }
  return parts.join(',');
}

/** The objects (of one namespace, by name) whose labels the selector selects, in name order. */
export function selectObjects(byName: ReadonlyMap<string, KubeObject> | undefined, selector: LabelSelector): KubeObject[] {
  if (!byName) return [];
  const names = [...byName.keys()].sort();
  const out: KubeObject[] = [];
  for (const n of names) {
    const o = byName.get(n)!;
    if (selectorMatches(selector, o.metadata?.labels)) out.push(o);
  }
  return out;
}
