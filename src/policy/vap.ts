// Kubernetes ValidatingAdmissionPolicies and MutatingAdmissionPolicies run unchanged: each
// (policy, binding) pair becomes one trustgate policy, compiled by the same path as our own
// documents, with every position still pointing into the policy or binding file the user wrote.
import type { LoadedDocument } from './documents.js';
import { isConfigMap, PolicyFileError, type LabelSelector, type Mode, type MutationSpec, type PolicySpec, type ResourceRule } from './types.js';

export const VAP_API_GROUP = 'admissionregistration.k8s.io/';
export const VAP_KINDS = new Set(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'MutatingAdmissionPolicy', 'MutatingAdmissionPolicyBinding']);

/** which of Kubernetes' admission policies: their bindings name policies of their own kind */
export type PolicyFlavour = 'Validating' | 'Mutating';

type Path = readonly (string | number)[];

interface MatchResources {
  resourceRules?: ResourceRule[];
  excludeResourceRules?: ResourceRule[];
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
}

interface VapSpec {
  paramKind?: { apiVersion: string; kind: string };
  matchConstraints: MatchResources & { resourceRules: ResourceRule[] };
  validations?: PolicySpec['validations'];
  /** a MutatingAdmissionPolicy's */
  mutations?: MutationSpec[];
  reinvocationPolicy?: PolicySpec['reinvocationPolicy'];
  auditAnnotations?: { key: string; valueExpression: string }[];
  matchConditions?: { name: string; expression: string }[];
  variables?: { name: string; expression: string }[];
  failurePolicy?: 'Fail' | 'Ignore';
}

interface BindingSpec {
  policyName: string;
  paramRef?: { name?: string; namespace?: string; selector?: LabelSelector; parameterNotFoundAction?: 'Allow' | 'Deny' };
  matchResources?: MatchResources;
  /** a ValidatingAdmissionPolicyBinding's (a mutating binding has none) */
  validationActions?: ('Deny' | 'Warn' | 'Audit')[];
}

/** Whether `wanted` names the policy: its whole name, or a Validating or MutatingAdmissionPolicy's name under any binding. */
export function namesPolicy(name: string, wanted: string): boolean {
  return name === wanted || name.startsWith(`${wanted}/`);
}

const nameOf = (doc: LoadedDocument) => (doc.value.metadata as { name: string }).name;
const specOf = <S>(doc: LoadedDocument) => doc.value.spec as S;

/** Deny wins, then Warn; Audit alone only records (trustgate records every decision anyway). */
function modeOf(actions: BindingSpec['validationActions']): Mode {
  // a mutation policy's failures (with failurePolicy: Fail) deny, as in Kubernetes
  if (!actions) return 'enforce';
  return actions.includes('Deny') ? 'enforce' : actions.includes('Warn') ? 'warn' : 'audit';
}

const isEmpty = (s: LabelSelector | undefined) => !s || (!Object.keys(s.matchLabels ?? {}).length && !s.matchExpressions?.length);

/** Both selectors must hold: one selector with the requirements of each (an empty one selects everything). */
function bothSelectors(a: LabelSelector | undefined, b: LabelSelector | undefined): LabelSelector | undefined {
  if (isEmpty(a)) return isEmpty(b) ? undefined : b;
  if (isEmpty(b)) return a;
  const requirements = (s: LabelSelector) => [
    ...Object.entries(s.matchLabels ?? {}).map(([key, value]) => ({ key, operator: 'In' as const, values: [value] })),
    ...(s.matchExpressions ?? []),
  ];
  return { matchExpressions: [...requirements(a!), ...requirements(b!)] };
}

/**
 * Where a path of the translated policy came from, in the policy or binding document. The
 * policy's own excludeResourceRules come first in excludeResources, then the binding's.
 */
function sourcePath(path: Path, policyExcludes: number): { in: 'policy' | 'binding'; path: Path } {
  const [spec, section, key, ...rest] = path;
  if (spec !== 'spec') return { in: 'policy', path: [] };
  switch (section) {
    case 'match':
      if (key === 'resources') return { in: 'policy', path: ['spec', 'matchConstraints', 'resourceRules', ...rest] };
      if (key === 'excludeResources') {
        const [i, ...inside] = rest;
        return typeof i === 'number' && i >= policyExcludes
          ? { in: 'binding', path: ['spec', 'matchResources', 'excludeResourceRules', i - policyExcludes, ...inside] }
          : { in: 'policy', path: ['spec', 'matchConstraints', 'excludeResourceRules', ...rest] };
      }
      if (key === 'bindingResources') return { in: 'binding', path: ['spec', 'matchResources', 'resourceRules', ...rest] };
      if (key === 'conditions') return { in: 'policy', path: ['spec', 'matchConditions', ...rest] };
      return { in: 'policy', path: ['spec', 'matchConstraints', ...(key === undefined ? [] : [key])] };
    case 'params': return { in: 'binding', path: ['spec', 'paramRef'] };
    // variables, validations, auditAnnotations, failurePolicy: where they are in the policy
    default: return { in: 'policy', path: path.slice() };
  }
}

