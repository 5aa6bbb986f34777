// Loads a whole policy set: all documents parse, validate and compile, or nothing is returned.
import { createHash } from 'node:crypto';
import { compilePolicy } from './compile.js';
import { readPolicyDocuments, type LoadedDocument } from './documents.js';
import { PolicyIndex } from './match.js';
import { schemaErrors } from './schema.js';
import { selectorString } from './selector.js';
import { isConfigMap, paramKindKey, PolicyFileError, type CompiledPolicy, type LabelSelector, type ParamKind } from './types.js';
import { compileException, PolicyExceptions, type CompiledException } from './exceptions.js';
import { namesPolicy, paramObjectsOf, translateVaps, VAP_API_GROUP, VAP_KINDS } from './vap.js';
import { isKyvernoPolicyDocument, kyvernoLibrariesUsed, translateKyvernoPolicies, withKyvernoLibraryNote, type TranslatedKyvernoPolicy } from './kyverno.js';
import { compileTrustRoot, publicGoodTrustRoot, PUBLIC_GOOD, TrustRootError, type CompiledTrustRoot, type TrustRootSpec } from '../supplychain/sigstore/index.js';

export interface PolicySet {
  /** digest over every policy revision: changes whenever any policy changes */
  revision: string;
  policies: CompiledPolicy[];
  index: PolicyIndex;
  /** compiled TrustRoot documents (sigstore-public-good is always there besides these) */
  trustRoots: CompiledTrustRoot[];
  /** registries named literally by some images[].match glob: the only ones verification contacts */
  registries: Set<string>;
  /** PolicyExceptions, applied after evaluation to the policies they name */
  exceptions: PolicyExceptions;
  /** some policy makes authorization checks: admissions then carry an authorization session */
  usesAuthorizer: boolean;
  /** some policy mutates (MutatingAdmissionPolicies): /mutate runs those first */
  mutates: boolean;
  tests: LoadedDocument[];
  /** what loads but is likely a mistake: resource rules that never match, validations that fail on every DELETE, exceptions expired or about to */
  warnings: PolicyFileError[];
  files: number;
  /** documents that are not trustgate's (params data, test objects), left alone */
  skipped: number;
}

const OUR_KINDS = new Set(['Policy', 'TrustRoot', 'PolicyTest', 'PolicyException']);

/** Ours if it says so by apiVersion or kind; a typo in one of the two still gets validated. */
function isTrustgateDocument(value: Record<string, unknown>): boolean {
  return (typeof value.apiVersion === 'string' && value.apiVersion.startsWith('trustgate.dev/')) || OUR_KINDS.has(value.kind as string);
}

/** A Kubernetes Validating or MutatingAdmissionPolicy or binding, which trustgate runs as written. */
function isVapDocument(value: Record<string, unknown>): boolean {
  return VAP_KINDS.has(value.kind as string) && typeof value.apiVersion === 'string' && value.apiVersion.startsWith(VAP_API_GROUP);
}

/** Policy documents of other engines, which would otherwise be taken for data and silently not enforced. */
const FOREIGN_POLICY_GROUPS: Record<string, string> = {
  'policy.sigstore.dev': "Sigstore policy-controller's",
  'kyverno.io': "Kyverno's",
  'policies.kyverno.io': "Kyverno's",
  'templates.gatekeeper.sh': "Gatekeeper's",
  'constraints.gatekeeper.sh': "Gatekeeper's",
};

function foreignPolicyWarning(doc: LoadedDocument): PolicyFileError | undefined {
  const { apiVersion, kind } = doc.value;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return undefined;
  const group = apiVersion.split('/')[0]!;
  const engine = Object.hasOwn(FOREIGN_POLICY_GROUPS, group) ? FOREIGN_POLICY_GROUPS[group] : undefined;
  if (!engine) return undefined;
  return new PolicyFileError(doc.positionOf(['kind']), `${kind} is ${engine}, which trustgate does not run: nothing here enforces it (see "Coming from Sigstore policy-controller or Kyverno" in the README)`);
}

export type LoadResult = { set: PolicySet; errors: [] } | { set?: undefined; errors: PolicyFileError[] };

export interface LoadOptions {
  /** the time exceptions' expiry is judged at for warnings (default: the clock) */
  now?: number;
}

