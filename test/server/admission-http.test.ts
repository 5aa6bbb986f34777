// The real TLS server, spoken to over HTTPS with AdmissionReviews captured from API servers.
import { Agent, request } from 'node:https';
import t from 'tap';
import { policyDir, policyYaml } from '../helpers/policies.js';
import { readFixture, startTestServer, https, type TestServer } from '../helpers/server.js';

const policies = {
  'pods.yaml': [
    policyYaml('require-team-label', `
mode: enforce
match:
  resources:
    - apiGroups: [""]
      resources: [pods]
      operations: [CREATE, UPDATE]
validations:
  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
    messageExpression: "'pod ' + object.metadata.name + ' has no team label'"
`),
    policyYaml('warn-no-limits', `
mode: warn
match:
  resources:
    - apiGroups: [""]
      resources: [pods]
      operations: [CREATE]
validations:
  - expression: "object.spec.containers.all(c, has(c.resources.limits))"
    message: containers should set resource limits
`),
    policyYaml('audit-only', `
mode: audit
match:
  resources:
    - apiGroups: [""]
      resources: [pods]
      operations: [CREATE]
validations:
  - expression: "false"
    message: recorded, never shown
`),
    policyYaml('no-debug-shells', `
mode: enforce
match:
  resources:
    - apiGroups: [""]
      resources: [pods/ephemeralcontainers]
      operations: [UPDATE]
validations:
  - expression: "object.spec.ephemeralContainers.all(c, !c.image.startsWith('busybox'))"
    message: no busybox debug containers
`),
    policyYaml('no-exec', `
mode: enforce
match:
  resources:
    - apiGroups: [""]
      resources: [pods/exec]
      operations: [CONNECT]
validations:
  - expression: "request.userInfo.username != 'system:serviceaccount:osm-system:osm-controller'"
    message: the mesh controller may not exec into pods
`),
    policyYaml('scale-cap', `
mode: enforce
match:
  resources:
    - apiGroups: [apps]
      resources: [deployments/scale]
      operations: [UPDATE]
validations:
  - expression: "object.spec.replicas <= 3"
    messageExpression: "'at most 3 replicas, asked for ' + string(object.spec.replicas)"
`),
    policyYaml('gitrepo-immutable-url', `
mode: enforce
match:
  resources:
    - apiGroups: [source.toolkit.fluxcd.io]
      resources: [gitrepositories]
      operations: [UPDATE]
validations:
  - expression: "false"
    message: every GitRepository update is refused
`),
  ].join('---\n'),
};

let server: TestServer;
t.before(async () => {
  server = await startTestServer({ policies: [await policyDir(policies)] });
});
t.teardown(() => server.close());

t.test('a captured Pod CREATE without a team label is denied with every failing policy named', async (t) => {
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  const res = await server.post('/validate', review);
  t.equal(res.status, 200);
  const body = res.json();
  t.equal(body.apiVersion, 'admission.k8s.io/v1');
  t.equal(body.kind, 'AdmissionReview');
  t.equal(body.response.uid, review.request.uid, 'uid echoed');
  t.equal(body.response.allowed, false);
  t.equal(body.response.status.code, 403);
  t.match(body.response.status.message, /\[require-team-label\] pod nginx has no team label/);
  t.notMatch(body.response.status.message, /audit-only/, 'audit mode never denies');
  t.same(body.response.status.details.causes, [{ reason: 'VALIDATION_FAILED', message: 'pod nginx has no team label', field: 'policy/require-team-label' }], 'stable codes in status.details');
  t.match(body.response.warnings, [/\[warn-no-limits\] containers should set resource limits/]);
  t.match(body.response.auditAnnotations['decision-id'], /^[0-9a-f-]{36}$/);
  t.notOk(body.response.patch, 'validate never patches');
});

t.test('a labelled pod is allowed, with the warn-mode policy as a warning', async (t) => {
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  review.request.object.metadata.labels = { team: 'web' };
  const body = (await server.post('/validate', review)).json();
  t.equal(body.response.allowed, true);
  t.notOk(body.response.status);
  t.equal(body.response.warnings.length, 1);
});

t.test('/mutate answers the same decision and has no patch when nothing is rewritten', async (t) => {
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  review.request.object.metadata.labels = { team: 'web' };
  const body = (await server.post('/mutate', review)).json();
  t.equal(body.response.allowed, true);
  t.notOk(body.response.patchType);
});

t.test('UPDATE with oldObject: a captured Deployment update matches no pod policy and is allowed', async (t) => {
  const review = await readFixture('admissionreviews/deployment-update.review.json');
  t.ok(review.request.oldObject, 'fixture carries oldObject');
  const body = (await server.post('/validate', review)).json();
  t.equal(body.response.uid, review.request.uid);
  t.equal(body.response.allowed, true);
});

t.test('DELETE with a null object is answered and allowed', async (t) => {
  const review = await readFixture('admissionreviews/pod-delete.review.json');
  t.equal(review.request.object, null);
  const body = (await server.post('/validate', review)).json();
  t.equal(body.response.allowed, true);
});

t.test('CONNECT pods/exec reaches policies that name the subresource', async (t) => {
  const review = await readFixture('admissionreviews/osm-pod-exec-connect.review.json');
  const body = (await server.post('/validate', review)).json();
  t.equal(body.response.uid, review.request.uid);
  t.equal(body.response.allowed, review.request.userInfo.username !== 'system:serviceaccount:osm-system:osm-controller');
});

