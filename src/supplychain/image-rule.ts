// One `images[]` rule of a policy, compiled at load: globs, authorities with their trust
// material and verifiers, and the cache key that changes whenever the rule's meaning can.
import type { CompileOptions, CompiledExpression } from '../policy/cel/index.js';
import { compileGlobs } from './glob.js';
import { compilePredicateTypes, PredicateTypeError } from './sigstore/predicates.js';
import type { ImageReference } from './oci/index.js';
import { AuthoritySpecError, compileAuthority, IdentitySpecError, type AuthoritySpec, type CompiledAuthority, type CompiledTrustRoot } from './sigstore/index.js';

export interface ImageRuleSpec {
  match: string[];
  exclude?: string[];
  authorities: AuthoritySpec[];
  requireAll?: boolean;
  requireSignature?: boolean;
  attestations?: AttestationSpec[];
  /** /mutate rewrites tags to the verified digest */
  mutateDigest?: boolean;
  /** also in workload pod templates (Deployments …), not only Pods: GitOps tools will see drift */
  mutateTemplates?: boolean;
}

export interface AttestationSpec {
  name: string;
  /** an alias (slsaprovenance, spdx, cyclonedx, sbom, vuln, openvex …), a URI, or a list of them */
  predicateType: string | string[];
  /** CEL over predicate, statement, signer, facts and attestations; must be true */
  expression?: string;
  message?: string;
  messageExpression?: string;
  /** absent is fine (e.g. a VEX document that only some images have); present must verify */
  optional?: boolean;
  /** names of the rule's authorities that may sign it (default: all of them) */
  authorities?: string[];
}

/** The names an attestation expression sees. */
export const ATTESTATION_VARIABLES = ['predicate', 'statement', 'signer', 'facts', 'attestations'] as const;

export interface CompiledAttestation {
  name: string;
  label: string;
  types: { matches(type: string): boolean; describe: string };
  expression?: CompiledExpression;
  message?: string;
  messageExpression?: CompiledExpression;
  optional: boolean;
  authorities: CompiledAuthority[];
}

/** Compiles CEL for the rule, recording errors with positions; undefined when it did not compile. */
export type CelCompiler = (path: (string | number)[], source: string, options: CompileOptions) => CompiledExpression | undefined;

export interface CompiledImageRule {
  /** images[0] */
  label: string;
  matches(ref: ImageReference): boolean;
  /** registries named literally by the match globs: the only ones this rule may contact */
  hosts: string[];
  authorities: CompiledAuthority[];
  requireAll: boolean;
  mutateDigest: boolean;
  mutateTemplates: boolean;
  requireSignature: boolean;
  attestations: CompiledAttestation[];
  /** policy revision + rule + trust-root revisions: part of every cache key */
  key: string;
}

export class ImageRuleError extends Error {
  constructor(readonly path: (string | number)[], message: string) {
    super(message);
  }
}

/** The registry host of a glob when it is spelled out (no wildcard before the first '/'). */
export function literalHost(glob: string): string | undefined {
  const host = glob.split('/')[0]!;
  return /[*?]/.test(host) || !glob.includes('/') ? undefined : host.toLowerCase();
}

