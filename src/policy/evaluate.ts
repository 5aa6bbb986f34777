// Evaluates one compiled policy against one request: conditions, then variables (lazily),
// then every validation, the sources rule and the JSON Schema, all of them, so one denial
// lists everything that must change. Pure apart from the cluster lookups it is handed.
import type { ErrorObject } from 'ajv';
import type { AdmissionRequest, KubeObject } from '../admission/types.js';
import { CelAuthorizer, CostLimitError, describeEvaluationError, fromCel, toCel, InputLimitError, type CompiledExpression } from './cel/index.js';
import { requestUser, type AuthorizationSession } from './authorization.js';
import { clip } from '../admission/response.js';
import { policyInScope, type NamespaceLookup } from './match.js';
import { evaluateSourcesRule } from './sources-rule.js';
import { selectorString } from './selector.js';
import { isConfigMap, type CompiledPolicy, type LabelSelector, type ParamKind, type ParamsSource } from './types.js';
import type { ImageVerdict } from '../supplychain/image-verifier.js';
import type { VerificationCode } from '../supplychain/sigstore/index.js';
import type { AppliedException } from './exceptions.js';
import type { JsonPatchOperation } from '../admission/response.js';
import { applyMutation, JsonPatchError } from './mutation/index.js';

/** Stable reason codes: they reach the response, the decision record and the metrics unchanged. */
export type ReasonCode =
  | 'VALIDATION_FAILED'
  | 'SCHEMA_VIOLATION'
  | 'EVALUATION_ERROR'
  | 'DEADLINE_EXCEEDED'
  | 'PARAMS_NOT_FOUND'
  | 'PARAMS_UNAVAILABLE'
  | 'NAMESPACE_UNKNOWN'
  | 'INPUT_TOO_LARGE'
  | 'COST_LIMIT_EXCEEDED'
  | 'SOURCE_NOT_ALLOWED'
  | 'MUTATION_FAILED'
  | VerificationCode;

export interface PolicyResult {
  name: string;
  revision: string;
  mode: CompiledPolicy['mode'];
  failurePolicy: CompiledPolicy['failurePolicy'];
  /**
   * pass, fail (the object breaks the policy), error (the policy could not be evaluated),
   * excepted (it failed or errored, and PolicyExceptions waived all of it: see `exceptions`)
   */
  result: 'pass' | 'fail' | 'error' | 'excepted';
  code?: ReasonCode;
  messages: string[];
  /** things the user should know whatever the result, e.g. empty allowlist entries (shown as warnings) */
  notes?: string[];
  /** one machine-readable cause per failure when a policy fails for several reasons (one per image) */
  causes?: { code: string; message: string; /** the image it is about */ image?: string; /** the image could not be checked (registry), rather than failed */ registryError?: boolean }[];
  /** what PolicyExceptions waived, each with the messages it waived (no longer in `messages`) */
  exceptions?: AppliedException[];
  /** what images rules found, for the decision record */
  images?: ImageVerdict[];
  /** the Kubernetes status reason of the first failing validation that gives one (Invalid, Forbidden …) */
  reason?: string;
  /** a ValidatingAdmissionPolicy's audit annotations, by key */
  annotations?: Record<string, string>;
  /** the cluster objects bound as `params` (for the decision record: which version decided) */
  params?: KubeObject[];
  /** tag -> digest pins, or a mutation policy's changes, for /mutate */
  patch?: JsonPatchOperation[];
  /** a mutation policy's: the object as its mutations left it (on /mutate) */
  mutated?: KubeObject;
}

export interface ExplainStep {
  policy: string;
  step: string;
  expression?: string;
  value?: unknown;
  error?: string;
}

/** Params objects in the cluster. Each method throws ParamsUnavailableError while it cannot know. */
export interface ParamsLookup {
  /** whether objects of this kind live in namespaces */
  namespaced(type: ParamKind): boolean;
  /** one object by namespace ('' for cluster-scoped kinds) and name */
  object(type: ParamKind, namespace: string, name: string): KubeObject | undefined;
  /** the objects of the namespace ('' for cluster-scoped kinds) whose labels the selector selects, in name order */
  objects(type: ParamKind, namespace: string, selector: LabelSelector): KubeObject[];
}

/**
 * Cluster data a lookup needs is not known yet (its cache has not listed, e.g. for lack of RBAC):
 * an error the failurePolicy decides, never "not found", which parameterNotFoundAction: Allow passes.
 */
