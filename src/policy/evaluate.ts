// Evaluates one compiled policy against one request: conditions, then variables (lazily),
// then every validation and the JSON Schema. Pure apart from the params lookup it is handed.
import type { ErrorObject } from 'ajv';
import type { AdmissionRequest, KubeObject } from '../admission/types.js';
import { CostLimitError, describeEvaluationError, fromCel, toCel, InputLimitError, type CompiledExpression } from './cel/index.js';
import { policyInScope, type NamespaceLookup } from './match.js';
import type { CompiledPolicy } from './types.js';

/** Stable reason codes: they reach the response, the decision record and the metrics unchanged. */
export type ReasonCode =
  | 'VALIDATION_FAILED'
  | 'SCHEMA_VIOLATION'
  | 'EVALUATION_ERROR'
  | 'DEADLINE_EXCEEDED'
  | 'PARAMS_NOT_FOUND'
  | 'NAMESPACE_UNKNOWN'
  | 'INPUT_TOO_LARGE'
  | 'COST_LIMIT_EXCEEDED';

export interface PolicyResult {
  name: string;
  revision: string;
  mode: CompiledPolicy['mode'];
  failurePolicy: CompiledPolicy['failurePolicy'];
  /** pass, fail (the object breaks the policy), error (the policy could not be evaluated) */
  result: 'pass' | 'fail' | 'error';
  code?: ReasonCode;
  messages: string[];
}

export interface ExplainStep {
  policy: string;
  step: string;
  expression?: string;
  value?: unknown;
  error?: string;
}

export interface ParamsLookup {
  configMap(namespace: string, name: string): KubeObject | undefined;
}

export class DeadlineExceededError extends Error {
  readonly code = 'DEADLINE_EXCEEDED';
}

/** Per-request state shared by all policies: CEL conversions happen once, lazily. */
export class EvaluationContext {
  #base?: Record<string, unknown>;
  #converted = new Map<unknown, unknown>();

  constructor(
    readonly request: AdmissionRequest,
    readonly deadline: number,
    readonly namespaces?: NamespaceLookup,
    readonly params?: ParamsLookup,
    readonly explain?: ExplainStep[],
  ) {}

  checkDeadline(): void {
    if (Date.now() > this.deadline) throw new DeadlineExceededError('the internal deadline passed before evaluation finished');
  }

  cel(value: unknown): unknown {
    if (value === undefined || value === null) return null;
    let v = this.#converted.get(value);
    if (v === undefined) this.#converted.set(value, (v = toCel(value)));
    return v;
  }

  /** object, oldObject and request as CEL values, converted on first use */
  base(): Record<string, unknown> {
    if (!this.#base) {
      const { object, oldObject, ...rest } = this.request;
      this.#base = { object: this.cel(object), oldObject: this.cel(oldObject), request: this.cel(rest) };
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

export function evaluatePolicy(policy: CompiledPolicy, ctx: EvaluationContext): PolicyResult | undefined {
  const result = (r: PolicyResult['result'], messages: string[], code?: ReasonCode): PolicyResult => ({
    name: policy.name, revision: policy.revision, mode: policy.mode, failurePolicy: policy.failurePolicy, result: r, code, messages,
  });
  const scope = policyInScope(policy, ctx.request, ctx.namespaces);
  if ('error' in scope) return result('error', [scope.error], 'NAMESPACE_UNKNOWN');
  if (!scope.applies) {
    ctx.explain?.push({ policy: policy.name, step: 'skipped', value: scope.reason });
    return undefined;
  }
  try {
    let activation: Record<string, unknown> | undefined;
    if (policy.usesCel) {
      let params: unknown = null;
      if (policy.params.kind === 'value') params = ctx.cel(policy.params.value);
      else if (policy.params.kind === 'configMap') {
        const cm = ctx.params?.configMap(policy.params.namespace, policy.params.name);
        if (!cm) return result('error', [`params ConfigMap ${policy.params.namespace}/${policy.params.name} not found`], 'PARAMS_NOT_FOUND');
        params = ctx.cel(cm);
      }
      const variables = {};
      activation = { ...ctx.base(), params, namespaceObject: ctx.cel(scope.namespaceObject), variables };
      const run = (step: string, expr: CompiledExpression): unknown => {
        ctx.checkDeadline();
        try {
          const value = expr.evaluate(activation!);
          ctx.explain?.push({ policy: policy.name, step, expression: expr.source, value: fromCel(value) });
          return value;
        } catch (err) {
          ctx.explain?.push({ policy: policy.name, step, expression: expr.source, error: describeEvaluationError(err) });
          throw err;
        }
      };
      for (const v of policy.variables) {
        let cached: { value: unknown } | undefined;
        // lazily, at most once per review, as in ValidatingAdmissionPolicy
        Object.defineProperty(variables, v.name, {
          enumerable: true,
          get: () => (cached ??= { value: run(`variables.${v.name}`, v.expression) }).value,
        });
      }
      for (const c of policy.conditions) {
        if (run(`condition ${c.name}`, c.expression) !== true) {
          ctx.explain?.push({ policy: policy.name, step: 'skipped', value: `condition ${c.name} is false` });
          return undefined;
        }
      }
      const failures: string[] = [];
      for (const [i, v] of policy.validations.entries()) {
        if (run(`validations[${i}]`, v.expression) === true) continue;
        let message: string | undefined;
        if (v.messageExpression) {
          try {
            const m = run(`validations[${i}].messageExpression`, v.messageExpression);
            if (typeof m === 'string' && m.trim()) message = m;
          } catch {
            // as in Kubernetes: a failing messageExpression falls back to the static message
          }
        }
        failures.push(message ?? v.message ?? `failed expression: ${v.expression.source}`);
      }
      if (failures.length) return result('fail', failures, 'VALIDATION_FAILED');
    }
    if (policy.schema && ctx.request.object) {
      ctx.checkDeadline();
      if (!policy.schema(ctx.request.object)) {
        const messages = schemaMessages(policy.schema.errors);
        ctx.explain?.push({ policy: policy.name, step: 'schema', value: messages });
        return result('fail', messages, 'SCHEMA_VIOLATION');
      }
    }
    return result('pass', []);
  } catch (err) {
    if (err instanceof DeadlineExceededError) return result('error', [err.message], 'DEADLINE_EXCEEDED');
    if (err instanceof InputLimitError) return result('error', [err.message], 'INPUT_TOO_LARGE');
    if (err instanceof CostLimitError || (err as { cause?: unknown }).cause instanceof CostLimitError) {
      return result('error', [`${(err as Error).message.split('\n')[0]}; the object is too large for this policy`], 'COST_LIMIT_EXCEEDED');
    }
    return result('error', [`evaluation error: ${describeEvaluationError(err)}`], 'EVALUATION_ERROR');
  }
}
