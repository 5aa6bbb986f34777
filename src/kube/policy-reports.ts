// `trustgate scan --in-cluster --policy-reports`: the scan's Policy Reports written into the
// cluster it scanned, where Policy Reporter and `kubectl get polr` read them. Each report is
// created or replaced whole (a scan's results replace the last scan's); after a complete scan,
// the earlier scans' reports it did not replace (found by their labels) are deleted.
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { describeApiError as describe, statusOf } from './api-errors.js';


export interface ReportWrite {
  written: number;
  deleted: number;
}

export class PolicyReportWriteError extends Error {}


/** Writes the reports; with prune, deletes this scan's earlier reports that the new ones do not replace. */
export async function writePolicyReports(kc: KubeConfig, reports: readonly KubernetesObject[], options: { prune: boolean; labels: Readonly<Record<string, string>>; api: { apiVersion: string; namespaced: string; cluster: string } }): Promise<ReportWrite> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const out: ReportWrite = { written: 0, deleted: 0 };
  const where = (o: KubernetesObject) => `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;
  for (const report of reports) {
    try {
      let existing: KubernetesObject | undefined;
      try {
        existing = await api.read(report as KubernetesObject & { metadata: { name: string } });
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
      if (existing) await api.replace({ ...report, metadata: { ...report.metadata, resourceVersion: existing.metadata?.resourceVersion } });
      else await api.create(report);
      out.written++;
    } catch (err) {
      const hint = statusOf(err) === 404 ? `: is the ${options.api.apiVersion.split('/')[0]} CRD installed (Kyverno and Policy Reporter install it)?` : statusOf(err) === 403 ? ': the scan\'s account may not write policy reports (manifests --scan-policy-reports grants it)' : '';
      throw new PolicyReportWriteError(`cannot write ${where(report)}: ${describe(err)}${hint}`);
    }
  }
  if (!options.prune) return out;
  const key = (kind: string | undefined, r: KubernetesObject) => `${kind}/${r.metadata?.namespace ?? ''}/${r.metadata?.name}`;
  const kept = new Set(reports.map((r) => key(r.kind, r)));
  const selector = Object.entries(options.labels).map(([k, v]) => `${k}=${v}`).join(',');
  for (const kind of [options.api.namespaced, options.api.cluster]) {
    let listed;
    try {
      listed = await api.list(options.api.apiVersion, kind, undefined, undefined, undefined, undefined, undefined, selector);
    } catch (err) {
      throw new PolicyReportWriteError(`cannot list ${kind}s to remove stale ones: ${describe(err)}`);
    }
    for (const stale of listed.items.filter((r) => !kept.has(key(kind, r)))) {
      try {
        await api.delete({ apiVersion: options.api.apiVersion, kind, metadata: stale.metadata });
        out.deleted++;
      } catch (err) {
        if (statusOf(err) !== 404) throw new PolicyReportWriteError(`cannot delete ${where({ ...stale, kind })}: ${describe(err)}`);
      }
    }
  }
  return out;
}
