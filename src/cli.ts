#!/usr/bin/env node
// trustgate's one entry point. Every command fails with a clear message and a non-zero exit.
import { X509Certificate, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
// types only: client-node itself is loaded when a command talks to a cluster
import type { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { admit, AdmissionInputError } from './admission/index.js';
import { reviewForObject } from './admission/synthesize.js';
import type { KubeObject } from './admission/types.js';
import { AuditPipeline, createSink, HEADER_LINE_ERROR, isHeaderLine, NullDecisionRecorder, parseHeaderLines, query, summarize, summaryText, tableRow, verifyRecords, type QueryFilter } from './audit/index.js';
import { CheckpointKeyError, generateSigningKey, readVerificationKeys, type KeyAlgorithm } from './audit/checkpoint.js';
import { TRUSTGATE_VERSION, type DecisionRecord } from './audit/record.js';
import { readLogLines } from './audit/sources.js';
import { readPostgresRecords, redactedURL } from './audit/sinks/postgres.js';
import { ConfigError, flagOn, parseFlags, resolveServeConfig, SERVE_OPTIONS, serveFlagKinds } from './config.js';
import { didYouMean } from './did-you-mean.js';
import { readClusterFile, readClusterObjects, StaticCluster } from './kube/cluster-file.js';
import { authorizationRulesErrors, exceptionReport, runKyvernoTests, policyReports, POLICY_REPORT_LABELS, REPORT_APIS, type ReportApi, EXPIRY_WARNING_DAYS, parseInstant, findingLine, overlongExceptions, isConfigMap, junitReport, loadPolicySet, namespacesIn, patchedObject, withManifestCrds, policiesNeverFailed, readManifests, runPolicyTests, sarifReport, scanEach, StaticAuthorizer, type AuthorizationRule, type ManifestObject, type PolicySet, type ScanFinding } from './policy/index.js';
import { renderManifests, webhookRules } from './kube/manifests.js';
import { renderMonitoring } from './kube/monitoring.js';
import { stringify as toYaml } from 'yaml';
import { generateCertificates, generateClientCertificate, startServer } from './server/index.js';
import { createImageVerifier } from './supplychain/index.js';
import { parseImageReference } from './supplychain/oci/index.js';
import { readTrustedRootFile, verifyArtifact, VerificationFailure, type Artifact } from './supplychain/sigstore/index.js';

const USAGE = `trustgate — Kubernetes admission webhook for software-supply-chain policy

usage:
  trustgate serve   [--policies DIR] [--listen HOST:PORT] [--tls-cert F --tls-key F] [--config FILE] …
  trustgate lint    DIR|FILE... [--strict] [--max-exception-days N]
                    warnings (rules that never match, reads of object on DELETE, exceptions expired or about to) fail too with --strict;
                    --max-exception-days: a PolicyException expiring further ahead is an error
  trustgate exceptions DIR|FILE... [--format table|json]   every PolicyException, soonest expiry first: status, days left, scope, reason
  trustgate test    DIR... [--junit FILE]     FILE: the outcomes as JUnit XML, for CI test reports
  trustgate eval    --policies DIR (--review F | --object F [--old-object F] [--operation OP] [--namespace NS])
                    [--user NAME] [--group G]... [--cluster-file F] [--authorizations F] [--now TIME] [--mutate] [--patched] [--explain]
                    --patched: print the object once /mutate's patch is applied, instead of the response
                    --now: the time PolicyExceptions are judged at (default: now)
                    --user/--group: who sends the object (default trustgate-offline, system:authenticated)
                    --authorizations: answers to the policies' authorization checks, as a PolicyTest lists them
  trustgate scan    --policies DIR (FILE|DIR|-... | --kubeconfig F | --in-cluster) [--kubeconfig F | --in-cluster | --cluster-file F]
                    [--namespace NS] [--user NAME] [--group G]... [--format table|json|sarif|policyreport] [--all] [--strict] [--policy-reports] [--report-api wgpolicyk8s.io|openreports.io] [registry flags as for verify]
                    [--audit SINK... [--audit-header 'Name: value']... [--audit-ca F] [--audit-timeout-seconds N] [--replica NAME]]
                    every object of the manifests (or, with a cluster and no PATH, in the cluster) judged as its CREATE
                    would be: exit 1 if any is denied (--strict: or fails a warn/audit policy), 2 if the scan is incomplete
  trustgate verify  IMAGE --policies DIR [--registry-config F] [--insecure-registry HOST:PORT]... [--registry-ca F]... [--json]
                    what was found for one image and why it passes or fails
  trustgate verify-bundle --bundle F (--certificate-identity ID --certificate-oidc-issuer URL | --key F)
                    [--trusted-root F] FILE|sha256:HEX      exit 0 = verified (sigstore-conformance protocol)
  trustgate certs   generate --dns NAME... --out DIR [--days N]
  trustgate certs   client --name NAME --out DIR [--days N]   a CA and a client certificate for the API server (serve --client-ca)
  trustgate manifests [--namespace NS] [--image IMG] [--replicas N] [--policies DIR] [--ca-file F]
                    [--tls-secret NAME] [--audit SINK]... [--timeout-seconds N] [--pull-secrets] [--self-managed-certs]
                    [--client-ca-file F [--client-name NAME]...] [--audit-signing-secret NAME] [--scan-schedule CRON [--scan-policy-reports [--report-api A]]] [--monitoring | --only-monitoring]
  trustgate audit   verify SOURCE... [--key F]... | query SOURCE... [--since T] [--until T] [--namespace NS] [--user U]
                    [--policy P] [--exception E] [--endpoint validate|mutate|scan] [--allowed|--denied] [--image REF] [--format json|table]
  trustgate audit   summary SOURCE... [the filters of query] [--format table|json]   decisions, denials by policy, exceptions, images, who was denied
                    SOURCE: a file sink's file (rotated siblings included), a spool directory, or postgres://…
                    --key: a replica's public key; its signed checkpoints are then checked and required
  trustgate audit   keygen --out DIR [--algorithm ed25519|p256|p384]
                    a key pair for serve --audit-signing-key (audit-signing.key, 0600) and audit verify --key (audit-signing.pub)

exit codes: 0 success (eval: allowed), 1 failure (lint errors, failed tests, eval: denied), 2 usage or input error
`;

class UsageError extends Error {}

async function readData(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new UsageError(`${what} ${path}: no such file`);
  }
  // JSON first: the yaml parser took 6 s for a 1.3 MB object (20,000 containers), JSON.parse 10 ms
  if (/^\s*[{[]/.test(text)) {
    try {
      return JSON.parse(text);
    } catch {
      // YAML's flow style also starts so; its parser says what is wrong
    }
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new UsageError(`${what} ${path} is not JSON or YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

async function loadOrFail(paths: string[]) {
  const result = await loadPolicySet(paths);
  if (!result.set) {
    for (const e of result.errors) process.stderr.write(`${e.message}\n`);
    process.stderr.write(`${result.errors.length} error(s); nothing loaded\n`);
    return undefined;
  }
  for (const w of result.set.warnings) process.stderr.write(`${w.position.file}:${w.position.line}:${w.position.col}: warning: ${w.detail}\n`);
  return result.set;
}

/** A whole number of at least 1 from a flag, or a usage error naming it. */
function positiveWhole(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive whole number`);
  return n;
}

async function lint(argv: string[]): Promise<number> {
  const { positionals, values } = parseFlags(argv, { strict: 'bool', 'max-exception-days': 'value' });
  if (!positionals.length) throw new UsageError('lint needs at least one policy directory or file');
  const maxDays = positiveWhole(values.get('max-exception-days')?.at(-1) as string | undefined, '--max-exception-days');
  const set = await loadOrFail(positionals);
  if (!set) return 1;
  // the organisation's longest risk acceptance: an error, not a warning (it only becomes less true with time)
  const overlong = maxDays === undefined ? [] : overlongExceptions(set.exceptions.exceptions, Date.now(), maxDays);
  for (const e of overlong) process.stderr.write(`${e.message}\n`);
  if (overlong.length) {
    process.stderr.write(`${overlong.length} error(s)\n`);
    return 1;
  }
  const warned = set.warnings.length ? `, ${set.warnings.length} warning(s)` : '';
  process.stdout.write(`ok: ${set.policies.length} policies, ${set.trustRoots.length} trust roots, ${set.exceptions.size ? `${set.exceptions.size} exceptions, ` : ''}${set.tests.length} test suites in ${set.files} files (revision ${set.revision})${set.skipped ? `; ${set.skipped} other documents (params, data, objects) not run as policies` : ''}${warned}\n`);
  return set.warnings.length && flagOn(values, 'strict') ? 1 : 0;
}

/** `trustgate exceptions`: every PolicyException, soonest expiry first, for a review or a reminder. */
async function exceptions(argv: string[]): Promise<number> {
  const { positionals, values } = parseFlags(argv, { format: 'value' });
  if (!positionals.length) throw new UsageError('exceptions needs at least one policy directory or file');
  const format = (values.get('format')?.at(-1) as string | undefined) ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format must be table or json, not ${JSON.stringify(format)}`);
  const set = await loadOrFail(positionals);
  if (!set) return 1;
  const rows = exceptionReport(set.exceptions.exceptions, Date.now());
  for (const r of rows) {
    if (format === 'json') process.stdout.write(`${JSON.stringify(r)}\n`);
    else process.stdout.write(`${r.status.toUpperCase().padEnd(8)} ${r.expires}  ${String(r.daysLeft).padStart(5)} days  ${r.name}  waives ${r.policies.join(',')}${r.ticket ? `  ticket ${r.ticket}` : ''}\n    ${r.scope}: ${r.reason} (${r.where})\n`);
  }
  const count = (status: string) => rows.filter((r) => r.status === status).length;
  process.stderr.write(`${rows.length} exception(s): ${count('active')} active, ${count('expiring')} expiring within ${EXPIRY_WARNING_DAYS} days, ${count('expired')} expired\n`);
  return 0;
}

async function test(argv: string[]): Promise<number> {
  const { positionals, values } = parseFlags(argv, { junit: 'value' });
  if (!positionals.length) throw new UsageError('test needs at least one directory with policies and PolicyTest suites');
  const set = await loadOrFail(positionals);
  if (!set) return 1;
  const ours = await runPolicyTests(set);
  // Kyverno CLI tests (kyverno-test.yaml) of the Kyverno ValidatingPolicies among them, each with its own policy files
  const kyverno = await runKyvernoTests(positionals);
  const outcomes = [...ours, ...kyverno.outcomes];
  for (const o of outcomes) process.stdout.write(`${o.passed ? 'ok' : 'not ok'} - ${o.suite}: ${o.name}${o.detail ? `\n    ${o.detail}` : ''}\n`);
  for (const n of kyverno.notes) process.stderr.write(`note: ${n}\n`);
  const failed = outcomes.filter((o) => !o.passed).length;
  if (!outcomes.length) process.stdout.write('no PolicyTest suites (or Kyverno tests) found\n');
  if (ours.length) {
    const { untested, needRegistry, neverMutated } = policiesNeverFailed(set, outcomes);
    if (untested.length) process.stderr.write(`note: no case makes these policies fail, so their deny or warn path is untested: ${untested.join(', ')}\n`);
    if (neverMutated.length) process.stderr.write(`note: no case runs these mutation policies to a change (a case with mutated:, or endpoint: mutate), so what they do is untested: ${neverMutated.join(', ')}\n`);
    if (needRegistry.length) process.stderr.write(`note: images-only policies are not judged offline (trustgate verify IMAGE checks them against a registry): ${needRegistry.join(', ')}\n`);
  }
  process.stdout.write(`${outcomes.length - failed} passed, ${failed} failed\n`);
  // after the results are printed, so a report that cannot be written loses none of them
  const junit = values.get('junit')?.at(-1) as string | undefined;
  if (junit) {
    try {
      await writeFile(junit, junitReport(outcomes));
    } catch (err) {
      throw new UsageError(`cannot write the JUnit report ${junit}: ${(err as Error).message}`);
    }
  }
  return failed || !outcomes.length ? 1 : 0;
}

/** Registry access for eval and verify: only what the flags and the policies name. */
async function verifierFromFlags(values: Map<string, unknown[]>, named: ReadonlySet<string>) {
  try {
    return await createImageVerifier({
      registryConfig: values.get('registry-config')?.at(-1) as string | undefined,
      insecureRegistries: (values.get('insecure-registry') as string[] | undefined) ?? [],
      registryCa: (values.get('registry-ca') as string[] | undefined) ?? [],
      namedRegistries: () => named,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** eval --authorizations: a YAML or JSON list of answers, or a PolicyTest-like { authorizations: [...] } */
async function readAuthorizations(path: string): Promise<StaticAuthorizer> {
  const data = await readData(path, 'authorizations');
  const rules = data !== null && typeof data === 'object' && !Array.isArray(data) && 'authorizations' in data ? (data as { authorizations: unknown }).authorizations : data;
  const problems = authorizationRulesErrors(rules);
  if (problems.length) throw new UsageError(problems.map((p) => `${path}: ${p}`).join('\n'));
  return new StaticAuthorizer(rules as AuthorizationRule[]);
}

async function evaluate(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    policies: 'value', review: 'value', object: 'value', 'old-object': 'value', operation: 'value', namespace: 'value',
    'cluster-file': 'value', authorizations: 'value', user: 'value', group: 'value', mutate: 'bool', explain: 'bool', 'sub-resource': 'value',
    'registry-config': 'value', 'insecure-registry': 'value', 'registry-ca': 'value', now: 'value', patched: 'bool',
  });
  const one = (k: string) => values.get(k)?.at(-1) as string | undefined;
  const policies = (values.get('policies') as string[] | undefined) ?? [];
  if (!policies.length) throw new UsageError('eval needs --policies DIR');
  // what-if: the decision once an exception has expired (or before it starts counting)
  const now = one('now') === undefined ? undefined : parseInstant(one('now')!);
  if (one('now') !== undefined && now === undefined) throw new UsageError(`--now ${JSON.stringify(one('now'))} is not an RFC 3339 time or a date`);
  if (Boolean(one('review')) === Boolean(one('object'))) throw new UsageError('eval needs exactly one of --review FILE or --object FILE');
  const set = await loadOrFail(policies);
  if (!set) return 2;
  let review: unknown;
  if (one('review') && (values.has('user') || values.has('group'))) throw new UsageError('--user and --group describe who sends --object; a --review names its own userInfo');
  if (one('review')) review = await readData(one('review')!, 'review');
  else {
    const op = (one('operation') ?? 'CREATE').toUpperCase();
    if (!['CREATE', 'UPDATE', 'DELETE', 'CONNECT'].includes(op)) throw new UsageError(`--operation must be CREATE, UPDATE, DELETE or CONNECT, got ${op}`);
    const object = (await readData(one('object')!, 'object')) as KubeObject;
    const oldObject = one('old-object') ? ((await readData(one('old-object')!, 'old object')) as KubeObject) : undefined;
    try {
      const userInfo = one('user') || values.has('group') ? { username: one('user') ?? 'trustgate-offline', groups: ['system:authenticated', ...(values.get('group') as string[] | undefined) ?? []] } : undefined;
      review = reviewForObject(object, { operation: op as 'CREATE', namespace: one('namespace'), oldObject, subResource: one('sub-resource'), userInfo });
    } catch (err) {
      throw new UsageError(`${one('object')}: ${(err as Error).message}`);
    }
  }
  const cluster = one('cluster-file') ? readClusterFile(one('cluster-file')!) : undefined;
  const authorizer = one('authorizations') ? await readAuthorizations(one('authorizations')!) : undefined;
  const images = await verifierFromFlags(values, set.registries);
  let outcome;
  try {
    outcome = await admit(review, flagOn(values, 'mutate') || flagOn(values, 'patched') ? 'mutate' : 'validate',
      { policies: () => set, recorder: new NullDecisionRecorder(), namespaces: cluster, params: cluster, replica: 'eval', deadlineMs: 8000, images, authorizer }, { explain: flagOn(values, 'explain'), now });
  } catch (err) {
    if (err instanceof AdmissionInputError) throw new UsageError(`the review is not valid: ${err.message}`);
    throw err;
  } finally {
    await images.client.close();
  }
  if (outcome.explain) {
    for (const s of outcome.explain) {
      const what = s.error !== undefined ? `error: ${s.error}` : JSON.stringify(s.value);
      process.stderr.write(`[${s.policy}] ${s.step}${s.expression ? `: ${s.expression}` : ''} => ${what}\n`);
    }
    for (const r of outcome.results) process.stderr.write(`[${r.name}] ${r.mode} ${r.result}${r.code ? ` (${r.code})` : ''}${r.messages.length ? `: ${r.messages.join('; ')}` : ''}\n`);
  }
  // --patched: the object as the API server would store it, once the response's patch is applied
  const printed = flagOn(values, 'patched') ? patchedObject(review, outcome.review.response) : outcome.review;
  if (flagOn(values, 'patched') && !outcome.decision.allowed) process.stderr.write(`denied, so nothing is patched: ${outcome.review.response.status?.message ?? ''}\n`);
  process.stdout.write(`${JSON.stringify(printed, null, 2)}\n`);
  return outcome.decision.allowed ? 0 : 1;
}

/** What a scan judges, and what it could not read. */
interface ScanSubjects {
  /** a cluster's stream through, page by page; manifests are read whole (their Namespaces count) */
  objects: Iterable<ManifestObject> | AsyncIterable<ManifestObject>;
  /** the Namespaces the manifests create, for namespaceSelector */
  created: StaticCluster;
  /** read once the objects are consumed: unreadable documents, groups and resources not read */
  errors(): string[];
  incomplete(): string[];
  notes: string[];
}

/** The manifests' objects or, with a cluster and no PATH, the cluster's (the plural and scope it serves them under, either way). */
async function scanSubjects(paths: string[], kube: typeof import('./kube/index.js') | undefined, kc: KubeConfig | undefined, set: PolicySet): Promise<ScanSubjects> {
  if (kube && kc && !paths.length) {
    const live = await kube.liveObjects(kc, set);
    return {
      objects: live.objects, created: new StaticCluster([]),
      errors: () => live.failures.map((f) => `cannot list ${f}`),
      incomplete: () => (live.failures.length ? [`${live.failures.length} resource(s) not listed`] : []),
      notes: [`read from the cluster: ${live.resources} resource(s) the policies match`],
    };
  }
  const reading = await readManifests(paths).catch((err: Error) => {
    throw new UsageError(err.message);
  });
  const notes: string[] = [];
  if (reading.skipped.length) notes.push(`note: ${reading.skipped.length} document(s) are not Kubernetes objects (no apiVersion or kind) and were not judged: ${reading.skipped.slice(0, 5).join(', ')}${reading.skipped.length > 5 ? ', …' : ''}`);
  // a discovery failure here only leaves some kinds to the plural guessed from them: noted, not fatal
  if (kube && kc) for (const f of await kube.withServedResources(kc, reading.objects)) notes.push(`note: cannot read ${f}; manifests of its kinds are matched by the plural their kind suggests`);
  // kinds not served yet whose CustomResourceDefinitions come with the manifests
  withManifestCrds(reading.objects);
  return {
    objects: reading.objects, created: new StaticCluster(namespacesIn(reading.objects)),
    errors: () => reading.errors,
    incomplete: () => (reading.unreadable ? [`${reading.unreadable} unreadable document(s)`] : []),
    notes,
  };
}

/**
 * scan --audit: every judgement becomes a decision record (endpoint "scan") in a chain of its own
 * (replica scan-HOST-TIME unless --replica: a fresh spool starts at seq 1, and a reused name would
 * collide with an earlier run's rows), spooled in a temporary directory and shipped to the sinks
 * before the scan exits; a record that no sink took fails the scan.
 */
async function scanAuditTrail(values: Map<string, unknown[]>) {
  const specs = (values.get('audit') as string[] | undefined) ?? [];
  if (!specs.length) return undefined;
  const headerLines = (values.get('audit-header') as string[] | undefined) ?? [];
  for (const h of headerLines) if (!isHeaderLine(h)) throw new UsageError(HEADER_LINE_ERROR);
  const caFile = values.get('audit-ca')?.at(-1) as string | undefined;
  const logger = pino({ level: 'warn' }, pino.destination(2));
  let sinks;
  try {
    const ca = caFile ? await readFile(caFile) : undefined;
    sinks = specs.map((spec) => createSink(spec, { headers: parseHeaderLines(headerLines), ca, warn: (message, fields) => logger.warn(fields, message) }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // how long the scan waits, at the end, for its sinks to take its records
  const waitSeconds = positiveWhole(values.get('audit-timeout-seconds')?.at(-1) as string | undefined, '--audit-timeout-seconds') ?? 120;
  const spoolDir = await mkdtemp(join(tmpdir(), 'trustgate-scan-spool-'));
  const recorder = await AuditPipeline.start({ spoolDir, sinks, whenFull: 'deny', spoolSync: 'write', logger });
  const replica = (values.get('replica')?.at(-1) as string | undefined) ?? `scan-${hostname()}-${new Date().toISOString().replace(/[-:]|\.\d+/g, '')}`;
  return {
    recorder, replica, labels: { cluster: '', version: TRUSTGATE_VERSION },
    /** waits for the sinks: what to say, and whether every record reached them all (if not, the spool is left for inspection) */
    async finish(): Promise<{ delivered: boolean; message: string }> {
      const delivered = await recorder.drained(waitSeconds * 1000);
      const { seq } = recorder.chainHead;
      await recorder.close();
      const to = sinks.map((s) => s.name).join(', ');
      if (!delivered) return { delivered, message: `audit: not every record reached ${to} within ${waitSeconds} s; what was not delivered is in ${spoolDir}` };
      await rm(spoolDir, { recursive: true, force: true });
      return { delivered, message: `audit: ${seq} record(s) delivered to ${to} (replica ${replica})` };
    },
  };
}

/** --report-api: which of the two report APIs the policy reports are written in */
function reportApiFlag(value: string | undefined): ReportApi {
  if (value === undefined) return 'wgpolicyk8s.io';
  if (!Object.hasOwn(REPORT_APIS, value)) throw new UsageError(`--report-api is ${Object.keys(REPORT_APIS).join(' or ')}, not ${JSON.stringify(value)}`);
  return value as ReportApi;
}

async function scan(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    policies: 'value', namespace: 'value', 'cluster-file': 'value', kubeconfig: 'value', 'in-cluster': 'bool', user: 'value', group: 'value', format: 'value', all: 'bool', strict: 'bool', 'policy-reports': 'bool', 'report-api': 'value',
    'registry-config': 'value', 'insecure-registry': 'value', 'registry-ca': 'value',
    audit: 'value', 'audit-header': 'value', 'audit-ca': 'value', 'audit-timeout-seconds': 'value', replica: 'value',
  });
  const one = (k: string) => values.get(k)?.at(-1) as string | undefined;
  const policies = (values.get('policies') as string[] | undefined) ?? [];
  const live = Boolean(one('kubeconfig')) || flagOn(values, 'in-cluster');
  if (!policies.length || (!positionals.length && !live)) throw new UsageError('usage: trustgate scan --policies DIR (FILE|DIR|-... | --kubeconfig F | --in-cluster): manifests (YAML or JSON, Lists included; - reads standard input), or the objects in the cluster');
  if (one('kubeconfig') && flagOn(values, 'in-cluster')) throw new UsageError('give --kubeconfig or --in-cluster, not both');
  if (live && one('cluster-file')) throw new UsageError('--cluster-file stands in for a cluster: give it or --kubeconfig/--in-cluster, not both');
  // the cluster's own objects, judged, reported back into it (where Policy Reporter reads them)
  const writeReports = flagOn(values, 'policy-reports');
  if (writeReports && (!live || positionals.length)) throw new UsageError('--policy-reports writes the reports of a scan of the cluster\'s objects: give --kubeconfig or --in-cluster and no PATH');
  const format = one('format') ?? 'table';
  if (!['table', 'json', 'sarif', 'policyreport'].includes(format)) throw new UsageError('--format is table, json, sarif or policyreport');
  const reportApi = reportApiFlag(one('report-api'));
  if (one('report-api') && format !== 'policyreport' && !writeReports) throw new UsageError('--report-api goes with --format policyreport or --policy-reports');
  const set = await loadOrFail(policies);
  if (!set) return 2;
  let clusterFile: StaticCluster | undefined;
  if (one('cluster-file')) {
    try {
      clusterFile = new StaticCluster(readClusterObjects(one('cluster-file')!));
    } catch (err) {
      throw new UsageError(`--cluster-file ${one('cluster-file')}: ${(err as Error).message}`);
    }
  }
  const kube = live ? await import('./kube/index.js') : undefined;
  const kc = kube?.loadKubeConfig({ kubeconfig: one('kubeconfig'), inCluster: flagOn(values, 'in-cluster') });
  const logger = kube ? pino({ level: 'warn' }, pino.destination(2)) : undefined;
  // namespaceSelector and params read the cluster (or the cluster file); namespaces also those the manifests create
  const state = kube && kc ? await kube.syncedClusterState(kc, set, logger!) : undefined;
  const params = state ?? clusterFile ?? new StaticCluster([]);
  const images = await verifierFromFlags(values, set.registries);
  const trail = await scanAuditTrail(values);
  // findings are printed as they come; SARIF (one document) keeps the failing ones, policy reports every one
  const counts = { allow: 0, warn: 0, deny: 0 };
  let waived = 0;
  const failing: ScanFinding[] = [];
  const kept: ScanFinding[] = [];
  let subjects: ScanSubjects;
  try {
    subjects = await scanSubjects(positionals, kube, kc, set);
    const { created } = subjects;
    await scanEach(subjects.objects, {
      policies: () => set, recorder: trail?.recorder ?? new NullDecisionRecorder(), namespaces: { get: (name: string) => created.get(name) ?? params.get(name) }, params,
      replica: trail?.replica ?? 'scan', deadlineMs: 8000, images, labels: trail?.labels, authorizer: kube && kc ? new kube.SubjectAccessReviewAuthorizer(kc, logger!) : undefined,
    }, { namespace: one('namespace'), userInfo: { username: one('user') ?? 'trustgate-offline', groups: ['system:authenticated', ...((values.get('group') as string[] | undefined) ?? [])] } }, (f) => {
      counts[f.verdict]++;
      if (f.verdict === 'warn' && f.policies.some((p) => p.exceptions)) waived++;
      // SARIF and policy reports are whole documents, written at the end
      if (format === 'sarif' && f.verdict !== 'allow') failing.push(f);
      if (format === 'policyreport' || writeReports) kept.push(f);
      if (format === 'json') process.stdout.write(`${JSON.stringify(f)}\n`);
      else if (format === 'table' && (f.verdict !== 'allow' || flagOn(values, 'all'))) process.stdout.write(`${findingLine(f)}\n`);
    });
  } catch (err) {
    // what was judged before the failure is still delivered
    const recorded = await trail?.finish();
    if (recorded) process.stderr.write(`${recorded.message}\n`);
    throw err;
  } finally {
    await images.client.close();
    await state?.stop();
  }
  const recorded = await trail?.finish();
  if (format === 'sarif') process.stdout.write(`${JSON.stringify(sarifReport(failing, { version: TRUSTGATE_VERSION }), null, 2)}\n`);
  const reports = format === 'policyreport' || writeReports ? policyReports(kept, { time: new Date(), api: reportApi }) : [];
  if (format === 'policyreport') process.stdout.write(reports.map((r) => toYaml(r, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n'));
  for (const line of [...subjects.errors(), ...subjects.notes]) process.stderr.write(`${line}\n`);
  const incomplete = subjects.incomplete().join(', ');
  process.stderr.write(`scanned ${counts.allow + counts.warn + counts.deny} object(s) against ${set.policies.length} policies: ${counts.allow} allowed, ${counts.warn} admitted but failing warn or audit policies${waived ? ` (${waived} of them admitted by exception)` : ''}, ${counts.deny} denied${incomplete ? `; incomplete: ${incomplete}` : ''}\n`);
  if (recorded) process.stderr.write(`${recorded.message}\n`);
  if (writeReports) {
    // an incomplete scan writes what it found, but cannot tell which old reports are stale
    try {
      const w = await kube!.writePolicyReports(kc!, reports, { prune: !incomplete, labels: POLICY_REPORT_LABELS, api: REPORT_APIS[reportApi] });
      process.stderr.write(`policy reports: ${w.written} written, ${w.deleted} stale one(s) deleted${incomplete ? ' (none deleted: the scan is incomplete)' : ''}\n`);
    } catch (err) {
      if (!(err instanceof kube!.PolicyReportWriteError)) throw err;
      process.stderr.write(`policy reports: ${err.message}\n`);
      return 2;
    }
  }
  // a scan that could not read everything, or record it, vouches for nothing
  if (incomplete || (recorded && !recorded.delivered)) return 2;
  return counts.deny || (counts.warn && flagOn(values, 'strict')) ? 1 : 0;
}

/**
 * V8 pretenures an allocation site once its objects survive scavenges in bulk, as reviews do
 * while a cold start waits on registries; from then on every review that site allocates goes
 * straight to the old generation, and a 6-10 ms mark-compact follows every 1 to 5 s under load
 * (in half the runs, policy-only ones included). Reviews live for a millisecond: keep them young.
 * Set here because NODE_OPTIONS refuses the flag.
 */
function keepReviewsYoung(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}

async function serve(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, serveFlagKinds());
  if (flagOn(flags.values, 'help')) {
    process.stdout.write(`trustgate serve options (also TRUSTGATE_<NAME> or a --config YAML file):\n${SERVE_OPTIONS.map((o) => `  --${o.flag.padEnd(18)} ${o.help}`).join('\n')}\n`);
    return 0;
  }
  if (flags.positionals.length) throw new UsageError(`serve takes no arguments, got ${flags.positionals.join(' ')}`);
  const config = resolveServeConfig(flags);
  keepReviewsYoung();
  const logger = pino({ level: config.logLevel });
  const server = await startServer(config, logger);
  await new Promise<void>((resolveStop) => {
    // SIGTERM is Kubernetes stopping the pod: routes to it disappear only gradually, so it
    // keeps answering for shutdownDelayMs first; SIGINT is a person at a terminal
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down: draining in-flight reviews');
      server.close({ delayMs: signal === 'SIGTERM' ? config.shutdownDelayMs : 0 }).then(resolveStop, resolveStop);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}

async function certs(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { dns: 'value', out: 'value', days: 'value', name: 'value' });
  const usage = 'usage: trustgate certs generate --dns NAME... --out DIR | trustgate certs client --name NAME --out DIR';
  const out = values.get('out')?.at(-1) as string | undefined;
  const days = positiveWhole(values.get('days')?.at(-1) as string | undefined, '--days') ?? 365;
  if (positionals[0] === 'client') {
    const name = values.get('name')?.at(-1) as string | undefined;
    if (!name || !out) throw new UsageError('certs client needs --name NAME (the certificate\'s common name) and --out DIR');
    const paths = await generateClientCertificate(out, name, days);
    process.stdout.write(`client CA certificate: ${paths.caCert}   (serve --client-ca ${paths.caCert} --client-name ${name})\n`
      + `client certificate: ${paths.cert}\nclient key: ${paths.key}   (for the API server's AdmissionConfiguration kubeconfig)\n`);
    return 0;
  }
  if (positionals[0] !== 'generate') throw new UsageError(usage);
  const dns = (values.get('dns') as string[] | undefined) ?? [];
  if (!dns.length || !out) throw new UsageError('certs generate needs --dns NAME (repeatable) and --out DIR');
  const paths = await generateCertificates(out, dns, days);
  process.stdout.write(`CA certificate: ${paths.caCert}\nserving certificate: ${paths.cert}\nserving key: ${paths.key}\n`);
  return 0;
}

function parseTime(v: string, flag: string): Date {
  const rel = /^(\d+)(s|m|h|d)$/.exec(v);
  const d = rel ? new Date(Date.now() - Number(rel[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[rel[2] as 's']) : new Date(v);
  if (Number.isNaN(d.getTime())) throw new UsageError(`${flag} takes an RFC 3339 time or an age like 30m, 24h, 7d; got ${JSON.stringify(v)}`);
  return d;
}

/** `audit keygen`: never overwrites a key; the private key is readable by its owner only. */
async function auditKeygen(out: string | undefined, algorithm: string): Promise<number> {
  if (!out) throw new UsageError('audit keygen needs --out DIR');
  if (!['ed25519', 'p256', 'p384'].includes(algorithm)) throw new UsageError(`--algorithm is ed25519, p256 or p384, got ${JSON.stringify(algorithm)}`);
  const pair = generateSigningKey(algorithm as KeyAlgorithm);
  await mkdir(out, { recursive: true });
  const keyFile = join(out, 'audit-signing.key');
  const pubFile = join(out, 'audit-signing.pub');
  try {
    await writeFile(keyFile, pair.privateKey, { mode: 0o600, flag: 'wx' });
    await writeFile(pubFile, pair.publicKey, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${(err as NodeJS.ErrnoException).path}: exists; a signing key is never overwritten (move it away first)`);
    throw err;
  }
  process.stdout.write(`signing key: ${keyFile}   (serve --audit-signing-key ${keyFile}; keep it secret: a Kubernetes Secret)\n`
    + `public key: ${pubFile}   (audit verify SOURCE --key ${pubFile}; give it to the auditors)\nkey id: ${pair.keyId}\n`);
  return 0;
}

async function readKeyFiles(paths: readonly string[]): Promise<Map<string, KeyObject>> {
  const files = await Promise.all(paths.map(async (path) => ({ where: `--key ${path}`, pem: await readFile(path, 'utf8').catch(() => { throw new UsageError(`--key ${path}: no such file`); }) })));
  try {
    return readVerificationKeys(files);
  } catch (err) {
    throw err instanceof CheckpointKeyError ? new UsageError(err.message) : err;
  }
}

function endpointFilter(value: string | undefined): QueryFilter['endpoint'] {
  if (value !== undefined && value !== 'validate' && value !== 'mutate' && value !== 'scan') throw new UsageError(`--endpoint is validate, mutate or scan, not ${JSON.stringify(value)}`);
  return value;
}

async function audit(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    since: 'value', until: 'value', namespace: 'value', user: 'value', policy: 'value', image: 'value', exception: 'value', endpoint: 'value', allowed: 'bool', denied: 'bool', format: 'value', key: 'value', out: 'value', algorithm: 'value',
  });
  const [action, ...sources] = positionals;
  const one = (k: string) => values.get(k)?.at(-1) as string | undefined;
  if (action === 'keygen') return auditKeygen(one('out'), one('algorithm') ?? 'ed25519');
  if ((action !== 'verify' && action !== 'query' && action !== 'summary') || !sources.length) throw new UsageError('usage: trustgate audit verify SOURCE... [--key F]... | audit query SOURCE... [filters] | audit summary SOURCE... [filters] | audit keygen --out DIR');
  const keyPaths = (values.get('key') as string[] | undefined) ?? [];
  if (keyPaths.length && action !== 'verify') throw new UsageError('--key belongs to audit verify');
  const keys = keyPaths.length ? await readKeyFiles(keyPaths) : undefined;
  if (flagOn(values, 'allowed') && flagOn(values, 'denied')) throw new UsageError('give --allowed or --denied, not both');
  const filter: QueryFilter = {
    since: one('since') ? parseTime(one('since')!, '--since') : undefined,
    until: one('until') ? parseTime(one('until')!, '--until') : undefined,
    namespace: one('namespace'), user: one('user'), policy: one('policy'), image: one('image'), exception: one('exception'), endpoint: endpointFilter(one('endpoint')),
    allowed: flagOn(values, 'allowed') ? true : flagOn(values, 'denied') ? false : undefined,
  };
  const database = sources.find((s) => /^postgres(ql)?:\/\//.test(s));
  if (database && sources.length > 1) throw new UsageError('give one postgres:// source, or files and spool directories');
  const lines = database
    // queries filter in SQL on the indexed columns; verification reads every row in chain order
    ? (await readPostgresRecords(database, action === 'verify' ? {} : filter).catch((err: Error) => {
      throw new UsageError(`${redactedURL(database)}: ${err.message}`);
    })).map((r) => ({ ...r, where: `${redactedURL(database)} row ${r.position}`, text: JSON.stringify(r.record) }))
    : (() => {
      try {
        return [...readLogLines(sources)];
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    })();
  if (action === 'verify') {
    const result = verifyRecords(lines.map((l) => ({ position: l.position, where: l.where, text: l.text })), { keys });
    for (const [replica, r] of Object.entries(result.replicas)) {
      // a checkpoint vouches for the chain before it; what follows the newest one is the tail
      // a rewriter could still have changed (at most one cadence's worth, or the chain ends there)
      const signed = !keys ? '' : r.signedThrough === undefined ? ', no valid checkpoint'
        : `, ${r.checkpoints} checkpoints, signed through seq ${r.signedThrough} (${r.last - r.signedThrough} after it)`;
      process.stdout.write(`replica ${replica}: ${r.count} records, seq ${r.first}…${r.last}${signed}\n`);
    }
    if (!keys && result.checkpointed) process.stdout.write(`note: ${result.checkpointed} records carry signed checkpoints; give the replicas' public keys (--key) to check them\n`);
    if (!result.problems.length) {
      process.stdout.write(`verified: ${result.records} records, every chain intact${keys ? ' and signed' : ''}\n`);
      return 0;
    }
    for (const p of result.problems) process.stdout.write(`FAILED ${p.kind} at ${p.where ?? `position ${p.position}`} (replica ${p.replica}, seq ${p.seq ?? '?'}): ${p.detail}\n`);
    return 1;
  }
  const format = one('format') ?? (action === 'summary' ? 'table' : 'json');
  if (format !== 'json' && format !== 'table') throw new UsageError('--format is json or table');
  const records = lines.flatMap((l) => {
    try {
      return [JSON.parse(l.text) as DecisionRecord];
    } catch {
      return [];
    }
  });
  if (action === 'summary') {
    const summary = summarize(query(records, filter));
    process.stdout.write(format === 'table' ? summaryText(summary) : `${JSON.stringify(summary, null, 2)}\n`);
    return 0;
  }
  let n = 0;
  for (const r of query(records, filter)) {
    process.stdout.write(`${format === 'table' ? tableRow(r) : JSON.stringify(r)}\n`);
    n++;
  }
  if (format === 'table') process.stderr.write(`${n} decision(s)\n`);
  return 0;
}

async function manifests(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { namespace: 'value', image: 'value', replicas: 'value', policies: 'value', 'ca-file': 'value', 'tls-secret': 'value', audit: 'value', 'timeout-seconds': 'value', 'pull-secrets': 'bool', 'self-managed-certs': 'bool', 'client-ca-file': 'value', 'client-name': 'value', 'audit-signing-secret': 'value', 'scan-schedule': 'value', 'scan-policy-reports': 'bool', 'report-api': 'value', monitoring: 'bool', 'only-monitoring': 'bool' });
  const one = (k: string) => values.get(k)?.at(-1) as string | undefined;
  const replicas = positiveWhole(one('replicas'), '--replicas') ?? 2;
  if (replicas < 2) process.stderr.write('warning: one replica cannot survive a node loss; use 2 or more\n');
  const timeout = Number(one('timeout-seconds') ?? 10);
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 30) throw new UsageError('--timeout-seconds must be 1 to 30 (the API server caps webhooks at 30 s)');
  const set = await loadOrFail((values.get('policies') as string[] | undefined) ?? ['./policies']);
  if (!set) return 2;
  let caBundle: string | undefined;
  if (one('ca-file')) caBundle = await readFile(one('ca-file')!, 'utf8').catch(() => {
    throw new UsageError(`--ca-file ${one('ca-file')}: no such file`);
  });
  const clientNames = (values.get('client-name') as string[] | undefined) ?? [];
  const scanSchedule = one('scan-schedule');
  if (scanSchedule !== undefined && !/^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$/.test(scanSchedule.trim())) {
    throw new UsageError(`--scan-schedule ${JSON.stringify(scanSchedule)} is not a cron schedule (five fields, e.g. "17 * * * *", or @hourly, @daily)`);
  }
  if (flagOn(values, 'scan-policy-reports') && scanSchedule === undefined) throw new UsageError('--scan-policy-reports needs --scan-schedule (the scheduled scan writes the reports)');
  if (one('report-api') && !flagOn(values, 'scan-policy-reports')) throw new UsageError('--report-api goes with --scan-policy-reports');
  const signingSecret = one('audit-signing-secret');
  if (signingSecret !== undefined && !/^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(signingSecret)) throw new UsageError(`--audit-signing-secret ${JSON.stringify(signingSecret)} is not a Secret name (lower-case DNS subdomain)`);
  if (clientNames.length && !one('client-ca-file')) throw new UsageError('--client-name needs --client-ca-file (the CA that issues the names)');
  let clientCa: string | undefined;
  if (one('client-ca-file')) {
    clientCa = await readFile(one('client-ca-file')!, 'utf8').catch(() => {
      throw new UsageError(`--client-ca-file ${one('client-ca-file')}: no such file`);
    });
    try {
      new X509Certificate(clientCa);
    } catch {
      throw new UsageError(`--client-ca-file ${one('client-ca-file')}: not a PEM certificate`);
    }
  }
  const objects = renderManifests(set, {
    namespace: one('namespace') ?? 'trustgate', image: one('image') ?? 'ghcr.io/trustgate/trustgate:0.1.0', replicas, caBundle,
    tlsSecret: one('tls-secret') ?? 'trustgate-tls', audit: (values.get('audit') as string[] | undefined) ?? ['stdout'], timeoutSeconds: timeout,
    pullSecrets: flagOn(values, 'pull-secrets'),
    selfManagedCerts: flagOn(values, 'self-managed-certs'),
    clientCa, clientNames,
    auditSigningSecret: one('audit-signing-secret'),
    scanSchedule: scanSchedule?.trim(),
    scanPolicyReports: flagOn(values, 'scan-policy-reports') ? reportApiFlag(one('report-api')) : undefined,
  });
  // the CA that signs the serving certificate: cert-manager's Secret carries it as ca.crt, and so does the self-managed CA's
  const monitoring = () => renderMonitoring({ namespace: one('namespace') ?? 'trustgate', scheduledScan: scanSchedule !== undefined, caSecret: flagOn(values, 'self-managed-certs') ? 'trustgate-ca' : one('tls-secret') ?? 'trustgate-tls' });
  if (flagOn(values, 'only-monitoring')) objects.splice(0, objects.length, ...monitoring());
  else if (flagOn(values, 'monitoring')) objects.push(...monitoring());
  process.stdout.write(objects.map((o) => toYaml(o, { lineWidth: 0 })).join('---\n'));
  if (scanSchedule && webhookRules(set).some((r) => (r.resources as string[]).some((x) => x.startsWith('*')))) {
    process.stderr.write('warning: a policy matches every resource ("*"), so the scheduled scan may list every resource in the cluster, Secrets included; name the resources to grant less\n');
  }
  // least privilege says so out loud when the policies need more than a name's worth
  const selecting = set.policies.filter((p) => p.params.kind === 'objects' && isConfigMap(p.params.type) && p.params.namespace === undefined).map((p) => p.name);
  if (selecting.length) {
    process.stderr.write(`warning: ${selecting.join(', ')} select params ConfigMaps by label in each request's namespace, so the ClusterRole reads every ConfigMap in the cluster (RBAC cannot narrow a label selector); name the ConfigMap, or the namespace, to grant less\n`);
  }
  return 0;
}

async function verifyImage(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { policies: 'value', 'registry-config': 'value', 'insecure-registry': 'value', 'registry-ca': 'value', json: 'bool' });
  const policies = (values.get('policies') as string[] | undefined) ?? [];
  if (positionals.length !== 1 || !policies.length) throw new UsageError('usage: trustgate verify IMAGE --policies DIR [--registry-config F] [--insecure-registry HOST:PORT]... [--registry-ca F]...');
  let ref;
  try {
    ref = parseImageReference(positionals[0]!);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const set = await loadOrFail(policies);
  if (!set) return 2;
  const rules = set.policies.flatMap((p) => p.images.filter((r) => r.matches(ref)).map((rule) => ({ policy: p, rule })));
  if (!rules.length) {
    process.stderr.write(`no images rule of the ${set.policies.length} policies matches ${ref.normalized}; nothing to verify\n`);
    return 2;
  }
  const images = await verifierFromFlags(values, set.registries);
  try {
    const verdicts = await Promise.all(rules.map(async ({ policy, rule }) => ({ policy: policy.name, rule: rule.label, verdict: await images.verify(positionals[0]!, ref, rule, { signal: AbortSignal.timeout(30_000) }) })));
    if (flagOn(values, 'json')) process.stdout.write(`${JSON.stringify(verdicts, null, 2)}\n`);
    else {
      const out: string[] = [`image ${ref.normalized}`];
      const first = verdicts[0]!.verdict;
      if (first.resolvedTag && first.digest) out.push(`  tag ${first.resolvedTag} -> ${first.digest}`);
      else if (first.digest) out.push(`  digest ${first.digest}`);
      if (first.searched) out.push(`  searched: ${first.searched.join(', ')}`);
      for (const { policy, rule, verdict } of verdicts) {
        const who = verdict.identity?.subject ? ` (${verdict.identity.subject} from ${verdict.identity.issuer})` : '';
        out.push(verdict.verified
          ? `PASS ${policy} ${rule}: signed for ${verdict.authority}${who}, found in ${verdict.location}`
          : `FAIL ${policy} ${rule}: ${verdict.code}: ${verdict.message}`);
        for (const a of verdict.attempts ?? []) out.push(`    ${a.ok ? 'ok  ' : 'fail'} ${a.authority} <- ${a.location}${a.ok ? '' : `: ${a.code}: ${a.message}`}`);
      }
      process.stdout.write(`${out.join('\n')}\n`);
    }
    return verdicts.every((v) => v.verdict.verified) ? 0 : 1;
  } finally {
    await images.client.close();
  }
}

async function verifyBundleCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { bundle: 'value', 'certificate-identity': 'value', 'certificate-oidc-issuer': 'value', key: 'value', 'trusted-root': 'value' });
  const one = (k: string) => values.get(k)?.at(-1) as string | undefined;
  const bundlePath = one('bundle');
  const target = positionals[0];
  if (!bundlePath || !target || positionals.length > 1) throw new UsageError('usage: trustgate verify-bundle --bundle F (--certificate-identity ID --certificate-oidc-issuer URL | --key F) [--trusted-root F] FILE|sha256:HEX');
  const key = one('key');
  const subject = one('certificate-identity');
  const issuer = one('certificate-oidc-issuer');
  if (!key && (!subject || !issuer)) throw new UsageError('give --key F, or both --certificate-identity and --certificate-oidc-issuer');
  const readText = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch {
      throw new UsageError(`${what} ${path}: cannot read`);
    }
  };
  let bundle: unknown;
  try {
    bundle = JSON.parse((await readText(bundlePath, 'bundle')).toString('utf8'));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    process.stderr.write(`FAIL BUNDLE_INVALID: ${bundlePath} is not JSON\n`);
    return 1;
  }
  const artifact: Artifact = /^sha256:[0-9a-f]{64}$/i.test(target) ? { digest: target } : { bytes: await readText(target, 'artifact') };
  try {
    const trustRoot = one('trusted-root') ? await readTrustedRootFile(one('trusted-root')!) : undefined;
    const publicKey = key ? (await readText(key, 'key')).toString('utf8') : undefined;
    const verified = verifyArtifact({ bundle, artifact, trustRoot, publicKey, identity: subject && issuer ? { subject, issuer } : undefined });
    const who = verified.identity ? `${verified.identity.subject} (${verified.identity.issuer})` : 'the given key';
    process.stdout.write(`OK: verified, signed by ${who}\n`);
    return 0;
  } catch (err) {
    const code = err instanceof VerificationFailure ? err.code : (err as { code?: string }).code ?? 'ERROR';
    process.stderr.write(`FAIL ${code}: ${(err as Error).message}\n`);
    return 1;
  }
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = { serve, lint, exceptions, test, eval: evaluate, scan, certs, audit, manifests, verify: verifyImage, 'verify-bundle': verifyBundleCommand };

/** The usage lines of one command: its own lines and their continuations. */
function commandUsage(command: string): string {
  const lines = USAGE.split('\n');
  const out: string[] = [];
  let inside = false;
  for (const line of lines) {
    if (/^ {2}trustgate \S+/.test(line)) inside = line.startsWith(`  trustgate ${command} `);
    else if (!line.startsWith('    ')) inside = false;
    if (inside) out.push(line);
  }
  return `usage:\n${out.join('\n')}`;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  // own keys only: `trustgate constructor` is an unknown command, not Object()
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  try {
    if (!run) {
      throw new UsageError(`unknown command "${command}"${didYouMean(command, Object.keys(COMMANDS))}; commands: ${Object.keys(COMMANDS).join(', ')}`);
    }
    // `trustgate CMD --help`: that command's part of the usage (serve lists its options itself)
    if (command !== 'serve' && (rest.includes('--help') || rest.includes('-h'))) {
      process.stdout.write(`${commandUsage(command)}\n`);
      return 0;
    }
    return await run(rest);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`trustgate ${command}: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`trustgate ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli.js') || process.argv[1]?.endsWith('/cli.ts')) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
