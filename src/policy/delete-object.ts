// A policy that matches DELETE and whose validations read `object` fails on every delete: the
// API server sends no object for a DELETE (it is null, as in ValidatingAdmissionPolicy), so the
// expression errors and failurePolicy Fail denies each delete. Found at load, with what to do.
import type { CompiledPolicy, PolicySpec, PolicyWarning } from './types.js';

// what marks an expression as written with DELETE in mind: it names the operation or tests object for null
const GUARD = /DELETE|\bobject\s*[!=]=\s*null\b|\bnull\s*[!=]=\s*object\b/;

export function deleteObjectWarnings(
  spec: Pick<PolicySpec, 'match' | 'failurePolicy'>,
  policy: Pick<CompiledPolicy, 'variables' | 'conditions' | 'validations'>,
): PolicyWarning[] {
  const deletes = spec.match.resources.some((r) => r.operations.includes('DELETE') || r.operations.includes('*'));
  if (!deletes || policy.conditions.some((c) => GUARD.test(c.expression.source))) return [];
  // a variable reads object when it names it, or a variable that does, unguarded
  const readsObject = new Set<string>();
  const reads = (e: CompiledPolicy['validations'][number]['expression']) =>
    !GUARD.test(e.source) && (e.identifiers.has('object') || [...e.variableRefs].some((r) => readsObject.has(r)));
  for (const v of policy.variables) if (reads(v.expression)) readsObject.add(v.name);
  const outcome = (spec.failurePolicy ?? 'Fail') === 'Fail' ? 'failurePolicy Fail denies every delete it matches' : 'every delete it matches is allowed with a warning';
  return policy.validations.flatMap((v, i) => (reads(v.expression)
    ? [{ path: ['spec', 'validations', i, 'expression'], message: `this expression reads object, which is null on DELETE: it fails to evaluate there and ${outcome}; read oldObject, leave DELETE out of the operations, or add the condition request.operation != 'DELETE'` }]
    : []));
}
