// Policy-only admission over TLS keep-alive, next to a bare fastify HTTPS echo, in one run.
// Prints requests/s of both and their ratio, then p50/p99 latency at a fixed 500 requests/s.
// Budget (DESIGN.md): ratio >= 0.6, p99 < 5 ms at 500 requests/s. trustgate runs as deployed:
// every decision sealed, fsync'd to its spool before the response, and shipped to stdout.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { generateCertificates } from '../src/server/index.js';
import { POLICY_COUNT, writeBenchPolicies } from './policies.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
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

async function waitReady(child: ChildProcess, url: string, ca: Buffer): Promise<void> {
  const { request } = await import('node:https');
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(`${url}/healthz`, { ca, agent: false }, (res) => { res.resume(); resolve(true); });
      req.on('error', () => resolve(false));
      req.end();
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not start');
}

async function load(url: string, ca: Buffer, body: string, overallRate?: number): Promise<autocannon.Result> {
  return autocannon({
    url: `${url}/validate`, method: 'POST', body, headers: { 'content-type': 'application/json' },
    connections: CONNECTIONS, duration: DURATION, overallRate,
    tlsOptions: { ca }, // autocannon passes these to tls.connect; keep-alive is its default
  } as autocannon.Options);
}

const summary = (r: autocannon.Result) => ({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx });

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-bench-'));
  const certs = await generateCertificates(join(dir, 'certs'), ['localhost', '127.0.0.1']);
  const ca = await readFile(certs.caCert);
  await writeBenchPolicies(join(dir, 'policies'));
  const body = JSON.stringify(pod(5));
  const results: Record<string, ReturnType<typeof summary>> = {};

  const echo = fork(new URL('./echo-server.ts', import.meta.url).pathname, [join(dir, 'certs'), '18443'], { execArgv: ['--import', 'tsx'], stdio: 'ignore' });
  try {
    await waitReady(echo, 'https://127.0.0.1:18443', ca); // any answer, even 404, means it is up
    await load('https://127.0.0.1:18443', ca, body); // warm-up
    results.echoMax = summary(await load('https://127.0.0.1:18443', ca, body));
    results.echo500 = summary(await load('https://127.0.0.1:18443', ca, body, 500));
  } finally {
    echo.kill();
  }

  // the compiled bundle, as it runs in production (npm run bench builds it first)
  const cli = new URL('../dist/cli.js', import.meta.url).pathname;
  const tg = spawn(process.execPath, [cli, 'serve', '--policies', join(dir, 'policies'), '--listen', '127.0.0.1:18444',
    '--tls-cert', certs.cert, '--tls-key', certs.key, '--log-level', 'info', '--audit-spool', join(dir, 'spool'), '--audit', 'stdout'],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    await waitReady(tg, 'https://127.0.0.1:18444', ca);
    await load('https://127.0.0.1:18444', ca, body); // warm-up: JIT and caches
    results.trustgateMax = summary(await load('https://127.0.0.1:18444', ca, body));
    results.trustgate500 = summary(await load('https://127.0.0.1:18444', ca, body, 500));
  } finally {
    tg.kill();
  }

  const ratio = results.trustgateMax!.rps / results.echoMax!.rps;
  console.log(`policy-only admission over TLS keep-alive: Pod with 5 containers, ${POLICY_COUNT} policies, ${CONNECTIONS} connections, ${DURATION} s per run`);
  console.log(`  bare fastify HTTPS echo   ${results.echoMax!.rps.toFixed(0).padStart(6)} req/s   p50 ${results.echoMax!.p50} ms  p99 ${results.echoMax!.p99} ms`);
  console.log(`  trustgate /validate       ${results.trustgateMax!.rps.toFixed(0).padStart(6)} req/s   p50 ${results.trustgateMax!.p50} ms  p99 ${results.trustgateMax!.p99} ms`);
  console.log(`  throughput ratio          ${ratio.toFixed(2)}   (budget >= 0.60: ${ratio >= 0.6 ? 'met' : 'MISSED'})`);
  console.log(`at a fixed 500 requests/s:`);
  console.log(`  bare echo                 p50 ${results.echo500!.p50} ms  p99 ${results.echo500!.p99} ms`);
  console.log(`  trustgate                 p50 ${results.trustgate500!.p50} ms  p99 ${results.trustgate500!.p99} ms   (budget p99 < 5 ms: ${results.trustgate500!.p99 < 5 ? 'met' : 'MISSED'})`);
  const errors = Object.values(results).reduce((n, r) => n + r.errors, 0);
  if (errors) console.log(`  errors or non-2xx answers: ${errors}`);
}

await main();