function translatedDocument(policy: LoadedDocument, binding: LoadedDocument, value: Record<string, unknown>): LoadedDocument {
  const policyExcludes = specOf<VapSpec>(policy).matchConstraints.excludeResourceRules?.length ?? 0;
  const docOf = (p: Path) => {
    const s = sourcePath(p, policyExcludes);
    return { doc: s.in === 'policy' ? policy : binding, path: s.path };
  };
  return {
    file: policy.file,
    value,
    positionOf(path, options) {
      const s = docOf(path);
      return s.doc.positionOf(s.path, options);
    },
    positionInScalar(path, offset) {
      const s = docOf(path);
      return s.doc.positionInScalar(s.path, offset);
    },
  };
}

export interface ParamObjects {
  /** a document of the policy files with this apiVersion, kind and name (and namespace, when it has one) */
  find(apiVersion: string, kind: string, name: string, namespace: string | undefined): Record<string, unknown> | undefined;
}

/** Params objects among the other documents of the policy files, indexed once. */
export function paramObjectsOf(documents: readonly LoadedDocument[]): ParamObjects {
  const byKey = new Map<string, Record<string, unknown>[]>();
  for (const d of documents) {
    const meta = d.value.metadata as { name?: unknown } | undefined;
    if (typeof meta?.name !== 'string') continue;
    const key = `${String(d.value.apiVersion)}|${String(d.value.kind)}|${meta.name}`;
    const same = byKey.get(key);
    if (same) same.push(d.value);
    else byKey.set(key, [d.value]);
  }
  return {
    find(apiVersion, kind, name, namespace) {
      // one written without a namespace is taken for any: `kubectl apply` would put it where you apply it
      return byKey.get(`${apiVersion}|${kind}|${name}`)?.find((o) => {
        const ns = (o.metadata as { namespace?: string }).namespace;
        return ns === undefined || namespace === undefined || ns === namespace;
      });
    },
  };
}

/** The trustgate params of one binding, or a reason it cannot be honoured. */
function paramsOf(vap: VapSpec, binding: BindingSpec, objects: ParamObjects): PolicySpec['params'] | string {
  const ref = binding.paramRef;
  if (!vap.paramKind) return ref ? 'paramRef is set but the policy declares no paramKind' : undefined;
  if (!ref) return undefined; // Kubernetes binds params to null
  if ((ref.name === undefined) === (ref.selector === undefined)) return 'paramRef needs exactly one of name and selector';
  const { apiVersion, kind } = vap.paramKind;
  const configMap = isConfigMap(vap.paramKind);
  // an object in the policy files is bound as written; a ConfigMap there stands for its own
  // namespace only, so params from each request's namespace always come from the cluster
  const fromFiles = ref.name !== undefined && (!configMap || ref.namespace !== undefined);
  const found = fromFiles ? objects.find(apiVersion, kind, ref.name!, ref.namespace) : undefined;
  if (found) return { inline: found };
  const spec = {
    ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
    ...(ref.selector ? { selector: ref.selector } : { name: ref.name! }),
    parameterNotFoundAction: ref.parameterNotFoundAction ?? 'Deny',
  };
  return configMap ? { configMap: spec } : { object: { apiVersion, kind, ...spec } };
}

/**
 * A ConfigMap in the policy files that a binding reading params from each request's namespace
 * would leave unused: say so, as a file with a namespace stands for one namespace only.
 */
function unusedParamsFile(vap: VapSpec, binding: BindingSpec, objects: ParamObjects): string | undefined {
  const ref = binding.paramRef;
  if (!vap.paramKind || !isConfigMap(vap.paramKind) || !ref?.name || ref.namespace !== undefined) return undefined;
  if (!objects.find('v1', 'ConfigMap', ref.name, undefined)) return undefined;
  return `ConfigMap ${ref.name} in the policy files is not used: paramRef has no namespace, so params come from the namespace of each request, in the cluster (offline: a PolicyTest's configMaps or --cluster-file)`;
}

/** One value per key and request, as Kubernetes requires of a policy (and Kyverno of a ValidatingPolicy). */
export function repeatedAuditAnnotationKeys(doc: LoadedDocument): PolicyFileError[] {
  const keys = new Set<string>();
  const errors: PolicyFileError[] = [];
  for (const [i, a] of ((doc.value.spec as { auditAnnotations?: { key: string }[] }).auditAnnotations ?? []).entries()) {
    if (keys.has(a.key)) errors.push(new PolicyFileError(doc.positionOf(['spec', 'auditAnnotations', i, 'key']), `auditAnnotations key ${a.key} is used twice`));
    keys.add(a.key);
  }
  return errors;
}

