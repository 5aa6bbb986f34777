// 500 requests/s for 60 s (BENCH_SECONDS) with the HTTP audit sink refusing for the middle
// half: prints records spooled vs received (must be equal: nothing lost), the spool's peak
// size and the oldest unacknowledged record's peak age, latency with the sink up vs down,
// and, first, the same load on the same app without auditing (bench/unaudited-server.ts).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import autocannon from 'autocannon';
import { generateCertificates } from '../src/server/index.js';
import { writeBenchPolicies } from './policies.js';
import { waitReady } from './ready.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const RATE = 500;

const received = new Set<string>();
let up = true;
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (!up) return res.writeHead(503).end();
    for (const r of JSON.parse(gunzipSync(Buffer.concat(chunks)).toString()) as { decisionId: string }[]) received.add(r.decisionId);
    res.writeHead(200).end();
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const sinkURL = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/logs`;

const dir = await mkdtemp(join(tmpdir(), 'trustgate-bench-audit-'));
const certs = await generateCertificates(join(dir, 'certs'), ['localhost', '127.0.0.1']);
const ca = await readFile(certs.caCert);
await writeBenchPolicies(join(dir, 'policies'));
const tg = spawn(process.execPath, [new URL('../dist/cli.js', import.meta.url).pathname, 'serve', '--policies', join(dir, 'policies'), '--listen', '127.0.0.1:18445',
  '--tls-cert', certs.cert, '--tls-key', certs.key, '--audit-spool', join(dir, 'spool'), '--audit', sinkURL, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });

const get = (path: string) => new Promise<string>((resolve, reject) => {
  request(`https://127.0.0.1:18445${path}`, { ca }, (res) => {
    let d = '';
    res.on('data', (c) => (d += c));
    res.on('end', () => resolve(d));
  }).on('error', reject).end();
});
await waitReady(tg, 'https://127.0.0.1:18445', ca);
const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);

const body = JSON.stringify({
  apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
  request: {
    uid: 'x', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'shop', operation: 'CREATE',
    userInfo: { username: 'bench' }, object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: { team: 'a' } }, spec: { containers: [{ name: 'c', image: 'ghcr.io/acme/app:1.0.0' }] } },
  },
});
let peakSpool = 0;
let peakAge = 0;
const sampler = setInterval(async () => {
  const text = await get('/metrics').catch(() => '');
  peakSpool = Math.max(peakSpool, metric(text, 'trustgate_audit_spool_bytes'));
  peakAge = Math.max(peakAge, metric(text, 'trustgate_audit_backlog_age_seconds'));
}, 1000);

const phase = (seconds: number) => autocannon({
  url: 'https://127.0.0.1:18445/validate', method: 'POST', body, headers: { 'content-type': 'application/json' },
  connections: 10, duration: seconds, overallRate: RATE, tlsOptions: { ca },
} as autocannon.Options);
const quarter = Math.max(1, Math.round(SECONDS / 4));

// baseline: the same app and policies with a recorder that records nothing
const baselineServer = spawn(process.execPath, ['--import', 'tsx', new URL('./unaudited-server.ts', import.meta.url).pathname, join(dir, 'policies'), certs.cert, certs.key, '18446'], { stdio: ['ignore', 'ignore', 'inherit'] });
await waitReady(baselineServer, 'https://127.0.0.1:18446', ca);
const baseline = await autocannon({
  url: 'https://127.0.0.1:18446/validate', method: 'POST', body, headers: { 'content-type': 'application/json' },
  connections: 10, duration: quarter, overallRate: RATE, tlsOptions: { ca },
} as autocannon.Options);
baselineServer.kill();

const before = await phase(quarter);
up = false;
const during = await phase(quarter * 2);
up = true;
const after = await phase(quarter);
const admitted = before.requests.total + during.requests.total + after.requests.total;
const errors = before.errors + before.non2xx + during.errors + during.non2xx + after.errors + after.non2xx;

// wait for the backlog to drain, then compare what the server spooled with what arrived
// (the server's own count: autocannon does not count requests still in flight at a phase's end)
const deadline = Date.now() + 120_000;
let written = 0;
let lostByServer = 0;
while (Date.now() < deadline) {
  const text = await get('/metrics');
  written = metric(text, 'trustgate_audit_records_written_total');
  lostByServer = metric(text, 'trustgate_audit_records_lost_total');
  if (received.size >= written && written > 0) break;
  await new Promise((r) => setTimeout(r, 500));
}
clearInterval(sampler);
tg.kill();
receiver.close();

console.log(`audit sink outage: ${RATE} requests/s for ${quarter * 4} s, HTTP sink refusing for the middle ${quarter * 2} s`);
console.log(`  answered ${admitted} (autocannon's count), errors ${errors}; records spooled ${written}, received by the sink ${received.size}, lost ${written - received.size + lostByServer}`);
console.log(`  spool peak ${(peakSpool / 1024).toFixed(0)} KiB, oldest unacknowledged record peaked at ${peakAge.toFixed(0)} s`);
console.log(`  latency without auditing    p50 ${baseline.latency.p50} ms  p99 ${baseline.latency.p99} ms (same app, a recorder that records nothing)`);
console.log(`  latency with the sink up    p50 ${before.latency.p50} ms  p99 ${before.latency.p99} ms (first quarter), p50 ${after.latency.p50} ms  p99 ${after.latency.p99} ms (last, while draining)`);
console.log(`  latency with the sink down  p50 ${during.latency.p50} ms  p99 ${during.latency.p99} ms`);
process.exit(written > 0 && received.size === written && !lostByServer ? 0 : 1);
