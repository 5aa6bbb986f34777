// trustgate's CEL: one environment with the Kubernetes libraries, expressions compiled and
// type-checked when policies load, RE2 for every regex, a static cost bound per expression.
import { Environment } from '@marcbachmann/cel-js';
import { isIdentifier, variableReference, walk, type Node } from './ast.js';
import { estimateCost } from './cost.js';
import { armMeter, assertWithinBudget, disarmMeter, meterExhausted, rearmMeter, CostLimitError, DEFAULT_RUNTIME_COST_LIMIT, DEFAULT_RUNTIME_TIME_LIMIT_MS } from './meter.js';
import { compileFast } from './fast.js';
import { compileRegex, RegexSyntaxError } from './regex.js';
import { didYouMean } from '../../did-you-mean.js';
import { registerStrings } from './library/strings.js';
import { registerLists } from './library/lists.js';
import { registerRegex, RE2_MATCHES } from './library/regex.js';
import { registerURL } from './library/url.js';
import { registerQuantity } from './library/quantity.js';
import { registerIP } from './library/ip.js';
import { registerSemver } from './library/semver.js';
import { registerMath } from './library/math.js';
import { registerTime } from './library/time.js';
import { registerSources } from './library/sources.js';
import { registerNamedFormats } from './library/named-formats.js';
import { registerAuthz, AUTHORIZER_TYPE } from './library/authz.js';
import { registerJsonPatch } from './library/jsonpatch.js';

export { toCel, fromCel, DEFAULT_INPUT_LIMITS, InputLimitError, type InputLimits } from './convert.js';
export { CostLimitError, DEFAULT_RUNTIME_COST_LIMIT, DEFAULT_RUNTIME_TIME_LIMIT_MS } from './meter.js';
export { regexMatches, compileRegex, RegexSyntaxError } from './regex.js';
export { dns1123Label, dns1123Subdomain, labelValue, qualifiedName } from './library/named-formats.js';
export { CelAuthorizer, AuthorizationPending, type AuthorizationAttributes, type AuthorizationChecker, type AuthorizationDecision, type AuthorizationUser, type ResourceAttributes } from './library/authz.js';

/** The names a policy expression may use, as in ValidatingAdmissionPolicy. */
export const ADMISSION_VARIABLES = ['object', 'oldObject', 'request', 'params', 'namespaceObject', 'variables', 'authorizer'] as const;

/** names with a type of their own; the others hold JSON-like data (dyn) */
const TYPED_VARIABLES: Record<string, string> = { authorizer: AUTHORIZER_TYPE };

/**
 * Load-time guard: the static estimate assumes every list has ASSUMED_LIST_LENGTH items, so two
 * nested loops fit and three do not. The runtime meter bounds what actually runs.
 */
export const DEFAULT_COST_LIMIT = 100_000_000;
const ASSUMED_LIST_LENGTH = 1000;

export class CelCompileError extends Error {
  readonly code = 'CEL_COMPILE_ERROR';
  /** offset of the problem inside the expression text */
  constructor(message: string, readonly offset: number) {
    super(message);
  }
}

export type ExpectedType = 'bool' | 'string' | 'any';

export interface CompileOptions {
  expect: ExpectedType;
  /** names declared under `variables`; other `variables.x` references fail the load */
  variables?: ReadonlySet<string>;
  costLimit?: number;
  /** element visits allowed per evaluation */
  runtimeCostLimit?: number;
  /** wall time allowed per evaluation, in milliseconds */
  runtimeTimeLimitMs?: number;
  /** extra top-level names, e.g. `predicate` for attestations */
  extraVariables?: readonly string[];
  /**
   * the message types it may construct (a MutatingAdmissionPolicy's `Object{…}` or
   * `JSONPatch{…}`); anywhere else a construction is a compile error
   */
  messages?: 'Object' | 'JSONPatch';
}

export interface CompiledExpression {
  readonly source: string;
  readonly type: string;
  readonly cost: number;
  /** top-level names it reads, and the `variables.x` names */
  readonly identifiers: ReadonlySet<string>;
  readonly variableRefs: ReadonlySet<string>;
  /** compiled to closures too (fast.ts); cel-js evaluates what they do not handle */
  readonly fast: boolean;
  /** `deadline` (a Date.now() value) stops the evaluation even before its own time limit */
  evaluate(activation: Record<string, unknown>, deadline?: number): unknown;
}

export interface EnvironmentOptions {
  variables?: readonly string[];
  /** the cel-spec conformance runner's cel-go defaults; policies keep Kubernetes' settings */
  conformance?: boolean;
}

/** An environment with trustgate's libraries; policies get theirs through compileExpression. */
export function createCelEnvironment(options: EnvironmentOptions = {}): Environment {
  return buildEnvironment(options.variables ?? [], options.conformance);
}