export async function loadPolicySet(paths: readonly string[], options: LoadOptions = {}): Promise<LoadResult> {
  let read;
  try {
    read = await readPolicyDocuments(paths);
  } catch (err) {
    return { errors: [new PolicyFileError({ file: paths.join(','), line: 1, col: 1 }, (err as Error).message)] };
  }
  const errors = [...read.errors];
  const policies: CompiledPolicy[] = [];
  const trustRootDocs: LoadedDocument[] = [];
  const policyDocs: LoadedDocument[] = [];
  const tests: LoadedDocument[] = [];
  const exceptionDocs: LoadedDocument[] = [];
  const vaps: LoadedDocument[] = [];
  const bindings: LoadedDocument[] = [];
  const maps: LoadedDocument[] = [];
  const mapBindings: LoadedDocument[] = [];
  const others: LoadedDocument[] = [];
  /** Validating and MutatingAdmissionPolicies refused by the schema (kind/name): their own errors explain a binding's missing policy */
  const refusedVaps = new Set<string>();
  const names = new Map<string, string>();
  const kyvernoDocs: LoadedDocument[] = [];
  for (const doc of read.documents) {
    const vap = isVapDocument(doc.value);
    const kyverno = !vap && isKyvernoPolicyDocument(doc.value);
    if (!vap && !kyverno && !isTrustgateDocument(doc.value)) {
      others.push(doc);
      continue;
    }
    const docErrors = schemaErrors(doc, vap ? 'vap' : kyverno ? 'kyverno' : 'trustgate');
    if (docErrors.length) {
      errors.push(...docErrors);
      const name = (doc.value.metadata as { name?: unknown } | undefined)?.name;
      if (typeof name === 'string') refusedVaps.add(`${String(doc.value.kind)}/${name}`);
      continue;
    }
    const kind = doc.value.kind as string;
    if (kind === 'PolicyTest') {
      tests.push(doc);
      continue;
    }
    const { name, namespace } = doc.value.metadata as { name: string; namespace?: string };
    const pos = doc.positionOf(['metadata', 'name']);
    // a NamespacedValidatingPolicy's name is its namespace's
    const key = kind === 'NamespacedValidatingPolicy' ? `${kind}/${namespace ?? ''}/${name}` : `${kind}/${name}`;
    if (names.has(key)) {
      errors.push(new PolicyFileError(pos, `${kind} ${name} is defined twice (first at ${names.get(key)})`));
      continue;
    }
    names.set(key, `${pos.file}:${pos.line}:${pos.col}`);
    if (kind === 'TrustRoot') trustRootDocs.push(doc);
    else if (kind === 'PolicyException') exceptionDocs.push(doc);
    else if (kind === 'ValidatingAdmissionPolicy') vaps.push(doc);
    else if (kind === 'ValidatingAdmissionPolicyBinding') bindings.push(doc);
    else if (kind === 'MutatingAdmissionPolicy') maps.push(doc);
    else if (kind === 'MutatingAdmissionPolicyBinding') mapBindings.push(doc);
    else if (kyverno) kyvernoDocs.push(doc);
    else policyDocs.push(doc);
  }
  // params objects of the Validating and MutatingAdmissionPolicies are looked up among the other documents
  const paramObjects = paramObjectsOf(others);
  const bound = (list: LoadedDocument[], kind: string) => list.filter((b) => !refusedVaps.has(`${kind}/${(b.value.spec as { policyName: string }).policyName}`));
  // each in file order, as /mutate applies mutation policies in the order of the set
  const translated = [
    translateVaps(maps, bound(mapBindings, 'MutatingAdmissionPolicy'), paramObjects, 'Mutating'),
    translateVaps(vaps, bound(bindings, 'ValidatingAdmissionPolicy'), paramObjects),
  ];
  for (const t of translated) {
    errors.push(...t.errors);
    policyDocs.push(...t.policies);
  }
  const kyverno = translateKyvernoPolicies(kyvernoDocs);
  errors.push(...kyverno.errors);
  // trust roots first, so a policy may name one defined later in the files
  const trustRoots: CompiledTrustRoot[] = [];
  for (const doc of trustRootDocs) {
    const name = (doc.value.metadata as { name: string }).name;
    try {
      trustRoots.push(await compileTrustRoot(name, doc.value.spec as TrustRootSpec, doc.file));
    } catch (err) {
      if (!(err instanceof TrustRootError)) throw err;
      errors.push(new PolicyFileError(doc.positionOf(name === PUBLIC_GOOD ? ['metadata', 'name'] : ['spec']), err.message));
    }
  }
  const rootByName = (name: string) => (name === PUBLIC_GOOD ? publicGoodTrustRoot() : trustRoots.find((r) => r.name === name));
  const warnings: PolicyFileError[] = [...translated.flatMap((t) => t.warnings), ...kyverno.warnings, ...others.flatMap((d) => foreignPolicyWarning(d) ?? [])];
  for (const doc of policyDocs) {
    const compiled = await compilePolicy(doc, rootByName);
    if (compiled.policy) policies.push(compiled.policy);
    errors.push(...compiled.errors);
    warnings.push(...compiled.warnings);
  }
  const kyvernoCompiled = await compileKyvernoPolicies(kyverno.policies, new Set(policies.map((p) => p.name)), rootByName);
  policies.push(...kyvernoCompiled.policies);
  errors.push(...kyvernoCompiled.errors);
  warnings.push(...kyvernoCompiled.warnings);
  for (const doc of translated.flatMap((t) => t.unbound)) errors.push(...(await compilePolicy(doc, rootByName)).errors);
  // after the policies, which they must name
  const exceptions: CompiledException[] = [];
  const now = options.now ?? Date.now();
  for (const doc of exceptionDocs) {
    const compiled = compileException(doc, policies, now);
    if (compiled.exception) exceptions.push(compiled.exception);
    errors.push(...compiled.errors);
    warnings.push(...compiled.warnings);
  }
  if (errors.length) return { errors };
  const registries = new Set(policies.flatMap((p) => p.images.flatMap((r) => r.hosts)));
  // exceptions change decisions as policies do: the set's revision covers both
  const revisions = [...policies.map((p) => `${p.name}@${p.revision}`), ...exceptions.map((e) => `exception ${e.name}@${e.revision}`)];
  const revision = createHash('sha256').update(revisions.join('\n')).digest('hex').slice(0, 12);
  return { set: { revision, policies, index: new PolicyIndex(policies), exceptions: new PolicyExceptions(exceptions, policies), trustRoots, registries, usesAuthorizer: policies.some((p) => p.usesAuthorizer), mutates: policies.some((p) => p.mutations.length > 0), tests, warnings, files: new Set(read.documents.map((d) => d.file)).size, skipped: others.length }, errors: [] };
}

