// `trustgate scan --format policyreport`: a scan's findings as Policy Reports (wgpolicyk8s.io
// v1alpha2, the CRD Kyverno installs and Policy Reporter and other dashboards read, or the same
// as openreports.io Reports), one
// PolicyReport per namespace and one ClusterPolicyReport for cluster-scoped objects, named
// trustgate-scan (-2, -3 … where one would be too large) so that the next scan replaces them.
import type { ScanFinding } from './scan.js';

/**
 * The two report APIs dashboards read: wgpolicyk8s.io (the policy working group's, installed by
 * Kyverno and Policy Reporter) and openreports.io (its successor, the same results under new names).
 */
export const REPORT_APIS = {
  'wgpolicyk8s.io': { apiVersion: 'wgpolicyk8s.io/v1alpha2', namespaced: 'PolicyReport', cluster: 'ClusterPolicyReport', resources: ['policyreports', 'clusterpolicyreports'] },
  'openreports.io': { apiVersion: 'openreports.io/v1alpha1', namespaced: 'Report', cluster: 'ClusterReport', resources: ['reports', 'clusterreports'] },
} as const;
export type ReportApi = keyof typeof REPORT_APIS;
const POLICY_REPORT_NAME = 'trustgate-scan';

type ReportResult = 'pass' | 'fail' | 'warn' | 'error' | 'skip';

interface Summary { pass: number; fail: number; warn: number; error: number; skip: number }

export interface PolicyReportDocument {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels: Record<string, string> };
  summary: Summary;
  results: Record<string, unknown>[];
}

/**
 * A failed check is `fail` whatever the policy's mode (as Kyverno reports its Audit policies):
 * the mode, and what an exception waived, are in the result's properties.
 */
function resultOf(p: ScanFinding['policies'][number]): ReportResult {
  if (p.result === 'error') return 'error';
  if (p.result === 'excepted') return 'skip';
  return 'fail';
}

/**
 * The API server refuses an object over ~1.5 MiB (etcd's limit): a namespace with many objects
 * has its results spread over several reports (trustgate-scan, trustgate-scan-2, …), each under this.
 */
const REPORT_BYTES = 1_000_000;

/** the label every report of the scan carries, by which the next scan finds the ones it replaces */
export const POLICY_REPORT_LABELS = { 'app.kubernetes.io/managed-by': 'trustgate', 'trustgate.dev/report': 'scan' } as const;

interface Chunk { results: Record<string, unknown>[]; summary: Summary; bytes: number }

const emptyChunk = (): Chunk => ({ results: [], summary: { pass: 0, fail: 0, warn: 0, error: 0, skip: 0 }, bytes: 0 });

/**
 * Policy Reports of the findings, namespaced ones by namespace (in name order), the cluster-scoped
 * ones last; none where no policy judged anything. An object's results stay in one report.
 */
export function policyReports(findings: readonly ScanFinding[], options: { time: Date; maxBytes?: number; api?: ReportApi }): PolicyReportDocument[] {
  const maxBytes = options.maxBytes ?? REPORT_BYTES;
  const api = REPORT_APIS[options.api ?? 'wgpolicyk8s.io'];
  const timestamp = { seconds: Math.floor(options.time.getTime() / 1000), nanos: 0 };
  const byNamespace = new Map<string | undefined, Chunk[]>();
  for (const f of findings) {
    // an object no policy judged has nothing to report (and makes no report of its own)
    if (!f.passed.length && !f.policies.length) continue;
    const resources = [{ apiVersion: f.apiVersion, kind: f.kind, ...(f.name ? { name: f.name } : {}), ...(f.namespace ? { namespace: f.namespace } : {}), ...(f.uid ? { uid: f.uid } : {}) }];
    const results: { result: ReportResult; entry: Record<string, unknown> }[] = [];
    const add = (policy: string, result: ReportResult, message: string | undefined, properties: Record<string, string>) => {
      results.push({ result, entry: { source: 'trustgate', policy, result, ...(message ? { message } : {}), scored: true, timestamp, resources, ...(Object.keys(properties).length ? { properties } : {}) } });
    };
    for (const name of f.passed) add(name, 'pass', undefined, {});
    for (const p of f.policies) {
      add(p.name, resultOf(p), p.messages.join('; ') || undefined, {
        // properties are strings in the CRD
        mode: p.mode,
        ...(p.code ? { code: p.code } : {}),
        ...(p.exceptions?.length ? { exceptions: p.exceptions.map((e) => `${e.name} (until ${e.expires}${e.ticket ? `, ${e.ticket}` : ''})`).join(', ') } : {}),
        ...(f.file !== undefined ? { manifest: `${f.file}:${f.line ?? 1}` } : {}),
      });
    }
    const bytes = results.reduce((n, r) => n + JSON.stringify(r.entry).length + 1, 0);
    const chunks = byNamespace.get(f.namespace) ?? [emptyChunk()];
    byNamespace.set(f.namespace, chunks);
    let chunk = chunks.at(-1)!;
    if (chunk.results.length && chunk.bytes + bytes > maxBytes) chunks.push((chunk = emptyChunk()));
    for (const r of results) {
      chunk.summary[r.result]++;
      chunk.results.push(r.entry);
    }
    chunk.bytes += bytes;
  }
  const report = (namespace: string | undefined, chunk: Chunk, i: number): PolicyReportDocument => {
    const name = i === 0 ? POLICY_REPORT_NAME : `${POLICY_REPORT_NAME}-${i + 1}`;
    const labels = { ...POLICY_REPORT_LABELS };
    return namespace === undefined
      ? { apiVersion: api.apiVersion, kind: api.cluster, metadata: { name, labels }, summary: chunk.summary, results: chunk.results }
      : { apiVersion: api.apiVersion, kind: api.namespaced, metadata: { name, namespace, labels }, summary: chunk.summary, results: chunk.results };
  };
  const namespaces = [...[...byNamespace.keys()].filter((n): n is string => n !== undefined).sort(), ...(byNamespace.has(undefined) ? [undefined] : [])];
  return namespaces.flatMap((ns) => byNamespace.get(ns)!.map((chunk, i) => report(ns, chunk, i)));
}
