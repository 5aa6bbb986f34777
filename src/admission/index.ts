// The admission recipe, whole in one function: parse the review, select the policies,
// evaluate, decide, record, respond.
import { randomUUID } from 'node:crypto';
import { AuditUnavailableError, buildDecisionRecord, type DecisionRecord, type DecisionRecorder } from '../audit/index.js';
import { evaluatePolicy, EvaluationContext, type ExplainStep, type NamespaceLookup, type ParamsLookup, type PolicyResult, type PolicySet } from '../policy/index.js';
import { decide, type Decision } from './decide.js';
import { parseReview } from './parse.js';
import { buildResponse, type JsonPatchOperation } from './response.js';
import type { AdmissionReviewResponse, Endpoint } from './types.js';

export { AdmissionInputError, parseReview } from './parse.js';
export { buildResponse, DECISION_ID_ANNOTATION, type JsonPatchOperation } from './response.js';
export { decide, type Decision } from './decide.js';
export type * from './types.js';

export interface AdmissionServices {
  policies(): PolicySet | undefined;
  recorder: DecisionRecorder;
  namespaces?: NamespaceLookup;
  params?: ParamsLookup;
  replica: string;
  /** internal deadline in ms, below the API server's timeout */
  deadlineMs: number;
  labels?: { cluster: string; version: string };
}

export interface AdmissionOutcome {
  review: AdmissionReviewResponse;
  decision: Decision;
  results: PolicyResult[];
  record: DecisionRecord;
  explain?: ExplainStep[];
}

export class PolicySetUnavailableError extends Error {
  readonly code = 'POLICIES_NOT_LOADED';
}

export async function admit(body: unknown, endpoint: Endpoint, services: AdmissionServices, options: { explain?: boolean } = {}): Promise<AdmissionOutcome> {
  const startedAt = performance.now();
  const request = parseReview(body);
  const set = services.policies();
  // fail closed: without a policy set nothing can be vouched for
  if (!set) throw new PolicySetUnavailableError('no policy set is loaded yet');
  const explain = options.explain ? [] : undefined;
  const ctx = new EvaluationContext(request, Date.now() + services.deadlineMs, services.namespaces, services.params, explain);
  const results: PolicyResult[] = [];
  const evaluationStarted = performance.now();
  for (const policy of set.index.candidates(request)) {
    const result = evaluatePolicy(policy, ctx);
    if (result) results.push(result);
  }
  const evaluationMs = performance.now() - evaluationStarted;
  const decision = decide(results);
  const patch: JsonPatchOperation[] = [];
  const decisionId = randomUUID();
  const record = buildDecisionRecord({ decisionId, replica: services.replica, request, endpoint, allowed: decision.allowed, startedAt, evaluationMs, policySetRevision: set.revision, results, patch, labels: services.labels });
  try {
    await services.recorder.record(record);
  } catch (err) {
    if (!(err instanceof AuditUnavailableError)) throw err;
    // nothing is admitted unrecorded: a decision that cannot be recorded becomes a denial
    const refused: Decision = { allowed: false, denials: [`[trustgate] ${err.message}`], warnings: decision.warnings, causes: [{ policy: 'trustgate', code: 'AUDIT_UNAVAILABLE', message: err.message }] };
    return { review: buildResponse(request.uid, refused, decisionId), decision: refused, results, record, explain };
  }
  return { review: buildResponse(request.uid, decision, decisionId, patch), decision, results, record, explain };
}
