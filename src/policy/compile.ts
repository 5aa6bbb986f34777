// Turns one validated Policy document into a CompiledPolicy: every expression compiled and
// type-checked, the JSON Schema compiled, params read; any problem fails the whole load.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CelCompileError, compileExpression, dns1123Label, dns1123Subdomain, labelValue, qualifiedName, type CompileOptions, type CompiledExpression } from './cel/index.js';
import type { LoadedDocument } from './documents.js';
import { deleteObjectWarnings } from './delete-object.js';
import { matchWarnings, paramsScopeWarnings } from './known-resources.js';
import { atomicFieldWarnings } from './mutation/lint.js';
import { compileObjectSchema } from './object-schema.js';
import { compileImageRule, ImageRuleError, type CompiledImageRule } from '../supplychain/image-rule.js';
import type { CompiledTrustRoot } from '../supplychain/sigstore/index.js';
import type { CompiledSourcesRule, SourcesRuleSpec } from './sources-rule.js';
import { parseAllowEntry, parseHostAliases, splitAllowlist, type AllowEntry, type HostAliases } from './sources.js';
import { CONFIG_MAP, PolicyFileError, type CompiledPolicy, type CompiledRule, type CompiledVariable, type ClusterParamsSpec, type Document, type LabelSelector, type ParamKind, type ParamsSource, type PolicySpec, type ResourceRule } from './types.js';

/** The policy's text, and the content of a params file it reads: a changed file is a new revision. */
export function policyRevision(doc: Document, paramsFile?: unknown): string {
  const text = JSON.stringify(paramsFile === undefined ? { name: doc.metadata.name, spec: doc.spec } : { name: doc.metadata.name, spec: doc.spec, paramsFile });
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

export function compileRule(r: PolicySpec['match']['resources'][number]): CompiledRule {
  return {
    groups: new Set(r.apiGroups ?? ['*']),
    versions: new Set(r.apiVersions ?? ['*']),
    resources: r.resources ?? [],
    kinds: new Set(r.kinds ?? []),
    names: r.resourceNames?.length ? new Set(r.resourceNames) : undefined,
    operations: new Set(r.operations),
    scope: r.scope ?? '*',
  };
}

/** Each rule names resources or kinds, not both. */
export function checkResourceRules(rules: readonly ResourceRule[] | undefined, at: (string | number)[], fail: (path: (string | number)[], message: string) => void): void {
  for (const [i, r] of (rules ?? []).entries()) {
    if (!r.resources?.length && !r.kinds?.length) fail([...at, i], 'a resource rule needs resources or kinds');
    if (r.resources?.length && r.kinds?.length) fail([...at, i], 'give either resources or kinds, not both');
  }
}

const REQUEST_ONLY = new Set(['object', 'oldObject', 'request', 'variables']);

/** A key that is equal exactly when two variables must evaluate to the same value per review. */
function shareKeyOf(expression: CompiledExpression, earlier: readonly CompiledVariable[]): string | undefined {
  for (const id of expression.identifiers) if (!REQUEST_ONLY.has(id)) return undefined;
  const deps: string[] = [];
  for (const ref of [...expression.variableRefs].sort()) {
    const key = earlier.find((v) => v.name === ref)?.shareKey;
    if (!key) return undefined;
    deps.push(`${ref}=${key}`);
  }
  return `${expression.source}\u0000${deps.join('\u0000')}`;
}

/** `params.configMap` (or a binding's params of another kind) as the evaluator reads it: one object by name, or all a selector selects. */
function clusterParams(spec: ClusterParamsSpec, type: ParamKind, field: 'configMap' | 'object', fail: (path: (string | number)[], message: string) => void): ParamsSource | undefined {
  const at = ['spec', 'params', field];
  const allowMissing = spec.parameterNotFoundAction === 'Allow';
  const namespace = spec.namespace === undefined ? {} : { namespace: spec.namespace };
  if ((spec.name === undefined) === (spec.selector === undefined)) {
    fail(at, `params.${field} needs exactly one of name (one object) and selector (one evaluation per object it selects)`);
    return undefined;
  }
  // all of these go to the API server, in discovery, list and watch calls: what Kubernetes would
  // refuse is refused here, and no spelling can point a call at another path
  const problems = [
    ...(field === 'object' ? kindProblems(type, at) : []),
    ...(spec.namespace === undefined ? [] : dns1123Label(spec.namespace).map((m) => ({ path: [...at, 'namespace'], message: `namespace ${m}` }))),
    ...(spec.name === undefined ? selectorProblems(spec.selector!, [...at, 'selector']) : dns1123Subdomain(spec.name).map((m) => ({ path: [...at, 'name'], message: `name ${m}` }))),
  ];
  for (const p of problems) fail(p.path, p.message);
  if (problems.length) return undefined;
  if (spec.selector) return { kind: 'objects', type, ...namespace, selector: spec.selector, allowMissing };
  return { kind: 'object', type, ...namespace, name: spec.name!, allowMissing };
}

/** What a load check finds wrong, and where in the document */
type LoadProblem = { path: (string | number)[]; message: string };

/** A params kind by its apiVersion and kind: a served resource's, and never Secrets. */
function kindProblems(type: ParamKind, at: (string | number)[]): LoadProblem[] {
  const [group, version, extra] = type.apiVersion.includes('/') ? type.apiVersion.split('/') : ['', type.apiVersion];
  const problems: LoadProblem[] = [];
  if (extra !== undefined || dns1123Label(version ?? '').length || (group !== '' && dns1123Subdomain(group!).length)) {
    problems.push({ path: [...at, 'apiVersion'], message: `apiVersion ${JSON.stringify(type.apiVersion)} is not GROUP/VERSION (or a core VERSION such as v1)` });
  }
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(type.kind)) problems.push({ path: [...at, 'kind'], message: `kind ${JSON.stringify(type.kind)} is not a Kubernetes kind (CamelCase letters and digits)` });
  // their data would reach CEL, its messages and the audit record, and manifests would grant reading every Secret
  if (group === '' && type.kind === 'Secret') problems.push({ path: [...at, 'kind'], message: 'Secrets cannot be params: their data would reach CEL messages and the decision record, and trustgate would need to read every Secret (use a ConfigMap or a custom resource)' });
  return problems;
}

