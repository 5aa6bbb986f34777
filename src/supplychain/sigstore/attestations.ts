// Attestations of an image: for each rule attestation, a DSSE envelope (cosign `.att` layer or
// Sigstore bundle referrer) whose predicate type matches, signed by one of its authorities, whose
// statement names the admitted digest, and whose CEL expression holds over the verified
// predicate. Pure: the evidence was fetched by discovery.ts.
import type { CompiledAttestation, CompiledImageRule } from '../image-rule.js';
import { describeEvaluationError, toCel } from '../../policy/cel/index.js';
import type { Discovered, EvidenceSource } from './discovery.js';
import { mostSpecific, VerificationFailure, type VerificationCode } from './failures.js';
import type { SignerIdentity } from './identity.js';
import { predicateFacts, type PredicateFacts } from './predicates.js';
import { inTotoStatement, parseBundle, statementNamesDigest, verifyBundle, type InTotoStatement } from './verify.js';

/** Peeks at an unverified DSSE bundle's predicate type, only to choose what to verify. */
export function dssePredicateType(bundle: unknown): string | undefined {
  const env = (bundle as { dsseEnvelope?: { payload?: string } } | null)?.dsseEnvelope;
  if (!env?.payload) return undefined;
  try {
    return (JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { predicateType?: string }).predicateType;
  } catch {
    return undefined;
  }
}

export interface AttestationJudgement {
  verified: boolean;
  code?: VerificationCode;
  message?: string;
  /** true when an expression could not be evaluated: failurePolicy decides */
  error?: boolean;
  names?: string[];
  authority?: string;
  identity?: SignerIdentity;
  source?: EvidenceSource;
  location?: string;
}

interface Verified {
  statement: InTotoStatement;
  identity?: SignerIdentity;
  authority: string;
  source: EvidenceSource;
  location: string;
}

/** CEL sees up to this many list items in a predicate (a 50,000-component SBOM fits). */
const PREDICATE_LIMITS = { maxListLength: 200_000, maxDepth: 64 };

function summary(type: string, f: PredicateFacts): string {
  if (type.startsWith('https://slsa.dev/provenance/')) return `builderId=${f.builderId || '(none)'}, sourceRepository=${f.sourceRepository || '(none)'}, sourceRef=${f.sourceRef || '(none)'}`;
  if (f.components.length) return `${f.components.length} components, licenses: ${f.licenses.slice(0, 10).join(', ')}${f.licenses.length > 10 ? ` and ${f.licenses.length - 10} more` : ''}`;
  if (f.vulnerabilities.length) return `vulnerabilities: ${Object.entries(f.severityCounts).filter(([, n]) => n).map(([s, n]) => `${n} ${s}`).join(', ')}`;
  if (f.notAffected.length) return `not_affected: ${f.notAffected.slice(0, 10).join(', ')}`;
  return 'no recognised facts';
}

function findVerified(found: Discovered, digest: string, att: CompiledAttestation): { ok?: Verified; failures: VerificationFailure[]; candidates: number } {
  const failures: VerificationFailure[] = [];
  let candidates = 0;
  for (const evidence of found.evidence) {
    if (evidence.payload) continue; // a cosign .sig layer, not an attestation
    if (evidence.unreadable) {
      failures.push(new VerificationFailure('BUNDLE_INVALID', `${evidence.location}: ${evidence.unreadable}`, true));
      continue;
    }
    const claimed = dssePredicateType(evidence.bundle);
    if (!claimed || !att.types.matches(claimed)) continue;
    candidates++;
    for (const authority of att.authorities) {
      try {
        const verified = verifyBundle(parseBundle(evidence.bundle, evidence.location), undefined, authority);
        const statement = inTotoStatement(verified);
        // the peek chose it; only the verified statement decides
        if (!att.types.matches(statement.predicateType)) throw new VerificationFailure('BUNDLE_INVALID', `${evidence.location}: the signed predicate type is ${statement.predicateType}`);
        if (!statementNamesDigest(statement, digest)) throw new VerificationFailure('DIGEST_MISMATCH', `${evidence.location}: a valid attestation by ${authority.name}, but its subject is not ${digest}`);
        return { ok: { statement, identity: verified.identity, authority: authority.name, source: evidence.source, location: evidence.location }, failures, candidates };
      } catch (err) {
        if (!(err instanceof VerificationFailure)) throw err;
        failures.push(err);
      }
    }
  }
  return { failures, candidates };
}