/**
 * cel-js is pinned and patched (patches/, applied by `npm ci`'s postinstall): backquoted field
 * names, heterogeneous numeric equality, range errors and more. Unpatched, policies using those
 * would fail to load or decide differently, so refuse to start instead.
 */
function assertPatchedCel(): void {
  try {
    new Environment().parse("{'a-b': 1}.`a-b`");
  } catch {
    throw new Error('@marcbachmann/cel-js is not patched: run `npm ci` (its postinstall applies patches/ with patch-package)');
  }
}
assertPatchedCel();

function buildEnvironment(variables: readonly string[], conformance = false): Environment {
  const env = new Environment(conformance
    ? { enableOptionalTypes: true, homogeneousAggregateLiterals: false, unlistedVariablesAreDyn: true }
    : { enableOptionalTypes: true, homogeneousAggregateLiterals: true });
  registerStrings(env);
  registerLists(env);
  registerRegex(env);
  registerURL(env);
  registerQuantity(env);
  registerIP(env);
  registerSemver(env);
  registerMath(env);
  registerTime(env);
  registerSources(env);
  registerNamedFormats(env);
  registerAuthz(env);
  registerJsonPatch(env);
  // after the libraries, whose types some variables have
  for (const name of variables) env.registerVariable(name, Object.hasOwn(TYPED_VARIABLES, name) ? TYPED_VARIABLES[name]! : 'dyn');
  return env;
}

// Building an environment is expensive, so each distinct variable set gets one, once.
const environments = new Map<string, Environment>();
function environmentFor(extra: readonly string[] = []): Environment {
  const names = [...ADMISSION_VARIABLES, ...extra];
  const key = names.join(',');
  let env = environments.get(key);
  if (!env) environments.set(key, (env = buildEnvironment(names)));
  return env;
}

// the names callable in an environment (functions and macros), for "did you mean" hints
const callableNames = new WeakMap<Environment, ReadonlySet<string>>();
function callablesOf(env: Environment): ReadonlySet<string> {
  let names = callableNames.get(env);
  if (!names) {
    names = new Set(env.getDefinitions().functions.map((f) => f.name).filter((n) => n !== RE2_MATCHES));
    callableNames.set(env, names);
  }
  return names;
}

/** A type-check message, with a hint when it is a misspelt variable name. */
function typeErrorMessage(message: string, variables: readonly string[]): string {
  const unknownVariable = /^Unknown variable: (\w+)$/.exec(message)?.[1];
  if (unknownVariable === undefined) return `type error: ${message}`;
  return `type error: ${message}${didYouMean(unknownVariable, variables)}`;
}

/**
 * A regex written in an ordinary CEL string is the usual cause of an invalid escape ('\.'
 * is not a CEL escape, as in Kubernetes): say how to write it instead.
 */
function syntaxErrorMessage(message: string): string {
  if (!message.startsWith('Invalid escape sequence')) return `syntax error: ${message}`;
  return `syntax error: ${message} (CEL strings know \\\\, \\n, \\t, quotes and a few more: write a regular expression as a raw string, r'^ghcr\\.io/', or double its backslashes)`;
}

function messageOf(err: unknown): string {
  const msg = (err as Error).message ?? String(err);
  return msg.split('\n')[0]!;
}

/**
 * The macros' forms, by argument count: called with another count, a macro is parsed as an
 * ordinary call and its variable reported as unknown ("Unknown variable: k"), which hides the
 * mistake, so the count is checked first.
 */
const MACRO_FORMS: Record<string, Record<number, string>> = {
  all: { 2: '(e, predicate)', 3: '(k, v, predicate)' },
  exists: { 2: '(e, predicate)', 3: '(k, v, predicate)' },
  exists_one: { 2: '(e, predicate)', 3: '(k, v, predicate)' },
  existsOne: { 3: '(k, v, predicate)' },
  map: { 2: '(e, expr)', 3: '(e, filter, expr)' },
  filter: { 2: '(e, predicate)' },
  transformList: { 3: '(i, v, expr)', 4: '(i, v, filter, expr)' },
  transformMap: { 3: '(k, v, expr)', 4: '(k, v, filter, expr)' },
  transformMapEntry: { 3: '(k, v, {key: value})', 4: '(k, v, filter, {key: value})' },
  sortBy: { 2: '(e, key)' },
  optMap: { 2: '(v, expr)' },
  optFlatMap: { 2: '(v, optionalExpr)' },
  or: { 1: '(otherOptional)' },
  orValue: { 1: '(defaultValue)' },
};