export class ParamsUnavailableError extends Error {
  readonly code = 'PARAMS_UNAVAILABLE';
}

export class DeadlineExceededError extends Error {
  readonly code = 'DEADLINE_EXCEEDED';
}

const NO_VARIABLES = Object.freeze({});

/** Per-request state shared by all policies: CEL conversions happen once, lazily. */
export class EvaluationContext {
  #base?: Record<string, unknown>;
  #converted = new Map<unknown, unknown>();
  /** the last activation built: policies with the same params and namespace reuse it */
  #lastActivation?: { params: unknown; namespaceObject: unknown; activation: Record<string, unknown> };
  /** values of request-only variables, shared by the policies that define them alike */
  readonly shared = new Map<string, unknown>();
  /** /mutate and scans: mutation policies apply, and other policies see what they made */
  runMutations = false;

  constructor(
    readonly request: AdmissionRequest,
    readonly deadline: number,
    readonly namespaces?: NamespaceLookup,
    readonly params?: ParamsLookup,
    readonly explain?: ExplainStep[],
    /** the request's authorization checks, when some policy makes them */
    readonly authorization?: AuthorizationSession,
  ) {}

  /**
   * A context for evaluating policies again once pending authorization checks are answered: the
   * same request and answers, nothing a first evaluation computed from a pending check.
   */
  again(): EvaluationContext {
    const ctx = new EvaluationContext(this.request, this.deadline, this.namespaces, this.params, this.explain, this.authorization);
    ctx.#converted = this.#converted;
    return ctx;
  }

  checkDeadline(): void {
    if (Date.now() > this.deadline) throw new DeadlineExceededError('the internal deadline passed before evaluation finished');
  }

  cel(value: unknown): unknown {
    if (value === undefined || value === null) return null;
    let v = this.#converted.get(value);
    if (v === undefined) this.#converted.set(value, (v = toCel(value)));
    return v;
  }

  /**
   * The CEL activation of a policy without variables: policies with the same params and
   * namespace (most of them) share one, instead of building it per policy.
   */
  activation(params: unknown, namespaceObject: unknown): Record<string, unknown> {
    const s = this.#lastActivation;
    if (s && s.params === params && s.namespaceObject === namespaceObject) return s.activation;
    const base = this.base();
    const activation = { object: base.object, oldObject: base.oldObject, request: base.request, params, namespaceObject, variables: NO_VARIABLES, authorizer: base.authorizer };
    this.#lastActivation = { params, namespaceObject, activation };
    return activation;
  }

  /** object, oldObject and request as CEL values, converted on first use */
  base(): Record<string, unknown> {
    if (!this.#base) {
      const { object, oldObject, ...rest } = this.request;
      const r = this.request;
      const authorizer = this.authorization
        && new CelAuthorizer(this.authorization, requestUser(r), { group: r.resource.group, resource: r.resource.resource, subresource: r.subResource ?? '', namespace: r.namespace ?? '', name: r.name ?? '' });
      this.#base = { object: this.cel(object), oldObject: this.cel(oldObject), request: this.cel(rest), authorizer };
    }
    return this.#base;
  }
}

