// Load-time warnings for apply configurations the API server is sure to refuse at admission: an
// atomic list or selector written out in Object{…} (the Kubernetes documentation's sidecar
// example sets an init container's args, and fails so in every cluster).
import { constructedFields } from '../cel/index.js';
import { builtInKindsMatched } from '../known-resources.js';
import type { PolicySpec, PolicyWarning } from '../types.js';
import { isAtomicMap, listTypeAt } from './list-types.js';

/** `Object.spec.initContainers` + `args` → "spec.initContainers.args" */
const fieldPath = (type: string, field: string) => (type === 'Object' ? field : `${type.slice('Object.'.length)}.${field}`);

export function atomicFieldWarnings(spec: PolicySpec): PolicyWarning[] {
  if (!spec.mutations?.length) return [];
  const kinds = builtInKindsMatched(spec.match.resources);
  if (!kinds?.length) return [];
  const warnings: PolicyWarning[] = [];
  for (const [i, m] of (spec.mutations ?? []).entries()) {
    const source = m.patchType === 'ApplyConfiguration' ? m.applyConfiguration?.expression : undefined;
    if (source === undefined) continue;
    const atomic = new Set<string>();
    for (const f of constructedFields(source)) {
      if (!f.type.startsWith('Object') || f.value === 'other') continue;
      const path = fieldPath(f.type, f.field);
      const refused = (kind: string) => (f.value === 'list' ? listTypeAt(kind, path) === undefined : isAtomicMap(kind, path));
      if (kinds.every(refused)) atomic.add(`.${path}`);
    }
    if (atomic.size) {
      warnings.push({
        path: ['spec', 'mutations', i, 'applyConfiguration', 'expression'],
        message: `sets ${[...atomic].join(', ')}, atomic in ${kinds.join(', ')}: the API server (and trustgate) refuse this apply configuration at admission ("may not mutate atomic arrays, maps or structs"); change atomic values with a JSONPatch mutation`,
      });
    }
  }
  return warnings;
}
