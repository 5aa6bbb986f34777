// PolicyException documents: a named, justified, time-bound waiver of named policies for the
// objects it matches. The policy is still evaluated: what it found is recorded beside the
// exception that waived it, the user is warned, and nothing is waived once the exception expires.
import { createHash } from 'node:crypto';
import type { AdmissionRequest, KubeObject } from '../admission/types.js';
import { CelCompileError, compileExpression, type CompiledExpression } from './cel/index.js';
import { didYouMean } from '../did-you-mean.js';
import type { LoadedDocument } from './documents.js';
import type { EvaluationContext, PolicyResult } from './evaluate.js';
import { labelsOf, namespaceObjectOf, ruleMatches } from './match.js';
import { selectorMatches, selectorString } from './selector.js';
import { checkResourceRules, compileRule } from './compile.js';
import { namesPolicy } from './vap.js';
import { compileGlobs } from '../supplychain/glob.js';
import { parsedReference } from './images-rule.js';
import { ReferenceError } from '../supplychain/oci/index.js';
import { PolicyFileError, type CompiledPolicy, type CompiledRule, type LabelSelector, type ResourceRule, type SourcePosition } from './types.js';

export interface PolicyExceptionSpec {
  /** the policies waived, by name (a ValidatingAdmissionPolicy's name covers all its bindings) */
  policies: string[];
  /** why, in words an auditor can follow; recorded with every decision it waives */
  reason: string;
  /** the change or risk-acceptance ticket that approved it */
  ticket?: string;
  /** RFC 3339 time (or a date: its 00:00 UTC) from which it no longer applies */
  expires: string;
  match?: {
    resources?: ResourceRule[];
    namespaces?: string[];
    names?: string[];
    namespaceSelector?: LabelSelector;
    objectSelector?: LabelSelector;
    conditions?: { name: string; expression: string }[];
  };
  /** only these images' failures of images rules are waived (globs as images[].match) */
  images?: string[];
}

export interface CompiledException {
  name: string;
  revision: string;
  /** the policy names it waives, as written */
  waives: string[];
  source: SourcePosition;
  reason: string;
  ticket?: string;
  /** epoch ms from which it no longer applies */
  expires: number;
  /** the same instant as an RFC 3339 UTC string, as messages and records show it */
  expiresAt: string;
  /** where `expires` is written, for reports and lint */
  expiresSource: SourcePosition;
  /** what it covers, in one line (namespaces=monitoring objectSelector=app=node-agent), for reports */
  scope: string;
  rules?: CompiledRule[];
  namespaces?: Set<string>;
  names?: Set<string>;
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  conditions: { name: string; expression: CompiledExpression }[];
  /** set when only some images' failures are waived */
  images?: (reference: string) => boolean;
}

/** What one exception waived in one policy result: recorded, and shown as a warning. */
export interface AppliedException {
  name: string;
  expires: string;
  ticket?: string;
  reason: string;
  messages: string[];
}

/** How far ahead `lint` warns that an exception is about to expire. */
export const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;

const daysIn = (ms: number) => (ms < DAY_MS ? 'less than a day' : `${Math.floor(ms / DAY_MS)} day(s)`);

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?([Zz]|[+-]\d{2}:\d{2}))?$/;

/** epoch ms of an RFC 3339 time or a date (its 00:00 UTC): an expiry, or the time exceptions are judged at; undefined when it is neither or not a real day and time */
export function parseInstant(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h = '00', mi = '00', s = '00'] = m;
  const ms = Date.parse(m[4] === undefined ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(ms)) return undefined;
  // Date.parse rolls 2027-02-30 over into March: the fields must survive the trip
  const probe = new Date(Date.UTC(+y!, +mo! - 1, +d!, +h, +mi, +s));
  if (probe.getUTCMonth() !== +mo! - 1 || probe.getUTCDate() !== +d! || +h > 23 || +mi > 59 || +s > 60) return undefined;
  return ms;
}

/** Names a CEL condition of an exception may use: no params (an exception has none), variables or authorization checks. */
const EXCEPTION_VARIABLES = ['object', 'oldObject', 'request', 'namespaceObject'];
const NOT_FOR_EXCEPTIONS = ['params', 'variables', 'authorizer'];