function macroArityError(n: Node): CelCompileError | undefined {
  if (n.op !== 'rcall' || !Object.hasOwn(MACRO_FORMS, n.args[0])) return undefined;
  const forms = MACRO_FORMS[n.args[0] as string]!;
  const count = (n.args[2] as Node[]).length;
  if (Object.hasOwn(forms, count)) return undefined;
  return new CelCompileError(`${n.args[0]}() takes ${Object.values(forms).join(' or ')}, not ${count} argument${count === 1 ? '' : 's'}`, n.start);
}

/** Rewrites `matches` onto RE2 and checks regex literals (for callers with their own environment). */
export function useRe2(ast: unknown): void {
  prepare(ast as Node, undefined);
}

/**
 * Rewrites `matches` onto RE2, checks regex literals and `variables.x` references, and, given
 * the environment's callables, that every call names one (a misspelt macro such as
 * `exist(c, …)` would otherwise be reported as an unknown variable `c`).
 */
function prepare(ast: Node, variables: ReadonlySet<string> | undefined, callables?: ReadonlySet<string>, messages?: CompileOptions['messages']): { identifiers: Set<string>; variableRefs: Set<string> } {
  const identifiers = new Set<string>();
  const variableRefs = new Set<string>();
  let unknownCall: Node | undefined;
  walk(ast, (n) => {
    const messageError = checkMessage(n, messages);
    if (messageError) throw messageError;
    if (isIdentifier(n)) identifiers.add(n.args as string);
    const variable = variableReference(n);
    if (variable !== undefined) variableRefs.add(variable);
    if (callables && !unknownCall && (n.op === 'rcall' || n.op === 'call') && !callables.has(n.args[0])) unknownCall = n;
    const arity = macroArityError(n);
    if (arity) throw arity;
    if ((n.op === 'rcall' || n.op === 'call') && ['matches', 'find', 'findAll'].includes(n.args[0])) {
      const patternNode: Node | undefined = n.op === 'rcall' ? n.args[2][0] : n.args[1][1];
      if (patternNode?.op === 'value' && typeof patternNode.args === 'string') {
        try {
          compileRegex(patternNode.args);
        } catch (err) {
          throw new CelCompileError((err as RegexSyntaxError).message, patternNode.start);
        }
      }
      if (n.args[0] === 'matches') n.args[0] = RE2_MATCHES;
    }
    if (variables && variable !== undefined && !variables.has(variable)) {
      const known = [...variables].join(', ') || 'none';
      const hint = didYouMean(variable, variables);
      throw new CelCompileError(`undeclared variable variables.${variable}${hint || ` (declared: ${known})`}`, n.start);
    }
  });
  if (unknownCall) {
    const name = unknownCall.args[0] as string;
    throw new CelCompileError(`unknown function ${name}()${didYouMean(name, callables!)}`, unknownCall.start);
  }
  return { identifiers, variableRefs };
}

/** the type name of a message construction (`Object.spec{…}`), set by the patched parser */
const messageTypeOf = (n: Node | undefined): string | undefined => (n as { messageType?: string } | undefined)?.messageType;

/**
 * A message construction where none is allowed, of a type that is not one of Kubernetes' mutation
 * types, or whose nested type names do not follow its field names (`Object.spec{selector:
 * Object.spec.wrong{}}`), as the API server refuses it.
 */
function checkMessage(n: Node, allowed: CompileOptions['messages']): CelCompileError | undefined {
  const type = messageTypeOf(n);
  if (type === undefined) return undefined;
  if (!allowed) return new CelCompileError(`${type}{…} constructs a message: only a MutatingAdmissionPolicy's mutations construct Object or JSONPatch values`, n.start);
  const known = type === 'JSONPatch' || type === 'Object' || type.startsWith('Object.');
  if (!known) return new CelCompileError(`unknown type ${type}: a mutation constructs ${allowed === 'Object' ? 'Object and Object.<field path>' : 'JSONPatch (and Object.<field path> values)'}`, n.start);
  if (allowed === 'Object' && type === 'JSONPatch') return new CelCompileError('JSONPatch{…} belongs in a JSONPatch mutation; an ApplyConfiguration returns Object{…}', n.start);
  if (type === 'JSONPatch') return undefined;
  for (const [key, value] of n.args as [Node, Node][]) {
    const field = key.args as string;
    const inner = value.op === '?_' ? (value.args as Node) : value;
    const nested = inner.op === 'list' ? (inner.args as Node[]).map((e) => (e.op === '?_' ? (e.args as Node) : e)) : [inner];
    for (const e of nested) {
      const t = messageTypeOf(e);
      if (t !== undefined && t !== `${type}.${field}`) return new CelCompileError(`type mismatch: field ${field} of ${type} holds ${type}.${field}{…}, not ${t}{…}`, e.start);
    }
  }
  return undefined;
}

/**
 * What a mutation expression returns, where its source says: Object{…} (not a field's type) for
 * an ApplyConfiguration, JSONPatch{…} items for a JSONPatch, as the API server requires.
 */
