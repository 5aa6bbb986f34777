// Large reviews against the Deployment's bounded heap: a replica that takes several 16 MiB
// reviews at once answers every one of them (or refuses one with 503 Busy) and keeps serving;
// it never dies of "JavaScript heap out of memory". Run as deployed: its own process, with the
// rendered Deployment's V8 flags.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DEPLOYMENT_NODE_OPTIONS } from '../../src/kube/manifests.js';
import { generateCertificates } from '../../src/server/index.js';
import { eventually } from '../helpers/eventually.js';
import { policyDir, policyYaml } from '../helpers/policies.js';
import { https } from '../helpers/server.js';
import { freePort } from '../helpers/services.js';

/** A ConfigMap review of about `mib` MiB made of many small values (the costliest shape to parse), as object and oldObject. */
function hugeReview(uid: string, mib: number): string {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < (mib * 1048576) / 2; i++) {
    const part = `"k${i}":"v${i}"`;
    parts.push(part);
    size += part.length + 1;
  }
  const object = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big","namespace":"shop"},"data":{${parts.join(',')}}}`;
  return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"${uid}","kind":{"group":"","version":"v1","kind":"ConfigMap"},"resource":{"group":"","version":"v1","resource":"configmaps"},"namespace":"shop","operation":"UPDATE","userInfo":{"username":"u"},"object":${object},"oldObject":${object}}}`;
}

t.test('several 15 MiB reviews at once: each answered, the replica keeps serving', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-large-'));
  const certs = await generateCertificates(join(dir, 'certs'), ['127.0.0.1']);
  const ca = await readFile(certs.caCert);
  const port = await freePort();
  // a policy that reads the whole object, so CEL converts it too
  const policies = await policyDir({ 'p.yaml': policyYaml('small-configmaps', `
mode: enforce
match:
  resources: [{ apiGroups: [""], resources: [configmaps], operations: [CREATE, UPDATE] }]
validations:
  - expression: "!has(object.data) || object.data.size() < 1000"
    message: configmaps hold at most 1000 keys
`) });
  let stderr = '';
  const proc = spawn(process.execPath, [...DEPLOYMENT_NODE_OPTIONS.split(' '), '--import', 'tsx', new URL('../../src/cli.ts', import.meta.url).pathname, 'serve', '--policies', policies,
    '--listen', `127.0.0.1:${port}`, '--tls-cert', certs.cert, '--tls-key', certs.key, '--audit-spool', join(dir, 'spool'), '--audit', `file:${join(dir, 'decisions.jsonl')}`, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  proc.stderr!.on('data', (c) => (stderr += c));
  let exit: number | null | undefined;
  proc.once('exit', (code) => (exit = code));
  t.teardown(() => proc.kill('SIGKILL'));
  const url = `https://127.0.0.1:${port}`;
  await eventually(async () => (await https(`${url}/readyz`, ca).catch(() => ({ status: 0 }))).status === 200, 'serving');

  const reviews = ['a', 'b', 'c', 'd'].map((uid) => hugeReview(uid, 15));
  t.ok(reviews[0]!.length > 15 * 1048576 && reviews[0]!.length < 16 * 1048576, 'each just under the 16 MiB body limit');
  const answering = Promise.all(reviews.map((body) => https(`${url}/validate`, ca, { method: 'POST', body, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } }).catch((err: Error) => ({ status: 0, headers: {} as Record<string, unknown>, text: err.message, json: () => ({}) }))));
  // the probes and metrics have no body: they never wait for the budget the reviews hold
  await new Promise((r) => setTimeout(r, 500));
  for (const path of ['/healthz', '/readyz', '/metrics']) t.equal((await https(`${url}${path}`, ca)).status, 200, `${path} answers while large reviews hold the budget`);
  const answers = await answering;
  for (const [i, res] of answers.entries()) {
    if (res.status === 200) {
      const review = res.json();
      t.equal(review.response.uid, 'abcd'[i], `review ${i}: its own answer`);
      t.equal(review.response.allowed, false, `review ${i}: denied by the policy (or its failurePolicy)`);
    } else {
      t.equal(res.status, 503, `review ${i}: answered 200 or refused 503, nothing else (${res.text.slice(0, 200)})`);
      t.match(res.json(), { error: 'Busy', message: /waited 4000 ms for memory and could not start/ });
      t.equal(res.headers['retry-after'], '1');
    }
  }
  t.ok(answers.filter((r) => r.status === 200).length >= 1, 'at least the first one is evaluated');
  t.equal(proc.exitCode, null, `still running${stderr ? `; stderr: ${stderr.slice(-500)}` : ''}`);
  t.notMatch(stderr, /heap out of memory/);
  const small = await https(`${url}/validate`, ca, { method: 'POST', body: hugeReview('small', 0.01), headers: { 'content-type': 'application/json' } });
  t.equal(small.status, 200, 'and an ordinary review right after is answered');
});
