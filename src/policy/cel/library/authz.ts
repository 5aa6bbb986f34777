// Kubernetes' authz library (k8s.io/apiserver/pkg/cel/library/authz.go): the `authorizer`
// variable of ValidatingAdmissionPolicy. authorizer.group(g).resource(r)….check(verb) and
// authorizer.path(p).check(verb) ask whether the requesting user (or, after
// serviceAccount(ns, name), that service account) may do something; the answer comes from an
// AuthorizationChecker, which in a cluster is a SubjectAccessReview. CEL evaluates
// synchronously, so a checker that does not know an answer yet throws AuthorizationPending and
// the evaluation runs again once it does (see policy/authorization.ts).
import type { Environment } from '@marcbachmann/cel-js';
import { celError } from './fail.js';
import { dns1123Label, dns1123Subdomain } from './named-formats.js';

/** Who is asking, as in a SubjectAccessReview's spec. */
export interface AuthorizationUser {
  username: string;
  uid?: string;
  groups: readonly string[];
  extra?: Readonly<Record<string, readonly string[]>>;
}

export interface ResourceAttributes {
  group: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  /** raw selectors (Kubernetes 1.31+), sent when set */
  fieldSelector: string;
  labelSelector: string;
}

/** One check: a verb on a resource (resourceAttributes) or on a non-resource path. */
export type AuthorizationAttributes =
  | { user: AuthorizationUser; verb: string; resource: ResourceAttributes; path?: undefined }
  | { user: AuthorizationUser; verb: string; path: string; resource?: undefined };

export interface AuthorizationDecision {
  /** the authorizer allowed it; "no opinion" and "deny" are both not allowed */
  allowed: boolean;
  reason: string;
  /** set when the check itself failed (Decision.errored()) */
  error?: string;
}

export interface AuthorizationChecker {
  /** the decision, or throws AuthorizationPending when it is being asked for */
  check(attributes: AuthorizationAttributes): AuthorizationDecision;
}

/** Thrown by a checker for a check whose answer is not known yet: the evaluation is run again. */
export class AuthorizationPending extends Error {
  readonly code = 'AUTHORIZATION_PENDING';
}

/** The `authorizer` variable: checks as `user`, and `requestResource` is the request's own resource. */
export class CelAuthorizer {
  constructor(
    readonly checker: AuthorizationChecker,
    readonly user: AuthorizationUser,
    readonly request?: { group: string; resource: string; subresource: string; namespace: string; name: string },
  ) {}

  /** authorizer.requestResource: a ResourceCheck of the resource, namespace and name being admitted */
  get requestResource(): CelResourceCheck | undefined {
    const r = this.request;
    return r && new CelResourceCheck(this, r.group, r.resource, r.subresource, r.namespace, r.name);
  }

  // toString: how `eval --explain` shows these values
  toString(): string { return `authorizer for ${this.user.username || '(no user)'}`; }
}

class CelPathCheck {
  constructor(readonly authorizer: CelAuthorizer, readonly path: string) {}
  toString(): string { return `check of path ${this.path}`; }
}

class CelGroupCheck {
  constructor(readonly authorizer: CelAuthorizer, readonly group: string) {}
  toString(): string { return `check of group ${this.group || '(core)'}`; }
}

/** Immutable: each setter returns a copy, as the Go values are copied. */
class CelResourceCheck {
  constructor(
    readonly authorizer: CelAuthorizer,
    readonly group: string,
    readonly resource: string,
    readonly subresource = '',
    readonly namespace = '',
    readonly name = '',
    readonly fieldSelector = '',
    readonly labelSelector = '',
  ) {}

  with(change: Partial<Pick<ResourceAttributes, 'subresource' | 'namespace' | 'name' | 'fieldSelector' | 'labelSelector'>>): CelResourceCheck {
    const r = { ...this.attributes(), ...change };
    return new CelResourceCheck(this.authorizer, r.group, r.resource, r.subresource, r.namespace, r.name, r.fieldSelector, r.labelSelector);
  }

  attributes(): ResourceAttributes {
    const { group, resource, subresource, namespace, name, fieldSelector, labelSelector } = this;
    return { group, resource, subresource, namespace, name, fieldSelector, labelSelector };
  }

  toString(): string {
    const what = [this.group || '(core)', this.resource, this.subresource].filter(Boolean).join('/');
    return `check of ${what}${this.name ? ` ${this.name}` : ''}${this.namespace ? ` in ${this.namespace}` : ''}`;
  }
}

class CelAuthzDecision {
  constructor(readonly decision: AuthorizationDecision) {}

