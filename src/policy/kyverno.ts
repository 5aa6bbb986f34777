// Kyverno ValidatingPolicies (policies.kyverno.io) run unchanged. A ValidatingPolicy is a
// ValidatingAdmissionPolicy with its binding folded in (validationActions), so each becomes one
// trustgate policy through the same compiler, positions pointing into the file the user wrote.
// Kyverno's pod-controller autogen is reproduced as Kyverno does it (pkg/cel/autogen): a policy
// matching exactly `pods` (core, v1, nothing narrower) is also written for the workload kinds,
// its expressions rewritten from the Pod's spec and metadata to the pod template's.
import type { LoadedDocument } from './documents.js';
import { PolicyFileError, type LabelSelector, type Mode, type PolicySpec, type ResourceRule } from './types.js';
import { repeatedAuditAnnotationKeys } from './vap.js';

const KYVERNO_API_GROUP = 'policies.kyverno.io/';
const KYVERNO_KINDS = new Set(['ValidatingPolicy', 'NamespacedValidatingPolicy']);

type Path = readonly (string | number)[];
type Action = 'Deny' | 'Warn' | 'Audit';

interface MatchResources {
  resourceRules?: ResourceRule[];
  excludeResourceRules?: ResourceRule[];
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
}

interface ValidatingPolicySpec {
  matchConstraints?: MatchResources;
  validations?: PolicySpec['validations'];
  auditAnnotations?: { key: string; valueExpression: string }[];
  matchConditions?: { name: string; expression: string }[];
  variables?: { name: string; expression: string }[];
  failurePolicy?: 'Fail' | 'Ignore';
  validationActions?: Action[];
  autogen?: { podControllers?: { controllers?: string[] } };
  evaluation?: { mode?: 'Kubernetes' | 'JSON'; admission?: { enabled?: boolean } };
}

/** A Kyverno ValidatingPolicy or NamespacedValidatingPolicy document. */
export function isKyvernoPolicyDocument(value: Record<string, unknown>): boolean {
  return KYVERNO_KINDS.has(value.kind as string) && typeof value.apiVersion === 'string' && value.apiVersion.startsWith(KYVERNO_API_GROUP);
}

/** Deny wins over Audit; Warn warns; Audit alone records (every decision is recorded anyway). Kyverno's default is Deny. */
function modeOf(actions: Action[] | undefined): Mode {
  if (!actions?.length || actions.includes('Deny')) return 'enforce';
  return actions.includes('Warn') ? 'warn' : 'audit';
}

// the pod controllers autogen writes a Pod policy for, and how each reaches its pod template
const CONTROLLERS: Record<string, { group: string; kind: string; replacements: 'defaults' | 'cronjobs' }> = {
  daemonsets: { group: 'apps', kind: 'DaemonSet', replacements: 'defaults' },
  deployments: { group: 'apps', kind: 'Deployment', replacements: 'defaults' },
  replicasets: { group: 'apps', kind: 'ReplicaSet', replacements: 'defaults' },
  statefulsets: { group: 'apps', kind: 'StatefulSet', replacements: 'defaults' },
  jobs: { group: 'batch', kind: 'Job', replacements: 'defaults' },
  cronjobs: { group: 'batch', kind: 'CronJob', replacements: 'cronjobs' },
};
const REPLACEMENTS = {
  defaults: [['spec', 'spec.template.spec'], ['metadata', 'spec.template.metadata']],
  cronjobs: [['spec', 'spec.jobTemplate.spec.template.spec'], ['metadata', 'spec.jobTemplate.spec.template.metadata']],
} as const;

const hasRequirements = (s: LabelSelector | undefined) => !!s && (Object.keys(s.matchLabels ?? {}).length > 0 || (s.matchExpressions?.length ?? 0) > 0);

/** Kyverno's CanAutoGen: one rule for exactly core/v1 pods, no selectors, exclusions or names. */
export function canAutogen(match: MatchResources | undefined): boolean {
  if (!match || hasRequirements(match.namespaceSelector) || hasRequirements(match.objectSelector) || match.excludeResourceRules?.length) return false;
  const rules = match.resourceRules ?? [];
  if (rules.length !== 1) return false;
  const [rule] = rules as [ResourceRule];
  const only = (list: string[] | undefined, value: string) => list?.length === 1 && list[0] === value;
  return !rule.resourceNames?.length && only(rule.apiGroups, '') && only(rule.apiVersions, 'v1') && only(rule.resources, 'pods');
}

/**
 * Kyverno's text replacement: `object.<from>` and `oldObject.<from>` become `…<to>`, except where
 * `.name` or `.namespace` follows (the workload's own, which its pod template usually lacks).
 */