export function compileImageRule(spec: ImageRuleSpec, index: number, policyRevision: string, roots: (name: string) => CompiledTrustRoot | undefined, cel?: CelCompiler): CompiledImageRule {
  const at = (...p: (string | number)[]) => ['spec', 'images', index, ...p];
  if (spec.requireSignature === false && !spec.attestations?.length) throw new ImageRuleError(at('requireSignature'), 'requireSignature: false leaves nothing to check: add attestations, or require the signature');
  let include: (s: string) => boolean;
  let exclude: (s: string) => boolean;
  try {
    include = compileGlobs(spec.match);
    exclude = compileGlobs(spec.exclude ?? []);
  } catch (err) {
    throw new ImageRuleError(at('match'), `invalid glob: ${(err as Error).message}`);
  }
  const authorities: CompiledAuthority[] = [];
  for (const [i, a] of spec.authorities.entries()) {
    try {
      authorities.push(compileAuthority(a, roots));
    } catch (err) {
      if (err instanceof AuthoritySpecError || err instanceof IdentitySpecError) throw new ImageRuleError(at('authorities', i), err.message);
      throw err;
    }
  }
  for (const [i, a] of spec.authorities.entries()) {
    if (a.condition && cel) authorities[i]!.condition = cel(at('authorities', i, 'condition'), a.condition, { expect: 'bool', extraVariables: ['signer'] });
  }
  const names = new Set<string>();
  for (const [i, a] of authorities.entries()) {
    if (names.has(a.name)) throw new ImageRuleError(at('authorities', i, 'name'), `authority ${a.name} is named twice`);
    names.add(a.name);
  }
  const attestations: CompiledAttestation[] = [];
  const attestationNames = new Set<string>();
  for (const [i, a] of (spec.attestations ?? []).entries()) {
    if (attestationNames.has(a.name)) throw new ImageRuleError(at('attestations', i, 'name'), `attestation ${a.name} is named twice`);
    attestationNames.add(a.name);
    let types;
    try {
      types = compilePredicateTypes(a.predicateType);
    } catch (err) {
      if (err instanceof PredicateTypeError) throw new ImageRuleError(at('attestations', i, 'predicateType'), err.message);
      throw err;
    }
    const unknown = (a.authorities ?? []).filter((n) => !names.has(n));
    if (unknown.length) throw new ImageRuleError(at('attestations', i, 'authorities'), `unknown authorities ${unknown.join(', ')}; this rule has ${[...names].join(', ')}`);
    // an SBOM of 50,000 components is walked by one expression: ten times a policy's budget, and
    // the time to spend it (a verdict is cached per digest, so this is paid once per image)
    const celOptions = (expect: 'bool' | 'string'): CompileOptions => ({ expect, extraVariables: ATTESTATION_VARIABLES, runtimeCostLimit: 5_000_000, runtimeTimeLimitMs: 5_000 });
    const expression = a.expression && cel ? cel(at('attestations', i, 'expression'), a.expression, celOptions('bool')) : undefined;
    const messageExpression = a.messageExpression && cel ? cel(at('attestations', i, 'messageExpression'), a.messageExpression, celOptions('string')) : undefined;
    for (const [field, e] of [['expression', expression], ['messageExpression', messageExpression]] as const) {
      const foreign = [...(e?.identifiers ?? [])].filter((id) => ['object', 'oldObject', 'request', 'params', 'namespaceObject', 'variables', 'authorizer'].includes(id));
      if (foreign.length) throw new ImageRuleError(at('attestations', i, field), `attestation expressions see ${ATTESTATION_VARIABLES.join(', ')}, not ${foreign.join(', ')}`);
    }
    attestations.push({
      name: a.name, label: `images[${index}].attestations[${i}] ${a.name}`, types, expression, message: a.message, messageExpression, optional: a.optional ?? false,
      authorities: a.authorities?.length ? authorities.filter((x) => a.authorities!.includes(x.name)) : authorities,
    });
  }
  // a glob matches the repository alone or the whole reference with its tag/digest
  // remembered per reference object: parsed references are shared across requests (images-rule.ts),
  // and an RE2 match allocates on every call; a reference that is dropped drops its entry
  const seen = new WeakMap<ImageReference, boolean>();
  const matches = (ref: ImageReference) => {
    let matched = seen.get(ref);
    if (matched === undefined) {
      const repo = `${ref.registry}/${ref.repository}`;
      matched = (include(repo) || include(ref.normalized)) && !(exclude(repo) || exclude(ref.normalized));
      seen.set(ref, matched);
    }
    return matched;
  };
  return {
    label: `images[${index}]`,
    matches,
    hosts: spec.match.map(literalHost).filter((h): h is string => !!h),
    authorities,
    requireAll: spec.requireAll ?? false,
    mutateDigest: spec.mutateDigest ?? false,
    mutateTemplates: spec.mutateTemplates ?? false,
    requireSignature: spec.requireSignature ?? true,
    attestations,
    key: `${policyRevision}/${index}/${authorities.map((a) => a.revision).join(',')}`,
  };
}