/**
 * Kyverno ValidatingPolicies and their autogen copies, compiled. Names are how denials, records,
 * exceptions and tests refer to policies, so a Kyverno one may not take one already `taken`.
 */
async function compileKyvernoPolicies(translated: readonly TranslatedKyvernoPolicy[], taken: Set<string>, rootByName: Parameters<typeof compilePolicy>[1]) {
  const out = { policies: [] as CompiledPolicy[], errors: [] as PolicyFileError[], warnings: [] as PolicyFileError[] };
  for (const { policy, autogen, source } of translated) {
    for (const doc of [policy, ...autogen]) {
      const name = (doc.value.metadata as { name: string }).name;
      if (taken.has(name)) {
        out.errors.push(new PolicyFileError(doc.positionOf(['metadata', 'name']), `the Kyverno policy ${name} has the name of another policy: rename one`));
        break;
      }
      taken.add(name);
      const compiled = await compilePolicy(doc, rootByName);
      if (compiled.policy) out.policies.push(compiled.policy);
      out.warnings.push(...compiled.warnings);
      if (compiled.errors.length) {
        const libraries = kyvernoLibrariesUsed(source);
        out.errors.push(...compiled.errors.map((e) => withKyvernoLibraryNote(e, libraries)));
        // the autogen copies hold the same expressions: the policy's own errors say it all
        break;
      }
    }
  }
  return out;
}

/** The same set restricted to the named policies (for test suites that target some of them). */
export function subsetPolicySet(set: PolicySet, names: readonly string[]): PolicySet {
  const unknown = names.filter((n) => !set.policies.some((p) => namesPolicy(p.name, n)));
  if (unknown.length) throw new Error(`unknown policy name(s): ${unknown.join(', ')}`);
  const policies = set.policies.filter((p) => names.some((n) => namesPolicy(p.name, n)));
  return { ...set, policies, index: new PolicyIndex(policies), usesAuthorizer: policies.some((p) => p.usesAuthorizer), mutates: policies.some((p) => p.mutations.length > 0) };
}

/** The cluster objects the policies read (params and sources allowlists), as cluster caches watch them. */
export interface ParamWatches {
  /** namespaces whose ConfigMaps policies name with their namespace (watched whole, one Role each) */
  namespaces: string[];
  /** ConfigMap names read from the namespace of each request (watched cluster-wide by name) */
  names: string[];
  /** label selectors over the ConfigMaps of each request's namespace (watched cluster-wide by selector) */
  selectors: LabelSelector[];
  /** params kinds other than ConfigMap (a binding's custom resources): each watched whole, cluster-wide */
  kinds: ParamKind[];
}

export function paramWatches(set: PolicySet): ParamWatches {
  const namespaces = new Set<string>();
  const names = new Set<string>();
  const selectors = new Map<string, LabelSelector>();
  const kinds = new Map<string, ParamKind>();
  for (const p of set.policies) {
    const params = p.params;
    if (params.kind === 'object' || params.kind === 'objects') {
      if (!isConfigMap(params.type)) kinds.set(paramKindKey(params.type), params.type);
      else if (params.namespace !== undefined) namespaces.add(params.namespace);
      else if (params.kind === 'object') names.add(params.name);
      else selectors.set(selectorString(params.selector), params.selector);
    }
    if (p.sources?.configMap) namespaces.add(p.sources.configMap.namespace);
  }
  const sorted = <T>(m: Map<string, T>) => [...m.keys()].sort().map((k) => m.get(k)!);
  return { namespaces: [...namespaces].sort(), names: [...names].sort(), selectors: sorted(selectors), kinds: sorted(kinds) };
}

/** Whether any policy reads cluster objects: then a cluster (or a cluster file) must be given. */
export function readsClusterData(w: ParamWatches): boolean {
  return w.namespaces.length + w.names.length + w.selectors.length + w.kinds.length > 0;
}
