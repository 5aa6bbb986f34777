// The monitoring that `trustgate manifests --monitoring` renders: its alert rules checked and
// unit-tested by Prometheus' own promtool (Debian's `prometheus` package), every alert fired by
// series shaped as trustgate exports them and kept quiet by healthy ones; every metric and label
// the rules read exists in trustgate's registry; a live server's /metrics passes promtool's lint.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseAllDocuments, stringify } from 'yaml';
import { alertGroups, type AlertRule } from '../../src/kube/monitoring.js';
import { createMetrics } from '../../src/server/metrics.js';
import { startTestServer } from '../helpers/server.js';
import { serviceOrSkip } from '../helpers/services.js';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const NS = 'trustgate';

const rendered = async (...flags: string[]) => parseAllDocuments((await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--policies', `${root}policies`, '--monitoring', ...flags], { cwd: root })).stdout).map((d) => d.toJS() as Record<string, any>);

const promtoolFound = run('promtool', ['--version']).then(() => true as const, () => 'promtool is not installed (Debian package prometheus)');
const needPromtool = async (t: Parameters<typeof serviceOrSkip>[0]) => (await serviceOrSkip(t, 'promtool', () => promtoolFound)) !== undefined;

/** series as trustgate exports them once the operator's target labels are on */
const at = (name: string, labels: Record<string, string> = {}) => `${name}{${Object.entries({ namespace: NS, pod: 'trustgate-0', ...labels }).map(([k, v]) => `${k}="${v}"`).join(', ')}}`;

interface AlertCase {
  alert: string;
  /** series → promtool's expanding notation, sampled every minute from time 0 (the Unix epoch) */
  series: Record<string, string>;
  /** when to look, in minutes */
  minute: number;
  /** the alert's labels besides alertname and severity; absent: it must not fire */
  fires?: Record<string, string>;
  /** what `$value` renders as in the annotations */
  value?: string;
}

const pod = { namespace: NS, pod: 'trustgate-0' };
const cronjob = (time: 'schedule' | 'successful') => `kube_cronjob_status_last_${time}_time{namespace="${NS}", cronjob="trustgate-scan", job="kube-state-metrics"}`;
const DAY = 86_400;
const CASES: AlertCase[] = [
  { alert: 'TrustgateDown', series: { [`up{job="trustgate", namespace="${NS}", pod="trustgate-0"}`]: '0x10' }, minute: 6, fires: {} },
  { alert: 'TrustgateDown', series: { [`up{job="trustgate", namespace="${NS}", pod="trustgate-0"}`]: '0x10', [`up{job="trustgate", namespace="${NS}", pod="trustgate-1"}`]: '1x10' }, minute: 6 },
  { alert: 'TrustgateReplicaDown', series: { [`up{job="trustgate", namespace="${NS}", pod="trustgate-0"}`]: '0x15' }, minute: 11, fires: { job: 'trustgate', ...pod } },
  { alert: 'TrustgateReplicaDown', series: { [`up{job="trustgate", namespace="${NS}", pod="trustgate-0"}`]: '1x15' }, minute: 11 },
  { alert: 'TrustgateAdmissionErrors', series: { [at('trustgate_admission_requests_total', { endpoint: 'validate', code: '500' })]: '0+60x20' }, minute: 16, fires: { ...pod, code: '500' }, value: '1' },
  { alert: 'TrustgateAdmissionErrors', series: { [at('trustgate_admission_requests_total', { endpoint: 'validate', code: '200' })]: '0+60x20', [at('trustgate_admission_requests_total', { endpoint: 'validate', code: '400' })]: '0+60x20' }, minute: 16 },
  {
    alert: 'TrustgateSlowAdmissions', minute: 16, fires: { namespace: NS, endpoint: 'validate' }, value: '4.975s',
    series: { [at('trustgate_admission_duration_seconds_bucket', { endpoint: 'validate', le: '2.5' })]: '0x20', [at('trustgate_admission_duration_seconds_bucket', { endpoint: 'validate', le: '5' })]: '0+60x20', [at('trustgate_admission_duration_seconds_bucket', { endpoint: 'validate', le: '+Inf' })]: '0+60x20' },
  },
  { alert: 'TrustgateSlowAdmissions', minute: 16, series: { [at('trustgate_admission_duration_seconds_bucket', { endpoint: 'validate', le: '0.005' })]: '0+60x20', [at('trustgate_admission_duration_seconds_bucket', { endpoint: 'validate', le: '+Inf' })]: '0+60x20' } },
  { alert: 'TrustgateEvaluationErrors', series: { [at('trustgate_policy_results_total', { policy: 'signed-images', mode: 'enforce', result: 'error', code: 'REGISTRY_UNAVAILABLE' })]: '0+60x30' }, minute: 20, fires: { namespace: NS, policy: 'signed-images', code: 'REGISTRY_UNAVAILABLE' }, value: '1' },
  { alert: 'TrustgateEvaluationErrors', series: { [at('trustgate_policy_results_total', { policy: 'signed-images', mode: 'enforce', result: 'fail', code: 'SIGNATURE_NOT_FOUND' })]: '0+60x30' }, minute: 20 },
  { alert: 'TrustgatePolicyReloadFailing', series: { [at('trustgate_policy_last_reload_failed')]: '0 1x20' }, minute: 15, fires: pod, value: '1' },
  { alert: 'TrustgatePolicyReloadFailing', series: { [at('trustgate_policy_last_reload_failed')]: '0x20' }, minute: 15 },
  { alert: 'TrustgatePolicyRevisionsDiffer', series: { [at('trustgate_policy_set_info', { revision: 'a1b2' })]: '1x20', [at('trustgate_policy_set_info', { pod: 'trustgate-1', revision: 'c3d4' })]: '1x20' }, minute: 16, fires: { namespace: NS }, value: '2' },
  { alert: 'TrustgatePolicyRevisionsDiffer', series: { [at('trustgate_policy_set_info', { revision: 'a1b2' })]: '1x20', [at('trustgate_policy_set_info', { pod: 'trustgate-1', revision: 'a1b2' })]: '1x20' }, minute: 16 },
  { alert: 'TrustgateClusterCacheNotSynced', series: { [at('trustgate_cluster_cache_synced', { cache: 'namespaces' })]: '0x15' }, minute: 11, fires: { ...pod, cache: 'namespaces' }, value: '0' },
  { alert: 'TrustgateClusterCacheNotSynced', series: { [at('trustgate_cluster_cache_synced', { cache: 'namespaces' })]: '1x15' }, minute: 11 },
  // time() is the minute looked at: an exception expiring 3 days after the epoch has 2d 22h 59m left at minute 61
  { alert: 'TrustgatePolicyExceptionExpiring', series: { [at('trustgate_policy_exception_expiry_timestamp_seconds', { exception: 'legacy-batch' })]: `${3 * DAY}x70` }, minute: 61, fires: { namespace: NS, exception: 'legacy-batch' }, value: '2d 22h 59m 0s' },
  { alert: 'TrustgatePolicyExceptionExpiring', series: { [at('trustgate_policy_exception_expiry_timestamp_seconds', { exception: 'legacy-batch' })]: `${30 * DAY}x70` }, minute: 61 },
  // expired: it waives nothing any more, and TrustgatePolicyWarnings says so
  { alert: 'TrustgatePolicyExceptionExpiring', series: { [at('trustgate_policy_exception_expiry_timestamp_seconds', { exception: 'legacy-batch' })]: '60x70' }, minute: 61 },
  { alert: 'TrustgatePolicyWarnings', series: { [at('trustgate_policy_warnings')]: '2x70' }, minute: 61, fires: { namespace: NS }, value: '2' },
  { alert: 'TrustgatePolicyWarnings', series: { [at('trustgate_policy_warnings')]: '0x70' }, minute: 61 },
  { alert: 'TrustgateCertificateExpiring', series: { [at('trustgate_tls_certificate_expiry_seconds')]: `${10 * DAY}x70` }, minute: 61, fires: pod, value: '9d 22h 59m 0s' },
  { alert: 'TrustgateCertificateExpiring', series: { [at('trustgate_tls_certificate_expiry_seconds')]: `${60 * DAY}x70` }, minute: 61 },
  { alert: 'TrustgateCertificateExpiringCritical', series: { [at('trustgate_tls_certificate_expiry_seconds')]: `${DAY}x20` }, minute: 11, fires: pod, value: '23h 49m 0s' },
  { alert: 'TrustgateCertificateExpiringCritical', series: { [at('trustgate_tls_certificate_expiry_seconds')]: `${10 * DAY}x70` }, minute: 61 },
  { alert: 'TrustgateCertificateReloadFailing', series: { [at('trustgate_tls_reloads_total', { result: 'error' })]: '0 0 0 1x5' }, minute: 5, fires: { ...pod, result: 'error' } },
  { alert: 'TrustgateCertificateReloadFailing', series: { [at('trustgate_tls_reloads_total', { result: 'ok' })]: '0 0 0 1x5' }, minute: 5 },
  { alert: 'TrustgateAuditRecordsLost', series: { [at('trustgate_audit_records_lost_total')]: '0 0 5x5' }, minute: 4, fires: pod, value: '5' },
  { alert: 'TrustgateAuditRecordsLost', series: { [at('trustgate_audit_records_lost_total')]: '0x5' }, minute: 4 },
  { alert: 'TrustgateAuditSpoolFilling', series: { [at('trustgate_audit_spool_bytes')]: '900x10', [at('trustgate_audit_spool_limit_bytes')]: '1000x10' }, minute: 6, fires: pod, value: '90%' },
  { alert: 'TrustgateAuditSpoolFilling', series: { [at('trustgate_audit_spool_bytes')]: '100x10', [at('trustgate_audit_spool_limit_bytes')]: '1000x10' }, minute: 6 },
  { alert: 'TrustgateAuditSinkFailing', series: { [at('trustgate_audit_sink_errors_total', { sink: 'http' })]: '0+6x20' }, minute: 16, fires: { ...pod, sink: 'http' } },
  { alert: 'TrustgateAuditSinkFailing', series: { [at('trustgate_audit_sink_errors_total', { sink: 'http' })]: '3x20' }, minute: 16 },
  { alert: 'TrustgateAuditBacklogStale', series: { [at('trustgate_audit_backlog_age_seconds', { sink: 'postgres' })]: '1000x10' }, minute: 6, fires: { ...pod, sink: 'postgres' }, value: '16m 40s' },
  { alert: 'TrustgateAuditBacklogStale', series: { [at('trustgate_audit_backlog_age_seconds', { sink: 'postgres' })]: '100x10' }, minute: 6 },
  {
    alert: 'TrustgateRegistryErrors', minute: 16, fires: { namespace: NS, registry: 'ghcr.io' }, value: '50%',
    series: { [at('trustgate_registry_request_seconds_count', { registry: 'ghcr.io', outcome: 'error' })]: '0+30x20', [at('trustgate_registry_request_seconds_count', { registry: 'ghcr.io', outcome: '200' })]: '0+30x20' },
  },
  { alert: 'TrustgateRegistryErrors', minute: 16, series: { [at('trustgate_registry_request_seconds_count', { registry: 'ghcr.io', outcome: '404' })]: '0+30x20', [at('trustgate_registry_request_seconds_count', { registry: 'ghcr.io', outcome: '200' })]: '0+30x20' } },
  { alert: 'TrustgateAuthorizationCheckErrors', series: { [at('trustgate_authorization_checks_total', { outcome: 'error' })]: '0+60x20' }, minute: 16, fires: pod, value: '1' },
  { alert: 'TrustgateAuthorizationCheckErrors', series: { [at('trustgate_authorization_checks_total', { outcome: 'allowed' })]: '0+60x20' }, minute: 16 },
  // kube-state-metrics' CronJob times, in seconds since the epoch
  { alert: 'TrustgateScanFailed', series: { [cronjob('schedule')]: '7200x70', [cronjob('successful')]: '3600x70' }, minute: 61, fires: { namespace: NS, cronjob: 'trustgate-scan' } },
  { alert: 'TrustgateScanFailed', series: { [cronjob('schedule')]: '7200x70' }, minute: 61, fires: { namespace: NS, cronjob: 'trustgate-scan' } },
  { alert: 'TrustgateScanFailed', series: { [cronjob('schedule')]: '7200x70', [cronjob('successful')]: '7260x70' }, minute: 61 },
];

// with the scheduled scan's alert, which --scan-schedule adds
const groups = alertGroups(NS, { scheduledScan: true });
const rules = groups.flatMap((g) => g.rules);
const ruleNamed = (name: string) => rules.find((r) => r.alert === name)!;

/** An annotation as Prometheus renders it for a case: the labels and the value put in. */
function renderedAnnotation(template: string, labels: Record<string, string>, value: string | undefined): string {
  return template
    .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_m, k: string) => labels[k] ?? '')
    .replace(/\{\{ \$value(?: \| \w+)? \}\}/g, () => value ?? '(no value given)');
}

