// A MutatingAdmissionPolicy's ApplyConfiguration merged into the object as server-side apply
// merges it: maps and structs field by field, map lists by their keys, set lists as unions. As
// the API server does, a configuration holding an atomic list, map or struct anywhere (even
// inside an item it adds) is refused: whatever values it did not repeat would be lost.
import { isDeepStrictEqual } from 'node:util';
import { isObject, JsonPatchError, setOwn } from './json-patch.js';
import { isAtomicMap, listTypeAt, type ListType } from './list-types.js';

type Json = unknown;
type MapList = Extract<ListType, { type: 'map' }>;
const below = (path: string, field: string) => (path ? `${path}.${field}` : field);

/** Paths (as the API server writes them: .spec.initContainers[0].args) of atomic values in the configuration. */
function findAtomics(kind: string, value: Json, path: string, display: string, out: string[]): string[] {
  if (Array.isArray(value)) {
    if (!listTypeAt(kind, path)) out.push(display);
    else value.forEach((item, i) => findAtomics(kind, item, path, `${display}[${i}]`, out));
  } else if (isObject(value)) {
    if (path && isAtomicMap(kind, path)) out.push(display);
    else for (const [field, v] of Object.entries(value)) findAtomics(kind, v, below(path, field), `${display}.${field}`, out);
  }
  return out;
}

function keyOf(item: Json, t: MapList): string | undefined {
  if (!isObject(item)) return undefined;
  const values = t.keys.map((k) => item[k] ?? t.defaults?.[k]);
  return values.some((v) => v === undefined) ? undefined : JSON.stringify(values);
}

function mergeList(kind: string, live: Json, patch: Json[], path: string): Json[] {
  const t = listTypeAt(kind, path)!;
  const out = Array.isArray(live) ? [...live] : [];
  if (t.type === 'set') {
    for (const v of patch) if (!out.some((o) => isDeepStrictEqual(o, v))) out.push(v);
    return out;
  }
  for (const item of patch) {
    const key = keyOf(item, t);
    if (key === undefined) throw new JsonPatchError(`.${path}: an item lacks its key ${t.keys.join(' and ')} (a map list merges items by key)`);
    const at = out.findIndex((o) => keyOf(o, t) === key);
    if (at < 0) {
      out.push(item);
      continue;
    }
    out[at] = mergeValue(kind, out[at], item, path);
    // duplicates of the key in the object become the one merged item, as server-side apply makes them
    for (let i = out.length - 1; i > at; i--) if (keyOf(out[i], t) === key) out.splice(i, 1);
  }
  return out;
}

function mergeValue(kind: string, live: Json, patch: Json, path: string): Json {
  if (patch === null) throw new JsonPatchError(`.${path}: null cannot remove a field in an apply configuration; a JSONPatch mutation removes with op "remove"`);
  if (Array.isArray(patch)) return mergeList(kind, live, patch, path);
  if (!isObject(patch)) return patch;
  const out: Record<string, Json> = isObject(live) ? { ...live } : {};
  for (const [field, value] of Object.entries(patch)) setOwn(out, field, mergeValue(kind, Object.hasOwn(out, field) ? out[field] : undefined, value, below(path, field)));
  return out;
}

/** The object with the configuration merged in; throws JsonPatchError (atomic values, keyless items, nulls). */
export function mergeApplyConfiguration(object: Record<string, Json>, configuration: Record<string, Json>): Record<string, Json> {
  const kind = typeof object.kind === 'string' ? object.kind : '';
  const atomic = findAtomics(kind, configuration, '', '', []);
  if (atomic.length) {
    throw new JsonPatchError(`may not mutate atomic arrays, maps or structs: ${atomic.join(', ')} (as the API server refuses them: lists are atomic unless Kubernetes merges them by key or as a set; a JSONPatch mutation can change them)`);
  }
  return mergeValue(kind, object, configuration, '') as Record<string, Json>;
}
