// Prometheus metrics: one registry per server so tests can build several side by side.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * A counter for the admission path. prom-client sorts, hashes and validates the label set on
 * every inc (its label children too); here an inc takes the label values in labelNames order
 * and walks one map per label (policy names and result words are the same strings every time,
 * so no key is built or hashed anew), and the counts reach prom-client when the registry is
 * read (a scrape, or get()).
 */
type LabelValues<L extends readonly string[]> = { [I in keyof L]: string };
interface PendingCount { labels: Record<string, string>; count: number }
type LabelTrie = Map<string, LabelTrie | PendingCount>;

function hotCounter<const L extends readonly string[]>(config: { name: string; help: string; labelNames: L; registers: Registry[] }) {
  const root: LabelTrie = new Map();
  const counts: PendingCount[] = [];
  const counter = new Counter<L[number]>({
    ...config,
    collect() {
      for (const p of counts) {
        if (p.count) counter.inc(p.labels as never, p.count);
        p.count = 0;
      }
    },
  });
  const last = config.labelNames.length - 1;
  const inc = (...values: LabelValues<L>): void => {
    let node = root;
    for (let i = 0; i < last; i++) {
      let next = node.get(values[i]!) as LabelTrie | undefined;
      if (!next) node.set(values[i]!, next = new Map());
      node = next;
    }
    const entry = node.get(values[last]!) as PendingCount | undefined;
    if (entry) entry.count++;
    else {
      const added = { labels: Object.fromEntries(config.labelNames.map((name, i) => [name, values[i]!])), count: 1 };
      node.set(values[last]!, added);
      counts.push(added);
    }
  };
  return Object.assign(counter, { hot: inc });
}