function promtoolTests(): object {
  return {
    rule_files: ['rules.yaml'],
    evaluation_interval: '1m',
    tests: CASES.map((c) => {
      const rule = ruleNamed(c.alert);
      return {
        interval: '1m',
        input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
        alert_rule_test: [{
          eval_time: `${c.minute}m`, alertname: c.alert,
          exp_alerts: c.fires ? [{
            exp_labels: { severity: rule.labels.severity, ...c.fires },
            exp_annotations: { summary: rule.annotations.summary, description: renderedAnnotation(rule.annotations.description, c.fires, c.value) },
          }] : [],
        }],
      };
    }),
  };
}

t.test('the rendered PrometheusRule passes promtool check rules, and every alert fires when it should and only then (promtool test rules)', async (t) => {
  if (!(await needPromtool(t))) return;
  const objects = await rendered('--scan-schedule', '@hourly');
  const rule = objects.find((o) => o.kind === 'PrometheusRule')!;
  t.same(rule.spec.groups, groups, 'the CLI renders the alert groups tested here');
  const unscheduled = (await rendered()).find((o) => o.kind === 'PrometheusRule')!;
  t.notOk(unscheduled.spec.groups.some((g: { name: string }) => g.name === 'trustgate.scan'), 'the scan\'s alert only with the scan');
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-alerts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'rules.yaml'), stringify({ groups: rule.spec.groups }));
  const check = await run('promtool', ['check', 'rules', join(dir, 'rules.yaml')]).catch((err) => err);
  t.match(check.stdout, `SUCCESS: ${rules.length} rules found`, check.stderr || 'promtool check rules');

  // each alert has a case that fires it and one that does not
  for (const r of rules) {
    t.ok(CASES.some((c) => c.alert === r.alert && c.fires), `${r.alert} has a firing case`);
    t.ok(CASES.some((c) => c.alert === r.alert && !c.fires), `${r.alert} has a quiet case`);
  }
  await writeFile(join(dir, 'tests.yaml'), stringify(promtoolTests()));
  const unit = await run('promtool', ['test', 'rules', join(dir, 'tests.yaml')]).then((r) => ({ ...r, code: 0 }), (err) => err);
  t.equal(unit.code, 0, `promtool test rules: ${CASES.length} cases\n${unit.stdout}${unit.stderr}`);
});

