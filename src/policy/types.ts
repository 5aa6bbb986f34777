// Policy documents as written, and as compiled for the hot path.
import type { ValidateFunction } from 'ajv';
import type { CompiledExpression } from './cel/index.js';
import type { CompiledImageRule, ImageRuleSpec } from '../supplychain/image-rule.js';
import type { CompiledSourcesRule, SourcesRuleSpec } from './sources-rule.js';

export type Mode = 'enforce' | 'warn' | 'audit';
export type FailurePolicy = 'Fail' | 'Ignore';
export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

export interface ResourceRule {
  apiGroups?: string[];
  apiVersions?: string[];
  resources?: string[];
  kinds?: string[];
  /** only objects of these names (as in Kubernetes rules: an object created with generateName has none yet) */
  resourceNames?: string[];
  operations: (Operation | '*')[];
  scope?: 'Cluster' | 'Namespaced' | '*';
}

export interface PolicySpec {
  description?: string;
  mode?: Mode;
  failurePolicy?: FailurePolicy;
  match: {
    resources: ResourceRule[];
    /** requests these match are left alone even when `resources` match them */
    excludeResources?: ResourceRule[];
    /** a ValidatingAdmissionPolicyBinding's own resource rules: a request must match these too */
    bindingResources?: ResourceRule[];
    namespaces?: string[];
    excludeNamespaces?: string[];
    namespaceSelector?: LabelSelector;
    objectSelector?: LabelSelector;
    includeTerminating?: boolean;
    conditions?: { name: string; expression: string }[];
  };
  params?: { inline?: unknown; file?: string; configMap?: ClusterParamsSpec; /** params of another kind (a custom resource) */ object?: ClusterParamsSpec & ParamKind };
  variables?: { name: string; expression: string }[];
  validations?: { expression: string; message?: string; messageExpression?: string; reason?: string }[];
  /** a ValidatingAdmissionPolicy's: a string value is recorded under its key, null records nothing */
  auditAnnotations?: { key: string; valueExpression: string }[];
  /** a MutatingAdmissionPolicy's, run in order on /mutate only */
  mutations?: MutationSpec[];
  /** IfNeeded: run once more when another mutation policy changed the object (as the API server reinvokes) */
  reinvocationPolicy?: 'Never' | 'IfNeeded';
  schema?: Record<string, unknown>;
  sources?: SourcesRuleSpec;
  images?: ImageRuleSpec[];
}

export interface MutationSpec {
  patchType: 'ApplyConfiguration' | 'JSONPatch';
  applyConfiguration?: { expression: string };
  jsonPatch?: { expression: string };
}

export interface Document<Spec = unknown> {
  apiVersion: string;
  kind: 'Policy' | 'TrustRoot' | 'PolicyTest' | 'PolicyException';
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: Spec;
}

/** Where a document came from, so every message can point at file:line:col. */
export interface SourcePosition {
  file: string;
  line: number;
  col: number;
}

export class PolicyFileError extends Error {
  constructor(readonly position: SourcePosition, readonly detail: string) {
    super(`${position.file}:${position.line}:${position.col}: ${detail}`);
  }
}

export interface CompiledValidation {
  /** how --explain names it: validations[0] */
  label: string;
  expression: CompiledExpression;
  message?: string;
  messageExpression?: CompiledExpression;
  reason?: string;
}

/**
 * The cluster object (by name) or objects (by label selector) that `params` is taken from, a
 * ConfigMap's or another kind's. Without a namespace, from the namespace of each request, as a
 * ValidatingAdmissionPolicyBinding's paramRef.
 */
export interface ClusterParamsSpec {
  namespace?: string;
  name?: string;
  selector?: LabelSelector;
  /** Allow: nothing found passes the policy; Deny (default): it is an error the failurePolicy decides */
  parameterNotFoundAction?: 'Allow' | 'Deny';
}

/** The apiVersion and kind of params objects read from the cluster (a binding's paramKind). */
export interface ParamKind {
  apiVersion: string;
  kind: string;
}

export const CONFIG_MAP: ParamKind = Object.freeze({ apiVersion: 'v1', kind: 'ConfigMap' });
export const isConfigMap = (t: ParamKind): boolean => t.apiVersion === 'v1' && t.kind === 'ConfigMap';
/** One string per params kind, for maps keyed by kind. */
export const paramKindKey = (t: ParamKind): string => `${t.apiVersion}|${t.kind}`;

/**
 * Where `params` comes from: a value known at load, or cluster objects looked up per request.
 * A namespace left undefined means the request's own (for kinds that live in namespaces).
 */
export type ParamsSource =
  | { kind: 'none' }
  | { kind: 'value'; value: unknown }
  | { kind: 'object'; type: ParamKind; namespace?: string; name: string; /** none found passes the policy (parameterNotFoundAction: Allow) */ allowMissing?: boolean }
  /** one evaluation per selected object, as a binding's paramRef.selector */
  | { kind: 'objects'; type: ParamKind; namespace?: string; selector: LabelSelector; allowMissing?: boolean };

/** Something that loads but is likely a mistake, at its path in the document. */
export interface PolicyWarning {
  path: (string | number)[];
  message: string;
}

export interface CompiledMutation {
  /** how errors and --explain name it: mutations[0] */
  label: string;
  patchType: MutationSpec['patchType'];
  expression: CompiledExpression;
}

export interface CompiledVariable {
  name: string;
  label: string;
  expression: CompiledExpression;
  /**
   * Set when the value depends on the request alone (not params, namespaceObject or
   * unshareable variables): policies defining the same variable share one evaluation per review.
   */
  shareKey?: string;
}

export interface CompiledRule {
  groups: Set<string>;
  versions: Set<string>;
  /** resource[/subresource] patterns */
  resources: string[];
  kinds: Set<string>;
  /** object names, when the rule lists resourceNames */
  names?: Set<string>;
  operations: Set<string>;
  scope: 'Cluster' | 'Namespaced' | '*';
}

export interface CompiledPolicy {
  name: string;
  /** short digest of the spec: changes whenever the policy's meaning can change */
  revision: string;
  source: SourcePosition;
  mode: Mode;
  failurePolicy: FailurePolicy;
  rules: CompiledRule[];
  /** true when some rule lists resourceNames: the index, which knows only request shapes, cannot decide alone */
  namedRules: boolean;
  excludeRules: CompiledRule[];
  /** a binding's resource rules, which a request must match as well */
  bindingRules?: CompiledRule[];
  namespaces?: Set<string>;
  excludeNamespaces: Set<string>;
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  includeTerminating: boolean;
  conditions: { name: string; label: string; expression: CompiledExpression }[];
  params: ParamsSource;
  variables: CompiledVariable[];
  validations: CompiledValidation[];
  auditAnnotations: { key: string; label: string; expression: CompiledExpression }[];
  /** changes to the object, made on /mutate only, each seeing the object as the one before left it */
  mutations: CompiledMutation[];
  /** reinvocationPolicy: IfNeeded */
  reinvoke: boolean;
  schema?: ValidateFunction;
  sources?: CompiledSourcesRule;
  images: CompiledImageRule[];
  /** true when evaluation needs CEL values of the request */
  usesCel: boolean;
  /** true when some expression makes authorization checks (`authorizer`) */
  usesAuthorizer: boolean;
}
