// The shipped D2 guardrails on the corpus's D2 AdmissionReviews, over HTTPS and through
// `trustgate eval`, with the cluster state (tenant namespaces, flux-allowlist) from a file.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { fixture, readFixture, startTestServer, type TestServer } from '../helpers/server.js';

const POLICIES = new URL('../../policies/flux-d2', import.meta.url).pathname;
const expected: [string, boolean, RegExp?][] = [
  ['R01-ocirepo-create-by-tenant-sa-allowed', true],
  ['R02-ocirepo-create-dryrun-disallowed', false, /oci:\/\/ghcr\.io\/stefanprodan\/manifests\/podinfo is not on the source allowlist; nearest allowed entry: oci:\/\/ghcr\.io\/stefanprodan\/charts\//],
  ['R03-ocirepo-update-url-to-disallowed', false, /oci:\/\/ghcr\.io\/attacker\/d2-apps\/frontend is not on the source allowlist/],
  ['R04-gitrepo-update-label-on-preexisting-violation', false, /https:\/\/gitlab\.com\/someone\/legacy is not on the source allowlist/],
  ['R06-ocirepo-status-update-by-source-controller', true],
  ['R08-helmrepo-create-in-flux-system', true],
  ['R09-helmrepo-oci-create-in-tenant', true],
];

let server: TestServer;
t.before(async () => {
  server = await startTestServer({ policies: [POLICIES], clusterFile: fixture('d2-cluster.yaml') });
});
t.teardown(() => server.close());

t.test('D2 reviews over HTTPS get the decisions of CASES.md', async (t) => {
  for (const [name, allowed, message] of expected) {
    const review = await readFixture(`admissionreviews/${name}.review.json`);
    const response = (await server.post('/validate', review)).json().response;
    t.equal(response.allowed, allowed, name);
    if (message) t.match(response.status.message, message, `${name}: message`);
  }
});

t.test('the same through trustgate eval', async (t) => {
  const run = promisify(execFile);
  const cli = new URL('../../src/cli.ts', import.meta.url).pathname;
  const [name, allowed, message] = expected[2]!;
  const result = await run(process.execPath, ['--import', 'tsx', cli, 'eval', '--policies', POLICIES, '--cluster-file', fixture('d2-cluster.yaml'),
    '--review', fixture(`admissionreviews/${name}.review.json`)]).catch((e) => e as { stdout: string; code: number });
  const response = JSON.parse(result.stdout).response;
  t.equal(response.allowed, allowed);
  t.match(response.status.message, message!);
});
