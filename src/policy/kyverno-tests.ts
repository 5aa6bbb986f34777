// Kyverno CLI test files (`kyverno-test.yaml`, cli.kyverno.io Test) run by `trustgate test`, so a
// team moving its Kyverno ValidatingPolicies brings their test suites along unchanged. Each
// expected result of a policy trustgate runs is judged the way `kyverno test` judges it: the
// resource as its CREATE, the policy's result (its autogen copies' for a pod controller) as
// pass, fail, skip (not matched) or error. What trustgate cannot reproduce (values files,
// ClusterPolicy rules) is named in a note and not counted, rather than guessed.
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { KubeObject } from '../admission/types.js';
import { NullDecisionRecorder } from '../audit/index.js';
import { StaticCluster } from '../kube/cluster-file.js';
import { loadPolicySet } from './load.js';
import { namespacesIn, readManifests, scanEach, type ScanFinding } from './scan.js';
import type { CaseOutcome } from './testing.js';

const TEST_FILE = 'kyverno-test.yaml';

type KyvernoResult = 'pass' | 'fail' | 'skip' | 'warn' | 'error';

interface KyvernoTestFile {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string };
  name?: string;
  policies?: string[];
  resources?: string[];
  results?: { policy?: string; rule?: string; kind?: string; namespace?: string; resources?: string[]; resource?: string; result?: KyvernoResult }[];
  variables?: unknown;
  userinfo?: unknown;
  exceptions?: unknown;
  values?: unknown;
}

/** What the Kyverno tests under the paths gave: outcomes counted like PolicyTest cases, and notes on what was not run. */
export interface KyvernoTestRun {
  outcomes: CaseOutcome[];
  notes: string[];
}

/** Every kyverno-test.yaml under the paths, `.kyverno-test` directories included (where Kyverno keeps them). */
export async function findKyvernoTests(paths: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  const seen = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    // a directory reached twice (a symlink loop) is walked once
    const real = await realpath(dir).catch(() => dir);
    if (seen.has(real)) return;
    seen.add(real);
    for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
      const path = join(dir, name);
      if (name === TEST_FILE) found.push(path);
      else if (name !== '.git' && name !== 'node_modules' && (!name.startsWith('.') || name === '.kyverno-test') && (await stat(path).catch(() => undefined))?.isDirectory()) await walk(path);
    }
  };
  for (const p of paths) {
    const info = await stat(p).catch(() => undefined);
    if (info?.isDirectory()) await walk(p);
    else if (info && p.endsWith(TEST_FILE)) found.push(p);
  }
  return found;
}

/** the trustgate policies a Kyverno result's policy name stands for: itself and its autogen copies */
const standsFor = (name: string, policy: string) => {
  const slash = name.lastIndexOf('/');
  const own = name.slice(slash + 1);
  return own === policy || own === `autogen-${policy}` || own === `autogen-cronjobs-${policy}`;
};

/** pass/fail/skip/error of one policy (with its autogen copies) for one resource, as kyverno test reports it */
function resultOf(finding: ScanFinding, policy: string): KyvernoResult {
  const judged = finding.policies.filter((p) => standsFor(p.name, policy));
  const passed = finding.passed.some((name) => standsFor(name, policy));
  if (!judged.length) return passed ? 'pass' : 'skip';
  if (judged.some((p) => p.result === 'error')) return 'error';
  if (judged.some((p) => p.result === 'fail')) return judged.every((p) => p.mode === 'warn' || p.result !== 'fail') ? 'warn' : 'fail';
  // excepted only: waived, as Kyverno skips what an exception covers
  return passed ? 'pass' : 'skip';
}