export function rewriteForController(text: string, replacements: 'defaults' | 'cronjobs'): string {
  let out = text;
  for (const [from, to] of REPLACEMENTS[replacements]) {
    for (const root of ['object.', 'oldObject.']) {
      const needle = root + from;
      let result = '';
      let at = 0;
      for (let i = out.indexOf(needle); i >= 0; i = out.indexOf(needle, at)) {
        const rest = out.slice(i + needle.length);
        const isProtected = /^\.(?:namespace|name)(?![A-Za-z0-9_])/.test(rest);
        result += out.slice(at, i) + (isProtected ? needle : root + to);
        at = i + needle.length;
      }
      out = result + out.slice(at);
    }
  }
  return out;
}

interface Translation {
  value: Record<string, unknown>;
  /** the autogen copy's controllers' replacement set, or undefined for the policy as written */
  autogen?: 'defaults' | 'cronjobs';
}

/** The trustgate Policy document of a Kyverno ValidatingPolicy, and of each of its autogen copies. */
function translations(doc: LoadedDocument, name: string, namespace: string | undefined): Translation[] {
  const vpol = doc.value.spec as ValidatingPolicySpec;
  const constraints = vpol.matchConstraints ?? {};
  const base: PolicySpec = {
    mode: modeOf(vpol.validationActions),
    failurePolicy: vpol.failurePolicy ?? 'Fail',
    match: {
      resources: constraints.resourceRules ?? [],
      excludeResources: constraints.excludeResourceRules,
      ...(namespace === undefined ? {} : { namespaces: [namespace] }),
      namespaceSelector: constraints.namespaceSelector,
      objectSelector: constraints.objectSelector,
      conditions: vpol.matchConditions,
    },
    variables: vpol.variables,
    validations: vpol.validations,
    auditAnnotations: vpol.auditAnnotations,
  };
  const document = (policyName: string, spec: PolicySpec) => ({ apiVersion: 'trustgate.dev/v1alpha1', kind: 'Policy', metadata: { name: namespace === undefined ? policyName : `${namespace}/${policyName}` }, spec: JSON.parse(JSON.stringify(spec)) as PolicySpec });
  const out: Translation[] = [{ value: document(name, base) }];
  if (!canAutogen(constraints)) return out;
  const controllers = vpol.autogen?.podControllers?.controllers ?? Object.keys(CONTROLLERS);
  const operations = constraints.resourceRules![0]!.operations;
  for (const replacements of ['cronjobs', 'defaults'] as const) {
    const targets = Object.keys(CONTROLLERS).filter((c) => controllers.includes(c) && CONTROLLERS[c]!.replacements === replacements).sort();
    if (!targets.length) continue;
    const prefix = replacements === 'defaults' ? 'autogen' : 'autogen-cronjobs';
    const groups = [...new Set(targets.map((t) => CONTROLLERS[t]!.group))].sort();
    const precondition = targets.map((t) => `(object.apiVersion == '${CONTROLLERS[t]!.group}/v1' && object.kind =='${CONTROLLERS[t]!.kind}')`).sort().join('||');
    const spec: PolicySpec = {
      ...base,
      match: {
        ...base.match,
        resources: groups.map((g) => ({ apiGroups: [g], apiVersions: ['v1'], resources: targets.filter((t) => CONTROLLERS[t]!.group === g), operations })),
        conditions: vpol.matchConditions?.map((c) => ({ name: `${prefix}-${c.name}`, expression: `!(${precondition}) || (${c.expression})` })),
      },
    };
    // as Kyverno: the whole spec's text, so messages and audit annotations follow the template too
    out.push({ value: document(`${prefix}-${name}`, JSON.parse(rewriteForController(JSON.stringify(spec), replacements)) as PolicySpec), autogen: replacements });
  }
  return out;
}

/** Where a path of the translated policy is in the ValidatingPolicy document. */
function sourcePath(path: Path): Path {
  const [spec, section, key, ...rest] = path;
  if (spec !== 'spec') return path.slice();
  if (section === 'mode') return ['spec', 'validationActions'];
  if (section !== 'match') return path.slice();
  switch (key) {
    case 'resources': return ['spec', 'matchConstraints', 'resourceRules', ...rest];
    case 'excludeResources': return ['spec', 'matchConstraints', 'excludeResourceRules', ...rest];
    case 'conditions': return ['spec', 'matchConditions', ...rest];
    case 'namespaces': return ['metadata', 'namespace'];
    default: return ['spec', 'matchConstraints', ...(key === undefined ? [] : [key])];
  }
}

function translatedDocument(doc: LoadedDocument, t: Translation): LoadedDocument {
  return {
    file: doc.file,
    value: t.value,
    positionOf: (path, options) => doc.positionOf(sourcePath(path), options),
    // an autogen copy's expressions were rewritten: an offset into one is not one into the file
    positionInScalar: (path, offset) => (t.autogen ? doc.positionOf(sourcePath(path)) : doc.positionInScalar(sourcePath(path), offset)),
  };
}