export function compileException(loaded: LoadedDocument, policies: readonly CompiledPolicy[], now: number): { exception?: CompiledException; errors: PolicyFileError[]; warnings: PolicyFileError[] } {
  const name = (loaded.value.metadata as { name: string }).name;
  const spec = loaded.value.spec as PolicyExceptionSpec;
  const errors: PolicyFileError[] = [];
  const warnings: PolicyFileError[] = [];
  const fail = (path: (string | number)[], message: string) => errors.push(new PolicyFileError(loaded.positionOf(path), message));
  const warn = (path: (string | number)[], message: string) => warnings.push(new PolicyFileError(loaded.positionOf(path), message));

  const known = policies.map((p) => p.name);
  for (const [i, wanted] of spec.policies.entries()) {
    // a misspelt name would waive nothing, silently: the set does not load
    if (!known.some((n) => namesPolicy(n, wanted))) fail(['spec', 'policies', i], `no policy named ${wanted} is loaded${didYouMean(wanted, known)}`);
  }
  const expires = parseInstant(spec.expires);
  if (expires === undefined) fail(['spec', 'expires'], `expires ${JSON.stringify(spec.expires)} is not an RFC 3339 time (2027-01-31T18:00:00Z) or a date (2027-01-31, meaning its 00:00 UTC)`);
  else if (expires <= now) warn(['spec', 'expires'], `expired on ${new Date(expires).toISOString()}: it waives nothing any more; remove it, or renew it with a new expiry`);
  else if (expires - now < EXPIRY_WARNING_DAYS * DAY_MS) warn(['spec', 'expires'], `expires in ${daysIn(expires - now)}, on ${new Date(expires).toISOString()}: the objects it covers are judged by the policies from then on`);

  const m = spec.match ?? {};
  checkResourceRules(m.resources, ['spec', 'match', 'resources'], fail);
  // an exception for everything is a disabled policy, which is said with mode: audit, in the policy
  const narrowed = m.namespaces?.length || m.names?.length || m.namespaceSelector || m.objectSelector || m.conditions?.length || spec.images?.length;
  if (!narrowed) fail(['spec', 'match'], 'an exception must name what it covers: namespaces, names, namespaceSelector, objectSelector, conditions or images (to waive a policy everywhere, set its mode to audit)');

  const conditions: CompiledException['conditions'] = [];
  for (const [i, c] of (m.conditions ?? []).entries()) {
    const path = ['spec', 'match', 'conditions', i, 'expression'];
    try {
      const expression = compileExpression(c.expression, { expect: 'bool', variables: new Set() });
      const foreign = NOT_FOR_EXCEPTIONS.filter((id) => expression.identifiers.has(id));
      if (foreign.length) fail(path, `exception conditions see ${EXCEPTION_VARIABLES.join(', ')}, not ${foreign.join(', ')}`);
      else conditions.push({ name: c.name, expression });
    } catch (err) {
      if (!(err instanceof CelCompileError)) throw err;
      errors.push(new PolicyFileError(loaded.positionInScalar(path, err.offset), err.message));
    }
  }
  let images: CompiledException['images'];
  if (spec.images?.length) {
    try {
      const glob = compileGlobs(spec.images);
      // as images[].match: the repository alone, or the whole reference with its tag or digest
      images = (reference) => {
        const ref = parsedReference(reference);
        return !(ref instanceof ReferenceError) && (glob(`${ref.registry}/${ref.repository}`) || glob(ref.normalized));
      };
    } catch (err) {
      fail(['spec', 'images'], (err as Error).message);
    }
  }
  if (errors.length) return { errors, warnings: [] };
  return {
    errors,
    warnings,
    exception: {
      name,
      waives: spec.policies,
      revision: createHash('sha256').update(JSON.stringify({ name, spec })).digest('hex').slice(0, 12),
      source: loaded.positionOf([]),
      reason: spec.reason,
      ticket: spec.ticket,
      expires: expires!,
      expiresAt: new Date(expires!).toISOString(),
      expiresSource: loaded.positionOf(['spec', 'expires']),
      scope: scopeOf(spec),
      rules: m.resources?.length ? m.resources.map(compileRule) : undefined,
      namespaces: m.namespaces?.length ? new Set(m.namespaces) : undefined,
      names: m.names?.length ? new Set(m.names) : undefined,
      namespaceSelector: m.namespaceSelector,
      objectSelector: m.objectSelector,
      conditions,
      images,
    },
  };
}

