// Image rules: cold verification of keyless-signed images from a loopback docker-registry, then
// admission over TLS at a fixed 500 requests/s with the images rule warm in the cache, next to
// the same policy set without the images rule (the policy-only baseline of this run).
// Budgets (DESIGN.md): cold keyless verification median < 50 ms; warm image rules p99 < 5 ms.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fixedRate, medianRound } from './fixed-rate.js';
import { admit } from '../src/admission/index.js';
import { NullDecisionRecorder } from '../src/audit/index.js';
import { loadPolicySet } from '../src/policy/index.js';
import { generateCertificates } from '../src/server/index.js';
import { ImageVerifier } from '../src/supplychain/image-verifier.js';
import { parseImageReference, RegistryClient } from '../src/supplychain/oci/index.js';
import { attachBundle, attachLegacySignatures } from '../test/helpers/cosign.js';
import { startRegistry } from '../test/helpers/registry.js';
import { cosignStatement, PrivateSigstore, simpleSigningPayload, statement } from '../test/helpers/sigstore.js';
import { POLICY_COUNT, writeBenchPolicies } from './policies.js';
import { waitReady } from './ready.js';
import { spawnDeployed } from './serve.js';
import { CI, imagesPolicyYaml } from './signed-images.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const COLD_IMAGES = 40;
const ATTESTED_IMAGES = 20;

function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (x: number) => `${x.toFixed(1)} ms`;

function podReview(images: string[]) {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid: '00000000-0000-0000-0000-000000000000', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop', operation: 'CREATE', userInfo: { username: 'system:serviceaccount:shop:deployer', groups: [] },
      object: {
        apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-7d9f8c', namespace: 'shop', labels: { app: 'web', team: 'shop' } },
        spec: { containers: images.map((image, i) => ({ name: `c${i}`, image, resources: { limits: { cpu: '500m', memory: '256Mi' } }, securityContext: { runAsNonRoot: true } })) },
      },
    },
  });
}

async function serveAndLoad(dir: string, policies: string, port: number, certs: { cert: string; key: string }, ca: Buffer, body: string, registry: string, sync: 'fsync' | 'write') {
  const tg = spawnDeployed(['--policies', policies, '--listen', `127.0.0.1:${port}`, '--tls-cert', certs.cert, '--tls-key', certs.key,
    '--log-level', 'warn', '--audit-spool', join(dir, `spool-${port}`), '--audit', 'stdout', '--insecure-registry', registry, '--audit-sync', sync]);
  try {
    await waitReady(tg, `https://127.0.0.1:${port}`, ca);
    const run = (seconds: number) => fixedRate(`https://127.0.0.1:${port}/validate`, { ca, body, rate: 500, seconds, connections: 10 });
    await run(3); // warm-up: JIT, and for the images policy, the verification cache
    const rounds = [];
    for (let i = 0; i < ROUNDS; i++) rounds.push(await run(DURATION));
    const r = medianRound(rounds);
    return { p50: r.p50.toFixed(2), p90: r.p90.toFixed(2), p99: r.p99.toFixed(2), p99Number: r.p99, errors: rounds.reduce((n, x) => n + x.errors, 0), rounds: rounds.map((x) => x.p99.toFixed(1)).join(' / ') };
  } finally {
    tg.kill();
  }
}

