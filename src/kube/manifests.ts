// `trustgate manifests`: the whole install as Kubernetes objects, derived from flags and from
// the loaded policies (webhook rules, the params objects RBAC must let trustgate read).
import { pluralOf } from '../admission/synthesize.js';
import { paramWatches, REPORT_APIS, type PolicySet, type ReportApi } from '../policy/index.js';

/** V8 flags of the rendered Deployment (the benchmarks run trustgate with them too). */
// A bounded old space (384 MiB) puts V8 in its small-heap regime: it grows the heap by ~1.35x
// the live set instead of up to 4x, so cold verifications no longer leave hundreds of MiB of
// uncollected heap (bench/memory.ts, 10,000 digests: 437 -> ~178 MiB resident), and a 16 MiB
// review (~200 MiB live at its peak; the body budget lets one at a time in) still fits above the
// idle heap, inside the 512 Mi limit. A 4 MiB young generation: at 2 MiB, objects of reviews in
// flight were promoted and the bounded old space was collected ~20 % more often (policy-only CPU
// per request 509-555 us at 4 MiB against 630-668 us at 2 MiB).
export const DEPLOYMENT_NODE_OPTIONS = '--max-semi-space-size=4 --max-old-space-size=384';
// one malloc arena: glibc gives each thread that allocates its own 64 MiB arena, and the thread
// pool's and V8's threads left ~20 MiB resident there after 3,000 cold verifications
// (bench/memory.ts: 184 -> 166 MiB); the policy-only throughput did not move (2008 -> 2003 req/s)
export const DEPLOYMENT_MALLOC_ARENA_MAX = '1';

export interface ManifestOptions {
  namespace: string;
  image: string;
  replicas: number;
  /** PEM CA bundle for the webhook configurations, when certificates are managed outside */
  caBundle?: string;
  /** name of the TLS Secret the serving certificate lives in (cert-manager writes it) */
  tlsSecret: string;
  audit: string[];
  timeoutSeconds: number;
  /** read pods' imagePullSecrets for registry auth: adds secrets/serviceaccounts get, cluster-wide */
  pullSecrets?: boolean;
  /** certificates without cert-manager: the CA Secret and the caBundle Lease, in trustgate's namespace */
  selfManagedCerts?: boolean;
  /** PEM CA of the API server's client certificate: a ConfigMap, mounted, and --client-ca */
  clientCa?: string;
  /** with clientCa: the accepted names of that certificate (--client-name) */
  clientNames?: string[];
  /**
   * a Secret (created by hand, never rendered: it holds a private key) whose `audit-signing.key`
   * signs the chain's checkpoints: mounted, and --audit-signing-key
   */
  auditSigningSecret?: string;
  /**
   * a cron schedule: a CronJob runs `trustgate scan --in-cluster` on it, reporting the objects
   * already in the cluster that the policies deny or would once they enforce, as JSON lines
   */
  scanSchedule?: string;
  /** with scanSchedule: the scan writes its Policy Reports into the cluster in this report API (and may write those) */
  scanPolicyReports?: ReportApi;
}

type Obj = Record<string, unknown>;

// shared by the webhook's pods and the scheduled scan's: one place to harden both
const POD_SECURITY = { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } };
const CONTAINER_SECURITY = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, runAsNonRoot: true };
const MEMORY_ENV = [{ name: 'NODE_OPTIONS', value: DEPLOYMENT_NODE_OPTIONS }, { name: 'MALLOC_ARENA_MAX', value: DEPLOYMENT_MALLOC_ARENA_MAX }];
// DNS; the API server, audit sinks and registries over TLS (narrow with CIDRs where known)
const EGRESS = [
  { ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
  { ports: [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 6443 }] },
];
const LABELS = { 'app.kubernetes.io/name': 'trustgate', 'app.kubernetes.io/component': 'admission-webhook' };

/** Webhook rules covering every resource some policy matches. */
export function webhookRules(set: PolicySet): Obj[] {
  const rules = new Map<string, Obj>();
  for (const p of set.policies) {
    for (const r of p.rules) {
      const resources = r.kinds.size
        ? [...r.kinds].map((k) => (k === '*' ? '*' : k.includes('/') ? `${pluralOf(k.split('/')[0]!)}/${k.split('/')[1]}` : pluralOf(k)))
        : r.resources;
      const rule = {
        apiGroups: [...r.groups].sort(), apiVersions: [...r.versions].sort(), operations: [...r.operations].sort(),
        resources: [...resources].sort(), scope: r.scope,
      };
      rules.set(JSON.stringify(rule), rule);
    }
  }
  return [...rules.values()];
}