export interface TranslatedKyvernoPolicy {
  /** the ValidatingPolicy document */
  source: LoadedDocument;
  /** the policy as written */
  policy: LoadedDocument;
  /** its autogen copies for pod controllers: compiled once the policy itself compiles (their errors would be its errors again) */
  autogen: LoadedDocument[];
}

export interface TranslatedKyverno {
  policies: TranslatedKyvernoPolicy[];
  errors: PolicyFileError[];
  warnings: PolicyFileError[];
}

/** Each ValidatingPolicy (already schema-checked) as trustgate policies, or why it is not run. */
export function translateKyvernoPolicies(docs: readonly LoadedDocument[]): TranslatedKyverno {
  const out: TranslatedKyverno = { policies: [], errors: [], warnings: [] };
  for (const doc of docs) {
    const kind = doc.value.kind as string;
    const { name, namespace } = doc.value.metadata as { name: string; namespace?: string };
    const vpol = doc.value.spec as ValidatingPolicySpec;
    if (vpol.evaluation?.mode === 'JSON') {
      out.warnings.push(new PolicyFileError(doc.positionOf(['spec', 'evaluation', 'mode']), `${kind} ${name} judges JSON payloads (evaluation.mode JSON), not admission requests: trustgate does not run it`));
      continue;
    }
    if (vpol.evaluation?.admission?.enabled === false) {
      out.warnings.push(new PolicyFileError(doc.positionOf(['spec', 'evaluation', 'admission', 'enabled']), `${kind} ${name} is for Kyverno's background scans only (evaluation.admission.enabled: false): trustgate does not run it`));
      continue;
    }
    const fail = (path: Path, message: string) => out.errors.push(new PolicyFileError(doc.positionOf(path), `${kind} ${name}: ${message}`));
    if (!vpol.matchConstraints?.resourceRules?.length) {
      fail(['spec'], 'matchConstraints.resourceRules is required (as Kyverno requires it of a Kubernetes-mode policy)');
      continue;
    }
    if (!vpol.validations?.length && !vpol.auditAnnotations?.length) {
      fail(['spec'], 'validations and auditAnnotations may not both be empty');
      continue;
    }
    const repeated = repeatedAuditAnnotationKeys(doc);
    if (repeated.length) {
      out.errors.push(...repeated);
      continue;
    }
    if (vpol.validationActions?.includes('Deny') && vpol.validationActions.includes('Warn')) {
      fail(['spec', 'validationActions'], 'validationActions: Deny and Warn may not be used together (as in Kyverno and Kubernetes)');
      continue;
    }
    const namespaced = kind === 'NamespacedValidatingPolicy';
    if (namespaced && namespace === undefined) {
      fail(['metadata'], 'a NamespacedValidatingPolicy applies to its own namespace only: give metadata.namespace');
      continue;
    }
    const [policy, ...autogen] = translations(doc, name, namespaced ? namespace : undefined).map((t) => translatedDocument(doc, t));
    out.policies.push({ source: doc, policy: policy!, autogen });
  }
  return out;
}

// Kyverno's own CEL libraries: calls on these names (resource.Get, image(...)) fail to compile
// here, and so does `exceptions`, the values Kyverno's CEL PolicyExceptions hand a policy
const KYVERNO_LIBRARY_CALL = /(?<![.\w])(?:(resource|http|globalContext|imagedata|json|yaml|x509|hash|random|user|time)\.\w+\s*\(|(image|isImage|parseImageReference|sha1|sha256|md5|listObjToMap|parseServiceAccount)\s*\(|(exceptions)\.allowed\w+)/g;

/** The Kyverno-only CEL libraries a ValidatingPolicy's expressions call, by name. */
export function kyvernoLibrariesUsed(doc: LoadedDocument): string[] {
  const spec = doc.value.spec as ValidatingPolicySpec;
  const sources = [
    ...(spec.validations ?? []).flatMap((v) => [v.expression, v.messageExpression ?? '']),
    ...(spec.variables ?? []).map((v) => v.expression),
    ...(spec.matchConditions ?? []).map((c) => c.expression),
    ...(spec.auditAnnotations ?? []).map((a) => a.valueExpression),
  ];
  const used = new Set<string>();
  for (const source of sources) for (const m of source.matchAll(KYVERNO_LIBRARY_CALL)) used.add(m[1] ?? m[3] ?? `${m[2]}()`);
  return [...used].sort();
}

/** A compile error of a policy that calls Kyverno-only libraries says that is why. */
export function withKyvernoLibraryNote(err: PolicyFileError, used: readonly string[]): PolicyFileError {
  if (!used.length) return err;
  return new PolicyFileError(err.position, `${err.detail} (the policy calls Kyverno's own CEL libraries, which trustgate does not have: ${used.join(', ')}; see "Coming from Sigstore policy-controller or Kyverno" in the README)`);
}
