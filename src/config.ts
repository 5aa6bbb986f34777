// Server configuration: flags > environment (TRUSTGATE_*) > config file > defaults, validated.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CHECKPOINT_CADENCE } from './audit/checkpoint.js';
import { HEADER_LINE_ERROR, isHeaderLine } from './audit/sinks/headers.js';
import { didYouMean } from './did-you-mean.js';

export interface ServeConfig {
  policies: string[];
  listen: { host: string; port: number };
  tlsCert?: string;
  tlsKey?: string;
  certDir: string;
  certDnsNames: string[];
  audit: string[];
  auditSpool: string;
  auditFull: 'deny' | 'allow';
  auditSpoolMaxBytes: number;
  auditSync: 'fsync' | 'write';
  auditHeaders: string[];
  auditCa?: string;
  auditHttpFormat: 'json' | 'ecs';
  auditSigningKey?: string;
  auditCheckpointRecords: number;
  auditCheckpointMs: number;
  clusterName: string;
  registryConfig?: string;
  insecureRegistries: string[];
  registryCa: string[];
  kubeconfig?: string;
  inCluster: boolean;
  pullSecrets: boolean;
  selfManagedCerts: boolean;
  namespace: string;
  webhookName: string;
  clusterFile?: string;
  clientCa?: string;
  clientNames: string[];
  deadlineMs: number;
  shutdownDelayMs: number;
  bodyLimit: number;
  logLevel: string;
  replica: string;
}

export class ConfigError extends Error {}

interface OptionSpec {
  key: keyof ServeConfig;
  flag: string;
  kind: 'string' | 'list' | 'number' | 'bool';
  help: string;
  /** numbers: 0 is allowed (it turns the behaviour off) */
  zeroAllowed?: boolean;
}

