// `trustgate test`: PolicyTest suites (YAML beside the policies) run offline against the set.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { admit } from '../admission/index.js';
import { reviewForObject } from '../admission/synthesize.js';
import type { AdmissionReviewResponse, KubeObject } from '../admission/types.js';
import { NullDecisionRecorder } from '../audit/index.js';
import { StaticCluster } from '../kube/cluster-file.js';
import { StaticAuthorizer, type AuthorizationRule } from './authorization.js';
import { parseInstant } from './exceptions.js';
import { patchedObject } from './mutation/index.js';
import { subsetPolicySet, type PolicySet } from './load.js';

export interface TestCase {
  name: string;
  object?: KubeObject;
  oldObject?: KubeObject;
  objectFile?: string;
  review?: Record<string, unknown>;
  reviewFile?: string;
  operation?: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  namespace?: string;
  subResource?: string;
  userInfo?: Record<string, unknown>;
  authorizations?: AuthorizationRule[];
  endpoint?: 'validate' | 'mutate';
  /** the time PolicyExceptions are judged at, over the suite's */
  now?: string;
  expect: 'allow' | 'deny' | 'warn';
  messages?: string[];
  /** what the object must hold once the response's patch is applied (implies endpoint mutate) */
  mutated?: Record<string, unknown>;
}

export interface CaseOutcome {
  suite: string;
  name: string;
  passed: boolean;
  detail?: string;
  /** the policies this case made fail (their deny or warn path ran) */
  failed?: string[];
  /** the mutation policies this case made change the object */
  mutated?: string[];
}

/**
 * Policies of the set that no case made fail: their deny (or warn) path is never exercised.
 * Those whose only checks are images rules are apart: they need a registry, which suites lack.
 * A mutation policy is apart too: what it does is change objects, which no case may have seen.
 */
export function policiesNeverFailed(set: PolicySet, outcomes: readonly CaseOutcome[]): { untested: string[]; needRegistry: string[]; neverMutated: string[] } {
  const failed = new Set(outcomes.flatMap((o) => o.failed ?? []));
  const mutated = new Set(outcomes.flatMap((o) => o.mutated ?? []));
  const untested: string[] = [];
  const needRegistry: string[] = [];
  const neverMutated: string[] = [];
  for (const p of set.policies) {
    if (p.mutations.length) {
      if (!mutated.has(p.name)) neverMutated.push(p.name);
      continue;
    }
    if (failed.has(p.name)) continue;
    const imagesOnly = p.images.length > 0 && !p.usesCel && !p.schema && !p.sources;
    (imagesOnly ? needRegistry : untested).push(p.name);
  }
  return { untested, needRegistry, neverMutated };
}

async function readData(base: string, file: string): Promise<unknown> {
  return parseYaml(await readFile(resolve(base, file), 'utf8'));
}

/** Where `actual` does not hold what `expected` gives: objects field by field, lists item by item. */
function containmentMismatch(expected: unknown, actual: unknown, path = ''): string | undefined {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${path || '.'}: expected a list, got ${JSON.stringify(actual)}`;
    if (actual.length !== expected.length) return `${path || '.'}: expected ${expected.length} items, got ${actual.length}`;
    for (const [i, e] of expected.entries()) {
      const m = containmentMismatch(e, actual[i], `${path}[${i}]`);
      if (m) return m;
    }
    return undefined;
  }
  if (typeof expected === 'object' && expected !== null) {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) return `${path || '.'}: expected an object, got ${JSON.stringify(actual)}`;
    for (const [k, e] of Object.entries(expected)) {
      const m = containmentMismatch(e, (actual as Record<string, unknown>)[k], `${path}.${k}`);
      if (m) return m;
    }
    return undefined;
  }
  return expected === actual ? undefined : `${path || '.'}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

function verdict(r: AdmissionReviewResponse['response']): 'allow' | 'deny' | 'warn' {
  if (!r.allowed) return 'deny';
  return r.warnings?.length ? 'warn' : 'allow';
}

export async function runPolicyTests(set: PolicySet): Promise<CaseOutcome[]> {
  const outcomes: CaseOutcome[] = [];
  for (const doc of set.tests) {
    const suite = (doc.value.metadata as { name: string }).name;
    const spec = doc.value.spec as { policies?: string[]; now?: string; namespaces?: Record<string, Record<string, string>>; configMaps?: KubeObject[]; authorizations?: AuthorizationRule[]; cases: TestCase[] };
    const base = dirname(doc.file);
    let policies: PolicySet;
    try {
      policies = spec.policies ? subsetPolicySet(set, spec.policies) : set;
    } catch (err) {
      outcomes.push({ suite, name: '(suite)', passed: false, detail: (err as Error).message });
      continue;
    }
    const cluster = StaticCluster.fromLabels(spec.namespaces ?? {}, spec.configMaps ?? []);
    for (const c of spec.cases) {
      try {
        let review: unknown = c.review ?? (c.reviewFile ? await readData(base, c.reviewFile) : undefined);
        if (!review) {
          const object = (c.object ?? (c.objectFile ? await readData(base, c.objectFile) : undefined)) as KubeObject | undefined;
          review = reviewForObject(object, { operation: c.operation, namespace: c.namespace, oldObject: c.oldObject, subResource: c.subResource, userInfo: c.userInfo as never });
        }
        const now = c.now ?? spec.now;
        const at = now === undefined ? undefined : parseInstant(now);
        if (now !== undefined && at === undefined) throw new Error(`now ${JSON.stringify(now)} is not an RFC 3339 time or a date`);
        const outcome = await admit(review, c.endpoint ?? (c.mutated ? 'mutate' : 'validate'), {
          policies: () => policies, recorder: new NullDecisionRecorder(), namespaces: cluster, params: cluster, replica: 'test', deadlineMs: 8000,
          authorizer: new StaticAuthorizer([...c.authorizations ?? [], ...spec.authorizations ?? []]),
        }, { now: at });
        const r = outcome.review.response;
        const got = verdict(r);
        const text = [r.status?.message ?? '', ...(r.warnings ?? [])].join('\n');
        const missing = (c.messages ?? []).filter((m) => !text.includes(m));
        const problems: string[] = [];
        if (got !== c.expect) problems.push(`expected ${c.expect}, got ${got}${text ? `: ${text}` : ''}`);
        if (missing.length) problems.push(`missing message fragment(s) ${missing.map((m) => JSON.stringify(m)).join(', ')} in ${JSON.stringify(text)}`);
        if (c.mutated) {
          const mismatch = containmentMismatch(c.mutated, patchedObject(review, r));
          if (mismatch) problems.push(`mutated object: ${mismatch}`);
        }
        outcomes.push({ suite, name: c.name, passed: problems.length === 0, detail: problems.join('; ') || undefined, failed: outcome.results.filter((p) => p.result === 'fail' || p.result === 'excepted').map((p) => p.name), mutated: outcome.results.filter((p) => p.patch?.length && p.mutated).map((p) => p.name) });
      } catch (err) {
        outcomes.push({ suite, name: c.name, passed: false, detail: `could not run: ${(err as Error).message}` });
      }
    }
  }
  return outcomes;
}
