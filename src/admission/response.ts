// Builds the AdmissionReview response the API server expects.
import type { Decision } from './decide.js';
import type { AdmissionReviewResponse } from './types.js';

/** The API server prefixes this with the webhook's name: validate.trustgate.dev/decision-id */
export const DECISION_ID_ANNOTATION = 'decision-id';
// Kubernetes truncates nothing but humans read these in kubectl: keep them bounded
const MAX_MESSAGE = 4096;
const MAX_WARNINGS = 20;
const MAX_WARNING = 512;

export interface JsonPatchOperation {
  op: 'add' | 'replace' | 'remove' | 'test';
  path: string;
  value?: unknown;
  /** in decision records, instead of a mutation's value (object content is recorded by digest) */
  valueSha256?: string;
}

/** The HTTP status of each reason a validation may give, as the API server maps a ValidatingAdmissionPolicy's. */
export const STATUS_REASONS: Readonly<Record<string, number>> = { Forbidden: 403, Invalid: 422, Unauthorized: 401, RequestEntityTooLarge: 413 };

/** s cut to at most n characters, an ellipsis marking the cut */
export const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function buildResponse(uid: string, decision: Decision, decisionId: string, patch: readonly JsonPatchOperation[] = []): AdmissionReviewResponse {
  const warnings = decision.warnings.slice(0, MAX_WARNINGS).map((w) => clip(w, MAX_WARNING));
  if (decision.warnings.length > MAX_WARNINGS) warnings.push(`… and ${decision.warnings.length - MAX_WARNINGS} more warnings (see decision ${decisionId})`);
  const response: AdmissionReviewResponse['response'] = {
    uid,
    allowed: decision.allowed,
    // the decision id last: no policy's annotation can take its key
    auditAnnotations: decision.auditAnnotations ? { ...decision.auditAnnotations, [DECISION_ID_ANNOTATION]: decisionId } : { [DECISION_ID_ANNOTATION]: decisionId },
  };
  if (!decision.allowed) {
    // own keys only: a reason named like an Object.prototype member must not become the status code
    const reason = decision.reason && Object.hasOwn(STATUS_REASONS, decision.reason) ? decision.reason : 'Forbidden';
    response.status = {
      code: STATUS_REASONS[reason]!,
      reason,
      status: 'Failure',
      message: clip(`trustgate denied the request: ${decision.denials.join(' ')}`, MAX_MESSAGE),
    };
    // the stable reason codes, machine-readable: field names the policy
    if (decision.causes?.length) {
      response.status.details = { causes: decision.causes.map((c) => ({ reason: c.code, message: clip(c.message, MAX_WARNING), field: `policy/${c.policy}` })) };
    }
  }
  if (warnings.length) response.warnings = warnings;
  if (decision.allowed && patch.length) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
  }
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}
