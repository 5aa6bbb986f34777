// Policy-only admission over TLS keep-alive, next to a bare fastify HTTPS echo, in one run.
// Prints requests/s of each and the ratio to the echo, then latency percentiles at a fixed
// 500 requests/s. Budget (DESIGN.md): ratio >= 0.6, p99 < 5 ms at 500 requests/s. trustgate
// runs as deployed: every decision sealed into the chain, spooled before its response (fsync'd
// with the default --audit-sync fsync, written with --audit-sync write), shipped to stdout.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { generateCertificates } from '../src/server/index.js';
import { fixedRate, medianRound, type LatencySummary } from './fixed-rate.js';
import { POLICY_COUNT, writeBenchPolicies } from './policies.js';
import { waitReady } from './ready.js';
import { spawnDeployed } from './serve.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RATE = 500;
const CONNECTIONS = 10;

function pod(containers: number) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '00000000-0000-0000-0000-000000000000',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop', operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:shop:deployer', groups: ['system:serviceaccounts'] },
      object: {
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name: 'web-7d9f8c', namespace: 'shop', labels: { app: 'web', team: 'shop' } },
        spec: {
          containers: Array.from({ length: containers }, (_, i) => ({
            name: `c${i}`, image: `ghcr.io/acme/app-${i}:1.${i}.0`, imagePullPolicy: 'IfNotPresent',
            ports: [{ containerPort: 8080 + i }], env: [{ name: 'MODE', value: 'prod' }],
            resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
            securityContext: { runAsNonRoot: true, allowPrivilegeEscalation: false },
          })),
        },
      },
    },
  };
}

async function load(url: string, ca: Buffer, body: string, seconds = DURATION): Promise<autocannon.Result> {
  return autocannon({
    url: `${url}/validate`, method: 'POST', body, headers: { 'content-type': 'application/json' },
    connections: CONNECTIONS, duration: seconds,
    tlsOptions: { ca }, // autocannon passes these to tls.connect; keep-alive is its default
  } as autocannon.Options);
}

interface Measured {
  name: string;
  max: { rps: number; p50: number; p99: number; errors: number };
  rounds: LatencySummary[];
}

/** Throughput with autocannon, then ROUNDS of the fixed 500 req/s load; the server is warmed first. */
async function measure(name: string, url: string, ca: Buffer, body: string): Promise<Measured> {
  await load(url, ca, body, Math.min(DURATION, 5)); // warm-up: JIT, caches, connections
  const r = await load(url, ca, body);
  const rounds: LatencySummary[] = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await fixedRate(`${url}/validate`, { ca, body, rate: RATE, seconds: DURATION, connections: CONNECTIONS }));
  return { name, max: { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx }, rounds };
}

const ms = (x: number) => x.toFixed(2).padStart(6);

async function withServer<T>(child: ChildProcess, url: string, ca: Buffer, run: () => Promise<T>): Promise<T> {
  try {
    await waitReady(child, url, ca);
    return await run();
  } finally {
    child.kill();
  }
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-bench-'));
  const certs = await generateCertificates(join(dir, 'certs'), ['localhost', '127.0.0.1']);
  const ca = await readFile(certs.caCert);
  await writeBenchPolicies(join(dir, 'policies'));
  const body = JSON.stringify(pod(5));
  const results: Measured[] = [];

  const echo = fork(new URL('./echo-server.ts', import.meta.url).pathname, [join(dir, 'certs'), '18443'], { execArgv: ['--import', 'tsx'], stdio: 'ignore' });
  results.push(await withServer(echo, 'https://127.0.0.1:18443', ca, () => measure('bare fastify HTTPS echo', 'https://127.0.0.1:18443', ca, body)));

  // the compiled bundle, as it runs in production (npm run bench builds it first), with the
  // Deployment's V8 flags; once with the default --audit-sync fsync, once with write
  for (const [sync, port] of [['fsync', 18444], ['write', 18445]] as const) {
    const tg = spawnDeployed(['--policies', join(dir, 'policies'), '--listen', `127.0.0.1:${port}`,
      '--tls-cert', certs.cert, '--tls-key', certs.key, '--log-level', 'info', '--audit-spool', join(dir, `spool-${sync}`), '--audit', 'stdout', '--audit-sync', sync]);
    results.push(await withServer(tg, `https://127.0.0.1:${port}`, ca, () => measure(`trustgate, --audit-sync ${sync}`, `https://127.0.0.1:${port}`, ca, body)));
  }

  const base = results[0]!;
  console.log(`policy-only admission over TLS keep-alive: Pod with 5 containers, ${POLICY_COUNT} policies, ${CONNECTIONS} connections`);
  console.log(`throughput (autocannon, ${DURATION} s):`);
  for (const m of results) {
    const ratio = m === base ? '' : `   ratio ${(m.max.rps / base.max.rps).toFixed(2)} (budget >= 0.60: ${m.max.rps / base.max.rps >= 0.6 ? 'met' : 'MISSED'})`;
    console.log(`  ${m.name.padEnd(30)} ${m.max.rps.toFixed(0).padStart(6)} req/s   p50 ${m.max.p50} ms  p99 ${m.max.p99} ms${ratio}`);
  }
  console.log(`latency at a fixed ${RATE} requests/s (open loop, ${ROUNDS} rounds of ${DURATION} s; the median round by p99, then every round's p99):`);
  for (const m of results) {
    const r = medianRound(m.rounds);
    const budget = m === base ? '' : `   (budget p99 < 5 ms: ${r.p99 < 5 ? 'met' : 'MISSED'})`;
    console.log(`  ${m.name.padEnd(30)} p50 ${ms(r.p50)}  p90 ${ms(r.p90)}  p99 ${ms(r.p99)}  p99.9 ${ms(r.p999)} ms   rounds ${m.rounds.map((x) => x.p99.toFixed(1)).join(' / ')}${budget}`);
  }
  const errors = results.reduce((n, m) => n + m.max.errors + m.rounds.reduce((k, r) => k + r.errors, 0), 0);
  if (errors) console.log(`  errors or non-2xx answers: ${errors}`);
}

await main();
