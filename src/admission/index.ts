// The admission recipe, whole in one function: parse the review, select the policies,
// evaluate, decide, record, respond.
import { randomUUID } from 'node:crypto';
import { AuditUnavailableError, buildDecisionRecord, type Caller, type DecisionRecord, type DecisionRecorder } from '../audit/index.js';
import { evaluatePolicy, EvaluationContext, type CompiledPolicy, type ExplainStep, type NamespaceLookup, type ParamsLookup, type PolicyResult, type PolicySet } from '../policy/index.js';
import { applyImageRules, RequestImages } from '../policy/images-rule.js';
import { AuthorizationSession, MAX_AUTHORIZATION_ROUNDS, NO_AUTHORIZER, type Authorizer } from '../policy/authorization.js';
import type { ImageVerifier } from '../supplychain/image-verifier.js';
import type { CredentialStore } from '../supplychain/oci/index.js';
import { decide, type Decision } from './decide.js';
import { diffPatch } from '../policy/mutation/index.js';
import { parseReview } from './parse.js';
import { buildResponse, type JsonPatchOperation } from './response.js';
import type { AdmissionRequest, AdmissionReviewResponse, Endpoint } from './types.js';

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
  /** verifies images rules; without it a policy with images rules is an evaluation error */
  images?: ImageVerifier;
  /** answers policies' authorization checks (SubjectAccessReviews in a cluster); without it each check is an errored decision */
  authorizer?: Authorizer;
  /** registry credentials of the request's pod (imagePullSecrets, service account), in a cluster */
  pullCredentials?: (request: AdmissionRequest) => Promise<CredentialStore | undefined>;
}

export interface AdmissionOutcome {
  review: AdmissionReviewResponse;
  decision: Decision;
  results: PolicyResult[];
  record: DecisionRecord;
  explain?: ExplainStep[];
}

/** how long a request waits for a namespace its cluster cache does not know yet */
const NAMESPACE_LOOKUP_MS = 1000;

export class PolicySetUnavailableError extends Error {
  readonly code = 'POLICIES_NOT_LOADED';
}

export interface AdmitOptions {
  explain?: boolean;
  /** when the review arrived (epoch ms), if it waited before this call: the deadline counts from then */
  receivedAt?: number;
  /** this request's deadline when shorter than services.deadlineMs (its caller waits less) */
  deadlineMs?: number;
  /** the caller its client certificate authenticated, for the record */
  caller?: Caller;
  /** the time PolicyExceptions' expiry is judged at (a PolicyTest's `now`); default the clock */
  now?: number;
}