  toString(): string {
    const d = this.decision;
    if (d.error !== undefined) return `errored: ${d.error}`;
    return `${d.allowed ? 'allowed' : 'not allowed'}${d.reason ? `: ${d.reason}` : ''}`;
  }
}

// the type names Kubernetes gives them, which type() shows
export const AUTHORIZER_TYPE = 'kubernetes.authorization.Authorizer';
const PATH_CHECK = 'kubernetes.authorization.PathCheck';
const GROUP_CHECK = 'kubernetes.authorization.GroupCheck';
const RESOURCE_CHECK = 'kubernetes.authorization.ResourceCheck';
const DECISION = 'kubernetes.authorization.Decision';

/** the user a service account authenticates as (serviceaccount.ServiceAccountInfo.UserInfo) */
function serviceAccountUser(namespace: string, name: string): AuthorizationUser {
  return { username: `system:serviceaccount:${namespace}:${name}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`] };
}

const blank = (s: string) => s.trim() === '';

export function registerAuthz(env: Environment): void {
  env
    .registerType(PATH_CHECK, CelPathCheck)
    .registerType(GROUP_CHECK, CelGroupCheck)
    .registerType(RESOURCE_CHECK, CelResourceCheck)
    .registerType(DECISION, CelAuthzDecision)
    .registerType({ name: AUTHORIZER_TYPE, ctor: CelAuthorizer, fields: { requestResource: RESOURCE_CHECK } })
    .registerFunction(`${AUTHORIZER_TYPE}.path(string): ${PATH_CHECK}`, (a: CelAuthorizer, path: string) =>
      blank(path) ? celError('path must not be empty') : new CelPathCheck(a, path))
    .registerFunction(`${AUTHORIZER_TYPE}.group(string): ${GROUP_CHECK}`, (a: CelAuthorizer, group: string) => new CelGroupCheck(a, group))
    .registerFunction(`${AUTHORIZER_TYPE}.serviceAccount(string, string): ${AUTHORIZER_TYPE}`, (a: CelAuthorizer, namespace: string, name: string) => {
      if (dns1123Subdomain(name).length) celError('Invalid service account name');
      if (dns1123Label(namespace).length) celError('Invalid service account namespace');
      return new CelAuthorizer(a.checker, serviceAccountUser(namespace, name), a.request);
    })
    .registerFunction(`${GROUP_CHECK}.resource(string): ${RESOURCE_CHECK}`, (g: CelGroupCheck, resource: string) =>
      blank(resource) ? celError('resource must not be empty') : new CelResourceCheck(g.authorizer, g.group, resource))
    .registerFunction(`${RESOURCE_CHECK}.subresource(string): ${RESOURCE_CHECK}`, (r: CelResourceCheck, subresource: string) => r.with({ subresource }))
    .registerFunction(`${RESOURCE_CHECK}.namespace(string): ${RESOURCE_CHECK}`, (r: CelResourceCheck, namespace: string) => r.with({ namespace }))
    .registerFunction(`${RESOURCE_CHECK}.name(string): ${RESOURCE_CHECK}`, (r: CelResourceCheck, name: string) => r.with({ name }))
    .registerFunction(`${RESOURCE_CHECK}.fieldSelector(string): ${RESOURCE_CHECK}`, (r: CelResourceCheck, fieldSelector: string) => r.with({ fieldSelector }))
    .registerFunction(`${RESOURCE_CHECK}.labelSelector(string): ${RESOURCE_CHECK}`, (r: CelResourceCheck, labelSelector: string) => r.with({ labelSelector }))
    .registerFunction(`${RESOURCE_CHECK}.check(string): ${DECISION}`, (r: CelResourceCheck, verb: string) =>
      new CelAuthzDecision(r.authorizer.checker.check({ user: r.authorizer.user, verb, resource: r.attributes() })))
    .registerFunction(`${PATH_CHECK}.check(string): ${DECISION}`, (p: CelPathCheck, verb: string) =>
      new CelAuthzDecision(p.authorizer.checker.check({ user: p.authorizer.user, verb, path: p.path })))
    .registerFunction(`${DECISION}.allowed(): bool`, (d: CelAuthzDecision) => d.decision.allowed)
    .registerFunction(`${DECISION}.reason(): string`, (d: CelAuthzDecision) => d.decision.reason)
    .registerFunction(`${DECISION}.errored(): bool`, (d: CelAuthzDecision) => d.decision.error !== undefined)
    .registerFunction(`${DECISION}.error(): string`, (d: CelAuthzDecision) => d.decision.error ?? '');
}
