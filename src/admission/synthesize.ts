// Builds an AdmissionReview around a bare object, for `trustgate eval --object` and policy tests.
import { randomUUID } from 'node:crypto';
import type { AdmissionReview, KubeObject, UserInfo } from './types.js';

// kinds whose plural is not the regular English one, or that are commonly cluster-scoped
const IRREGULAR: Record<string, string> = { Endpoints: 'endpoints', PodSecurityPolicy: 'podsecuritypolicies', Ingress: 'ingresses' };
const CLUSTER_SCOPED = new Set(['Namespace', 'Node', 'PersistentVolume', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'StorageClass', 'ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration', 'ValidatingAdmissionPolicy', 'PriorityClass']);

export function pluralOf(kind: string): string {
  if (Object.hasOwn(IRREGULAR, kind)) return IRREGULAR[kind]!;
  const k = kind.toLowerCase();
  if (/[^aeiou]y$/.test(k)) return `${k.slice(0, -1)}ies`;
  if (/(s|x|z|ch|sh)$/.test(k)) return `${k}es`;
  return `${k}s`;
}

export interface SynthesizeOptions {
  operation?: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  namespace?: string;
  oldObject?: KubeObject;
  subResource?: string;
  userInfo?: UserInfo;
  dryRun?: boolean;
}

export function reviewForObject(object: KubeObject | undefined, o: SynthesizeOptions = {}): AdmissionReview {
  const source = object ?? o.oldObject;
  if (!source || typeof source.kind !== 'string' || typeof source.apiVersion !== 'string') {
    throw new Error('the object needs apiVersion and kind');
  }
  const slash = source.apiVersion.indexOf('/');
  const group = slash < 0 ? '' : source.apiVersion.slice(0, slash);
  const version = slash < 0 ? source.apiVersion : source.apiVersion.slice(slash + 1);
  const operation = o.operation ?? 'CREATE';
  const namespace = CLUSTER_SCOPED.has(source.kind) ? undefined : (o.namespace ?? source.metadata?.namespace ?? 'default');
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group, version, kind: source.kind },
      resource: { group, version, resource: pluralOf(source.kind) },
      subResource: o.subResource,
      name: source.metadata?.name,
      namespace,
      operation,
      userInfo: o.userInfo ?? { username: 'trustgate-offline', groups: ['system:authenticated'] },
      object: operation === 'DELETE' ? null : (object ?? null),
      oldObject: operation === 'UPDATE' || operation === 'DELETE' ? (o.oldObject ?? object ?? null) : null,
      dryRun: o.dryRun ?? false,
    },
  };
}
