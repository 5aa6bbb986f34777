// Turns per-policy results into one decision: what denies, what warns, what is only recorded.
import type { PolicyResult } from '../policy/index.js';

export interface DenialCause {
  policy: string;
  /** the stable reason code, e.g. VALIDATION_FAILED, SOURCE_NOT_ALLOWED */
  code: string;
  message: string;
}

export interface Decision {
  allowed: boolean;
  /** one entry per denying policy: "[name] message; message" */
  denials: string[];
  warnings: string[];
  /** the same denials, machine-readable, for status.details.causes */
  causes?: DenialCause[];
  /** the status reason of the first denying policy's failing validation that gives one; Forbidden when none does */
  reason?: string;
  /** audit annotations of the policies that set them (ValidatingAdmissionPolicies): the first policy to use a key has it */
  auditAnnotations?: Record<string, string>;
}

function line(r: PolicyResult): string {
  return `[${r.name}] ${r.messages.join('; ')}`;
}

/** "[policy] excepted by name (ticket) until 2027-01-31T00:00:00.000Z: message; message" */
function exceptedLine(r: PolicyResult, e: NonNullable<PolicyResult['exceptions']>[number]): string {
  return `[${r.name}] excepted by ${e.name}${e.ticket ? ` (${e.ticket})` : ''} until ${e.expires}: ${e.messages.join('; ')}`;
}

export function decide(results: readonly PolicyResult[]): Decision {
  const denials: string[] = [];
  const warnings: string[] = [];
  const causes: DenialCause[] = [];
  let auditAnnotations: Record<string, string> | undefined;
  let reason: string | undefined;
  for (const r of results) {
    if (r.annotations) {
      // own keys only: a key named like an Object.prototype member (constructor) is a key like any other
      for (const [k, v] of Object.entries(r.annotations)) if (!auditAnnotations || !Object.hasOwn(auditAnnotations, k)) (auditAnnotations ??= {})[k] = v;
    }
    for (const note of r.notes ?? []) warnings.push(`[${r.name}] ${note}`);
    // waived, not hidden: whoever applies the object sees what it breaks and until when it may
    if (r.exceptions && r.mode !== 'audit') for (const e of r.exceptions) warnings.push(exceptedLine(r, e));
    if (r.result === 'pass' || r.result === 'excepted') continue;
    // an evaluation error counts as a failure unless the policy says failurePolicy: Ignore
    const failing = r.result === 'fail' || r.failurePolicy === 'Fail';
    if (r.mode === 'audit') continue;
    if (!failing) {
      warnings.push(`[${r.name}] could not be evaluated and was ignored (failurePolicy: Ignore): ${r.messages.join('; ')}`);
    } else if (r.mode === 'enforce') {
      denials.push(line(r));
      if (r.result === 'fail') reason ??= r.reason;
      if (r.causes?.length) for (const c of r.causes) causes.push({ policy: r.name, code: c.code, message: c.message });
      else causes.push({ policy: r.name, code: r.code ?? 'POLICY_FAILED', message: r.messages.join('; ') });
    } else {
      warnings.push(line(r));
    }
  }
  return { allowed: denials.length === 0, denials, warnings, causes, reason, auditAnnotations };
}
