// Certificates and policies change under a running server: rotations are picked up, broken
// policy edits are rejected whole while the last good set keeps deciding.
import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { readFile, writeFile, mkdtemp, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { eventually } from '../helpers/eventually.js';
import { generateCertificates } from '../../src/server/index.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { startTestServer, readFixture } from '../helpers/server.js';

function servedCertificate(port: number, ca: Buffer): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const raw = socket.getPeerX509Certificate();
      socket.end();
      raw ? resolve(raw) : reject(new Error('no certificate'));
    });
    socket.on('error', reject);
  });
}


t.test('a rotated serving certificate is served without a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-tls-'));
  const first = await generateCertificates(join(dir, 'a'), ['localhost', '127.0.0.1']);
  const live = join(dir, 'live');
  await cp(join(dir, 'a'), live, { recursive: true });
  const ca1 = await readFile(first.caCert);
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policyYaml('p', `${POD_RULE}\nvalidations:\n  - expression: "true"`) })], tlsCert: join(live, 'tls.crt'), tlsKey: join(live, 'tls.key') }, ca1);
  t.teardown(() => server.close());
  const before = await servedCertificate(server.port, ca1);

  const second = await generateCertificates(join(dir, 'b'), ['localhost', '127.0.0.1']);
  // key first, then certificate, as a careless rotation would: the half-written state is skipped
  await writeFile(join(live, 'tls.key'), await readFile(second.key));
  await writeFile(join(live, 'tls.crt'), await readFile(second.cert));
  const ca2 = await readFile(second.caCert);
  await eventually(async () => {
    try {
      return (await servedCertificate(server.port, ca2)).serialNumber !== before.serialNumber;
    } catch {
      return false;
    }
  }, 'the new certificate');
  t.pass('new certificate served');
});

t.test('a broken policy edit is rejected whole and the last good set keeps deciding', async (t) => {
  const good = policyYaml('require-team', `${POD_RULE}\nvalidations:\n  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"\n    message: pods need a team label`);
  const dir = await policyDir({ 'team.yaml': good });
  const server = await startTestServer({ policies: [dir] });
  t.teardown(() => server.close());
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  t.equal((await server.post('/validate', review)).json().response.allowed, false);
  const revision = server.store.current!.revision;

  // a second file whose expression does not compile: nothing of the edit applies
  await writeFile(join(dir, 'broken.yaml'), policyYaml('allow-all', `${POD_RULE}\nvalidations:\n  - expression: "object.spec.containers.size( > 0"`));
  await eventually(async () => /^trustgate_policy_last_reload_failed 1$/m.test((await server.get('/metrics')).text), 'the rejected reload');
  t.equal(server.store.current!.revision, revision, 'the last good set is still active');
  t.equal((await server.post('/validate', review)).json().response.allowed, false, 'and still denies');
  t.match((await server.get('/metrics')).text, /trustgate_policy_reloads_total\{result="rejected"\} [1-9]/);

  // fixing the file loads the new set
  await writeFile(join(dir, 'broken.yaml'), policyYaml('warn-all', `mode: warn\n${POD_RULE}\nvalidations:\n  - expression: "false"\n    message: noted`));
  await eventually(async () => server.store.current!.revision !== revision, 'the fixed set');
  const body = (await server.post('/validate', review)).json();
  t.equal(body.response.allowed, false);
  t.match(body.response.warnings, [/\[warn-all\] noted/]);
  t.match((await server.get('/metrics')).text, /^trustgate_policy_warnings 0$/m);

  // a set that loads with a warning: served all the same, and counted for alerts
  await writeFile(join(dir, 'typo.yaml'), policyYaml('typo', `match:\n  resources:\n    - apiGroups: [""]\n      resources: [pod]\n      operations: [CREATE]\nvalidations:\n  - expression: "true"`));
  await eventually(async () => /^trustgate_policy_warnings 1$/m.test((await server.get('/metrics')).text), 'the warning counted');
  t.ok(server.store.current!.policies.some((p) => p.name === 'typo'), 'the policy is active');
});

t.test('the server refuses to start on policies that do not load', async (t) => {
  const dir = await policyDir({ 'bad.yaml': 'apiVersion: trustgate.dev/v1alpha1\nkind: Policy\nmetadata: { name: x }\nspec: { mode: enforce }\n' });
  await t.rejects(startTestServer({ policies: [dir] }), /bad\.yaml:4:7: spec: missing required field "match"/);
});