t.test('promtool notices a broken expectation: the unit tests have teeth', async (t) => {
  if (!(await needPromtool(t))) return;
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-alerts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'rules.yaml'), stringify({ groups }));
  const tests = promtoolTests() as { tests: { alert_rule_test: { exp_alerts: unknown[] }[] }[] };
  // the quiet case of TrustgateReplicaDown (a replica that is up) claimed to fire
  const quiet = CASES.findIndex((c) => c.alert === 'TrustgateReplicaDown' && !c.fires);
  tests.tests[quiet]!.alert_rule_test[0]!.exp_alerts = [{ exp_labels: { severity: 'warning', job: 'trustgate', ...pod } }];
  await writeFile(join(dir, 'tests.yaml'), stringify(tests));
  const unit = await run('promtool', ['test', 'rules', join(dir, 'tests.yaml')]).then(() => ({ code: 0, stdout: '' }), (err) => err);
  t.equal(unit.code, 1);
  t.match(`${unit.stdout}${unit.stderr}`, /alertname: TrustgateReplicaDown, time: 11m/);
});

/** metric names and the label names each rule reads of them */
function metricsRead(rule: AlertRule): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const m of rule.expr.matchAll(/\b(trustgate_\w+)(?:\{([^}]*)\})?/g)) {
    const labels = out.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/(\w+)\s*(?:=~|!=|!~|=)/g)) labels.add(l[1]!);
    out.set(m[1]!, labels);
  }
  // grouping labels: each must be on every metric of the expression (or be a target label)
  for (const g of rule.expr.matchAll(/\b(?:by|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const l of g[1]!.split(',').map((s) => s.trim()).filter(Boolean)) for (const labels of out.values()) labels.add(l);
  }
  return out;
}