/** A policy without a binding, compiled for its errors only */
const UNBOUND: BindingSpec = { policyName: '' };

/** The trustgate Policy document of one (policy, binding) pair. */
function policyValue(policy: LoadedDocument, b: LoadedDocument | undefined, vap: VapSpec, binding: BindingSpec, params: PolicySpec['params']): Record<string, unknown> {
  const constraints = vap.matchConstraints;
  const scope = binding.matchResources ?? {};
  const spec: PolicySpec = {
    mode: modeOf(binding.validationActions),
    failurePolicy: vap.failurePolicy ?? 'Fail',
    match: {
      resources: constraints.resourceRules,
      excludeResources: [...(constraints.excludeResourceRules ?? []), ...(scope.excludeResourceRules ?? [])],
      ...(scope.resourceRules?.length ? { bindingResources: scope.resourceRules } : {}),
      namespaceSelector: bothSelectors(constraints.namespaceSelector, scope.namespaceSelector),
      objectSelector: bothSelectors(constraints.objectSelector, scope.objectSelector),
      conditions: vap.matchConditions,
    },
    params,
    variables: vap.variables,
    // the API server answers a failed validation without a reason as Invalid (422)
    validations: vap.validations?.map((v) => ({ ...v, reason: v.reason ?? 'Invalid' })),
    auditAnnotations: vap.auditAnnotations,
    mutations: vap.mutations,
    reinvocationPolicy: vap.reinvocationPolicy,
  };
  // through JSON: no undefined members, and nothing shared with the documents
  return { apiVersion: 'trustgate.dev/v1alpha1', kind: 'Policy', metadata: { name: b ? `${nameOf(policy)}/${nameOf(b)}` : nameOf(policy) }, spec: JSON.parse(JSON.stringify(spec)) };
}

export interface TranslatedVaps {
  /** one Policy-shaped document per (policy, binding) pair, named policy/binding */
  policies: LoadedDocument[];
  /** policies no binding names: compiled for their errors, never evaluated */
  unbound: LoadedDocument[];
  errors: PolicyFileError[];
  warnings: PolicyFileError[];
}

/** Pairs every binding with its policy and writes the pair as a trustgate policy. */
export function translateVaps(policies: readonly LoadedDocument[], bindings: readonly LoadedDocument[], objects: ParamObjects, flavour: PolicyFlavour = 'Validating'): TranslatedVaps {
  const kind = `${flavour}AdmissionPolicy`;
  const out: TranslatedVaps = { policies: [], unbound: [], errors: [], warnings: [] };
  const byName = new Map(policies.map((p) => [nameOf(p), p]));
  const bound = new Set<string>();
  for (const b of bindings) {
    const binding = specOf<BindingSpec>(b);
    const policy = byName.get(binding.policyName);
    if (!policy) {
      out.errors.push(new PolicyFileError(b.positionOf(['spec', 'policyName']), `binding ${nameOf(b)} names ${kind} ${binding.policyName}, which is not in the policy files`));
      continue;
    }
    bound.add(binding.policyName);
    const vap = specOf<VapSpec>(policy);
    if (binding.validationActions?.includes('Deny') && binding.validationActions.includes('Warn')) {
      out.errors.push(new PolicyFileError(b.positionOf(['spec', 'validationActions']), 'validationActions: Deny and Warn may not be used together (as in Kubernetes)'));
      continue;
    }
    const params = paramsOf(vap, binding, objects);
    if (typeof params === 'string') {
      out.errors.push(new PolicyFileError(b.positionOf(['spec', 'paramRef']), params));
      continue;
    }
    const unused = unusedParamsFile(vap, binding, objects);
    if (unused) out.warnings.push(new PolicyFileError(b.positionOf(['spec', 'paramRef', 'name']), unused));
    out.policies.push(translatedDocument(policy, b, policyValue(policy, b, vap, binding, params)));
  }
  for (const p of policies) {
    out.errors.push(...repeatedAuditAnnotationKeys(p));
    if (bound.has(nameOf(p))) continue;
    out.warnings.push(new PolicyFileError(p.positionOf(['metadata', 'name']), `${kind} ${nameOf(p)} has no binding, so it ${flavour === 'Mutating' ? 'changes' : 'checks'} nothing (as in Kubernetes): add a ${kind}Binding`));
    // compiled all the same, so lint reports its errors before a binding puts it to work
    out.unbound.push(translatedDocument(p, p, policyValue(p, undefined, specOf<VapSpec>(p), UNBOUND, undefined)));
  }
  return out;
}