export const SERVE_OPTIONS: OptionSpec[] = [
  { key: 'policies', flag: 'policies', kind: 'list', help: 'policy directory or file (repeatable; default ./policies)' },
  { key: 'listen', flag: 'listen', kind: 'string', help: 'HOST:PORT to serve HTTPS on (default 0.0.0.0:8443)' },
  { key: 'tlsCert', flag: 'tls-cert', kind: 'string', help: 'serving certificate (PEM); reloaded when it changes' },
  { key: 'tlsKey', flag: 'tls-key', kind: 'string', help: 'serving key (PEM)' },
  { key: 'clientCa', flag: 'client-ca', kind: 'string', help: 'CA (PEM) of the client certificate the API server presents: /validate and /mutate answer no other caller (reloaded when it changes)' },
  { key: 'clientNames', flag: 'client-name', kind: 'list', help: 'with --client-ca: accepted common name or DNS name of the client certificate (repeatable; default: any the CA issued)' },
  { key: 'certDir', flag: 'cert-dir', kind: 'string', help: 'where development certificates are generated when none are given (default ./certs)' },
  { key: 'certDnsNames', flag: 'cert-dns', kind: 'list', help: 'DNS names or IPs for the generated certificate (default localhost, 127.0.0.1)' },
  { key: 'audit', flag: 'audit', kind: 'list', help: 'audit sink (repeatable): stdout, file:PATH, http(s)://URL, postgres://URL, syslog+tls://HOST:PORT, syslog+tcp://HOST:PORT (default stdout)' },
  { key: 'auditSpool', flag: 'audit-spool', kind: 'string', help: 'audit spool directory: records are on disk here before a response leaves (default ./spool)' },
  { key: 'auditFull', flag: 'audit-full', kind: 'string', help: 'when the spool is full: deny (default) or allow (admit, count the loss)' },
  { key: 'auditSpoolMaxBytes', flag: 'audit-spool-max-bytes', kind: 'number', help: 'spool size limit (default 1 GiB)' },
  { key: 'auditSync', flag: 'audit-sync', kind: 'string', help: "what a response waits for: fsync (default: the record is on disk) or write (in the kernel; fsync'd within 50 ms)" },
  { key: 'auditHeaders', flag: 'audit-header', kind: 'list', help: "'Name: value' header for http sinks (repeatable), e.g. a bearer token" },
  { key: 'auditCa', flag: 'audit-ca', kind: 'string', help: 'CA bundle for https and syslog+tls sinks' },
  { key: 'auditHttpFormat', flag: 'audit-http-format', kind: 'string', help: 'json (default) or ecs (Elastic Common Schema) for http sinks' },
  { key: 'auditSigningKey', flag: 'audit-signing-key', kind: 'string', help: 'private key (PEM: Ed25519, ECDSA P-256/P-384; trustgate audit keygen) that signs checkpoints of the hash chain into the records' },
  { key: 'auditCheckpointRecords', flag: 'audit-checkpoint-records', kind: 'number', help: 'with --audit-signing-key: a signed checkpoint at least every N records (default 1000)' },
  { key: 'auditCheckpointMs', flag: 'audit-checkpoint-ms', kind: 'number', help: 'with --audit-signing-key: and at least every N milliseconds of record time (default 1000)' },
  { key: 'clusterName', flag: 'cluster-name', kind: 'string', help: 'cluster label in decision records' },
  { key: 'registryConfig', flag: 'registry-config', kind: 'string', help: 'docker config.json with registry credentials for images rules' },
  { key: 'insecureRegistries', flag: 'insecure-registry', kind: 'list', help: 'HOST:PORT reached over plain HTTP (repeatable); every other registry is HTTPS only' },
  { key: 'registryCa', flag: 'registry-ca', kind: 'list', help: 'PEM file of a CA trusted for registry TLS besides the system roots (repeatable)' },
  { key: 'kubeconfig', flag: 'kubeconfig', kind: 'string', help: 'kubeconfig for namespaces and ConfigMap params' },
  { key: 'inCluster', flag: 'in-cluster', kind: 'bool', help: 'use the pod service account' },
  { key: 'selfManagedCerts', flag: 'self-managed-certs', kind: 'bool', help: 'without cert-manager: a shared CA in the Secret trustgate-ca, a serving certificate per replica, and the caBundle patched by the replica holding the Lease trustgate-ca-bundle (with --kubeconfig or --in-cluster)' },
  { key: 'namespace', flag: 'namespace', kind: 'string', help: 'trustgate\'s own namespace (default $POD_NAMESPACE or trustgate)' },
  { key: 'webhookName', flag: 'webhook-name', kind: 'string', help: 'name of the webhook configurations whose caBundle is kept (default trustgate)' },
  { key: 'pullSecrets', flag: 'pull-secrets', kind: 'bool', help: 'read the admitted pod\'s imagePullSecrets and its service account\'s for registry auth (needs secrets get RBAC; with --kubeconfig or --in-cluster)' },
  { key: 'clusterFile', flag: 'cluster-file', kind: 'string', help: 'Namespace and ConfigMap objects (YAML), for namespaceSelector, params and allowlists without a cluster' },
  { key: 'deadlineMs', flag: 'deadline-ms', kind: 'number', help: 'internal deadline per request (default 8000, below the API server\'s 10 s)' },
  { key: 'shutdownDelayMs', flag: 'shutdown-delay-ms', kind: 'number', zeroAllowed: true, help: 'on SIGTERM, keep answering this long (not ready, each connection closed after its answer) while the cluster stops routing here; then drain and exit (default 5000; SIGINT skips it)' },
  { key: 'bodyLimit', flag: 'body-limit', kind: 'number', help: 'largest accepted body in bytes (default 16 MiB)' },
  { key: 'logLevel', flag: 'log-level', kind: 'string', help: 'pino level (default info)' },
  { key: 'replica', flag: 'replica', kind: 'string', help: 'replica name in decision records (default: hostname)' },
];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function defaultConfig(): ServeConfig {
  return {
    policies: ['./policies'],
    listen: { host: '0.0.0.0', port: 8443 },
    certDir: './certs',
    certDnsNames: ['localhost', '127.0.0.1'],
    clientNames: [],
    audit: ['stdout'],
    auditSpool: './spool',
    auditFull: 'deny',
    auditSpoolMaxBytes: 1 << 30,
    auditSync: 'fsync',
    auditHeaders: [],
    auditHttpFormat: 'json',
    auditCheckpointRecords: DEFAULT_CHECKPOINT_CADENCE.records,
    auditCheckpointMs: DEFAULT_CHECKPOINT_CADENCE.ms,
    clusterName: '',
    insecureRegistries: [],
    registryCa: [],
    inCluster: false,
    pullSecrets: false,
    selfManagedCerts: false,
    namespace: process.env.POD_NAMESPACE || 'trustgate',
    webhookName: 'trustgate',
    deadlineMs: 8000,
    shutdownDelayMs: 5000,
    bodyLimit: 16 * 1024 * 1024,
    logLevel: 'info',
    replica: hostname(),
  };
}