/** One line saying what an exception covers. */
function scopeOf(spec: PolicyExceptionSpec): string {
  const m = spec.match ?? {};
  const parts: string[] = [];
  if (m.resources?.length) parts.push(`resources=${m.resources.flatMap((r) => r.resources ?? r.kinds ?? []).join(',')}`);
  if (m.namespaces?.length) parts.push(`namespaces=${m.namespaces.join(',')}`);
  if (m.names?.length) parts.push(`names=${m.names.join(',')}`);
  if (m.namespaceSelector) parts.push(`namespaceSelector=${selectorString(m.namespaceSelector)}`);
  if (m.objectSelector) parts.push(`objectSelector=${selectorString(m.objectSelector)}`);
  if (m.conditions?.length) parts.push(`conditions=${m.conditions.map((c) => c.name).join(',')}`);
  if (spec.images?.length) parts.push(`images=${spec.images.join(',')}`);
  return parts.join(' ');
}

export type ExceptionStatus = 'active' | 'expiring' | 'expired';

/** One exception as `trustgate exceptions` reports it. */
export interface ExceptionReportRow {
  name: string;
  policies: string[];
  status: ExceptionStatus;
  expires: string;
  /** whole days left, and once expired whole days since, as a negative number (0 within a day either side) */
  daysLeft: number;
  ticket?: string;
  reason: string;
  scope: string;
  where: string;
}

/** The exceptions by expiry, soonest first, with their status at `now`. */
export function exceptionReport(exceptions: readonly CompiledException[], now: number): ExceptionReportRow[] {
  return [...exceptions].sort((a, b) => a.expires - b.expires || a.name.localeCompare(b.name)).map((e) => ({
    name: e.name,
    policies: e.waives,
    status: e.expires <= now ? 'expired' : e.expires - now < EXPIRY_WARNING_DAYS * DAY_MS ? 'expiring' : 'active',
    expires: e.expiresAt,
    daysLeft: Math.trunc((e.expires - now) / DAY_MS) || 0,
    ...(e.ticket ? { ticket: e.ticket } : {}),
    reason: e.reason,
    scope: e.scope,
    where: `${e.source.file}:${e.source.line}:${e.source.col}`,
  }));
}

/** Exceptions that run longer than the organisation allows (lint --max-exception-days), as file:line:col errors. */
export function overlongExceptions(exceptions: readonly CompiledException[], now: number, maxDays: number): PolicyFileError[] {
  return exceptions.filter((e) => e.expires - now > maxDays * DAY_MS).map((e) =>
    new PolicyFileError(e.expiresSource, `exception ${e.name} runs until ${e.expiresAt}, ${Math.floor((e.expires - now) / DAY_MS)} days from now: over the limit of ${maxDays} days (--max-exception-days)`));
}

/**
 * Whether the exception covers this request, conditions aside. Fails closed: a namespace the
 * cluster cache does not know cannot be shown to carry the selector's labels.
 */
function inScope(e: CompiledException, req: AdmissionRequest, ctx: EvaluationContext): { covers: boolean; namespaceObject?: KubeObject; why?: string } {
  if (e.rules && !e.rules.some((r) => ruleMatches(r, req))) return { covers: false, why: 'resources do not match' };
  const ns = req.namespace ?? '';
  if (e.namespaces && !e.namespaces.has(ns)) return { covers: false, why: 'namespace not listed' };
  if (e.names && !e.names.has(req.name ?? '')) return { covers: false, why: 'name not listed' };
  // the object being written, or on a DELETE the one being deleted (never the old labels of an UPDATE)
  if (e.objectSelector && !selectorMatches(e.objectSelector, labelsOf(req.object ?? req.oldObject))) {
    return { covers: false, why: 'objectSelector does not match' };
  }
  const namespaceObject = namespaceObjectOf(req, ctx.namespaces);
  if (e.namespaceSelector && !(namespaceObject && selectorMatches(e.namespaceSelector, labelsOf(namespaceObject)))) {
    return { covers: false, why: namespaceObject ? 'namespaceSelector does not match' : `namespace ${ns || '(none)'} is unknown, so namespaceSelector cannot match` };
  }
  return { covers: true, namespaceObject };
}