// what prometheus-operator puts on every scraped series, and the histogram's bucket label
const TARGET_LABELS = new Set(['namespace', 'pod', 'job', 'instance', 'service', 'endpoint', 'container']);

t.test('every metric and label the rules read is one trustgate exports', async (t) => {
  const { registry } = createMetrics() as unknown as { registry: import('prom-client').Registry };
  for (const rule of rules) {
    for (const [name, labels] of metricsRead(rule)) {
      const base = name.replace(/_(bucket|count|sum)$/, '');
      const metric = (registry.getSingleMetric(name) ?? registry.getSingleMetric(base)) as { labelNames?: string[]; constructor: { name: string } } | undefined;
      if (!t.ok(metric, `${rule.alert}: ${name} is exported`)) continue;
      const known = new Set([...(metric!.labelNames ?? []), ...TARGET_LABELS, ...(name.endsWith('_bucket') ? ['le'] : [])]);
      for (const l of labels) t.ok(known.has(l), `${rule.alert}: ${name} has the label ${l}`);
    }
  }
  t.ok(metricsRead(ruleNamed('TrustgateAuditSpoolFilling')).has('trustgate_audit_spool_limit_bytes'), 'the spool alert reads the limit, not a constant');
  // the check has teeth: a misspelt matcher and a grouping label the metric lacks are both seen
  const bogus = metricsRead({ ...ruleNamed('TrustgateCertificateReloadFailing'), expr: 'sum by (policy) (increase(trustgate_tls_reloads_total{reslt="error"}[15m])) > 0' });
  t.same([...bogus.get('trustgate_tls_reloads_total')!].sort(), ['policy', 'reslt']);
});