function schemaMessages(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const path = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '(object)';
    if (e.keyword === 'required') return `${path === '(object)' ? '' : `${path}.`}${(e.params as { missingProperty: string }).missingProperty}: is required`;
    if (e.keyword === 'additionalProperties') return `${path}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
    if (e.keyword === 'enum') return `${path}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((x) => JSON.stringify(x)).join(', ')}`;
    return `${path}: ${e.message}`;
  });
}

function makeResult(policy: CompiledPolicy, result: PolicyResult['result'], messages: string[], code?: ReasonCode): PolicyResult {
  return { name: policy.name, revision: policy.revision, mode: policy.mode, failurePolicy: policy.failurePolicy, result, code, messages };
}

/**
 * Which expression an evaluation error came from, by the error itself: the innermost run() that
 * sees it names it, so an error of a variable read inside a validation is the variable's, also
 * when the variable's cached error is thrown again to a later reader.
 */
const failedStep = new WeakMap<object, string>();

/** How much of the expression an error message quotes: enough to find it in the policy. */
const QUOTED_EXPRESSION = 120;

function run(ctx: EvaluationContext, policy: CompiledPolicy, step: string, expr: CompiledExpression, activation: Record<string, unknown>): unknown {
  ctx.checkDeadline();
  try {
    const value = expr.evaluate(activation, ctx.deadline);
    ctx.explain?.push({ policy: policy.name, step, expression: expr.source, value: fromCel(value) });
    return value;
  } catch (err) {
    ctx.explain?.push({ policy: policy.name, step, expression: expr.source, error: describeEvaluationError(err) });
    if (typeof err === 'object' && err !== null && !failedStep.has(err)) failedStep.set(err, `${step} (${clip(expr.source, QUOTED_EXPRESSION)})`);
    throw err;
  }
}

/** "evaluation error in validations[0] (object.spec.x == 1): No such key: x" */
function evaluationErrorMessage(err: unknown): string {
  const step = typeof err === 'object' && err !== null ? failedStep.get(err) : undefined;
  return `evaluation error${step ? ` in ${step}` : ''}: ${describeEvaluationError(err)}`;
}

/** What the getters of one policy's `variables` object need; kept on the object under a symbol. */
interface VariableState {
  ctx: EvaluationContext;
  policy: CompiledPolicy;
  activation: Record<string, unknown>;
  /** computed values (or errors) by variable index, each boxed: a variable may evaluate to undefined-like values */
  values: ({ value: unknown } | { error: unknown } | undefined)[];
}

const VARIABLE_STATE = Symbol('variable state');

function variableValue(state: VariableState, index: number): unknown {
  const known = state.values[index];
  if (known) {
    if ('error' in known) throw known.error;
    return known.value;
  }
  const { ctx, policy, activation } = state;
  const v = policy.variables[index]!;
  let value: unknown;
  try {
    if (v.shareKey === undefined) value = run(ctx, policy, v.label, v.expression, activation);
    else if (ctx.shared.has(v.shareKey)) value = ctx.shared.get(v.shareKey);
    else ctx.shared.set(v.shareKey, (value = run(ctx, policy, v.label, v.expression, activation)));
  } catch (error) {
    // kept too: a reader that is evaluated again (by cel-js after the fast path) meets the same error
    state.values[index] = { error };
    throw error;
  }
  state.values[index] = { value };
  return value;
}

// One getter per variable position, shared by every policy and review. A getter made per review
// gave each review's object a hidden class of its own; those live in the old generation and kept
// the getters' whole review alive through young collections (a quarter of what a review
// allocated was promoted, and paid for again by a full collection every ~100 ms under load).
const variableGetters: (() => unknown)[] = [];
function variableGetter(index: number): () => unknown {
  return (variableGetters[index] ??= function (this: { [VARIABLE_STATE]: VariableState }) {
    return variableValue(this[VARIABLE_STATE], index);
  });
}

/** `variables`, evaluated lazily and at most once per review, as in ValidatingAdmissionPolicy */
function lazyVariables(ctx: EvaluationContext, policy: CompiledPolicy, activation: Record<string, unknown>): Record<string, unknown> {
  // own enumerable properties, as CEL's field access and size() expect of a map
  const variables = { [VARIABLE_STATE]: { ctx, policy, activation, values: [] } satisfies VariableState };
  for (let i = 0; i < policy.variables.length; i++) {
    Object.defineProperty(variables, policy.variables[i]!.name, { enumerable: true, get: variableGetter(i) });
  }
  return variables as unknown as Record<string, unknown>;
}

/** Marks the result failed for these messages; the first kind of failure gives the code. */
function fail(result: PolicyResult, code: ReasonCode, messages: readonly string[]): void {
  if (!messages.length) return;
  result.result = 'fail';
  result.code ??= code;
  result.messages.push(...messages);
}

/**
 * Judges a policy's CEL validations into its result; false when a match condition is false
 * (the policy does not apply). Messages go straight into the result: nothing is allocated
 * for a policy that passes.
 */
function celValidations(policy: CompiledPolicy, ctx: EvaluationContext, activation: Record<string, unknown>, result: PolicyResult): boolean {
  for (const c of policy.conditions) {
    if (run(ctx, policy, c.label, c.expression, activation) !== true) {
      ctx.explain?.push({ policy: policy.name, step: 'skipped', value: `condition ${c.name} is false` });
      return false;
    }
  }
  for (const v of policy.validations) {
    if (run(ctx, policy, v.label, v.expression, activation) === true) continue;
    let message: string | undefined;
    if (v.messageExpression) {
      try {
        const m = run(ctx, policy, `${v.label}.messageExpression`, v.messageExpression, activation);
        // as in Kubernetes: an empty or blank message, or one with a line break, falls back too
        if (typeof m === 'string' && m.trim() && !/[\r\n]/.test(m)) message = m;
      } catch {
        // as in Kubernetes: a failing messageExpression falls back to the static message
      }
    }
    fail(result, 'VALIDATION_FAILED', [message ?? v.message ?? `failed expression: ${v.expression.source}`]);
    result.reason ??= v.reason;
  }
  for (const a of policy.auditAnnotations) {
    const value = run(ctx, policy, a.label, a.expression, activation);
    if (value === null) continue;
    // as in Kubernetes, any other type is an error, which the failurePolicy decides
    if (typeof value !== 'string') throw new Error(`${a.label} (${a.key}) must be a string or null, not ${typeof value}`);
    (result.annotations ??= {})[a.key] = value;
  }
  if (policy.mutations.length) mutate(policy, ctx, activation, result);
  return true;
}

/**
 * Runs a policy's mutations in order into result.mutated. Each after the first sees the object
 * as the one before left it, and its variables are evaluated again over that object. As in the
 * API server, a mutation that fails is skipped and the policy's others still apply: the error
 * is the policy's, which its failurePolicy decides (Ignore admits what the others made).
 */
function mutate(policy: CompiledPolicy, ctx: EvaluationContext, activation: Record<string, unknown>, result: PolicyResult): void {
  let current = result.mutated ?? ctx.request.object;
  if (!current) return;
  for (const m of policy.mutations) {
    let act = activation;
    if (current !== ctx.request.object) {
      const over = new EvaluationContext({ ...ctx.request, object: current }, ctx.deadline, ctx.namespaces, ctx.params, ctx.explain);
      act = { ...activation, object: over.base().object };
      if (policy.variables.length) act.variables = lazyVariables(over, policy, act);
    }
    try {
      current = applyMutation(m, current, run(ctx, policy, m.label, m.expression, act)) as KubeObject;
    } catch (err) {
      // past the deadline, or without params, nothing more can run
      if (err instanceof DeadlineExceededError || err instanceof ParamsUnavailableError) throw err;
      const failure = failureOf(err instanceof JsonPatchError ? new JsonPatchError(`${m.label}: ${err.message}`) : err);
      result.result = 'error';
      result.code ??= failure.code;
      result.messages.push(failure.message);
    }
  }
  result.mutated = current;
}

function celWithParams(policy: CompiledPolicy, ctx: EvaluationContext, params: unknown, namespaceObject: unknown, result: PolicyResult): boolean {
  let activation: Record<string, unknown>;
  if (policy.variables.length) {
    activation = { ...ctx.activation(params, namespaceObject) };
    activation.variables = lazyVariables(ctx, policy, activation);
  } else {
    activation = ctx.activation(params, namespaceObject);
  }
  return celValidations(policy, ctx, activation, result);
}

type ClusterParams = Extract<ParamsSource, { kind: 'object' | 'objects' }>;

/**
 * The CEL part with params from cluster objects: once with the named one, or once per object the
 * selector selects (as a binding's paramRef.selector; the policy fails if any evaluation fails).
 * true when the policy applies; otherwise its result, or undefined when no condition held.
 */
function celWithClusterParams(policy: CompiledPolicy, p: ClusterParams, ctx: EvaluationContext, namespaceObject: unknown, result: PolicyResult): true | PolicyResult | undefined {
  const kind = p.type.kind;
  // without cluster data, a kind is taken to live in namespaces when the params name one (or are ConfigMaps)
  const namespaced = ctx.params ? ctx.params.namespaced(p.type) : p.namespace !== undefined || isConfigMap(p.type);
  if (!namespaced && p.namespace !== undefined) {
    return makeResult(policy, 'error', [`params name namespace ${p.namespace}, but ${kind} (${p.type.apiVersion}) is cluster-scoped`], 'EVALUATION_ERROR');
  }
  const namespace = namespaced ? p.namespace ?? ctx.request.namespace : '';
  if (namespace === undefined || (namespaced && !namespace)) {
    // as in Kubernetes, an error rather than "not found": the binding should not match cluster-scoped objects
    return makeResult(policy, 'error', [`params are read from the namespace of each request, and this ${ctx.request.kind.kind} is cluster-scoped: name the params' namespace or exclude cluster-scoped resources`], 'PARAMS_NOT_FOUND');
  }
  const found = p.kind === 'object' ? ctx.params?.object(p.type, namespace, p.name) : ctx.params?.objects(p.type, namespace, p.selector);
  if (found === undefined || (Array.isArray(found) && !found.length)) {
    const what = p.kind === 'object'
      ? `params ${kind} ${namespace ? `${namespace}/` : ''}${p.name} not found`
      : `no params ${kind} ${namespace ? `in ${namespace} ` : ''}matches the selector ${JSON.stringify(selectorString(p.selector))}`;
    if (p.allowMissing) {
      ctx.explain?.push({ policy: policy.name, step: 'params', value: `${what}: passes (parameterNotFoundAction: Allow)` });
      return result;
    }
    return makeResult(policy, 'error', [what], 'PARAMS_NOT_FOUND');
  }
  result.params = Array.isArray(found) ? found : [found];
  if (!Array.isArray(found)) return celWithParams(policy, ctx, ctx.cel(found), namespaceObject, result) || undefined;
  let applies = false;
  for (const o of found) {
    ctx.explain?.push({ policy: policy.name, step: 'params', value: `${kind} ${namespace ? `${namespace}/` : ''}${o.metadata?.name ?? ''}` });
    if (celWithParams(policy, ctx, ctx.cel(o), namespaceObject, result)) applies = true;
  }
  // the same message from several objects is said once
  if (found.length > 1) result.messages = [...new Set(result.messages)];
  return applies || undefined;
}