t.test('pods/ephemeralcontainers (kubectl debug) is matched by its subresource rule only', async (t) => {
  const review = await readFixture('admissionreviews/R10-pod-ephemeralcontainers-kubectl-debug.review.json');
  const body = (await server.post('/validate', review)).json();
  t.equal(body.response.allowed, false);
  t.match(body.response.status.message, /no-debug-shells/);
  t.notMatch(body.response.status.message, /require-team-label/, 'a pods rule does not match the subresource');
});

t.test('deployments/scale: the Scale object is what policies see', async (t) => {
  const review = await readFixture('admissionreviews/k8s-docs-deployment-scale.review.json');
  review.request.object.spec.replicas = 5;
  const body = (await server.post('/validate', review)).json();
  t.equal(body.response.allowed, false);
  t.match(body.response.status.message, /at most 3 replicas, asked for 5/);
});

t.test('finalizer removal on an object being deleted is never blocked', async (t) => {
  const review = await readFixture('admissionreviews/R05-gitrepo-finalizer-removal-by-source-controller.review.json');
  const body = (await server.post('/validate', review)).json();
  t.equal(body.response.allowed, true);
});

t.test('dry-run requests are evaluated like any other', async (t) => {
  const review = await readFixture('admissionreviews/R12-pod-create-dryrun.review.json');
  t.equal(review.request.dryRun, true);
  const body = (await server.post('/validate', review)).json();
  t.equal(body.response.uid, review.request.uid);
  t.equal(body.response.allowed, false, 'the dry run is judged as the real request would be');
});

t.test('bad input gets the contract status and a clear message, and the server keeps serving', async (t) => {
  const valid = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  const cases: [string, string | object, number, RegExp, Record<string, string>?][] = [
    ['malformed JSON', '{"apiVersion": ', 400, /not valid JSON/],
    ['a JSON array', '[]', 400, /must be a JSON AdmissionReview object/],
    ['missing request.uid', { ...valid, request: { ...valid.request, uid: undefined } }, 400, /request\.uid is missing/],
    ['v1beta1', { ...valid, apiVersion: 'admission.k8s.io/v1beta1' }, 400, /admission\.k8s\.io\/v1/],
    ['wrong kind', { ...valid, kind: 'ConfigMap' }, 400, /kind must be AdmissionReview/],
    ['unknown operation', { ...valid, request: { ...valid.request, operation: 'PATCH' } }, 400, /operation must be one of/],
    ['object not an object', { ...valid, request: { ...valid.request, object: 'x' } }, 400, /object must be an object/],
    ['text/plain', JSON.stringify(valid), 415, /content type/, { 'content-type': 'text/plain' }],
    ['no content type', JSON.stringify(valid), 415, /content type/, {}],
  ];
  for (const [name, body, status, message, headers] of cases) {
    const res = await server.post('/validate', body, headers);
    t.equal(res.status, status, `${name}: status`);
    t.match(res.json(), { error: String, message }, `${name}: body`);
  }
  const deep = { ...valid, request: { ...valid.request, object: JSON.parse('{"a":'.repeat(500) + '1' + '}'.repeat(500)) } };
  const res = await server.post('/validate', deep);
  t.equal(res.status, 400, 'deeply nested object');
  t.match(res.json().message, /nested deeper than/);
  t.equal((await server.get('/healthz')).status, 200, 'still serving');
});

t.test('a body over the limit gets 413', async (t) => {
  const small = await startTestServer({ policies: [await policyDir(policies)], bodyLimit: 4096 });
  t.teardown(() => small.close());
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  review.request.object.metadata.annotations = { big: 'x'.repeat(10_000) };
  const res = await small.post('/validate', review);
  t.equal(res.status, 413);
  t.equal(res.json().error, 'BodyTooLarge');
});

t.test('health, readiness and metrics', async (t) => {
  t.equal((await server.get('/healthz')).status, 200);
  t.same((await server.get('/readyz')).json(), { status: 'ready' });
  const metrics = await server.get('/metrics');
  t.equal(metrics.status, 200);
  t.match(metrics.text, /trustgate_decisions_total\{endpoint="validate",allowed="false",dry_run="false"\} \d+/);
  t.match(metrics.text, /trustgate_policy_results_total\{policy="require-team-label",mode="enforce",result="fail",code="VALIDATION_FAILED"\}/);
  t.match(metrics.text, /trustgate_bad_requests_total\{error="MalformedJSON"\} 1/);
  t.match(metrics.text, /trustgate_admission_duration_seconds_bucket/);
  t.equal((await server.get('/nope')).status, 404);
});

t.test('TLS below 1.2 is refused', async (t) => {
  await t.rejects(https(`${server.url}/healthz`, server.ca, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }));
  t.equal((await https(`${server.url}/healthz`, server.ca, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).status, 200);
});

t.test('idle keep-alive connections are kept past the API server\'s own 90 s idle timeout', async (t) => {
  // the client must be the one to drop an idle connection: a POST on a connection the server
  // closed under it is not retried by the API server, and the webhook call fails
  const agent = new Agent({ keepAlive: true, ca: server.ca });
  t.teardown(() => agent.destroy());
  const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
    request(`${server.url}/healthz`, { agent }, (res) => { res.resume(); res.on('end', () => resolve(res.headers)); }).on('error', reject).end();
  });
  const seconds = Number(/timeout=(\d+)/.exec(String(headers['keep-alive']))?.[1]);
  t.ok(seconds > 90, `the server announces keep-alive timeout=${seconds}`);
});
