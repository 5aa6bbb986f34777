// RFC 6902 JSON Patch over plain JSON values: applied as a MutatingAdmissionPolicy's JSONPatch
// mutation is (a failed `test` leaves the object as it was), and computed between two objects
// for the AdmissionReview response.
import { isDeepStrictEqual } from 'node:util';
import type { JsonPatchOperation } from '../../admission/response.js';

export class JsonPatchError extends Error {
  readonly code = 'MUTATION_FAILED';
}

type Json = unknown;
type Container = Record<string, Json> | Json[];

/** a JSON object (not an array, not null) */
export const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** obj[key] = value as an own member, also for "__proto__" (an assignment would replace the prototype) */
export function setOwn(obj: Record<string, Json>, key: string, value: Json): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

/** "/a/b~1c" → ["a", "b/c"] (RFC 6901) */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new JsonPatchError(`path ${JSON.stringify(pointer)} is not a JSON Pointer: it must start with "/"`);
  return pointer.slice(1).split('/').map((s) => {
    if (/~[^01]|~$/.test(s)) throw new JsonPatchError(`path ${JSON.stringify(pointer)} has a "~" that is not "~0" or "~1"`);
    return s.replaceAll('~1', '/').replaceAll('~0', '~');
  });
}

/** RFC 6901: '~' first, so the '~' of an escaped '/' is not escaped again */
export const escapePointerSegment = (key: string): string => key.replaceAll('~', '~0').replaceAll('/', '~1');

/** ["a", "b/c"] → "/a/b~1c" */
export const pointerOf = (segments: readonly (string | number)[]): string => segments.map((s) => `/${escapePointerSegment(String(s))}`).join('');

/** An array index as RFC 6902 allows it: digits without a leading zero (or "-" where an append is meant) */
function arrayIndex(segment: string, length: number, pointer: string, forAdd: boolean): number {
  if (forAdd && segment === '-') return length;
  if (!/^(0|[1-9][0-9]*)$/.test(segment)) throw new JsonPatchError(`path ${pointer}: ${JSON.stringify(segment)} is not an array index`);
  const i = Number(segment);
  if (i > length || (!forAdd && i === length)) throw new JsonPatchError(`path ${pointer}: index ${i} is out of range (the array has ${length} items)`);
  return i;
}

/** the container a pointer's last segment is in, and that segment */
function parentOf(doc: Json, pointer: string): { parent: Container; key: string } {
  const segments = parsePointer(pointer);
  if (!segments.length) throw new JsonPatchError('the whole object cannot be the target of an operation (path "")');
  let node = doc;
  for (const s of segments.slice(0, -1)) {
    if (Array.isArray(node)) node = node[arrayIndex(s, node.length, pointer, false)];
    else if (isObject(node) && Object.hasOwn(node, s)) node = node[s];
    else throw new JsonPatchError(`path ${pointer}: ${JSON.stringify(s)} does not exist`);
  }
  if (!Array.isArray(node) && !isObject(node)) throw new JsonPatchError(`path ${pointer}: its parent is not an object or array`);
  return { parent: node, key: segments.at(-1)! };
}

function valueAt(doc: Json, pointer: string): Json {
  const { parent, key } = parentOf(doc, pointer);
  if (Array.isArray(parent)) return parent[arrayIndex(key, parent.length, pointer, false)];
  if (!Object.hasOwn(parent, key)) throw new JsonPatchError(`path ${pointer} does not exist`);
  return parent[key];
}

function add(doc: Json, pointer: string, value: Json): void {
  const { parent, key } = parentOf(doc, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent.length, pointer, true), 0, value);
  else setOwn(parent, key, value);
}

function remove(doc: Json, pointer: string): Json {
  const { parent, key } = parentOf(doc, pointer);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(key, parent.length, pointer, false), 1)[0];
  if (!Object.hasOwn(parent, key)) throw new JsonPatchError(`path ${pointer} does not exist: nothing to remove`);
  const old = parent[key];
  delete parent[key];
  return old;
}