/** The exceptions of a policy set, by the policy names they waive; applied after evaluation. */
export class PolicyExceptions {
  readonly #byPolicy = new Map<string, CompiledException[]>();

  constructor(readonly exceptions: readonly CompiledException[], policies: readonly CompiledPolicy[]) {
    for (const e of exceptions) {
      for (const p of policies) {
        if (!e.waives.some((w) => namesPolicy(p.name, w))) continue;
        const list = this.#byPolicy.get(p.name);
        if (list) list.push(e);
        else this.#byPolicy.set(p.name, [e]);
      }
    }
  }

  get size(): number {
    return this.exceptions.length;
  }

  /**
   * Waives what the request's active exceptions cover, in the results themselves: the waived
   * messages move to `exceptions`, and a result left with none is `excepted`. A result that
   * passed needs no exception and keeps none.
   */
  apply(results: readonly PolicyResult[], ctx: EvaluationContext, now: number): void {
    const verdicts = new Map<CompiledException, boolean>();
    for (const r of results) {
      if (r.result !== 'fail' && r.result !== 'error') continue;
      const candidates = this.#byPolicy.get(r.name);
      if (!candidates) continue;
      for (const e of candidates) {
        let covers = verdicts.get(e);
        if (covers === undefined) verdicts.set(e, (covers = this.#covers(e, ctx, now)));
        if (covers) waive(r, e);
        if (!r.messages.length) break;
      }
    }
  }

  #covers(e: CompiledException, ctx: EvaluationContext, now: number): boolean {
    const explain = (value: string) => ctx.explain?.push({ policy: `exception ${e.name}`, step: 'exception', value });
    if (now >= e.expires) {
      explain(`expired on ${e.expiresAt}`);
      return false;
    }
    const scope = inScope(e, ctx.request, ctx);
    if (!scope.covers) {
      explain(`does not cover the request: ${scope.why}`);
      return false;
    }
    if (e.conditions.length) {
      const activation = ctx.activation(null, ctx.cel(scope.namespaceObject));
      for (const c of e.conditions) {
        let value: unknown;
        try {
          value = c.expression.evaluate(activation, ctx.deadline);
        } catch (err) {
          // fails closed: a condition that cannot be judged waives nothing
          explain(`does not cover the request: condition ${c.name} failed: ${(err as Error).message}`);
          return false;
        }
        if (value !== true) {
          explain(`does not cover the request: condition ${c.name} is false`);
          return false;
        }
      }
    }
    explain('covers the request');
    return true;
  }
}

/** Moves what the exception covers out of the result's failures and into its exceptions. */
function waive(r: PolicyResult, e: CompiledException): void {
  let waived: string[];
  if (!e.images) {
    waived = r.messages;
    r.messages = [];
    r.causes = undefined;
  } else {
    const covered = (r.causes ?? []).filter((c) => c.image !== undefined && e.images!(c.image));
    if (!covered.length) return;
    waived = covered.map((c) => c.message);
    r.causes = r.causes!.filter((c) => !covered.includes(c));
    const left = new Set(r.causes.map((c) => c.message));
    const gone = new Set(waived);
    r.messages = r.messages.filter((m) => left.has(m) || !gone.has(m));
  }
  (r.exceptions ??= []).push({ name: e.name, expires: e.expiresAt, ...(e.ticket ? { ticket: e.ticket } : {}), reason: e.reason, messages: waived });
  if (!r.messages.length) {
    r.result = 'excepted';
    return;
  }
  // what is left decides: a failure of the policy's own checks (it keeps its code), a failed
  // image, or only images that could not be checked
  const causeMessages = new Set((r.causes ?? []).map((c) => c.message));
  if (r.messages.some((m) => !causeMessages.has(m))) return;
  if (r.result === 'fail' && !r.causes!.some((c) => !c.registryError)) r.result = 'error';
  r.code = r.causes![0]!.code as PolicyResult['code'];
}
