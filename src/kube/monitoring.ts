// `trustgate manifests --monitoring`: a ServiceMonitor that scrapes every replica's /metrics
// and a PrometheusRule (prometheus-operator) with the alerts an admission webhook needs: the
// ones that say the cluster is about to refuse everything (no replica, a full audit spool, an
// expiring serving certificate), that decisions are being made on less than the policies say
// (evaluation errors, unsynced caches, a rejected policy edit, replicas on different policy
// revisions), and that the audit trail is not reaching its store.

export interface MonitoringOptions {
  namespace: string;
  /** the scheduled scan (manifests --scan-schedule) is installed: alert when its last run failed */
  scheduledScan?: boolean;
  /** the Secret whose `ca.crt` signs the serving certificate (cert-manager's, or the self-managed CA's) */
  caSecret: string;
}

type Obj = Record<string, unknown>;

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: 'critical' | 'warning' | 'info' };
  annotations: { summary: string; description: string };
}

export interface AlertGroup {
  name: string;
  rules: AlertRule[];
}

const LABELS = { 'app.kubernetes.io/name': 'trustgate', 'app.kubernetes.io/component': 'admission-webhook' };

const DAY = 86_400;

/** The alert groups; `ns` scopes the series trustgate does not name itself (`up`, kube-state-metrics'). */
export function alertGroups(ns: string, options: { scheduledScan?: boolean } = {}): AlertGroup[] {
  const up = `up{job="trustgate", namespace="${ns}"}`;
  return [...trustgateGroups(ns, up), ...(options.scheduledScan ? [scanGroup(ns)] : [])];
}

/**
 * The scheduled scan's job fails when it finds an object the policies deny (exit 1) or cannot
 * read everything (exit 2): kube-state-metrics' CronJob times say whether the last run succeeded.
 */
function scanGroup(ns: string): AlertGroup {
  const selector = `{namespace="${ns}", cronjob="trustgate-scan"}`;
  // kube-state-metrics adds its own job and instance labels: kept out of the alert's
  const scheduled = `max by (namespace, cronjob) (kube_cronjob_status_last_schedule_time${selector})`;
  const succeeded = `max by (namespace, cronjob) (kube_cronjob_status_last_successful_time${selector})`;
  return {
    name: 'trustgate.scan',
    rules: [{
      alert: 'TrustgateScanFailed',
      // a run scheduled after the last success (or with none yet) that has not succeeded within the job's hour
      expr: `(${scheduled} > ${succeeded}) or (${scheduled} unless on (namespace, cronjob) ${succeeded})`,
      for: '1h', labels: { severity: 'warning' },
      annotations: {
        summary: 'The scheduled trustgate scan failed',
        description: `The last run of the CronJob trustgate-scan in ${ns} did not succeed: it found objects in the cluster that the policies deny, or could not read every resource. Its job's log has the findings as JSON lines.`,
      },
    }],
  };
}