/** A label selector's keys and values as the API server validates them. */
function selectorProblems(selector: LabelSelector, at: (string | number)[]): LoadProblem[] {
  const problems: LoadProblem[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    for (const m of qualifiedName(key)) problems.push({ path: [...at, 'matchLabels', key], message: `label key ${JSON.stringify(key)}: ${m}` });
    for (const m of labelValue(value)) problems.push({ path: [...at, 'matchLabels', key], message: `label value ${JSON.stringify(value)}: ${m}` });
  }
  for (const [i, e] of (selector.matchExpressions ?? []).entries()) {
    for (const m of qualifiedName(e.key)) problems.push({ path: [...at, 'matchExpressions', i, 'key'], message: `label key ${JSON.stringify(e.key)}: ${m}` });
    const values = e.values ?? [];
    const setOperator = e.operator === 'In' || e.operator === 'NotIn';
    if (setOperator && !values.length) problems.push({ path: [...at, 'matchExpressions', i], message: `${e.operator} needs values` });
    if (!setOperator && values.length) problems.push({ path: [...at, 'matchExpressions', i, 'values'], message: `${e.operator} takes no values` });
    for (const v of values) for (const m of labelValue(v)) problems.push({ path: [...at, 'matchExpressions', i, 'values'], message: `label value ${JSON.stringify(v)}: ${m}` });
  }
  return problems;
}

