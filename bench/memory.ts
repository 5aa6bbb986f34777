// Resident memory of a serving trustgate after 100,000 admissions over 10,000 distinct signed
// digests (DESIGN.md budget: under 200 MB). The images are pushed to a loopback docker-registry
// and signed keyless by the tests' private Sigstore; every admission names one of them by digest,
// so the verification cache fills to its bound and is then read.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { DEPLOYMENT_NODE_OPTIONS } from '../src/kube/manifests.js';
import { generateCertificates } from '../src/server/index.js';
import { attachLegacySignatures } from '../test/helpers/cosign.js';
import { startRegistry } from '../test/helpers/registry.js';
import { PrivateSigstore, simpleSigningPayload } from '../test/helpers/sigstore.js';
import { waitReady } from './ready.js';
import { spawnDeployed } from './serve.js';
import { CI, imagesPolicyYaml } from './signed-images.js';

const DIGESTS = Number(process.env.BENCH_DIGESTS ?? 10_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 100_000);
// as deployed: the rendered Deployment's V8 flags (unless BENCH_NODE_FLAGS says otherwise) and malloc arenas
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? DEPLOYMENT_NODE_OPTIONS).split(' ').filter(Boolean);

const rssMiB = async (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function main() {
  const reg = await startRegistry();
  if (typeof reg === 'string') throw new Error(reg);
  const sigstore = await PrivateSigstore.create();
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-bench-memory-'));
  try {
    const started = Date.now();
    const refs: string[] = [];
    for (let i = 0; i < DIGESTS; i++) {
      const img = await reg.push.image(`acme/app-${i % 100}`, `v${i}`);
      await attachLegacySignatures(reg.push, `acme/app-${i % 100}`, img.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), CI)]);
      refs.push(`${reg.host}/acme/app-${i % 100}@${img.digest}`);
    }
    console.error(`pushed and signed ${DIGESTS} images in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    await writeFile(join(dir, 'root.json'), JSON.stringify(sigstore.trustedRoot));
    // BENCH_BASELINE=1: the same load on a policy-only set, for comparison
    if (process.env.BENCH_BASELINE) await writeFile(join(dir, 'policies.yaml'), `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: named-pods }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  validations: [{ expression: "object.metadata.name.startsWith('p-')" }]
`);
    else await writeFile(join(dir, 'policies.yaml'), imagesPolicyYaml(reg.host, join(dir, 'root.json')));
    const certs = await generateCertificates(join(dir, 'certs'), ['localhost', '127.0.0.1']);
    const ca = await readFile(certs.caCert);
    const tg = spawnDeployed(['--policies', dir, '--listen', '127.0.0.1:18471', '--tls-cert', certs.cert, '--tls-key', certs.key,
      '--log-level', 'warn', '--audit-spool', join(dir, 'spool'), '--audit', 'stdout', '--insecure-registry', reg.host], NODE_FLAGS);
    try {
      await waitReady(tg, 'https://127.0.0.1:18471', ca);
      const idle = await rssMiB(tg.pid!);
      const bodies = refs.map((image, i) => JSON.stringify({
        apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
        request: { uid: `u-${i}`, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'shop', operation: 'CREATE', userInfo: { username: 'deployer' },
          object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: `p-${i}`, namespace: 'shop' }, spec: { containers: [{ name: 'c', image }] } } },
      }));
      let n = 0;
      let peak = idle;
      const sampler = setInterval(() => void rssMiB(tg.pid!).then((m) => (peak = Math.max(peak, m)), () => {}), 500);
      const result = await autocannon({
        url: 'https://127.0.0.1:18471/validate', method: 'POST', headers: { 'content-type': 'application/json' }, connections: 10, amount: REQUESTS, tlsOptions: { ca },
        requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, body: bodies[n++ % bodies.length] }) }],
      } as unknown as autocannon.Options);
      clearInterval(sampler);
      const after = await rssMiB(tg.pid!);
      const { request } = await import('node:https');
      const metrics = await new Promise<string>((resolve, reject) => {
        const req = request('https://127.0.0.1:18471/metrics', { ca, agent: false }, (res) => { let text = ''; res.on('data', (c) => (text += c)); res.on('end', () => resolve(text)); });
        req.on('error', reject);
        req.end();
      });
      const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN) / 1048576;
      console.error(`heap used ${metric('trustgate_process_nodejs_heap_size_used_bytes').toFixed(0)} MiB of ${metric('trustgate_process_nodejs_heap_size_total_bytes').toFixed(0)} MiB, external ${metric('trustgate_process_nodejs_external_memory_bytes').toFixed(0)} MiB`);
      console.log(`resident memory of trustgate serve (${NODE_FLAGS.join(' ') || 'no V8 flags'}), ${REQUESTS} admissions over ${DIGESTS} distinct signed digests (${process.env.BENCH_BASELINE ? 'policy-only baseline' : 'images rule'}, loopback registry):`);
      console.log(`  idle after start   ${idle.toFixed(0)} MiB`);
      console.log(`  peak during load   ${peak.toFixed(0)} MiB`);
      console.log(`  after the load     ${after.toFixed(0)} MiB   (budget < 200 MB: ${after * 1.048576 < 200 && peak * 1.048576 < 200 ? 'met' : 'MISSED'})`);
      console.log(`  ${result.requests.total} answered, ${result.non2xx + result.errors} errors or non-2xx, ${result.requests.average.toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`);
    } finally {
      tg.kill();
    }
  } finally {
    await reg.stop();
  }
}

await main();