export function renderManifests(set: PolicySet, o: ManifestOptions): Obj[] {
  const ns = o.namespace;
  const meta = (name: string, namespaced = true) => ({ name, ...(namespaced ? { namespace: ns } : {}), labels: LABELS });
  const rules = webhookRules(set);
  // never call ourselves for our own namespace or kube-system: the cluster cannot lock itself out
  const namespaceSelector = { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...new Set([ns, 'kube-system'])].sort() }] };
  const clientConfig = (path: string) => ({ service: { name: 'trustgate', namespace: ns, path, port: 443 }, ...(o.caBundle ? { caBundle: Buffer.from(o.caBundle).toString('base64') } : {}) });
  const webhook = (name: string, path: string, extra: Obj = {}) => ({
    name, clientConfig: clientConfig(path), rules, failurePolicy: 'Fail', matchPolicy: 'Equivalent', sideEffects: 'NoneOnDryRun',
    timeoutSeconds: o.timeoutSeconds, admissionReviewVersions: ['v1'], namespaceSelector, ...extra,
  });
  const watches = paramWatches(set);
  // what the server reads while deciding, and a scheduled scan reads the same way
  const namespacesRule = { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] };
  const paramsRules: Obj[] = [
    // params from each request's namespace: only ConfigMaps of these names (trustgate lists
    // and watches them with a metadata.name field selector, which RBAC can limit by name)
    ...(watches.names.length ? [{ apiGroups: [''], resources: ['configmaps'], resourceNames: watches.names, verbs: ['get', 'list', 'watch'] }] : []),
    // params by label selector from each request's namespace: RBAC cannot limit a label
    // selector, so this reads every ConfigMap in the cluster (trustgate watches only the selected)
    ...(watches.selectors.length ? [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }] : []),
    // params of other kinds (a binding's custom resources), watched whole; the plural is the
    // conventional one of the kind (trustgate itself finds the served one by discovery)
    ...watches.kinds.map((k) => ({ apiGroups: [k.apiVersion.includes('/') ? k.apiVersion.split('/')[0]! : ''], resources: [pluralOf(k.kind)], verbs: ['get', 'list', 'watch'] })),
    // policies' authorization checks (authorizer in CEL) are SubjectAccessReviews
    ...(set.usesAuthorizer ? [{ apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] }] : []),
  ];
  const objects: Obj[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...LABELS, 'pod-security.kubernetes.io/enforce': 'restricted' } } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta('trustgate'), automountServiceAccountToken: true },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: meta('trustgate', false),
      rules: [
        namespacesRule,
        { apiGroups: ['admissionregistration.k8s.io'], resources: ['validatingwebhookconfigurations', 'mutatingwebhookconfigurations'], resourceNames: ['trustgate'], verbs: ['get', 'patch'] },
        // only get: pull secrets are read by name when a pod names them, never listed or watched
        ...(o.pullSecrets ? [{ apiGroups: [''], resources: ['secrets', 'serviceaccounts'], verbs: ['get'] }] : []),
        ...paramsRules,
      ],
    },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: meta('trustgate', false), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'trustgate' }, subjects: [{ kind: 'ServiceAccount', name: 'trustgate', namespace: ns }] },
    // ConfigMaps only in the namespaces policies name, read-only (by the scan too, when scheduled)
    ...watches.namespaces.flatMap((n) => [
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'trustgate-configmaps', namespace: n, labels: LABELS }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }] },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'trustgate-configmaps', namespace: n, labels: LABELS }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'trustgate-configmaps' },
        subjects: [{ kind: 'ServiceAccount', name: 'trustgate', namespace: ns }, ...(o.scanSchedule ? [{ kind: 'ServiceAccount', name: SCAN_NAME, namespace: ns }] : [])] },
    ]),
    // self-managed certificates: its own CA Secret and caBundle Lease, nothing else in its namespace
    ...(o.selfManagedCerts ? [
      {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta('trustgate-certificates'),
        rules: [
          { apiGroups: [''], resources: ['secrets'], resourceNames: ['trustgate-ca'], verbs: ['get'] },
          // create cannot be limited by name in RBAC; the namespace holds nothing else of value
          { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['trustgate-ca-bundle'], verbs: ['get', 'update'] },
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
        ],
      },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: meta('trustgate-certificates'), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'trustgate-certificates' }, subjects: [{ kind: 'ServiceAccount', name: 'trustgate', namespace: ns }] },
    ] : []),
    // a CA certificate is public: a ConfigMap, not a Secret (trustgate gets no access to Secrets for it)
    ...(o.clientCa ? [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('trustgate-client-ca'), data: { 'ca.crt': o.clientCa } }] : []),
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta('trustgate'),
      spec: {
        replicas: o.replicas,
        selector: { matchLabels: LABELS },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        template: {
          metadata: { labels: LABELS },
          spec: {
            serviceAccountName: 'trustgate',
            priorityClassName: 'system-cluster-critical',
            securityContext: { ...POD_SECURITY, fsGroup: 65532 },
            affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: LABELS }, topologyKey: 'kubernetes.io/hostname' }] } },
            topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: LABELS } }],
            terminationGracePeriodSeconds: 30,
            containers: [{
              name: 'trustgate', image: o.image, imagePullPolicy: 'IfNotPresent',
              args: ['serve', '--policies', '/app/policies',
                ...(o.selfManagedCerts ? ['--self-managed-certs', '--cert-dir', '/certs'] : ['--tls-cert', '/certs/tls.crt', '--tls-key', '/certs/tls.key']),
                '--audit-spool', '/spool', '--in-cluster', ...(o.pullSecrets ? ['--pull-secrets'] : []),
                ...(o.clientCa ? ['--client-ca', '/client-ca/ca.crt', ...(o.clientNames ?? []).flatMap((n) => ['--client-name', n])] : []),
                ...(o.auditSigningSecret ? ['--audit-signing-key', '/audit-signing/audit-signing.key'] : []),
                ...o.audit.flatMap((a) => ['--audit', a])],
              env: [
                { name: 'TRUSTGATE_REPLICA', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                ...MEMORY_ENV,
                ...(o.selfManagedCerts ? [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }] : []),
              ],
              ports: [{ name: 'https', containerPort: 8443 }],
              readinessProbe: { httpGet: { path: '/readyz', port: 'https', scheme: 'HTTPS' }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/healthz', port: 'https', scheme: 'HTTPS' }, periodSeconds: 10, failureThreshold: 6 },
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
              securityContext: CONTAINER_SECURITY,
              volumeMounts: [{ name: 'certs', mountPath: '/certs', readOnly: !o.selfManagedCerts }, { name: 'spool', mountPath: '/spool' }, { name: 'tmp', mountPath: '/tmp' },
                ...(o.clientCa ? [{ name: 'client-ca', mountPath: '/client-ca', readOnly: true }] : []),
                ...(o.auditSigningSecret ? [{ name: 'audit-signing', mountPath: '/audit-signing', readOnly: true }] : [])],
            }],
            volumes: [
              // self-managed: each replica writes its own serving pair (the key never leaves the pod)
              o.selfManagedCerts ? { name: 'certs', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } } : { name: 'certs', secret: { secretName: o.tlsSecret } },
              // the spool outlives restarts of the container, not of the pod: sinks should be fast
              { name: 'spool', emptyDir: { sizeLimit: '2Gi' } },
              { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
              ...(o.clientCa ? [{ name: 'client-ca', configMap: { name: 'trustgate-client-ca' } }] : []),
              // readable by the pod's group (fsGroup) only: the signing key is the chain's authenticity
              ...(o.auditSigningSecret ? [{ name: 'audit-signing', secret: { secretName: o.auditSigningSecret, defaultMode: 0o440, items: [{ key: 'audit-signing.key', path: 'audit-signing.key' }] } }] : []),
            ],
          },
        },
      },
    },
    { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: meta('trustgate'), spec: { minAvailable: 1, selector: { matchLabels: LABELS } } },
    { apiVersion: 'v1', kind: 'Service', metadata: meta('trustgate'), spec: { selector: LABELS, ports: [{ name: 'https', port: 443, targetPort: 'https' }] } },
    {
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('trustgate'),
      spec: {
        podSelector: { matchLabels: LABELS },
        policyTypes: ['Ingress', 'Egress'],
        // the API server's source addresses differ per distribution: the port is what is fixed
        ingress: [{ ports: [{ protocol: 'TCP', port: 8443 }] }],
        egress: EGRESS,
      },
    },
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: meta('trustgate', false), webhooks: [webhook('validate.trustgate.dev', '/validate')] },
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: meta('trustgate', false), webhooks: [webhook('mutate.trustgate.dev', '/mutate', { reinvocationPolicy: 'IfNeeded' })] },
    ...(o.scanSchedule ? scheduledScan(o, rules, [namespacesRule, ...paramsRules]) : []),
  ];
  return objects;
}

