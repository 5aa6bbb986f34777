// Kubernetes' JSON Patch library for MutatingAdmissionPolicies: jsonpatch.escapeKey(k) makes a
// map key (a label or annotation name with '/' or '~') safe as one JSON Pointer segment.
import type { Environment } from '@marcbachmann/cel-js';
import { escapePointerSegment } from '../../mutation/json-patch.js';

class JsonPatchNamespace {}

export function registerJsonPatch(env: Environment): void {
  env
    .registerType('JsonPatchNamespace', JsonPatchNamespace)
    .registerConstant('jsonpatch', 'JsonPatchNamespace', new JsonPatchNamespace())
    .registerFunction('JsonPatchNamespace.escapeKey(string): string', (_: unknown, key: string) => escapePointerSegment(key));
}