function trustgateGroups(ns: string, up: string): AlertGroup[] {
  return [
    {
      name: 'trustgate.availability',
      rules: [
        {
          alert: 'TrustgateDown', expr: `absent(${up} == 1)`, for: '5m', labels: { severity: 'critical' },
          annotations: {
            summary: 'No trustgate replica is up',
            description: `No trustgate replica in ${ns} has answered a scrape for 5 minutes. The webhooks' failurePolicy is Fail: the API server refuses every request they match until a replica answers.`,
          },
        },
        {
          alert: 'TrustgateReplicaDown', expr: `${up} == 0`, for: '10m', labels: { severity: 'warning' },
          annotations: {
            summary: 'A trustgate replica is down',
            description: 'Replica {{ $labels.pod }} has not answered a scrape for 10 minutes; the others carry its admissions, and its spool holds records its sinks have not acknowledged.',
          },
        },
        {
          alert: 'TrustgateAdmissionErrors',
          expr: 'sum by (namespace, pod, code) (rate(trustgate_admission_requests_total{code=~"5.."}[5m])) > 0', for: '10m', labels: { severity: 'warning' },
          annotations: {
            summary: 'trustgate answers admission requests with server errors',
            description: 'Replica {{ $labels.pod }} answers HTTP {{ $labels.code }} to {{ $value | humanize }} admission requests a second; the API server applies the webhooks\' failurePolicy to each. Its log says why.',
          },
        },
        {
          alert: 'TrustgateSlowAdmissions',
          expr: 'histogram_quantile(0.99, sum by (namespace, endpoint, le) (rate(trustgate_admission_duration_seconds_bucket[5m]))) > 2.5', for: '10m', labels: { severity: 'warning' },
          annotations: {
            summary: 'trustgate admissions are slow',
            description: 'The 99th percentile of /{{ $labels.endpoint }} admissions is {{ $value | humanizeDuration }}. At the internal deadline (8 s) unfinished evaluations are decided by failurePolicy; slow registries (trustgate_registry_request_seconds) are the usual cause.',
          },
        },
      ],
    },
    {
      name: 'trustgate.policies',
      rules: [
        {
          alert: 'TrustgateEvaluationErrors',
          expr: 'sum by (namespace, policy, code) (rate(trustgate_policy_results_total{result="error"}[10m])) > 0', for: '15m', labels: { severity: 'warning' },
          annotations: {
            summary: 'A policy cannot be evaluated',
            description: 'Policy {{ $labels.policy }} ends in {{ $labels.code }} ({{ $value | humanize }} a second): its failurePolicy decides instead of its rules (Fail denies, Ignore admits unjudged). `trustgate eval --explain` on an affected object shows the failing expression.',
          },
        },
        {
          alert: 'TrustgatePolicyReloadFailing', expr: 'trustgate_policy_last_reload_failed == 1', for: '10m', labels: { severity: 'warning' },
          annotations: {
            summary: 'Edited policy files are rejected',
            description: 'Replica {{ $labels.pod }} rejected the newest policy files and keeps deciding with the last good set. Its log has each error as file:line:col; `trustgate lint` shows the same.',
          },
        },
        {
          alert: 'TrustgatePolicyRevisionsDiffer',
          expr: 'count by (namespace) (count by (namespace, revision) (trustgate_policy_set_info)) > 1', for: '15m', labels: { severity: 'warning' },
          annotations: {
            summary: 'trustgate replicas decide with different policy sets',
            description: 'The replicas in {{ $labels.namespace }} serve {{ $value }} policy revisions, so the same request can be decided differently by each. trustgate_policy_set_info names them per replica.',
          },
        },
        {
          alert: 'TrustgateClusterCacheNotSynced', expr: 'trustgate_cluster_cache_synced == 0', for: '10m', labels: { severity: 'warning' },
          annotations: {
            summary: 'A cluster cache trustgate reads is not synced',
            description: 'Replica {{ $labels.pod }} has not listed {{ $labels.cache }}: the policies that read it (namespaceSelector, params) fail with PARAMS_UNAVAILABLE and their failurePolicy decides. Check trustgate\'s RBAC and its log.',
          },
        },
        {
          alert: 'TrustgatePolicyExceptionExpiring',
          expr: `min by (namespace, exception) (trustgate_policy_exception_expiry_timestamp_seconds) - time() < ${7 * DAY} and min by (namespace, exception) (trustgate_policy_exception_expiry_timestamp_seconds) - time() > 0`,
          for: '1h', labels: { severity: 'warning' },
          annotations: {
            summary: 'A PolicyException expires within a week',
            description: 'PolicyException {{ $labels.exception }} stops waiving in {{ $value | humanizeDuration }}: what it waives is then judged, and denied by enforcing policies. Fix the workloads, or renew it with a reason.',
          },
        },
        {
          alert: 'TrustgatePolicyWarnings', expr: 'max by (namespace) (trustgate_policy_warnings) > 0', for: '1h', labels: { severity: 'info' },
          annotations: {
            summary: 'The active policy set has warnings',
            description: 'The policy set carries {{ $value }} warnings (rules that never match, validations failing every DELETE, expired PolicyExceptions); the log lists them at load, `trustgate lint --strict` fails on them.',
          },
        },
      ],
    },
    {
      name: 'trustgate.tls',
      rules: [
        {
          alert: 'TrustgateCertificateExpiring', expr: `trustgate_tls_certificate_expiry_seconds - time() < ${14 * DAY}`, for: '1h', labels: { severity: 'warning' },
          annotations: {
            summary: 'trustgate\'s serving certificate expires within two weeks',
            description: 'The certificate replica {{ $labels.pod }} serves expires in {{ $value | humanizeDuration }}; its renewal (by cert-manager 30 days before expiry in deploy/overlays/prod, or by trustgate itself with --self-managed-certs) is failing. trustgate reloads a renewed certificate without a restart.',
          },
        },
        {
          alert: 'TrustgateCertificateExpiringCritical', expr: `trustgate_tls_certificate_expiry_seconds - time() < ${2 * DAY}`, for: '10m', labels: { severity: 'critical' },
          annotations: {
            summary: 'trustgate\'s serving certificate expires within two days',
            description: 'The certificate replica {{ $labels.pod }} serves expires in {{ $value | humanizeDuration }}. Once it has, the API server cannot call the webhooks and refuses what they match.',
          },
        },
        {
          alert: 'TrustgateCertificateReloadFailing', expr: 'increase(trustgate_tls_reloads_total{result="error"}[15m]) > 0', labels: { severity: 'warning' },
          annotations: {
            summary: 'trustgate could not load a changed serving certificate',
            description: 'Replica {{ $labels.pod }} rejected the certificate files written in the last 15 minutes and serves the previous pair. Its log says why (a key that does not match, a half-written file).',
          },
        },
      ],
    },
    {
      name: 'trustgate.audit',
      rules: [
        {
          alert: 'TrustgateAuditRecordsLost', expr: 'increase(trustgate_audit_records_lost_total[10m]) > 0', labels: { severity: 'critical' },
          annotations: {
            summary: 'Admissions were decided without a decision record',
            description: 'Replica {{ $labels.pod }} admitted {{ $value | humanize }} requests it could not record (a full spool under --audit-full allow, or an unwritable one). The audit trail has a gap.',
          },
        },
        {
          alert: 'TrustgateAuditSpoolFilling', expr: 'trustgate_audit_spool_bytes / trustgate_audit_spool_limit_bytes > 0.8', for: '5m', labels: { severity: 'critical' },
          annotations: {
            summary: 'trustgate\'s audit spool is nearly full',
            description: 'The spool of replica {{ $labels.pod }} is {{ $value | humanizePercentage }} full because its sinks are not acknowledging. At the limit it refuses admissions (--audit-full deny) rather than admit unrecorded.',
          },
        },
        {
          alert: 'TrustgateAuditSinkFailing', expr: 'sum by (namespace, pod, sink) (rate(trustgate_audit_sink_errors_total[5m])) > 0', for: '10m', labels: { severity: 'warning' },
          annotations: {
            summary: 'An audit sink refuses deliveries',
            description: 'Replica {{ $labels.pod }} has failed to deliver to {{ $labels.sink }} for 10 minutes; records wait in its spool and are retried. The log has the sink\'s answer.',
          },
        },
        {
          alert: 'TrustgateAuditBacklogStale', expr: 'max by (namespace, pod, sink) (trustgate_audit_backlog_age_seconds) > 900', for: '5m', labels: { severity: 'warning' },
          annotations: {
            summary: 'Decision records wait long for their audit sink',
            description: 'The oldest record {{ $labels.sink }} has not acknowledged from replica {{ $labels.pod }} is {{ $value | humanizeDuration }} old. Until it is, the only copy is on the pod\'s spool volume and is lost with the pod.',
          },
        },
      ],
    },
    {
      name: 'trustgate.supply-chain',
      rules: [
        {
          alert: 'TrustgateRegistryErrors',
          expr: 'sum by (namespace, registry) (rate(trustgate_registry_request_seconds_count{outcome=~"error|5.."}[10m])) / sum by (namespace, registry) (rate(trustgate_registry_request_seconds_count[10m])) > 0.1',
          for: '15m', labels: { severity: 'warning' },
          annotations: {
            summary: 'A registry fails trustgate\'s image verifications',
            description: '{{ $value | humanizePercentage }} of trustgate\'s requests to {{ $labels.registry }} fail (no answer or 5xx): images there that are not cached cannot be verified, and their rules\' failurePolicy decides.',
          },
        },
        {
          alert: 'TrustgateAuthorizationCheckErrors', expr: 'sum by (namespace, pod) (rate(trustgate_authorization_checks_total{outcome="error"}[10m])) > 0', for: '15m', labels: { severity: 'warning' },
          annotations: {
            summary: 'Policies\' authorization checks fail',
            description: 'Replica {{ $labels.pod }} cannot ask the API server SubjectAccessReviews ({{ $value | humanize }} a second fail): the policies using `authorizer` see errors. Check trustgate\'s RBAC (subjectaccessreviews create).',
          },
        },
      ],
    },
  ];
}

/** The ServiceMonitor and the PrometheusRule, in trustgate's namespace. */
export function renderMonitoring(o: MonitoringOptions): Obj[] {
  const meta = (name: string) => ({ name, namespace: o.namespace, labels: LABELS });
  return [
    {
      apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: meta('trustgate'),
      spec: {
        selector: { matchLabels: LABELS },
        endpoints: [{
          port: 'https', scheme: 'https', path: '/metrics', interval: '30s',
          // every replica, by pod address: the certificate names the Service, so that is the name checked
          tlsConfig: { ca: { secret: { name: o.caSecret, key: 'ca.crt' } }, serverName: `trustgate.${o.namespace}.svc` },
        }],
      },
    },
    { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: meta('trustgate'), spec: { groups: alertGroups(o.namespace, { scheduledScan: o.scheduledScan }) } },
  ];
}
