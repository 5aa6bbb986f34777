// Authorization checks from policies (`authorizer` in CEL), per admission request. CEL runs
// synchronously and a SubjectAccessReview does not, so a check whose answer is not known yet
// is noted and the evaluation stops (AuthorizationPending); the admission asks for every noted
// check at once and evaluates the policies again, a few rounds at most. Answers an authorizer
// already holds (its cache, a test's table) come at once, in the first round.
import { AuthorizationPending, type AuthorizationAttributes, type AuthorizationChecker, type AuthorizationDecision, type AuthorizationUser } from './cel/index.js';
import type { AdmissionRequest } from '../admission/types.js';

export type { AuthorizationAttributes, AuthorizationDecision, AuthorizationUser } from './cel/index.js';

export interface Authorizer {
  /** the decision when it is known without asking anyone (cached, or a fixed table) */
  known?(attributes: AuthorizationAttributes): AuthorizationDecision | undefined;
  /** asks; an authorizer that cannot answer resolves with an errored decision, never rejects */
  authorize(attributes: AuthorizationAttributes, signal: AbortSignal): Promise<AuthorizationDecision>;
}

/** One check in the decision record: what was asked for whom, and the answer. */
export interface AuthorizationRecord {
  allowed: boolean;
  error?: string;
  group?: string;
  name?: string;
  namespace?: string;
  path?: string;
  reason?: string;
  resource?: string;
  subresource?: string;
  user: string;
  verb: string;
}

/** Distinct checks one request may make: each can be a call to the API server. */
export const MAX_AUTHORIZATION_CHECKS = 32;
/** Rounds of asking: a check that depends on another's answer needs one more. */
export const MAX_AUTHORIZATION_ROUNDS = 4;
/**
 * Checks stop waiting this long before the internal deadline (a tenth of the time left, but at
 * least 50 ms or half of it): the last evaluation must run before it, so that an unanswered
 * check reaches the expression as an errored decision, as in Kubernetes, instead of the policy
 * erroring at the deadline and its failurePolicy deciding (Ignore would admit what the check
 * denies). The floor is for short deadlines on a busy machine, where a timer fires late.
 */
export const AUTHORIZATION_EVALUATION_RESERVE_MS = 250;
const AUTHORIZATION_EVALUATION_RESERVE_FLOOR_MS = 50;

/** how long before the request's deadline waiting for answers ends, with `left` ms to go */
export function evaluationReserve(left: number): number {
  return Math.min(AUTHORIZATION_EVALUATION_RESERVE_MS, Math.max(left / 10, Math.min(AUTHORIZATION_EVALUATION_RESERVE_FLOOR_MS, left / 2)));
}

/** a decision the check could not reach: not allowed, and errored() says why */
export const errored = (error: string): AuthorizationDecision => ({ allowed: false, reason: '', error });

/** For evaluations without a cluster: every check is an error the policy can see (Decision.errored()). */
export const NO_AUTHORIZER: Authorizer = {
  known: () => errored('no authorizer: trustgate runs without a cluster (serve takes --kubeconfig or --in-cluster; PolicyTest suites answer checks with authorizations)'),
  authorize: async () => errored('no authorizer'),
};

/** A stable key for one check: the same question is asked once. */
export function attributesKey(a: AuthorizationAttributes): string {
  const target = a.resource ? ['r', a.resource.group, a.resource.resource, a.resource.subresource, a.resource.namespace, a.resource.name, a.resource.fieldSelector, a.resource.labelSelector] : ['p', a.path];
  const extra = a.user.extra ? Object.keys(a.user.extra).sort().map((k) => [k, a.user.extra![k]]) : [];
  return JSON.stringify([a.verb, ...target, a.user.username, a.user.uid ?? '', a.user.groups, extra]);
}

/** The requesting user as a SubjectAccessReview names it. */
export function requestUser(request: AdmissionRequest): AuthorizationUser {
  const u = request.userInfo ?? {};
  return { username: u.username ?? '', uid: u.uid, groups: u.groups ?? [], extra: u.extra };
}

/** One request's checks: answers by key, and the ones still to ask for. */
export class AuthorizationSession implements AuthorizationChecker {
  /** every check made, with its answer, in the order first made */
  readonly #answers = new Map<string, { attributes: AuthorizationAttributes; answer: AuthorizationDecision }>();
  readonly #pending = new Map<string, AuthorizationAttributes>();
  /** times an evaluation met a check without an answer (ever): a policy that met one must run again */
  unanswered = 0;
  #final = false;

