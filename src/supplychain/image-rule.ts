// One `images[]` rule of a policy, compiled at load: globs, authorities with their trust
// material and verifiers, and the cache key that changes whenever the rule's meaning can.
import { compileGlobs } from './glob.js';
import type { ImageReference } from './oci/index.js';
import { AuthoritySpecError, compileAuthority, IdentitySpecError, type AuthoritySpec, type CompiledAuthority, type CompiledTrustRoot } from './sigstore/index.js';

export interface ImageRuleSpec {
  match: string[];
  exclude?: string[];
  authorities: AuthoritySpec[];
  requireAll?: boolean;
  requireSignature?: boolean;
  attestations?: unknown[];
  /** /mutate rewrites tags to the verified digest */
  mutateDigest?: boolean;
  /** also in workload pod templates (Deployments …), not only Pods: GitOps tools will see drift */
  mutateTemplates?: boolean;
}

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

export function compileImageRule(spec: ImageRuleSpec, index: number, policyRevision: string, roots: (name: string) => CompiledTrustRoot | undefined): CompiledImageRule {
  const at = (...p: (string | number)[]) => ['spec', 'images', index, ...p];
  if (spec.attestations?.length) throw new ImageRuleError(at('attestations'), 'attestation rules are not supported by this build of trustgate yet; refusing to load rather than admit unattested images');
  if (spec.requireSignature === false) throw new ImageRuleError(at('requireSignature'), 'requireSignature: false needs attestation rules, which this build does not support yet');
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
  const names = new Set<string>();
  for (const [i, a] of authorities.entries()) {
    if (names.has(a.name)) throw new ImageRuleError(at('authorities', i, 'name'), `authority ${a.name} is named twice`);
    names.add(a.name);
  }
  // a glob matches the repository alone or the whole reference with its tag/digest
  const matches = (ref: ImageReference) => {
    const repo = `${ref.registry}/${ref.repository}`;
    return (include(repo) || include(ref.normalized)) && !(exclude(repo) || exclude(ref.normalized));
  };
  return {
    label: `images[${index}]`,
    matches,
    hosts: spec.match.map(literalHost).filter((h): h is string => !!h),
    authorities,
    requireAll: spec.requireAll ?? false,
    mutateDigest: spec.mutateDigest ?? false,
    mutateTemplates: spec.mutateTemplates ?? false,
    key: `${policyRevision}/${index}/${authorities.map((a) => a.revision).join(',')}`,
  };
}