export function evaluatePolicy(policy: CompiledPolicy, ctx: EvaluationContext): PolicyResult | undefined {
  // a mutation policy has nothing to judge but its own run (applyMutationPolicies)
  if (policy.mutations.length && !ctx.runMutations) return undefined;
  const scope = policyInScope(policy, ctx.request, ctx.namespaces);
  if ('error' in scope) return makeResult(policy, 'error', [scope.error], 'NAMESPACE_UNKNOWN');
  if (!scope.applies) {
    ctx.explain?.push({ policy: policy.name, step: 'skipped', value: scope.reason });
    return undefined;
  }
  try {
    // every part of the policy is judged, so one denial lists everything that must change
    const result = makeResult(policy, 'pass', []);
    if (policy.usesCel) {
      const namespaceObject = ctx.cel(scope.namespaceObject);
      const p = policy.params;
      if (p.kind === 'none' || p.kind === 'value') {
        if (!celWithParams(policy, ctx, p.kind === 'value' ? ctx.cel(p.value) : null, namespaceObject, result)) return undefined;
      } else {
        const failed = celWithClusterParams(policy, p, ctx, namespaceObject, result);
        if (failed !== true) return failed;
      }
    }
    if (policy.sources) {
      ctx.checkDeadline();
      const outcome = evaluateSourcesRule(policy.sources, ctx.request, ctx.params);
      if (outcome.missing) return makeResult(policy, 'error', [outcome.missing], 'PARAMS_NOT_FOUND');
      if (outcome.notes.length) result.notes = outcome.notes;
      ctx.explain?.push({ policy: policy.name, step: 'sources', value: outcome.failures.length ? outcome.failures : 'allowed' });
      fail(result, 'SOURCE_NOT_ALLOWED', outcome.failures);
    }
    if (policy.schema && ctx.request.object) {
      ctx.checkDeadline();
      if (!policy.schema(ctx.request.object)) {
        const schemaFailures = schemaMessages(policy.schema.errors);
        ctx.explain?.push({ policy: policy.name, step: 'schema', value: schemaFailures });
        fail(result, 'SCHEMA_VIOLATION', schemaFailures);
      }
    }
    return result;
  } catch (err) {
    const failure = failureOf(err);
    return makeResult(policy, 'error', [failure.message], failure.code);
  }
}

/** What an error thrown while evaluating a policy means: its reason code and message. */
function failureOf(err: unknown): { code: ReasonCode; message: string } {
  if (err instanceof DeadlineExceededError) return { code: 'DEADLINE_EXCEEDED', message: err.message };
  if (err instanceof ParamsUnavailableError) return { code: 'PARAMS_UNAVAILABLE', message: err.message };
  if (err instanceof InputLimitError) return { code: 'INPUT_TOO_LARGE', message: err.message };
  if (err instanceof JsonPatchError) return { code: 'MUTATION_FAILED', message: err.message };
  if (err instanceof CostLimitError || (err as { cause?: unknown }).cause instanceof CostLimitError) {
    return { code: 'COST_LIMIT_EXCEEDED', message: `${(err as Error).message.split('\n')[0]}; the object is too large for this policy` };
  }
  return { code: 'EVALUATION_ERROR', message: evaluationErrorMessage(err) };
}
