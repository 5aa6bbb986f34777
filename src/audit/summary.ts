// `trustgate audit summary`: what an auditor asks of a period first. How many decisions, how
// many denied and by which policies, which PolicyExceptions let what through, which images were
// admitted unverified, who and where was denied most; from the same records `query` selects.
import type { DecisionRecord } from './record.js';

interface PolicyCounts {
  /** evaluations by result: pass, fail, error, excepted */
  results: Record<string, number>;
  /** decisions this policy's failure (in enforce mode) denied */
  denied: number;
}

export interface AuditSummary {
  /** the first and last decision time covered */
  from?: string;
  to?: string;
  decisions: number;
  allowed: number;
  denied: number;
  dryRun: number;
  byEndpoint: Record<string, number>;
  byReplica: Record<string, number>;
  policies: Record<string, PolicyCounts>;
  /** PolicyExceptions that waived failures: decisions and the policies waived */
  exceptions: Record<string, { decisions: number; policies: string[] }>;
  images: { verified: number; unverified: number };
  /** most denied first (ten at most) */
  deniedNamespaces: [string, number][];
  deniedUsers: [string, number][];
}

const TOP = 10;

const bump = (counts: Record<string, number>, key: string) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

const top = (counts: Map<string, number>) => [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, TOP);

export function summarize(records: Iterable<DecisionRecord>): AuditSummary {
  const s: AuditSummary = { decisions: 0, allowed: 0, denied: 0, dryRun: 0, byEndpoint: {}, byReplica: {}, policies: {}, exceptions: {}, images: { verified: 0, unverified: 0 }, deniedNamespaces: [], deniedUsers: [] };
  const namespaces = new Map<string, number>();
  const users = new Map<string, number>();
  for (const r of records) {
    s.decisions++;
    if (s.from === undefined || r.time < s.from) s.from = r.time;
    if (s.to === undefined || r.time > s.to) s.to = r.time;
    if (r.allowed) s.allowed++;
    else {
      s.denied++;
      const ns = r.request.namespace || '(cluster)';
      namespaces.set(ns, (namespaces.get(ns) ?? 0) + 1);
      const user = r.request.userInfo.username || '(unknown)';
      users.set(user, (users.get(user) ?? 0) + 1);
    }
    if (r.request.dryRun) s.dryRun++;
    bump(s.byEndpoint, r.endpoint);
    bump(s.byReplica, r.replica);
    // an exception waiving two policies of one decision counts one decision
    const waivedHere = new Set<string>();
    for (const p of r.policies) {
      const counts = (s.policies[p.name] ??= { results: {}, denied: 0 });
      bump(counts.results, p.result);
      if (!r.allowed && p.mode === 'enforce' && (p.result === 'fail' || p.result === 'error')) counts.denied++;
      for (const e of p.exceptions ?? []) {
        const entry = (s.exceptions[e.name] ??= { decisions: 0, policies: [] });
        if (!entry.policies.includes(p.name)) entry.policies.push(p.name);
        waivedHere.add(e.name);
      }
    }
    for (const name of waivedHere) s.exceptions[name]!.decisions++;
    for (const i of r.images) {
      if (i.verified) s.images.verified++;
      else s.images.unverified++;
    }
  }
  s.deniedNamespaces = top(namespaces);
  s.deniedUsers = top(users);
  return s;
}

const pct = (n: number, of: number) => (of ? ` (${((100 * n) / of).toFixed(1)} %)` : '');

/** The summary as a plain-text report. */
export function summaryText(s: AuditSummary): string {
  const lines = [
    `decisions ${s.decisions}${s.from ? ` from ${s.from} to ${s.to}` : ''}`,
    `  allowed ${s.allowed}${pct(s.allowed, s.decisions)}, denied ${s.denied}${pct(s.denied, s.decisions)}, dry runs ${s.dryRun}`,
    `  by endpoint: ${Object.entries(s.byEndpoint).map(([k, v]) => `${k} ${v}`).join(', ') || '-'}`,
    `  by replica: ${Object.entries(s.byReplica).map(([k, v]) => `${k} ${v}`).join(', ') || '-'}`,
    'policies (evaluations by result; decisions each denied):',
    ...Object.entries(s.policies).sort((a, b) => b[1].denied - a[1].denied || (a[0] < b[0] ? -1 : 1))
      .map(([name, c]) => `  ${name}: ${Object.entries(c.results).sort().map(([k, v]) => `${k} ${v}`).join(', ')}; denied ${c.denied}`),
    'exceptions (decisions in which each waived failures):',
    ...(Object.keys(s.exceptions).length ? Object.entries(s.exceptions).sort().map(([name, e]) => `  ${name}: ${e.decisions}, waiving ${e.policies.join(', ')}`) : ['  none']),
    `images: ${s.images.verified} verified, ${s.images.unverified} not verified`,
    `denied most, by namespace: ${s.deniedNamespaces.map(([k, v]) => `${k} ${v}`).join(', ') || '-'}`,
    `denied most, by user: ${s.deniedUsers.map(([k, v]) => `${k} ${v}`).join(', ') || '-'}`,
  ];
  return `${lines.join('\n')}\n`;
}