const copyOf = <T>(v: T): T => structuredClone(v);

export interface PatchOperation {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

/**
 * The document with the operations applied in order, or `test-failed` when a `test` did not
 * hold (then no operation applies, as the API server does). The input is not changed.
 */
export function applyJsonPatch(document: Json, operations: readonly PatchOperation[]): Json | 'test-failed' {
  const doc = copyOf(document);
  for (const [i, o] of operations.entries()) {
    const where = `operation ${i} (${o.op} ${o.path})`;
    try {
      switch (o.op) {
        case 'add': add(doc, o.path, copyOf(o.value)); break;
        case 'remove': remove(doc, o.path); break;
        case 'replace': valueAt(doc, o.path); remove(doc, o.path); add(doc, o.path, copyOf(o.value)); break;
        case 'move': {
          if (o.path.startsWith(`${o.from}/`)) throw new JsonPatchError(`cannot move ${o.from} into itself`);
          add(doc, o.path, remove(doc, o.from!));
          break;
        }
        case 'copy': add(doc, o.path, copyOf(valueAt(doc, o.from!))); break;
        case 'test': if (!isDeepStrictEqual(valueAt(doc, o.path), o.value)) return 'test-failed'; break;
        default: throw new JsonPatchError(`unknown op ${JSON.stringify(o.op)} (add, remove, replace, move, copy or test)`);
      }
    } catch (err) {
      if (err instanceof JsonPatchError) throw new JsonPatchError(`${where}: ${err.message}`);
      throw err;
    }
  }
  return doc;
}

/**
 * When `after` is `before` with items inserted, or removed, at one place (a sidecar put first,
 * a container taken out), the operations that say so: adds (or removes) there, rather than a
 * replace of every item after it. False for any other change.
 */
function spliced(before: Json[], after: Json[], path: (string | number)[], out: JsonPatchOperation[]): boolean {
  const d = after.length - before.length;
  if (d === 0) return false;
  let i = 0;
  while (i < before.length && i < after.length && isDeepStrictEqual(before[i], after[i])) i++;
  const [longer, shorter] = d > 0 ? [after, before] : [before, after];
  for (let j = i; j < shorter.length; j++) if (!isDeepStrictEqual(shorter[j], longer[j + Math.abs(d)])) return false;
  if (d > 0) for (let k = 0; k < d; k++) out.push({ op: 'add', path: pointerOf([...path, i + k]), value: after[i + k] });
  else for (let k = 0; k < -d; k++) out.push({ op: 'remove', path: pointerOf([...path, i]) });
  return true;
}

/**
 * Operations that turn `before` into `after`: objects member by member, arrays by the items
 * inserted or removed at one place, else item by item (trailing items removed from the end,
 * new ones appended), anything else replaced.
 */
export function diffPatch(before: Json, after: Json, path: (string | number)[] = [], out: JsonPatchOperation[] = []): JsonPatchOperation[] {
  if (isDeepStrictEqual(before, after)) return out;
  if (isObject(before) && isObject(after)) {
    for (const k of Object.keys(before)) if (!Object.hasOwn(after, k)) out.push({ op: 'remove', path: pointerOf([...path, k]) });
    for (const [k, v] of Object.entries(after)) {
      if (Object.hasOwn(before, k)) diffPatch(before[k], v, [...path, k], out);
      else out.push({ op: 'add', path: pointerOf([...path, k]), value: v });
    }
  } else if (Array.isArray(before) && Array.isArray(after) && path.length) {
    if (spliced(before, after, path, out)) return out;
    const common = Math.min(before.length, after.length);
    for (let i = 0; i < common; i++) diffPatch(before[i], after[i], [...path, i], out);
    for (let i = before.length - 1; i >= after.length; i--) out.push({ op: 'remove', path: pointerOf([...path, i]) });
    for (let i = before.length; i < after.length; i++) out.push({ op: 'add', path: pointerOf([...path, i]), value: after[i] });
  } else {
    out.push({ op: 'replace', path: pointerOf(path), value: after });
  }
  return out;
}
