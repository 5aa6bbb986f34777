// Elastic Common Schema view of a decision record, for Fluent Bit, Logstash or Elasticsearch
// behind the HTTP sink (--audit-http-format ecs). The full record rides along under trustgate.
import type { DecisionRecord } from './record.js';

export function toECS(r: DecisionRecord): Record<string, unknown> {
  const failing = r.policies.filter((p) => p.result !== 'pass');
  const waived = [...new Set(failing.flatMap((p) => p.exceptions?.map((e) => `${e.name} (${p.name})`) ?? []))];
  return {
    '@timestamp': r.time,
    ecs: { version: '8.11.0' },
    event: {
      kind: 'event', category: ['configuration'], type: ['access'], action: `admission-${r.endpoint}`,
      outcome: r.allowed ? 'success' : 'failure', id: r.decisionId, duration: Math.round(r.durationMs * 1e6), dataset: 'trustgate.decisions',
    },
    service: { name: 'trustgate', version: r.labels?.version, node: { name: r.replica } },
    user: { name: r.request.userInfo.username, roles: r.request.userInfo.groups },
    orchestrator: {
      type: 'kubernetes', namespace: r.request.namespace, cluster: { name: r.labels?.cluster || undefined },
      resource: { type: r.request.resource.resource, name: r.request.name }, api_version: `${r.request.kind.group ? `${r.request.kind.group}/` : ''}${r.request.kind.version}`,
    },
    rule: failing.length ? { name: failing.map((p) => p.name), ruleset: r.policySetRevision } : undefined,
    message: r.allowed ? `allowed ${r.request.operation} ${r.request.kind.kind} ${r.request.namespace}/${r.request.name}${waived.length ? ` by exception: ${waived.join(', ')}` : ''}` : `denied ${r.request.operation} ${r.request.kind.kind} ${r.request.namespace}/${r.request.name}: ${failing.map((p) => `[${p.name}] ${p.messages.join('; ')}`).join(' ')}`,
    trustgate: r,
  };
}