/** One kyverno-test.yaml, run. */
async function runKyvernoTest(file: string): Promise<KyvernoTestRun> {
  const run: KyvernoTestRun = { outcomes: [], notes: [] };
  const dir = dirname(file);
  let test: KyvernoTestFile;
  try {
    test = parseYaml(await readFile(file, 'utf8')) as KyvernoTestFile;
  } catch (err) {
    run.outcomes.push({ suite: file, name: 'read', passed: false, detail: `not a readable Kyverno test: ${(err as Error).message}` });
    return run;
  }
  if (!test || typeof test !== 'object' || (test.kind !== undefined && test.kind !== 'Test')) {
    run.notes.push(`${file}: not a Kyverno CLI Test (kind ${String(test?.kind)}): not run`);
    return run;
  }
  const suite = `kyverno-test ${test.metadata?.name ?? test.name ?? file}`;
  const unsupported = (['variables', 'values', 'userinfo', 'exceptions'] as const).filter((k) => test[k] !== undefined);
  if (unsupported.length) {
    run.notes.push(`${file}: not run: it sets ${unsupported.join(', ')}, which trustgate's runner of Kyverno tests does not read (write a PolicyTest with namespaces, configMaps and userInfo instead)`);
    return run;
  }
  const loaded = await loadPolicySet((test.policies ?? []).map((p) => resolve(dir, p)));
  if (!loaded.set) {
    run.outcomes.push({ suite, name: 'load policies', passed: false, detail: loaded.errors.map((e) => e.message).join('\n    ') });
    return run;
  }
  const set = loaded.set;
  // ClusterPolicy rules (and anything else not run here) are named once, and not counted
  const runnable = (test.results ?? []).filter((r) => r.rule === undefined && set.policies.some((p) => standsFor(p.name, r.policy ?? '')));
  const notRun = [...new Set((test.results ?? []).filter((r) => !runnable.includes(r)).map((r) => r.policy ?? ''))];
  if (notRun.length) run.notes.push(`${file}: ${(test.results?.length ?? 0) - runnable.length} of its ${test.results?.length ?? 0} results not run: ${notRun.join(', ')} ${notRun.length === 1 ? 'is' : 'are'} not a Kyverno ValidatingPolicy among its policies (trustgate runs no ClusterPolicy rules)`);
  if (!runnable.length) return run;
  const reading = await readManifests((test.resources ?? []).map((r) => resolve(dir, r))).catch((err: Error) => err);
  if (reading instanceof Error || reading.errors.length) {
    run.outcomes.push({ suite, name: 'read resources', passed: false, detail: reading instanceof Error ? reading.message : reading.errors.join('\n    ') });
    return run;
  }
  // every resource judged as its CREATE (in default unless it names a namespace), as kyverno test applies them, by scan's own judge
  const cluster = new StaticCluster(namespacesIn(reading.objects));
  const services = { policies: () => set, recorder: new NullDecisionRecorder(), replica: 'kyverno-test', deadlineMs: 8000, namespaces: cluster, params: cluster };
  const findings: ScanFinding[] = [];
  await scanEach(reading.objects, services, { namespace: 'default' }, (f) => findings.push(f));
  const judged = new Map<KubeObject, ScanFinding>(reading.objects.map((m, i) => [m.object, findings[i]!]));
  for (const expected of runnable) {
    const policy = expected.policy!;
    for (const name of expected.resources ?? (expected.resource ? [expected.resource] : [])) {
      const want = expected.result ?? 'pass';
      const what = `${policy} on ${expected.kind ?? 'resource'} ${expected.namespace ? `${expected.namespace}/` : ''}${name}: ${want}`;
      const object = reading.objects.map((m) => m.object).find((o) => o.metadata?.name === name && (expected.kind === undefined || o.kind === expected.kind) && (expected.namespace === undefined || (o.metadata?.namespace ?? 'default') === expected.namespace));
      if (!object) {
        run.outcomes.push({ suite, name: what, passed: false, detail: `no such resource among ${(test.resources ?? []).join(', ')}` });
        continue;
      }
      const finding = judged.get(object)!;
      const got = resultOf(finding, policy);
      const passed = got === want || (want === 'fail' && got === 'warn');
      const failed = finding.policies.filter((p) => standsFor(p.name, policy) && p.result === 'fail').map((p) => p.name);
      run.outcomes.push({ suite, name: what, passed, ...(passed ? {} : { detail: `got ${got}` }), ...(failed.length ? { failed } : {}) });
    }
  }
  return run;
}

/** Every Kyverno test under the paths. */
export async function runKyvernoTests(paths: readonly string[]): Promise<KyvernoTestRun> {
  const all: KyvernoTestRun = { outcomes: [], notes: [] };
  for (const file of await findKyvernoTests(paths)) {
    const r = await runKyvernoTest(file);
    all.outcomes.push(...r.outcomes);
    all.notes.push(...r.notes);
  }
  return all;
}