async function main() {
  const reg = await startRegistry();
  if (typeof reg === 'string') throw new Error(reg);
  const sigstore = await PrivateSigstore.create();
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-bench-images-'));
  try {
    // one images rule over the loopback registry, trust root = the private Sigstore
    await writeFile(join(dir, 'root.json'), JSON.stringify(sigstore.trustedRoot));
    const imagesPolicy = imagesPolicyYaml(reg.host, join(dir, 'root.json'));
    await writeBenchPolicies(join(dir, 'baseline'));
    await writeBenchPolicies(join(dir, 'with-images'));
    await writeFile(join(dir, 'with-images', 'images.yaml'), imagesPolicy);
    await writeBenchPolicies(join(dir, 'attestations'));
    await writeFile(join(dir, 'attestations', 'a-images.yaml'), imagesPolicy.replace('metadata: { name: signed-images }', 'metadata: { name: a-attested }').replace('authorities: [', `attestations:
        - { name: provenance, predicateType: slsaprovenance, expression: "facts.sourceRef == 'refs/heads/main'" }
        - { name: sbom, predicateType: sbom, expression: "!facts.licenses.exists(l, l.startsWith('GPL-3.0'))" }
        - { name: scan, predicateType: vuln, expression: "facts.severityCounts.critical == 0" }
      authorities: [`));

    // cold: every image verified once with an empty cache (tag -> digest, discovery, fetch, verify)
    const images: { ref: string; kind: string }[] = [];
    for (let i = 0; i < COLD_IMAGES; i++) {
      const img = await reg.push.image(`acme/app-${i}`, '1.0.0');
      if (i % 2 === 0) await attachLegacySignatures(reg.push, `acme/app-${i}`, img.digest, [await sigstore.legacyKeyless(simpleSigningPayload(`${reg.host}/acme/app-${i}`, img.digest), CI)]);
      else await attachBundle(reg.push, `acme/app-${i}`, img, [await sigstore.dsseBundle(cosignStatement(img.digest), CI)], { tagFallback: true });
      images.push({ ref: `${reg.host}/acme/app-${i}:1.0.0`, kind: i % 2 === 0 ? 'cosign .sig tag' : 'v0.3 bundle (referrers tag)' });
    }
    const set = (await loadPolicySet([join(dir, 'with-images')])).set!;
    const rule = set.policies.find((p) => p.name === 'signed-images')!.images[0]!;
    const client = new RegistryClient({ insecure: [reg.host] });
    const cold: Record<string, number[]> = {};
    // first look-up of the run warms the JIT and the keep-alive connection; it is not counted
    await new ImageVerifier(client, { tagTtlMs: 0 }).verify(images[0]!.ref, parseImageReference(images[0]!.ref), rule);
    for (const { ref, kind } of images) {
      const verifier = new ImageVerifier(client, { tagTtlMs: 0 });
      const started = performance.now();
      const v = await verifier.verify(ref, parseImageReference(ref), rule);
      const took = performance.now() - started;
      if (!v.verified) throw new Error(`${ref}: ${v.code} ${v.message}`);
      (cold[kind] ??= []).push(took);
      (cold.all ??= []).push(took);
    }

    // attestation rule: signature + SLSA provenance + a 1,000-component CycloneDX SBOM + a vuln report, cold and warm
    const attested: string[] = [];
    for (let i = 0; i < ATTESTED_IMAGES; i++) {
      const img = await reg.push.image(`acme/attested-${i}`, '1.0.0');
      await attachLegacySignatures(reg.push, `acme/attested-${i}`, img.digest, [await sigstore.legacyKeyless(simpleSigningPayload('x', img.digest), CI)]);
      const att = (type: string, predicate: unknown) => sigstore.dsseBundle(statement(img.digest, type, predicate), CI);
      await attachBundle(reg.push, `acme/attested-${i}`, img, [
        await att('https://slsa.dev/provenance/v1', { buildDefinition: { externalParameters: { workflow: { repository: 'https://github.com/acme/app', ref: 'refs/heads/main' } } }, runDetails: { builder: { id: 'https://github.com/actions/runner/github-hosted' } } }),
        await att('https://cyclonedx.org/bom/v1.6', { components: Array.from({ length: 1000 }, (_, k) => ({ name: `pkg-${k}`, version: '1.0.0', licenses: [{ license: { id: 'MIT' } }] })) }),
        await att('https://cosign.sigstore.dev/attestation/vuln/v1', { scanner: { result: { Results: [{ Vulnerabilities: [{ VulnerabilityID: 'CVE-1', Severity: 'LOW' }] }] } } }),
      ], { tagFallback: true });
      attested.push(`${reg.host}/acme/attested-${i}:1.0.0`);
    }
    const attSet = (await loadPolicySet([join(dir, 'attestations')])).set!;
    const attRule = attSet.policies.find((p) => p.name === 'a-attested')!.images[0]!;
    const attCold: number[] = [];
    await new ImageVerifier(client, { tagTtlMs: 0 }).verify(attested[0]!, parseImageReference(attested[0]!), attRule);
    for (const ref of attested) {
      const verifier = new ImageVerifier(client, { tagTtlMs: 0 });
      const started = performance.now();
      const v = await verifier.verify(ref, parseImageReference(ref), attRule);
      attCold.push(performance.now() - started);
      if (!v.verified) throw new Error(`${ref}: ${v.code} ${v.message}`);
    }
    const warmVerifier = new ImageVerifier(client);
    const warmRef = parseImageReference(attested[0]!);
    await warmVerifier.verify(attested[0]!, warmRef, attRule);
    const attWarm: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const started = performance.now();
      await warmVerifier.verify(attested[0]!, warmRef, attRule);
      attWarm.push(performance.now() - started);
    }

    // the same admission in process (no TLS, no audit spool): what the warm images rule itself costs
    const inProcess: Record<string, number[]> = {};
    const review = JSON.parse(podReview(images.slice(0, 5).map((i) => i.ref)));
    for (const which of ['baseline', 'with-images']) {
      const s = (await loadPolicySet([join(dir, which)])).set!;
      const services = { policies: () => s, recorder: new NullDecisionRecorder(), replica: 'bench', deadlineMs: 8000, images: new ImageVerifier(client, { allowedRegistries: () => s.registries, tagTtlMs: 3_600_000 }) };
      for (let i = 0; i < 1000; i++) await admit(structuredClone(review), 'validate', services);
      const xs: number[] = [];
      for (let i = 0; i < 10_000; i++) {
        const body = structuredClone(review);
        const started = performance.now();
        await admit(body, 'validate', services);
        xs.push(performance.now() - started);
      }
      inProcess[which] = xs;
    }
    await client.close();
    // the load generator times every request itself: the earlier phases' garbage (10,000 SBOM
    // verdicts, 20,000 in-process admissions) is collected now, not in a pause inside the timing
    collectGarbage();

    // warm: admissions of a Pod with 5 signed images at 500 requests/s, next to the baseline
    const certs = await generateCertificates(join(dir, 'certs'), ['localhost', '127.0.0.1']);
    const ca = await readFile(certs.caCert);
    const body = podReview(images.slice(0, 5).map((i) => i.ref));
    // with the default --audit-sync fsync, whose tail is the disk's, and with write
    const overTls = [];
    for (const [sync, port] of [['fsync', 18461], ['write', 18463]] as const) {
      const baseline = await serveAndLoad(dir, join(dir, 'baseline'), port, certs, ca, body, reg.host, sync);
      const warm = await serveAndLoad(dir, join(dir, 'with-images'), port + 1, certs, ca, body, reg.host, sync);
      overTls.push({ sync, baseline, warm });
    }

    console.log(`image rules: loopback docker-registry (distribution 2.8), private Sigstore, keyless signatures`);
    console.log(`cold verification (empty cache; tag resolution, discovery in all places, fetch, verify), ${COLD_IMAGES} images:`);
    for (const [kind, xs] of Object.entries(cold)) console.log(`  ${kind.padEnd(28)} median ${ms(pct(xs, 50))}  p90 ${ms(pct(xs, 90))}  max ${ms(Math.max(...xs))}`);
    const coldMedian = pct(cold.all!, 50);
    console.log(`  budget median < 50 ms: ${coldMedian < 50 ? 'met' : 'MISSED'}`);
    console.log(`admission over TLS keep-alive at 500 requests/s, Pod with 5 images (${ROUNDS} rounds of ${DURATION} s; the median round by p99, then every round's p99):`);
    for (const { sync, baseline, warm } of overTls) {
      console.log(`  --audit-sync ${sync}: policy-only baseline (${POLICY_COUNT} policies)  p50 ${baseline.p50} ms  p90 ${baseline.p90} ms  p99 ${baseline.p99} ms   rounds ${baseline.rounds}`);
      console.log(`  --audit-sync ${sync}: + images rule, warm cache      p50 ${warm.p50} ms  p90 ${warm.p90} ms  p99 ${warm.p99} ms   rounds ${warm.rounds}   (budget p99 < 5 ms: ${warm.p99Number < 5 ? 'met' : 'MISSED'})`);
    }
    console.log(`the same admission in process (no TLS, no audit spool), 10,000 times:`);
    console.log(`  policy-only baseline               p50 ${(pct(inProcess.baseline!, 50) * 1000).toFixed(0)} µs  p99 ${(pct(inProcess.baseline!, 99) * 1000).toFixed(0)} µs`);
    console.log(`  + images rule, warm cache          p50 ${(pct(inProcess['with-images']!, 50) * 1000).toFixed(0)} µs  p99 ${(pct(inProcess['with-images']!, 99) * 1000).toFixed(0)} µs   (budget p99 < 5 ms: ${pct(inProcess['with-images']!, 99) < 5 ? 'met' : 'MISSED'})`);
    console.log(`attestation rule (signature + SLSA provenance v1 + 1,000-component CycloneDX SBOM + vuln report, 3 expressions), ${ATTESTED_IMAGES} images:`);
    console.log(`  cold (empty cache)                  median ${ms(pct(attCold, 50))}  p90 ${ms(pct(attCold, 90))}`);
    console.log(`  warm (cached verdict), in process   p50 ${(pct(attWarm, 50) * 1000).toFixed(0)} µs  p99 ${(pct(attWarm, 99) * 1000).toFixed(0)} µs`);
    const errors = overTls.reduce((n, r) => n + r.baseline.errors + r.warm.errors, 0);
    if (errors) console.log(`  errors or non-2xx answers: ${errors}`);
  } finally {
    await reg.stop();
  }
}

await main();
