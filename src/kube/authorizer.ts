// Policies' authorization checks answered by the cluster: one SubjectAccessReview per distinct
// check, as the API server's own authorizer would decide it for that user. Answers are kept
// briefly (like the API server's webhook authorizer cache), so a burst of requests from one
// user asks once; identical checks in flight are asked once; failures are never kept.
import { AuthorizationV1Api, Observable, type KubeConfig, type V1SubjectAccessReview } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { attributesKey, errored, type AuthorizationAttributes, type AuthorizationDecision, type Authorizer } from '../policy/authorization.js';

/** how long an answer is reused: a revoked permission stops counting within this */
export const AUTHORIZATION_CACHE_MS = 10_000;
/**
 * How long one review may take: identical checks share it, so a review the API server never
 * answers must end by itself, not hold every later request's check until its deadline.
 */
export const SUBJECT_ACCESS_REVIEW_TIMEOUT_MS = 5_000;

export type AuthorizationOutcome = 'allowed' | 'denied' | 'error' | 'cached';

/** The SubjectAccessReview that asks the API server this check. */
export function subjectAccessReview(a: AuthorizationAttributes): V1SubjectAccessReview {
  const r = a.resource;
  return {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user: a.user.username,
      uid: a.user.uid,
      groups: [...a.user.groups],
      extra: a.user.extra ? Object.fromEntries(Object.entries(a.user.extra).map(([k, v]) => [k, [...v]])) : undefined,
      ...(r
        ? {
            resourceAttributes: {
              verb: a.verb, group: r.group, version: '*', resource: r.resource, subresource: r.subresource || undefined, namespace: r.namespace || undefined, name: r.name || undefined,
              // raw selectors: the API server parses them as it would in a query (Kubernetes 1.31+)
              fieldSelector: r.fieldSelector ? { rawSelector: r.fieldSelector } : undefined,
              labelSelector: r.labelSelector ? { rawSelector: r.labelSelector } : undefined,
            },
          }
        : { nonResourceAttributes: { verb: a.verb, path: a.path } }),
    },
  };
}

interface Asking {
  answer: Promise<AuthorizationDecision>;
  /** aborted when no request waits for the answer any more */
  abandoned: AbortController;
  waiting: number;
}

export class SubjectAccessReviewAuthorizer implements Authorizer {
  readonly #api: AuthorizationV1Api;
  // ttlResolution 0: no debouncing timer per look-up (see the image verifier's cache)
  readonly #answers = new LRUCache<string, AuthorizationDecision>({ max: 10_000, ttl: AUTHORIZATION_CACHE_MS, ttlResolution: 0 });
  readonly #inFlight = new Map<string, Asking>();

  constructor(kc: KubeConfig, private readonly log: Logger, private readonly observe?: (outcome: AuthorizationOutcome) => void, private readonly timeoutMs = SUBJECT_ACCESS_REVIEW_TIMEOUT_MS) {
    this.#api = kc.makeApiClient(AuthorizationV1Api);
  }

  known(a: AuthorizationAttributes): AuthorizationDecision | undefined {
    const answer = this.#answers.get(attributesKey(a));
    if (answer) this.observe?.('cached');
    return answer;
  }

  /**
   * Identical checks share one review; it is given up once every request that waits for it has
   * passed its deadline (signal), so a slow API server does not collect abandoned reviews.
   */
  authorize(a: AuthorizationAttributes, signal?: AbortSignal): Promise<AuthorizationDecision> {
    const key = attributesKey(a);
    let asking = this.#inFlight.get(key);
    if (!asking) {
      const abandoned = new AbortController();
      asking = { answer: this.#ask(a, key, abandoned.signal).finally(() => this.#inFlight.delete(key)), abandoned, waiting: 0 };
      this.#inFlight.set(key, asking);
    }
    if (signal) {
      const shared = asking;
      shared.waiting++;
      const leave = () => { if (--shared.waiting === 0) shared.abandoned.abort(); };
      if (signal.aborted) leave();
      else {
        signal.addEventListener('abort', leave, { once: true });
        void shared.answer.finally(() => signal.removeEventListener('abort', leave));
      }
    } else asking.waiting = Infinity; // a caller without a deadline waits to the end
    return asking.answer;
  }

  async #ask(a: AuthorizationAttributes, key: string, abandoned: AbortSignal): Promise<AuthorizationDecision> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = AbortSignal.any([timeout, abandoned]);
    try {
      // the object API takes client-node's own observable middleware (after the kubeconfig's auth)
      const review = await this.#api.createSubjectAccessReview({ body: subjectAccessReview(a) }, {
        middleware: [{ pre: (context) => { context.setSignal(signal); return new Observable(Promise.resolve(context)); }, post: (response) => new Observable(Promise.resolve(response)) }],
        middlewareMergeStrategy: 'append',
      });
      const status = review.status;
      const answer: AuthorizationDecision = { allowed: status?.allowed === true, reason: status?.reason ?? '', error: status?.evaluationError || undefined };
      // an answer the authorizer could not fully evaluate is not kept
      if (!answer.error) this.#answers.set(key, answer);
      this.observe?.(answer.allowed ? 'allowed' : 'denied');
      return answer;
    } catch (err) {
      const reason = abandoned.aborted ? 'abandoned: every request waiting for the answer passed its deadline'
        : timeout.aborted ? `no answer within ${this.timeoutMs} ms` : (err as Error).message.split('\n')[0]?.slice(0, 200) ?? 'unknown error';
      // which check, never who asked (user names and extra stay out of logs)
      this.log.warn({ verb: a.verb, resource: a.resource ? `${a.resource.group}/${a.resource.resource}` : undefined, path: a.path, reason }, 'SubjectAccessReview failed: the check is an errored decision');
      this.observe?.('error');
      return errored(`SubjectAccessReview failed: ${reason}`);
    }
  }
}
