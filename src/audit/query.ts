// Filters decision records, de-duplicated by decisionId (at-least-once sinks may repeat one).
// from vap.ts itself: policy/index would import the audit module back (testing's NullDecisionRecorder)
import { namesPolicy } from '../policy/vap.js';
import type { DecisionRecord } from './record.js';

export interface QueryFilter {
  since?: Date;
  until?: Date;
  namespace?: string;
  user?: string;
  policy?: string;
  allowed?: boolean;
  image?: string;
  /** decisions in which this PolicyException waived something */
  exception?: string;
  /** the webhook's validate or mutate, or a scan's judgement */
  endpoint?: 'validate' | 'mutate' | 'scan';
}

export function matchesFilter(r: DecisionRecord, f: QueryFilter): boolean {
  const t = Date.parse(r.time);
  if (f.since && t < f.since.getTime()) return false;
  if (f.until && t > f.until.getTime()) return false;
  if (f.namespace !== undefined && r.request.namespace !== f.namespace) return false;
  if (f.user !== undefined && r.request.userInfo.username !== f.user) return false;
  if (f.allowed !== undefined && r.allowed !== f.allowed) return false;
  if (f.policy !== undefined && !r.policies.some((p) => namesPolicy(p.name, f.policy!))) return false;
  if (f.endpoint !== undefined && r.endpoint !== f.endpoint) return false;
  if (f.exception !== undefined && !r.policies.some((p) => p.exceptions?.some((e) => e.name === f.exception))) return false;
  if (f.image !== undefined && !(r.images as { ref?: string; digest?: string }[]).some((i) => i.ref?.includes(f.image!) || i.digest === f.image)) return false;
  return true;
}

export function* query(records: Iterable<DecisionRecord>, filter: QueryFilter): Generator<DecisionRecord> {
  const seen = new Set<string>();
  for (const r of records) {
    if (seen.has(r.decisionId)) continue;
    seen.add(r.decisionId);
    if (matchesFilter(r, filter)) yield r;
  }
}

export function tableRow(r: DecisionRecord): string {
  const failing = r.policies.filter((p) => p.result !== 'pass').map((p) => `${p.name}:${p.result}${p.exceptions?.length ? `(${p.exceptions.map((e) => e.name).join('+')})` : ''}`).join(',') || '-';
  const req = r.request;
  return [r.time, r.allowed ? 'ALLOW' : 'DENY ', req.operation.padEnd(7), `${req.namespace || '-'}/${req.kind.kind}/${req.name || '-'}`, req.userInfo.username || '-', failing, r.decisionId].join('  ');
}