/** One cluster cache as /metrics shows it (see ClusterState.cacheStates). */
export interface ClusterCacheState {
  cache: string;
  synced: boolean;
  failures: number;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  // read at scrape time: the caches come and go with the policies that read them
  let clusterCaches: () => ClusterCacheState[] = () => [];
  const clusterCacheSynced: Gauge<'cache'> = new Gauge({
    name: 'trustgate_cluster_cache_synced', help: '1 once a cluster cache (namespaces, params ConfigMaps, a params kind) has listed; 0 while its policies fail with PARAMS_UNAVAILABLE',
    labelNames: ['cache'] as const, registers: [registry],
    collect() {
      clusterCacheSynced.reset();
      for (const c of clusterCaches()) clusterCacheSynced.set({ cache: c.cache }, c.synced ? 1 : 0);
    },
  });
  const clusterCacheFailures: Counter<'cache'> = new Counter({
    name: 'trustgate_cluster_cache_failures_total', help: 'Failed lists, watches and discoveries of a cluster cache (each retried with backoff)',
    labelNames: ['cache'] as const, registers: [registry],
    collect() {
      clusterCacheFailures.reset();
      for (const c of clusterCaches()) clusterCacheFailures.inc({ cache: c.cache }, c.failures);
    },
  });
  const policyResults = hotCounter({ name: 'trustgate_policy_results_total', help: 'Policy evaluations by policy, mode, result and reason code', labelNames: ['policy', 'mode', 'result', 'code'] as const, registers: [registry] });
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'trustgate_process_' });
  return {
    registry,
    /** where /metrics reads the cluster caches from */
    observeClusterCaches(source: () => ClusterCacheState[]): void {
      clusterCaches = source;
    },
    requests: hotCounter({ name: 'trustgate_admission_requests_total', help: 'Admission HTTP requests by endpoint and status code', labelNames: ['endpoint', 'code'] as const, registers: [registry] }),
    decisions: hotCounter({ name: 'trustgate_decisions_total', help: 'Admission decisions by endpoint and outcome', labelNames: ['endpoint', 'allowed', 'dry_run'] as const, registers: [registry] }),
    policyResults,
    latency: new Histogram({
      name: 'trustgate_admission_duration_seconds', help: 'Time from request parsed to response built', labelNames: ['endpoint'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 8], registers: [registry],
    }),
    badRequests: new Counter({ name: 'trustgate_bad_requests_total', help: 'Rejected admission bodies by error', labelNames: ['error'] as const, registers: [registry] }),
    policyReloads: new Counter({ name: 'trustgate_policy_reloads_total', help: 'Policy set loads by result (ok, rejected)', labelNames: ['result'] as const, registers: [registry] }),
    policiesLoaded: new Gauge({ name: 'trustgate_policies_loaded', help: 'Policies in the active set', registers: [registry] }),
    policyWarnings: new Gauge({ name: 'trustgate_policy_warnings', help: 'Warnings of the active set: rules that never match, validations that fail on every DELETE, exceptions expired or about to (listed in the log at load)', registers: [registry] }),
    policySetInfo: new Gauge({ name: 'trustgate_policy_set_info', help: 'The active policy set revision (value 1)', labelNames: ['revision'] as const, registers: [registry] }),
    patches: new Counter({ name: 'trustgate_patch_operations_total', help: 'JSON patch operations answered for admitted requests, by endpoint and the policy that made them (mutation policies, digest pins)', labelNames: ['endpoint', 'policy'] as const, registers: [registry] }),
    exceptionsApplied: new Counter({ name: 'trustgate_policy_exceptions_applied_total', help: 'Policy results in which a PolicyException waived failures, by exception and policy', labelNames: ['exception', 'policy'] as const, registers: [registry] }),
    exceptionExpiry: new Gauge({ name: 'trustgate_policy_exception_expiry_timestamp_seconds', help: 'When each loaded PolicyException stops waiving (alert on time() approaching it)', labelNames: ['exception'] as const, registers: [registry] }),
    lastReloadFailed: new Gauge({ name: 'trustgate_policy_last_reload_failed', help: '1 while the newest policy files are rejected and the last good set is serving', registers: [registry] }),
    tlsReloads: new Counter({ name: 'trustgate_tls_reloads_total', help: 'Serving certificate reloads by result', labelNames: ['result'] as const, registers: [registry] }),
    auditWritten: new Counter({ name: 'trustgate_audit_records_written_total', help: 'Decision records written to the spool', registers: [registry] }),
    auditLost: new Counter({ name: 'trustgate_audit_records_lost_total', help: 'Decisions that could not be recorded (spool full or unwritable)', registers: [registry] }),
    auditAcked: new Counter({ name: 'trustgate_audit_records_acknowledged_total', help: 'Records acknowledged by each sink', labelNames: ['sink'] as const, registers: [registry] }),
    auditSinkErrors: new Counter({ name: 'trustgate_audit_sink_errors_total', help: 'Failed deliveries by sink', labelNames: ['sink'] as const, registers: [registry] }),
    auditSpoolBytes: new Gauge({ name: 'trustgate_audit_spool_bytes', help: 'Bytes in the audit spool', registers: [registry] }),
    auditSpoolLimit: new Gauge({ name: 'trustgate_audit_spool_limit_bytes', help: 'The audit spool\'s size limit (--audit-spool-max-bytes): at it, admissions are refused (--audit-full deny) or admitted unrecorded', registers: [registry] }),
    auditBacklogBytes: new Gauge({ name: 'trustgate_audit_backlog_bytes', help: 'Spooled bytes a sink has not acknowledged', labelNames: ['sink'] as const, registers: [registry] }),
    // outside the audit store, a witness of each chain's length: a log cut short below it was truncated
    auditCheckpointSeq: new Gauge({ name: 'trustgate_audit_checkpoint_seq', help: 'The seq of the newest record carrying a signed checkpoint (this replica\'s chain)', registers: [registry] }),
    auditBacklogAge: new Gauge({ name: 'trustgate_audit_backlog_age_seconds', help: 'Age of the oldest record a sink has not acknowledged', labelNames: ['sink'] as const, registers: [registry] }),
    registryRequests: new Histogram({
      name: 'trustgate_registry_request_seconds', help: 'Registry HTTP exchanges by registry host and outcome (HTTP status, or error)', labelNames: ['registry', 'outcome'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry],
    }),
    authorizationChecks: new Counter({ name: 'trustgate_authorization_checks_total', help: 'Authorization checks of policies (authorizer in CEL) by outcome: allowed, denied, error (SubjectAccessReview failed), cached', labelNames: ['outcome'] as const, registers: [registry] }),
    imageCache: new Counter({ name: 'trustgate_image_cache_total', help: 'Image verification look-ups by cache result (hit, miss, coalesced; refresh: a hit that started a background re-verification)', labelNames: ['result'] as const, registers: [registry] }),
    imageVerifications: new Histogram({
      name: 'trustgate_image_verification_seconds', help: 'Uncached image verifications (registry + signatures) by result or failure code', labelNames: ['result'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 8], registers: [registry],
    }),
    certificateExpiry: new Gauge({ name: 'trustgate_tls_certificate_expiry_seconds', help: 'Unix time when the serving certificate expires', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

export function auditMetrics(m: Metrics): import('../audit/index.js').AuditMetrics {
  return {
    written: () => m.auditWritten.inc(),
    lost: () => m.auditLost.inc(),
    acked: (sink, n) => m.auditAcked.inc({ sink }, n),
    sinkError: (sink) => m.auditSinkErrors.inc({ sink }),
    spoolBytes: (bytes) => m.auditSpoolBytes.set(bytes),
    spoolLimit: (bytes) => m.auditSpoolLimit.set(bytes),
    checkpoint: (seq) => m.auditCheckpointSeq.set(seq),
    backlog: (sink, bytes, age) => {
      m.auditBacklogBytes.set({ sink }, bytes);
      m.auditBacklogAge.set({ sink }, age);
    },
  };
}