const SCAN_NAME = 'trustgate-scan';
const SCAN_LABELS = { 'app.kubernetes.io/name': 'trustgate', 'app.kubernetes.io/component': 'policy-scan' };

/**
 * `trustgate scan --in-cluster` on a schedule: what already runs and the policies deny (or would,
 * once they enforce), as JSON lines in the job's log and, as decision records, in the webhook's
 * audit sinks other than stdout. Its own account reads only what the
 * webhook rules cover (list, no watch, no get of single objects) and what the server reads.
 */
function scheduledScan(o: ManifestOptions, webhookRules: Obj[], readRules: Obj[]): Obj[] {
  const meta = (name: string, namespaced = true) => ({ name, ...(namespaced ? { namespace: o.namespace } : {}), labels: SCAN_LABELS });
  // the scan lists top-level resources: a rule for pods/ephemeralcontainers is a list of pods
  // (rules that differ only in operations or versions are one grant here: merged by API groups)
  const byGroups = new Map<string, Set<string>>();
  for (const r of webhookRules) {
    const key = JSON.stringify(r.apiGroups);
    const resources = byGroups.get(key) ?? new Set<string>();
    for (const x of r.resources as string[]) resources.add(x.split('/')[0]!);
    byGroups.set(key, resources);
  }
  // the webhook's external sinks get the scans' records too (endpoint "scan"); its findings are in its log already
  const scanSinks = o.audit.filter((a) => a !== 'stdout');
  const listRules = [...byGroups].map(([groups, resources]) => ({ apiGroups: JSON.parse(groups) as string[], resources: [...resources].sort(), verbs: ['list'] }));
  // its reports, replaced in place and pruned where a namespace has no results any more (RBAC cannot narrow create or list by name)
  const reportRules = o.scanPolicyReports ? [{ apiGroups: [o.scanPolicyReports], resources: [...REPORT_APIS[o.scanPolicyReports].resources], verbs: ['get', 'list', 'create', 'update', 'delete'] }] : [];
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(SCAN_NAME), automountServiceAccountToken: true },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: meta(SCAN_NAME, false), rules: [...listRules, ...readRules, ...reportRules] },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: meta(SCAN_NAME, false), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: SCAN_NAME }, subjects: [{ kind: 'ServiceAccount', name: SCAN_NAME, namespace: o.namespace }] },
    {
      apiVersion: 'batch/v1', kind: 'CronJob', metadata: meta(SCAN_NAME),
      spec: {
        schedule: o.scanSchedule,
        // a scan still running when the next is due is left to finish; a missed one is not made up in bulk
        concurrencyPolicy: 'Forbid', startingDeadlineSeconds: 600, successfulJobsHistoryLimit: 3, failedJobsHistoryLimit: 3,
        jobTemplate: {
          spec: {
            // exit 1 means denied objects were found: a failed Job is the signal, not a reason to run again
            backoffLimit: 0, activeDeadlineSeconds: 3600, ttlSecondsAfterFinished: 86_400,
            template: {
              metadata: { labels: SCAN_LABELS },
              spec: {
                serviceAccountName: SCAN_NAME, restartPolicy: 'Never',
                securityContext: POD_SECURITY,
                containers: [{
                  name: 'scan', image: o.image, imagePullPolicy: 'IfNotPresent',
                  args: ['scan', '--in-cluster', '--policies', '/app/policies', '--format', 'json', ...(o.scanPolicyReports ? ['--policy-reports', ...(o.scanPolicyReports === 'wgpolicyk8s.io' ? [] : ['--report-api', o.scanPolicyReports])] : []), ...scanSinks.flatMap((a) => ['--audit', a])],
                  env: MEMORY_ENV,
                  resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
                  securityContext: CONTAINER_SECURITY,
                  // the records' spool, until the sinks have them (the root filesystem is read-only)
                  ...(scanSinks.length ? { volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }] } : {}),
                }],
                ...(scanSinks.length ? { volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '256Mi' } }] } : {}),
              },
            },
          },
        },
      },
    },
    {
      // nothing calls the scan; it calls DNS, the API server and the registries images rules name
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta(SCAN_NAME),
      spec: {
        podSelector: { matchLabels: SCAN_LABELS }, policyTypes: ['Ingress', 'Egress'], ingress: [],
        egress: EGRESS,
      },
    },
  ];
}