export async function admit(body: unknown, endpoint: Endpoint, services: AdmissionServices, options: AdmitOptions = {}): Promise<AdmissionOutcome> {
  const startedAt = performance.now();
  const original = parseReview(body);
  const set = services.policies();
  // fail closed: without a policy set nothing can be vouched for
  if (!set) throw new PolicySetUnavailableError('no policy set is loaded yet');
  const explain = options.explain ? [] : undefined;
  const authorization = set.usesAuthorizer ? new AuthorizationSession(services.authorizer ?? NO_AUTHORIZER) : undefined;
  const deadline = (options.receivedAt ?? Date.now()) + (options.deadlineMs ?? services.deadlineMs);
  // a namespace created a moment ago may not have reached the watch yet: looked up once rather
  // than judged unknown (a Namespace's own request names itself, and needs no look-up)
  const ns = original.namespace;
  if (ns && services.namespaces?.resolve && original.resource.resource !== 'namespaces' && !services.namespaces.get(ns)) {
    await services.namespaces.resolve(ns, Math.min(NAMESPACE_LOOKUP_MS, deadline - Date.now()));
  }
  const evaluationStarted = performance.now();
  const results: PolicyResult[] = [];
  // mutation policies first, as the API server runs them before any validation: every other
  // policy judges the object as they leave it (a scan judges a CREATE as the cluster would)
  const request = endpoint !== 'validate' && set.mutates
    ? applyMutationPolicies(set, original, results, (r) => new EvaluationContext(r, deadline, services.namespaces, services.params, explain))
    : original;
  const ctx = new EvaluationContext(request, deadline, services.namespaces, services.params, explain, authorization);
  const withImages: [CompiledPolicy, PolicyResult][] = [];
  const evaluated = authorization ? await evaluateWithAuthorization(set, ctx, authorization) : undefined;
  for (const policy of evaluated?.keys() ?? set.index.candidates(request)) {
    const result = evaluated ? evaluated.get(policy) : evaluatePolicy(policy, ctx);
    if (!result) continue;
    results.push(result);
    if (policy.images.length && result.result !== 'error') withImages.push([policy, result]);
  }
  const evaluationMs = performance.now() - evaluationStarted;
  let imagesMs: number | undefined;
  if (withImages.length) {
    // registry look-ups are the slow part: all policies' images at once, bounded by the deadline
    const imagesStarted = performance.now();
    let deadline: AbortSignal | undefined;
    const signal = () => (deadline ??= AbortSignal.timeout(Math.max(0, ctx.deadline - Date.now())));
    const credentials = await services.pullCredentials?.(request).catch(() => undefined);
    const images = new RequestImages(request);
    await Promise.all(withImages.map(([policy, result]) => applyImageRules(policy, result, { request, images, endpoint, verifier: services.images, signal, credentials })));
    imagesMs = performance.now() - imagesStarted;
  }
  if (set.exceptions.size) set.exceptions.apply(results, ctx, options.now ?? Date.now());
  const decision = decide(results);
  const patch: JsonPatchOperation[] = decision.allowed ? results.flatMap((r) => r.patch ?? []) : [];
  const decisionId = randomUUID();
  const record = buildDecisionRecord({ decisionId, replica: services.replica, request: original, endpoint, allowed: decision.allowed, startedAt, evaluationMs, imagesMs, policySetRevision: set.revision, results, patch, labels: services.labels, authorizations: authorization?.record(), caller: options.caller });
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

/**
 * Runs the mutation policies that match, in order, each on the object as the one before left it;
 * their results (with the patch each made) join `results`. Then, as the API server reinvokes,
 * once any of them changed the object, those with reinvocationPolicy: IfNeeded that ran are run
 * once more, in order (a second run is recorded when it changed something or failed). The
 * request as they leave it.
 */
function applyMutationPolicies(set: PolicySet, request: AdmissionRequest, results: PolicyResult[], contextFor: (r: AdmissionRequest) => EvaluationContext): AdmissionRequest {
  let current = request;
  let changed = false;
  const reinvocable: CompiledPolicy[] = [];
  const invoke = (policy: CompiledPolicy, again: boolean) => {
    const ctx = contextFor(current);
    ctx.runMutations = true;
    const result = evaluatePolicy(policy, ctx);
    if (!result) return;
    if (!again && policy.reinvoke) reinvocable.push(policy);
    const patch = result.mutated && current.object ? diffPatch(current.object, result.mutated) : [];
    if (result.mutated) ctx.explain?.push({ policy: policy.name, step: again ? 'patch (reinvoked)' : 'patch', value: patch.length ? patch : 'no change' });
    if (!again || patch.length || result.result !== 'pass') results.push(result);
    if (!patch.length) return;
    result.patch = patch;
    current = { ...current, object: result.mutated! };
    changed = true;
  };
  for (const policy of set.index.candidates(request)) if (policy.mutations.length) invoke(policy, false);
  if (changed) for (const policy of reinvocable) invoke(policy, true);
  return current;
}

/**
 * Evaluates with authorization checks: a policy that met a check not answered yet is evaluated
 * again once every such check of the round has been asked, until none is pending (then, past
 * the last round, unanswered checks are errored decisions). Results by policy, in their order.
 */
async function evaluateWithAuthorization(set: PolicySet, ctx: EvaluationContext, authorization: AuthorizationSession): Promise<Map<CompiledPolicy, PolicyResult | undefined>> {
  const results = new Map<CompiledPolicy, PolicyResult | undefined>();
  let again = [...set.index.candidates(ctx.request)];
  for (let round = 0; again.length; round++) {
    if (round === MAX_AUTHORIZATION_ROUNDS) authorization.finish();
    const waiting: CompiledPolicy[] = [];
    for (const policy of again) {
      const unanswered = authorization.unanswered;
      results.set(policy, evaluatePolicy(policy, ctx));
      if (authorization.unanswered !== unanswered) waiting.push(policy);
    }
    if (!waiting.length) break;
    await authorization.resolve(ctx.deadline);
    ctx = ctx.again();
    again = waiting;
  }
  return results;
}