function checkMutationRoot(ast: Node, messages: NonNullable<CompileOptions['messages']>): void {
  const root = messageTypeOf(ast);
  if (messages === 'Object') {
    if (root !== undefined && root !== 'Object') throw new CelCompileError(`an ApplyConfiguration must evaluate to Object{…}, not ${root}{…}`, ast.start);
    return;
  }
  if (ast.op !== 'list') return;
  for (const e of ast.args as Node[]) {
    const item = e.op === '?_' ? (e.args as Node) : e;
    const t = messageTypeOf(item);
    if (t !== undefined && t !== 'JSONPatch') throw new CelCompileError(`a JSONPatch expression lists JSONPatch{…} operations, not ${t}{…}`, item.start);
  }
}

/** One field a message construction sets: `Object.spec{containers: […]}` sets containers of Object.spec to a list. */
export interface ConstructedField {
  type: string;
  field: string;
  /** what the source writes there: a list literal, a message construction, or anything else */
  value: 'list' | 'message' | 'other';
}

/** The fields the message constructions of an expression set (for load-time checks of mutations). */
export function constructedFields(source: string): ConstructedField[] {
  const out: ConstructedField[] = [];
  walk(environmentFor().parse(source).ast as Node, (n) => {
    const type = messageTypeOf(n);
    if (type === undefined) return;
    for (const [key, value] of n.args as [Node, Node][]) {
      const v = value.op === '?_' ? (value.args as Node) : value;
      out.push({ type, field: key.args as string, value: v.op === 'list' ? 'list' : messageTypeOf(v) !== undefined ? 'message' : 'other' });
    }
  });
  return out;
}

export function compileExpression(source: string, options: CompileOptions): CompiledExpression {
  const env = environmentFor(options.extraVariables);
  let parsed: ReturnType<Environment['parse']>;
  try {
    parsed = env.parse(source);
  } catch (err) {
    throw new CelCompileError(syntaxErrorMessage(messageOf(err)), (err as { range?: { start: number } }).range?.start ?? 0);
  }
  const { identifiers, variableRefs } = prepare(parsed.ast as Node, options.variables, callablesOf(env), options.messages);
  if (options.messages) checkMutationRoot(parsed.ast as Node, options.messages);
  const checked = parsed.check();
  if (!checked.valid) {
    const err = checked.error as { range?: { start: number } } | undefined;
    const names = [...ADMISSION_VARIABLES, ...options.extraVariables ?? []];
    throw new CelCompileError(typeErrorMessage(messageOf(checked.error), names), err?.range?.start ?? 0);
  }
  const type = checked.type ?? "dyn";
  if (options.expect !== 'any' && type !== options.expect && type !== 'dyn') {
    throw new CelCompileError(`expression must evaluate to ${options.expect}, but its type is ${type}`, 0);
  }
  const limit = options.costLimit ?? DEFAULT_COST_LIMIT;
  const cost = estimateCost(parsed.ast as Node, ASSUMED_LIST_LENGTH);
  if (cost > limit) {
    throw new CelCompileError(
      `estimated worst-case cost ${cost} exceeds the limit of ${limit} (loops nested three deep over input lists); flatten the comprehension or iterate a literal list`,
      0,
    );
  }
  const budget = options.runtimeCostLimit ?? DEFAULT_RUNTIME_COST_LIMIT;
  const timeLimit = options.runtimeTimeLimitMs ?? DEFAULT_RUNTIME_TIME_LIMIT_MS;
  const fast = compileFast(parsed.ast as Node);
  return {
    source, type, cost, identifiers, variableRefs, fast: fast !== undefined,
    evaluate(activation, deadline = Number.POSITIVE_INFINITY) {
      armMeter(budget, timeLimit, deadline);
      try {
        if (fast) {
          try {
            const result = fast(activation);
            assertWithinBudget();
            return result;
          } catch (err) {
            // This expression's budget or time is spent: the closures had taken cel-js's own path
            // up to there (any divergence ends them first), so cel-js would spend it too. (A
            // variable's spent budget is its own error, which cel-js may absorb: not this case.)
            if (err instanceof CostLimitError && meterExhausted()) throw err;
            // a kind of value the fast path does not handle, or an error: cel-js decides
            rearmMeter();
          }
        }
        const result = parsed(activation);
        assertWithinBudget();
        return result;
      } finally {
        disarmMeter();
      }
    },
  };
}

/** A one-line description of an evaluation error, without the input that caused it. */
export function describeEvaluationError(err: unknown): string {
  const message = messageOf(err);
  // the error policy authors meet most, usually from has(a.b.c) with a.b itself unset
  const key = /^No such key: ([\w$-]+)$/.exec(message)?.[1];
  return key === undefined ? message : `${message} (not set here: test it with has() first, or read it optionally: .?${key})`;
}