t.test('a live server\'s /metrics passes promtool check metrics (prom-client\'s own process gauges aside)', async (t) => {
  if (!(await needPromtool(t))) return;
  const server = await startTestServer();
  t.teardown(() => server.close());
  const metrics = await server.get('/metrics');
  t.match(metrics.text, /^trustgate_audit_spool_limit_bytes 1073741824$/m, 'the spool limit is exported from the start');
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-metrics-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'metrics.txt'), metrics.text);
  const lint = await run('sh', ['-c', `promtool check metrics < ${join(dir, 'metrics.txt')}`]).then((r) => r, (err) => err);
  const problems = `${lint.stdout}${lint.stderr}`.split('\n').filter(Boolean);
  // collectDefaultMetrics names its handle and request gauges *_total (prom-client's naming, not ours)
  const ours = problems.filter((p) => !/^trustgate_process_nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(p));
  t.same(ours, [], 'no lint problem in trustgate\'s own metrics');
});

t.test('the ServiceMonitor scrapes every replica over TLS, checking the Service name against the CA the certificate comes from', async (t) => {
  const monitor = (await rendered('--namespace', 'gate')).find((o) => o.kind === 'ServiceMonitor')!;
  t.match(monitor, { metadata: { name: 'trustgate', namespace: 'gate' }, spec: { selector: { matchLabels: { 'app.kubernetes.io/name': 'trustgate' } } } });
  t.same(monitor.spec.endpoints[0].tlsConfig, { ca: { secret: { name: 'trustgate-tls', key: 'ca.crt' } }, serverName: 'trustgate.gate.svc' });
  t.match(monitor.spec.endpoints[0], { port: 'https', scheme: 'https', path: '/metrics' });
  const selfManaged = (await rendered('--self-managed-certs')).find((o) => o.kind === 'ServiceMonitor')!;
  t.same(selfManaged.spec.endpoints[0].tlsConfig.ca, { secret: { name: 'trustgate-ca', key: 'ca.crt' } }, 'self-managed: the CA trustgate keeps');
  const rule = (await rendered('--namespace', 'gate')).find((o) => o.kind === 'PrometheusRule')!;
  t.match(rule.spec.groups[0].rules[0].expr, 'up{job="trustgate", namespace="gate"}', 'up is scoped to the namespace rendered');
  const plain = parseAllDocuments((await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--policies', `${root}policies`], { cwd: root })).stdout).map((d) => d.toJS() as { kind: string });
  t.notOk(plain.some((o) => o.kind === 'ServiceMonitor' || o.kind === 'PrometheusRule'), 'only with --monitoring: the CRDs are prometheus-operator\'s');
});

t.test('the kustomize monitoring component is what --monitoring renders', async (t) => {
  const component = parseAllDocuments(await readFile(`${root}deploy/components/monitoring/monitoring.yaml`, 'utf8')).map((d) => d.toJS());
  const objects = (await rendered()).filter((o) => o.apiVersion === 'monitoring.coreos.com/v1');
  t.same(component, objects, 'regenerate with npm run manifests:monitoring');
  const only = await rendered('--only-monitoring');
  t.same(only, objects, '--only-monitoring renders just the two');
});