  constructor(private readonly authorizer: Authorizer) {}

  check(attributes: AuthorizationAttributes): AuthorizationDecision {
    const key = attributesKey(attributes);
    const known = this.#answers.get(key);
    if (known) return known.answer;
    let answer = this.authorizer.known?.(attributes);
    if (answer === undefined) {
      if (this.#final) answer = errored(`authorization check not answered: more than ${MAX_AUTHORIZATION_ROUNDS} rounds of checks that depend on each other`);
      else if (!this.#pending.has(key) && this.#answers.size + this.#pending.size >= MAX_AUTHORIZATION_CHECKS) answer = errored(`too many authorization checks in one request (at most ${MAX_AUTHORIZATION_CHECKS})`);
      else {
        // counted whether or not another policy asked first: each one that met it runs again
        this.unanswered++;
        this.#pending.set(key, attributes);
        throw new AuthorizationPending('authorization check pending');
      }
    }
    this.#answers.set(key, { attributes, answer });
    return answer;
  }

  /** the checks made and their answers, as the decision record keeps them (the user by name only) */
  record(): AuthorizationRecord[] {
    return [...this.#answers.values()].map(({ attributes: a, answer }) => ({
      // key order is the canonical order; undefined members are left out of the record
      allowed: answer.allowed,
      error: answer.error,
      group: a.resource?.group,
      name: a.resource?.name || undefined,
      namespace: a.resource?.namespace || undefined,
      path: a.path,
      reason: answer.reason || undefined,
      resource: a.resource?.resource,
      subresource: a.resource?.subresource || undefined,
      user: a.user.username,
      verb: a.verb,
    }));
  }

  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Asks for every pending check at once; what is not answered in time is an errored decision.
   * deadline: the request's; waiting ends a reserve before it, for the last evaluation.
   */
  async resolve(requestDeadline: number): Promise<void> {
    const deadline = requestDeadline - evaluationReserve(Math.max(0, requestDeadline - Date.now()));
    const asked = [...this.#pending];
    this.#pending.clear();
    // a timer that holds the process open, unlike AbortSignal.timeout's: a hung authorizer must not end it
    const stop = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => { timer = setTimeout(() => { stop.abort(); resolve(); }, Math.max(0, deadline - Date.now())); });
    const answers = asked.map(([key, attributes]) => this.authorizer.authorize(attributes, stop.signal)
      .catch((err: unknown) => errored(`authorization check failed: ${(err as Error).message}`))
      // an answer after the deadline is not taken: the timed-out one below stands
      .then((answer) => { if (!stop.signal.aborted) this.#answers.set(key, { attributes, answer }); }));
    await Promise.race([Promise.all(answers), timedOut]);
    clearTimeout(timer);
    for (const [key, attributes] of asked) {
      if (!this.#answers.has(key)) this.#answers.set(key, { attributes, answer: errored('authorization check timed out: no answer in time for the internal deadline') });
    }
  }

  /** No more asking: checks still unknown answer as errors, so one last evaluation decides. */
  finish(): void {
    this.#final = true;
    this.#pending.clear();
  }
}

export interface AuthorizationRule {
  /** matches when every given field equals the check's; user defaults to any */
  user?: string;
  verb: string;
  group?: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  path?: string;
  /** default true: a test lists what the user may do */
  allowed?: boolean;
  reason?: string;
}

/** A fixed table of answers, for PolicyTest cases; a check no rule matches is not allowed (no opinion). */
export class StaticAuthorizer implements Authorizer {
  constructor(private readonly rules: readonly AuthorizationRule[]) {}

  known(a: AuthorizationAttributes): AuthorizationDecision {
    const rule = this.rules.find((r) => r.verb === a.verb && (r.user === undefined || r.user === a.user.username)
      && (a.resource
        ? r.path === undefined && (r.group ?? '') === a.resource.group && r.resource === a.resource.resource && (r.subresource ?? '') === a.resource.subresource
          && (r.namespace === undefined || r.namespace === a.resource.namespace) && (r.name === undefined || r.name === a.resource.name)
        : r.path === a.path));
    return rule ? { allowed: rule.allowed ?? true, reason: rule.reason ?? '' } : { allowed: false, reason: 'no listed authorization matches' };
  }

  async authorize(a: AuthorizationAttributes): Promise<AuthorizationDecision> {
    return this.known(a);
  }
}
