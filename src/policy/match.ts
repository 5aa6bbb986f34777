// Which policies apply to a request: a pre-built index narrows by operation, group and
// resource/kind; the full rule, namespace and selector checks run only on that short list.
import type { AdmissionRequest, KubeObject } from '../admission/types.js';
import { selectorMatches } from './selector.js';
import type { CompiledPolicy, CompiledRule } from './types.js';

export interface NamespaceLookup {
  /** the Namespace object, or undefined when it is not known */
  get(name: string): KubeObject | undefined;
  /**
   * Looks up a namespace the lookup does not know yet (created a moment ago, its watch event
   * still on the way), so get() knows it once this settles; never rejects.
   */
  resolve?(name: string, timeoutMs: number): Promise<void>;
}

function resourceMatches(patterns: readonly string[], resource: string, sub: string): boolean {
  for (const p of patterns) {
    const slash = p.indexOf('/');
    const pr = slash < 0 ? p : p.slice(0, slash);
    const ps = slash < 0 ? undefined : p.slice(slash + 1);
    if (ps === undefined) {
      if (sub === '' && (pr === '*' || pr === resource)) return true;
    } else if ((pr === '*' || pr === resource) && (ps === '*' || ps === sub)) {
      return true;
    }
  }
  return false;
}

const any = (s: ReadonlySet<string>, v: string) => s.has('*') || s.has(v);

/** Whether the rule matches the request's shape (operation, group, version, resource, kind, scope): names aside. */
function ruleMatchesShape(rule: CompiledRule, req: AdmissionRequest): boolean {
  if (!any(rule.operations, req.operation)) return false;
  if (!any(rule.groups, req.resource.group)) return false;
  if (!any(rule.versions, req.resource.version)) return false;
  const sub = req.subResource ?? '';
  if (rule.kinds.size) {
    const kind = sub ? `${req.kind.kind}/${sub}` : req.kind.kind;
    if (!rule.kinds.has(kind) && !rule.kinds.has('*')) return false;
  } else if (!resourceMatches(rule.resources, req.resource.resource, sub)) {
    return false;
  }
  if (rule.scope !== '*' && (rule.scope === 'Namespaced') !== Boolean(req.namespace)) return false;
  return true;
}

export function ruleMatches(rule: CompiledRule, req: AdmissionRequest): boolean {
  return ruleMatchesShape(rule, req) && (!rule.names || rule.names.has(req.name ?? ''));
}

/** Distinct request shapes remembered per policy set; more (a client sending junk kinds) starts over. */
const SHAPE_CACHE_LIMIT = 1024;

export class PolicyIndex {
  readonly #byKey = new Map<string, CompiledPolicy[]>();
  /** candidates by request shape: the answer depends on nothing else, so each shape is worked out once */
  readonly #byShape = new Map<string, CompiledPolicy[]>();

  constructor(readonly policies: readonly CompiledPolicy[]) {
    for (const policy of policies) {
      const keys = new Set<string>();
      for (const rule of policy.rules) {
        const names = rule.kinds.size ? [...rule.kinds].map((k) => `k:${k.split('/')[0]}`) : rule.resources.map((r) => `r:${r.split('/')[0]}`);
        for (const op of rule.operations) for (const g of rule.groups) for (const n of names) keys.add(`${op}|${g}|${n}`);
      }
      for (const key of keys) {
        const list = this.#byKey.get(key);
        if (list) list.push(policy);
        else this.#byKey.set(key, [policy]);
      }
    }
  }

  /** Policies whose resource rules can match the request (before namespace and selector checks). */
  candidates(req: AdmissionRequest): readonly CompiledPolicy[] {
    const { operation, kind, resource } = req;
    // JSON, not a joined string: a crafted field holding the separator must not alias another shape
    const shape = JSON.stringify([operation, resource.group, resource.version, resource.resource, req.subResource ?? '', kind.kind, Boolean(req.namespace)]);
    let list = this.#byShape.get(shape);
    if (!list) {
      if (this.#byShape.size >= SHAPE_CACHE_LIMIT) this.#byShape.clear();
      this.#byShape.set(shape, (list = this.#match(req)));
    }
    return list;
  }

  #match(req: AdmissionRequest): CompiledPolicy[] {
    const found = new Set<CompiledPolicy>();
    for (const op of [req.operation, '*']) {
      for (const g of [req.resource.group, '*']) {
        for (const n of [`r:${req.resource.resource}`, 'r:*', `k:${req.kind.kind}`, 'k:*']) {
          const list = this.#byKey.get(`${op}|${g}|${n}`);
          if (list) for (const p of list) found.add(p);
        }
      }
    }
    // keep load order, so decisions and messages are stable
    return this.policies.filter((p) => found.has(p) && p.rules.some((r) => ruleMatchesShape(r, req)));
  }
}

export type ScopeResult = { applies: true; namespaceObject?: KubeObject } | { applies: false; reason: string } | { error: string };

export function labelsOf(o: KubeObject | null | undefined): Record<string, string> | undefined {
  return o?.metadata?.labels;
}

const isNamespaceRequest = (req: AdmissionRequest) => req.resource.group === '' && req.resource.resource === 'namespaces';

/** `namespaceObject`: the Namespace itself for a request about one, else the request's namespace as the lookup knows it. */
export function namespaceObjectOf(req: AdmissionRequest, namespaces: NamespaceLookup | undefined): KubeObject | undefined {
  if (isNamespaceRequest(req)) return (req.object ?? req.oldObject) ?? undefined;
  return req.namespace ? namespaces?.get(req.namespace) : undefined;
}

/** Namespace, selector and terminating-object checks, after the resource rules matched. */
export function policyInScope(policy: CompiledPolicy, req: AdmissionRequest, namespaces: NamespaceLookup | undefined): ScopeResult {
  const ns = req.namespace ?? '';
  if (policy.namedRules && !policy.rules.some((r) => ruleMatches(r, req))) return { applies: false, reason: 'resourceNames do not list the object' };
  for (const r of policy.excludeRules) if (ruleMatches(r, req)) return { applies: false, reason: 'excluded by excludeResources' };
  if (policy.bindingRules && !policy.bindingRules.some((r) => ruleMatches(r, req))) return { applies: false, reason: "the binding's resource rules do not match" };
  if (ns && policy.excludeNamespaces.has(ns)) return { applies: false, reason: 'namespace excluded' };
  if (policy.namespaces && !policy.namespaces.has(ns)) return { applies: false, reason: 'namespace not listed' };
  if (!policy.includeTerminating && req.operation === 'UPDATE' && req.oldObject?.metadata?.deletionTimestamp) {
    return { applies: false, reason: 'object is being deleted' };
  }
  if (policy.objectSelector) {
    const hit = selectorMatches(policy.objectSelector, labelsOf(req.object)) || (req.oldObject != null && selectorMatches(policy.objectSelector, labelsOf(req.oldObject)));
    if (!hit) return { applies: false, reason: 'objectSelector does not match' };
  }
  const isNamespace = isNamespaceRequest(req);
  const namespaceObject = namespaceObjectOf(req, namespaces);
  if (policy.namespaceSelector) {
    // like the API server: cluster-scoped objects other than Namespaces are not filtered by it
    if (isNamespace || ns) {
      if (!namespaceObject) return { error: `namespace ${ns} is unknown, so namespaceSelector cannot be evaluated (give a kubeconfig or a namespace file)` };
      if (!selectorMatches(policy.namespaceSelector, labelsOf(namespaceObject))) return { applies: false, reason: 'namespaceSelector does not match' };
    }
  }
  return { applies: true, namespaceObject };
}
