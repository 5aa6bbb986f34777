// Image references as the container runtime resolves them, images found in every workload
// kind, and the match/exclude globs.
import t from 'tap';
import { compileGlobs, globToRegex } from '../../src/supplychain/glob.js';
import { imagesOf } from '../../src/supplychain/images.js';
import { parseImageReference } from '../../src/supplychain/oci/reference.js';
import { readFixture } from '../helpers/server.js';

t.test('normalisation as the runtime does it', async (t) => {
  const cases: [string, string][] = [
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['bitnami/redis', 'docker.io/bitnami/redis:latest'],
    ['docker.io/nginx', 'docker.io/library/nginx:latest'],
    ['index.docker.io/library/nginx:1', 'docker.io/library/nginx:1'],
    ['ghcr.io/org/app:v1.2.3', 'ghcr.io/org/app:v1.2.3'],
    ['GHCR.IO/org/app', 'ghcr.io/org/app:latest'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/team/app', 'localhost:5000/team/app:latest'],
    ['registry.internal.example:5000/node-agent', 'registry.internal.example:5000/node-agent:latest'],
    [`nginx:latest@sha256:${'a'.repeat(64)}`, `docker.io/library/nginx:latest@sha256:${'a'.repeat(64)}`],
    [`ghcr.io/org/app@sha256:${'b'.repeat(64)}`, `ghcr.io/org/app@sha256:${'b'.repeat(64)}`],
  ];
  for (const [raw, want] of cases) t.equal(parseImageReference(raw).normalized, want, raw);
  const r = parseImageReference('registry.internal.example:5000/node-agent');
  t.same([r.registry, r.repository, r.tag], ['registry.internal.example:5000', 'node-agent', 'latest'], 'a registry port is not a tag');
});

t.test('invalid references are refused with a reason', async (t) => {
  for (const bad of ['', 'Nginx', 'ghcr.io/Org/app', 'nginx:', 'nginx@sha256:1234', 'a//b', ' nginx', 'nginx:-bad']) {
    t.throws(() => parseImageReference(bad), { code: 'INVALID_IMAGE_REFERENCE' }, JSON.stringify(bad));
  }
});

t.test('images of every workload kind, with the pointers a digest pin patches', async (t) => {
  const fixtures: [string, string[]][] = [
    ['cronjob-create', ['/spec/jobTemplate/spec/template/spec/containers/0/image']],
    ['daemonset-create', ['/spec/template/spec/containers/0/image']],
    ['deployment-create', ['/spec/template/spec/containers/0/image']],
    ['job-create', ['/spec/template/spec/containers/0/image']],
    ['replicaset-create', ['/spec/template/spec/containers/0/image']],
  ];
  for (const [name, pointers] of fixtures) {
    const review = await readFixture(`admissionreviews/${name}.review.json`);
    t.same(imagesOf(review.request.object).map((i) => i.pointer), pointers, name);
  }
  const pod = (await readFixture('admissionreviews/pod-create-with-init-container.review.json')).request.object;
  t.same(imagesOf(pod).map((i) => `${i.field}=${i.image}`), ['spec.containers[0]=alpine', 'spec.containers[1]=nginx', 'spec.initContainers[0]=nginx']);
  const debug = (await readFixture('admissionreviews/R10-pod-ephemeralcontainers-kubectl-debug.review.json')).request.object;
  t.ok(imagesOf(debug).some((i) => i.field.startsWith('spec.ephemeralContainers') && i.image === 'busybox:latest'), 'kubectl debug containers are found');
  const oci = (ref?: object) => imagesOf({ apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', metadata: { name: 'a' }, spec: { url: 'oci://ghcr.io/org/app', ref } })[0];
  t.equal(oci()?.image, 'ghcr.io/org/app:latest', 'Flux defaults to the latest tag');
  t.equal(oci({ tag: 'v1' })?.image, 'ghcr.io/org/app:v1');
  t.equal(oci({ tag: 'v1', digest: `sha256:${'a'.repeat(64)}` })?.image, `ghcr.io/org/app@sha256:${'a'.repeat(64)}`, 'digest takes precedence, as in Flux');
  t.match(oci({ semver: '>=1.0.0', tag: 'v1' }), { image: 'ghcr.io/org/app', semver: '>=1.0.0', patchable: false }, 'semver over tag');
  t.same(imagesOf({ apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'd' }, spec: { replicas: 3 } }), [], 'a Scale has no images');
});

t.test('globs: * within a segment, ** across segments, anchored, on normalised references', async (t) => {
  t.equal(globToRegex('ghcr.io/org/**'), '^ghcr\\.io/org/.*$');
  const org = compileGlobs(['ghcr.io/org/**']);
  t.ok(org('ghcr.io/org/team/app:1'));
  t.notOk(org('ghcr.io/org-evil/app:1'), 'segment boundary');
  t.notOk(org('evil.example/ghcr.io/org/app:1'), 'anchored');
  const oneLevel = compileGlobs(['docker.io/library/*']);
  t.ok(oneLevel(parseImageReference('nginx').normalized));
  t.notOk(oneLevel('docker.io/library/a/b:1'));
});