function parseListen(v: string): ServeConfig['listen'] {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`listen address ${JSON.stringify(v)} is not HOST:PORT (e.g. 0.0.0.0:8443)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function coerce(spec: OptionSpec, raw: unknown, where: string): unknown {
  if (spec.key === 'listen') return typeof raw === 'string' ? parseListen(raw) : raw;
  switch (spec.kind) {
    case 'list': return Array.isArray(raw) ? raw.map(String) : spec.key === 'auditHeaders' ? [String(raw)] : String(raw).split(',').map((s) => s.trim()).filter(Boolean);
    case 'number': {
      const n = Number(raw);
      if (!Number.isFinite(n) || n < 0 || (n === 0 && !spec.zeroAllowed)) {
        throw new ConfigError(`${where}: ${spec.flag} must be a ${spec.zeroAllowed ? 'non-negative' : 'positive'} number, got ${JSON.stringify(raw)}`);
      }
      return n;
    }
    case 'bool': {
      // a typo such as TRUSTGATE_IN_CLUSTER=yes must not quietly mean false
      if (raw === true || raw === 'true' || raw === '1') return true;
      if (raw === false || raw === 'false' || raw === '0') return false;
      throw new ConfigError(`${where}: ${spec.flag} must be true or false, got ${JSON.stringify(raw)}`);
    }
    default: return String(raw);
  }
}

export interface ParsedFlags { values: Map<string, unknown[]>; positionals: string[] }

/** GNU-style flags: --name value, --name=value, repeatable; unknown flags are errors. */
export function parseFlags(argv: readonly string[], known: Record<string, 'value' | 'bool'>): ParsedFlags {
  const values = new Map<string, unknown[]>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!arg.startsWith('--')) { positionals.push(arg); continue; }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const kind = known[name];
    if (!kind) throw new ConfigError(`unknown flag --${name}${didYouMean(name, Object.keys(known))}; see --help`);
    let value: unknown = true;
    if (kind === 'bool' && eq >= 0) {
      // --in-cluster=false means false, not "the flag is present"
      const given = arg.slice(eq + 1);
      if (!['true', 'false', '1', '0'].includes(given)) throw new ConfigError(`flag --${name} is true or false, got ${JSON.stringify(given)}`);
      value = given === 'true' || given === '1';
    }
    if (kind === 'value') {
      value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new ConfigError(`flag --${name} needs a value`);
    }
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  return { values, positionals };
}

/** A bool flag's value: its last occurrence, false when absent (`--x=false` overrides an earlier `--x`). */
export function flagOn(flags: ParsedFlags['values'], name: string): boolean {
  return flags.get(name)?.at(-1) === true;
}

export function serveFlagKinds(): Record<string, 'value' | 'bool'> {
  const out: Record<string, 'value' | 'bool'> = { config: 'value', help: 'bool' };
  for (const o of SERVE_OPTIONS) out[o.flag] = o.kind === 'bool' ? 'bool' : 'value';
  return out;
}

export function resolveServeConfig(flags: ParsedFlags, env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  const file = (flags.values.get('config')?.at(-1) as string | undefined) ?? env.TRUSTGATE_CONFIG;
  if (file) {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (doc !== null && (typeof doc !== 'object' || Array.isArray(doc))) throw new ConfigError(`${file}: a config file is a mapping of option names`);
    for (const [k, v] of Object.entries(doc ?? {})) {
      const spec = SERVE_OPTIONS.find((o) => o.key === k || o.flag === k);
      if (!spec) throw new ConfigError(`${file}: unknown option ${k}${didYouMean(k, SERVE_OPTIONS.flatMap((o) => [o.key, o.flag]))}`);
      config[spec.key] = coerce(spec, v, file);
    }
  }
  for (const spec of SERVE_OPTIONS) {
    const name = `TRUSTGATE_${spec.flag.toUpperCase().replace(/-/g, '_')}`;
    if (env[name] !== undefined && env[name] !== '') config[spec.key] = coerce(spec, env[name], name);
  }
  for (const spec of SERVE_OPTIONS) {
    const given = flags.values.get(spec.flag);
    if (!given) continue;
    config[spec.key] = spec.kind === 'list' ? given.flatMap((v) => coerce(spec, v, `--${spec.flag}`) as string[]) : coerce(spec, given.at(-1), `--${spec.flag}`);
  }
  const c = config as unknown as ServeConfig;
  if (Boolean(c.tlsCert) !== Boolean(c.tlsKey)) throw new ConfigError('--tls-cert and --tls-key go together');
  if (c.kubeconfig && c.inCluster) throw new ConfigError('give --kubeconfig or --in-cluster, not both');
  if (c.clientNames.length && !c.clientCa) throw new ConfigError('--client-name needs --client-ca (the CA that issues the names)');
  if (c.pullSecrets && !c.kubeconfig && !c.inCluster) throw new ConfigError('--pull-secrets needs --kubeconfig or --in-cluster');
  if (c.selfManagedCerts && !c.kubeconfig && !c.inCluster) throw new ConfigError('--self-managed-certs needs --kubeconfig or --in-cluster');
  if (c.selfManagedCerts && (c.tlsCert || c.tlsKey)) throw new ConfigError('--self-managed-certs issues the serving certificate itself: drop --tls-cert/--tls-key');
  for (const sink of c.audit) {
    if (!(sink === 'stdout' || sink.startsWith('file:') || /^(https?|postgres(ql)?|syslog\+tcp|syslog\+tls):\/\//.test(sink))) {
      throw new ConfigError(`audit sink ${JSON.stringify(sink)} is not supported by this build (stdout, file:PATH, http(s)://URL, postgres://URL, syslog+tls://HOST:PORT, syslog+tcp://HOST:PORT)`);
    }
  }
  if (c.auditHttpFormat !== 'json' && c.auditHttpFormat !== 'ecs') throw new ConfigError(`--audit-http-format must be json or ecs, got ${JSON.stringify(c.auditHttpFormat)}`);
  if (c.auditSync !== 'fsync' && c.auditSync !== 'write') throw new ConfigError(`--audit-sync must be fsync or write, got ${JSON.stringify(c.auditSync)}`);
  if (!LOG_LEVELS.includes(c.logLevel)) throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(c.logLevel)}`);
  if (c.auditFull !== 'deny' && c.auditFull !== 'allow') throw new ConfigError(`--audit-full must be deny or allow, got ${JSON.stringify(c.auditFull)}`);
  if (!Number.isInteger(c.auditCheckpointRecords) || c.auditCheckpointRecords > 1_000_000) throw new ConfigError(`--audit-checkpoint-records must be a whole number from 1 to 1000000, got ${c.auditCheckpointRecords}`);
  if (!Number.isInteger(c.auditCheckpointMs) || c.auditCheckpointMs > 3_600_000) throw new ConfigError(`--audit-checkpoint-ms must be a whole number from 1 to 3600000 (an hour), got ${c.auditCheckpointMs}`);
  // the replica name is signed into checkpoints: text a sink would have to rewrite would break them
  if (!c.replica || c.replica.length > 253 || /[\u0000-\u001f\u007f\ud800-\udfff]/.test(c.replica)) throw new ConfigError(`--replica must be 1 to 253 printable characters, got ${JSON.stringify(c.replica)}`);
  for (const h of c.auditHeaders) if (!isHeaderLine(h)) throw new ConfigError(HEADER_LINE_ERROR);
  return c;
}
