// `trustgate scan --format policyreport`: a scan's findings as Policy Reports (wgpolicyk8s.io
// v1alpha2, the CRD Kyverno installs and Policy Reporter and other dashboards read), one
// PolicyReport per namespace and one ClusterPolicyReport for cluster-scoped objects, each named
// trustgate-scan so that applying the next scan replaces the last one's results.
import type { ScanFinding } from './scan.js';

export const POLICY_REPORT_API_VERSION = 'wgpolicyk8s.io/v1alpha2';
export const POLICY_REPORT_NAME = 'trustgate-scan';

type ReportResult = 'pass' | 'fail' | 'warn' | 'error' | 'skip';

interface Summary { pass: number; fail: number; warn: number; error: number; skip: number }

export interface PolicyReportDocument {
  apiVersion: string;
  kind: 'PolicyReport' | 'ClusterPolicyReport';
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

/** Policy Reports of the findings, namespaced ones by namespace (in name order), the cluster-scoped one last; none where no policy judged anything. */
export function policyReports(findings: readonly ScanFinding[], options: { time: Date }): PolicyReportDocument[] {
  const timestamp = { seconds: Math.floor(options.time.getTime() / 1000), nanos: 0 };
  const byNamespace = new Map<string | undefined, { results: Record<string, unknown>[]; summary: Summary }>();
  for (const f of findings) {
    // an object no policy judged has nothing to report (and makes no report of its own)
    if (!f.passed.length && !f.policies.length) continue;
    let report = byNamespace.get(f.namespace);
    if (!report) byNamespace.set(f.namespace, (report = { results: [], summary: { pass: 0, fail: 0, warn: 0, error: 0, skip: 0 } }));
    const resources = [{ apiVersion: f.apiVersion, kind: f.kind, ...(f.name ? { name: f.name } : {}), ...(f.namespace ? { namespace: f.namespace } : {}), ...(f.uid ? { uid: f.uid } : {}) }];
    const add = (policy: string, result: ReportResult, message: string | undefined, properties: Record<string, string>) => {
      report!.summary[result]++;
      report!.results.push({ source: 'trustgate', policy, result, ...(message ? { message } : {}), scored: true, timestamp, resources, ...(Object.keys(properties).length ? { properties } : {}) });
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
  }
  const labels = { 'app.kubernetes.io/managed-by': 'trustgate' };
  const report = (namespace: string | undefined): PolicyReportDocument => {
    const { summary, results } = byNamespace.get(namespace)!;
    return namespace === undefined
      ? { apiVersion: POLICY_REPORT_API_VERSION, kind: 'ClusterPolicyReport', metadata: { name: POLICY_REPORT_NAME, labels }, summary, results }
      : { apiVersion: POLICY_REPORT_API_VERSION, kind: 'PolicyReport', metadata: { name: POLICY_REPORT_NAME, namespace, labels }, summary, results };
  };
  const namespaces = [...byNamespace.keys()].filter((n): n is string => n !== undefined).sort();
  return [...namespaces.map(report), ...(byNamespace.has(undefined) ? [report(undefined)] : [])];
}