export function judgeAttestations(found: Discovered, digest: string, rule: CompiledImageRule): AttestationJudgement {
  const verified = new Map<string, Verified>();
  for (const att of rule.attestations) {
    const { ok, failures, candidates } = findVerified(found, digest, att);
    if (ok) {
      verified.set(att.name, ok);
      continue;
    }
    if (att.optional && !candidates) continue;
    const best = mostSpecific(failures);
    if (!best || !candidates) {
      return { verified: false, code: 'ATTESTATION_NOT_FOUND', message: `attestation ${att.name}: no ${att.types.describe} attestation found (searched ${found.searched.join(', ')})${best ? `; ${best.message}` : ''}` };
    }
    // present but unsigned or wrongly signed counts as absent, with the reason it did not count
    return { verified: false, code: best.code, message: `attestation ${att.name} (${att.types.describe}): ${best.message}` };
  }
  const facts = new Map<string, PredicateFacts>();
  const factsOf = (name: string) => {
    let f = facts.get(name);
    if (!f) facts.set(name, (f = predicateFacts(verified.get(name)!.statement.predicateType, verified.get(name)!.statement.predicate)));
    return f;
  };
  let allFacts: unknown;
  for (const att of rule.attestations) {
    const v = verified.get(att.name);
    if (!v || !att.expression) continue;
    const ids = new Set([...att.expression.identifiers, ...(att.messageExpression?.identifiers ?? [])]);
    const activation: Record<string, unknown> = {};
    try {
      // only what the expression reads is converted: a 50,000-component SBOM costs only when used
      if (ids.has('predicate')) activation.predicate = toCel(v.statement.predicate ?? null, PREDICATE_LIMITS);
      if (ids.has('statement')) activation.statement = toCel({ _type: v.statement._type, subject: v.statement.subject, predicateType: v.statement.predicateType }, PREDICATE_LIMITS);
      if (ids.has('signer')) activation.signer = toCel({ subject: v.identity?.subject ?? '', issuer: v.identity?.issuer ?? '', extensions: v.identity?.extensions ?? {}, authority: v.authority });
      if (ids.has('facts')) activation.facts = toCel(factsOf(att.name), PREDICATE_LIMITS);
      if (ids.has('attestations')) activation.attestations = allFacts ??= toCel(Object.fromEntries([...verified.keys()].map((n) => [n, factsOf(n)])), PREDICATE_LIMITS);
      if (att.expression.evaluate(activation) === true) continue;
    } catch (err) {
      return { verified: false, code: 'ATTESTATION_ERROR', error: true, message: `attestation ${att.name}: expression ${att.expression.source} could not be evaluated: ${describeEvaluationError(err)}` };
    }
    let message = att.message;
    if (att.messageExpression) {
      try {
        const m = att.messageExpression.evaluate(activation);
        if (typeof m === 'string' && m.trim()) message = m;
      } catch {
        // as for validations: a failing messageExpression falls back to the static message
      }
    }
    const signer = v.identity?.subject ? `${v.identity.subject}` : v.authority;
    return {
      verified: false, code: 'ATTESTATION_FAILED',
      message: `attestation ${att.name} (${v.statement.predicateType}, signed by ${signer}): ${message ?? `expression ${att.expression.source} is false`} [${summary(v.statement.predicateType, factsOf(att.name))}]`,
    };
  }
  const first = [...verified.values()][0];
  return {
    verified: true,
    names: [...verified.entries()].map(([n, v]) => `${n} (${v.statement.predicateType})`),
    authority: first?.authority, identity: first?.identity, source: first?.source, location: first?.location,
  };
}
