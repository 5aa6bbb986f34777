// MutatingAdmissionPolicy mutations: a CEL value (Object{…} or a list of JSONPatch{…}) applied to
// the object. Pure: the object in, the mutated object out, or a JsonPatchError saying why not.
import type { AdmissionReviewResponse } from '../../admission/types.js';
import type { CompiledMutation } from '../types.js';
import { mergeApplyConfiguration } from './apply-configuration.js';
import { applyJsonPatch, isObject, JsonPatchError, type PatchOperation } from './json-patch.js';
import { jsonValue } from './json-value.js';

export { diffPatch, escapePointerSegment, JsonPatchError } from './json-patch.js';

type JsonObject = Record<string, unknown>;

function patchOperations(value: unknown): PatchOperation[] {
  if (!Array.isArray(value)) throw new JsonPatchError('a JSONPatch expression must evaluate to a list of JSONPatch{…}');
  return value.map((o, i) => {
    if (!isObject(o) || typeof o.op !== 'string' || typeof o.path !== 'string') throw new JsonPatchError(`item ${i} is not a JSONPatch{op, path, …} with string op and path`);
    if ((o.op === 'move' || o.op === 'copy') && typeof o.from !== 'string') throw new JsonPatchError(`item ${i} (${o.op}) needs from`);
    if ((o.op === 'add' || o.op === 'replace' || o.op === 'test') && !Object.hasOwn(o, 'value')) throw new JsonPatchError(`item ${i} (${o.op}) needs value`);
    return o as unknown as PatchOperation;
  });
}

/**
 * The object after one mutation's CEL value (converted strictly to JSON first); unchanged when a
 * JSONPatch's `test` does not hold.
 */
export function applyMutation(mutation: Pick<CompiledMutation, 'patchType'>, object: JsonObject, celValue: unknown): JsonObject {
  const value = jsonValue(celValue);
  if (mutation.patchType === 'JSONPatch') {
    // no operation may target the whole document (path ""), so what is patched stays an object
    const patched = applyJsonPatch(object, patchOperations(value));
    return patched === 'test-failed' ? object : (patched as JsonObject);
  }
  if (!isObject(value)) throw new JsonPatchError('an ApplyConfiguration expression must evaluate to Object{…}');
  return mergeApplyConfiguration(object, value);
}

/** A review's object as the AdmissionReview response's patch leaves it (eval --patched, PolicyTest's mutated:). */
export function patchedObject(review: unknown, response: AdmissionReviewResponse['response']): unknown {
  const object = (review as { request?: { object?: unknown } }).request?.object;
  if (!response.patch) return object;
  const patched = applyJsonPatch(object, JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as PatchOperation[]);
  return patched === 'test-failed' ? object : patched;
}