async function compileSourcesRule(spec: SourcesRuleSpec, loaded: LoadedDocument, fail: (path: (string | number)[], message: string) => void): Promise<CompiledSourcesRule> {
  const entries: AllowEntry[] = [];
  for (const [i, raw] of (spec.allow ?? []).entries()) {
    try {
      entries.push(parseAllowEntry(raw));
    } catch (err) {
      fail(['spec', 'sources', 'allow', i], (err as Error).message);
    }
  }
  if (spec.allowFile) {
    const path = resolve(dirname(loaded.file), spec.allowFile);
    try {
      for (const raw of splitAllowlist(await readFile(path, 'utf8')).entries) {
        try {
          entries.push(parseAllowEntry(raw));
        } catch (err) {
          fail(['spec', 'sources', 'allowFile'], `${path}: ${(err as Error).message}`);
        }
      }
    } catch (err) {
      fail(['spec', 'sources', 'allowFile'], `cannot read allowlist file ${path}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  let hostAliases: HostAliases = new Map();
  try {
    hostAliases = parseHostAliases(spec.hostAliases ?? []);
  } catch (err) {
    fail(['spec', 'sources', 'hostAliases'], (err as Error).message);
  }
  const cm = spec.allowConfigMap;
  return {
    entries,
    configMap: cm ? { namespace: cm.namespace, name: cm.name, key: cm.key ?? 'sources' } : undefined,
    crossNamespaceRefs: spec.crossNamespaceRefs ?? 'deny',
    fields: spec.fields ?? [],
    hostAliases,
  };
}

export async function compilePolicy(loaded: LoadedDocument, trustRoots: (name: string) => CompiledTrustRoot | undefined = () => undefined): Promise<{ policy?: CompiledPolicy; errors: PolicyFileError[]; warnings: PolicyFileError[] }> {
  const doc = loaded.value as unknown as Document<PolicySpec>;
  const spec = doc.spec;
  const errors: PolicyFileError[] = [];
  const fail = (path: (string | number)[], message: string) => errors.push(new PolicyFileError(loaded.positionOf(path), message));

  const variableNames = new Set((spec.variables ?? []).map((v) => v.name));
  const compile = (path: (string | number)[], source: string, options: CompileOptions): CompiledExpression | undefined => {
    try {
      return compileExpression(source, options);
    } catch (err) {
      if (err instanceof CelCompileError) {
        const near = source.length > 60 ? `${source.slice(Math.max(0, err.offset - 20), err.offset + 40)}` : source;
        errors.push(new PolicyFileError(loaded.positionInScalar(path, err.offset), `${err.message} (in ${JSON.stringify(near)})`));
        return undefined;
      }
      throw err;
    }
  };

  const images: CompiledImageRule[] = [];
  for (const [i, rule] of (spec.images ?? []).entries()) {
    try {
      images.push(compileImageRule(rule, i, policyRevision(doc), trustRoots, compile));
    } catch (err) {
      if (!(err instanceof ImageRuleError)) throw err;
      fail(err.path, err.message);
    }
  }

  for (const key of ['resources', 'excludeResources', 'bindingResources'] as const) checkResourceRules(spec.match[key], ['spec', 'match', key], fail);
  const seenVariables = new Set<string>();
  const variables: CompiledPolicy['variables'] = [];
  for (const [i, v] of (spec.variables ?? []).entries()) {
    if (seenVariables.has(v.name)) fail(['spec', 'variables', i, 'name'], `variable ${v.name} is declared twice`);
    // a variable may use the variables declared before it, as in ValidatingAdmissionPolicy
    const expression = compile(['spec', 'variables', i, 'expression'], v.expression, { expect: 'any', variables: new Set(seenVariables) });
    seenVariables.add(v.name);
    if (expression) variables.push({ name: v.name, label: `variables.${v.name}`, expression, shareKey: shareKeyOf(expression, variables) });
  }
  const conditions: CompiledPolicy['conditions'] = [];
  for (const [i, c] of (spec.match.conditions ?? []).entries()) {
    const expression = compile(['spec', 'match', 'conditions', i, 'expression'], c.expression, { expect: 'bool', variables: variableNames });
    if (expression) conditions.push({ name: c.name, label: `condition ${c.name}`, expression });
  }
  const validations: CompiledPolicy['validations'] = [];
  for (const [i, v] of (spec.validations ?? []).entries()) {
    const expression = compile(['spec', 'validations', i, 'expression'], v.expression, { expect: 'bool', variables: variableNames });
    const messageExpression = v.messageExpression
      ? compile(['spec', 'validations', i, 'messageExpression'], v.messageExpression, { expect: 'string', variables: variableNames })
      : undefined;
    if (expression) validations.push({ label: `validations[${i}]`, expression, message: v.message, messageExpression, reason: v.reason });
  }
  const auditAnnotations: CompiledPolicy['auditAnnotations'] = [];
  for (const [i, a] of (spec.auditAnnotations ?? []).entries()) {
    // a string or null: the type checker cannot say "either", so the value is checked when evaluated
    const expression = compile(['spec', 'auditAnnotations', i, 'valueExpression'], a.valueExpression, { expect: 'any', variables: variableNames });
    if (expression) auditAnnotations.push({ key: a.key, label: `auditAnnotations[${i}]`, expression });
  }
  const mutations: CompiledPolicy['mutations'] = [];
  for (const [i, m] of (spec.mutations ?? []).entries()) {
    const field = m.patchType === 'JSONPatch' ? 'jsonPatch' : 'applyConfiguration';
    const source = m[field]?.expression;
    if (source === undefined) {
      fail(['spec', 'mutations', i], `patchType ${m.patchType} needs ${field}.expression`);
      continue;
    }
    const expression = compile(['spec', 'mutations', i, field, 'expression'], source, { expect: 'any', variables: variableNames, messages: m.patchType === 'JSONPatch' ? 'JSONPatch' : 'Object' });
    if (!expression) continue;
    // the type checker knows Object{…} and JSONPatch{…} only as maps: the shape is checked here
    const want = m.patchType === 'JSONPatch' ? /^(list<.*>|dyn)$/ : /^(map<.*>|dyn)$/;
    if (!want.test(expression.type)) fail(['spec', 'mutations', i, field, 'expression'], `a ${m.patchType} expression must evaluate to ${m.patchType === 'JSONPatch' ? 'a list of JSONPatch{…}' : 'Object{…}'}, but its type is ${expression.type}`);
    else mutations.push({ label: `mutations[${i}]`, patchType: m.patchType, expression });
  }
  if (spec.mutations?.length && (spec.validations?.length || spec.auditAnnotations?.length || spec.schema || spec.sources || spec.images?.length)) {
    fail(['spec', 'mutations'], 'a policy mutates or checks, not both: mutations run on /mutate before any check, so put validations, schema, sources and images in a policy of their own');
  }
  if (spec.mutations?.length && [...conditions, ...variables, ...mutations].some((c) => c.expression.identifiers.has('authorizer'))) {
    fail(['spec', 'mutations'], 'a mutation policy cannot make authorization checks (authorizer) here: decide them in a validating policy');
  }
  let schema: CompiledPolicy['schema'];
  if (spec.schema) {
    try {
      schema = compileObjectSchema(spec.schema);
    } catch (err) {
      fail(['spec', 'schema'], `invalid JSON Schema: ${(err as Error).message}`);
    }
  }
  let sources: CompiledSourcesRule | undefined;
  if (spec.sources) sources = await compileSourcesRule(spec.sources, loaded, fail);
  if (!validations.length && !auditAnnotations.length && !spec.mutations?.length && !schema && !spec.images?.length && !spec.sources && !errors.length) {
    fail(['spec'], 'the policy checks nothing: add validations or a schema');
  }
  let params: ParamsSource = { kind: 'none' };
  if (spec.params?.inline !== undefined) params = { kind: 'value', value: spec.params.inline };
  else if (spec.params?.configMap) params = clusterParams(spec.params.configMap, CONFIG_MAP, 'configMap', fail) ?? params;
  else if (spec.params?.object) params = clusterParams(spec.params.object, { apiVersion: spec.params.object.apiVersion, kind: spec.params.object.kind }, 'object', fail) ?? params;
  else if (spec.params?.file) {
    const path = resolve(dirname(loaded.file), spec.params.file);
    try {
      params = { kind: 'value', value: parseYaml(await readFile(path, 'utf8')) };
    } catch (err) {
      fail(['spec', 'params', 'file'], `cannot read params file ${path}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (errors.length) return { errors, warnings: [] };
  const m = spec.match;
  return {
    errors,
    warnings: [...matchWarnings(m), ...paramsScopeWarnings(spec), ...deleteObjectWarnings(spec, { variables, conditions, validations }), ...atomicFieldWarnings(spec)].map((w) => new PolicyFileError(loaded.positionOf(w.path), w.message)),
    policy: {
      name: doc.metadata.name,
      revision: policyRevision(doc, spec.params?.file !== undefined && params.kind === 'value' ? params.value : undefined),
      source: loaded.positionOf([]),
      mode: spec.mode ?? 'enforce',
      failurePolicy: spec.failurePolicy ?? 'Fail',
      rules: m.resources.map(compileRule),
      namedRules: m.resources.some((r) => r.resourceNames?.length),
      excludeRules: (m.excludeResources ?? []).map(compileRule),
      bindingRules: m.bindingResources?.length ? m.bindingResources.map(compileRule) : undefined,
      namespaces: m.namespaces ? new Set(m.namespaces) : undefined,
      excludeNamespaces: new Set(m.excludeNamespaces ?? []),
      namespaceSelector: m.namespaceSelector,
      objectSelector: m.objectSelector,
      includeTerminating: m.includeTerminating ?? false,
      conditions,
      params,
      variables,
      validations,
      auditAnnotations,
      mutations,
      reinvoke: spec.reinvocationPolicy === 'IfNeeded',
      schema,
      sources,
      images,
      usesCel: conditions.length + variables.length + validations.length + auditAnnotations.length + mutations.length > 0,
      usesAuthorizer: [...conditions, ...variables, ...auditAnnotations, ...mutations].some((c) => c.expression.identifiers.has('authorizer'))
        || validations.some((v) => v.expression.identifiers.has('authorizer') || v.messageExpression?.identifiers.has('authorizer')),
    },
  };
}
