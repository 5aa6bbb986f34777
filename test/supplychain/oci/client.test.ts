// The OCI client against the real CNCF distribution registry (Debian's docker-registry) on
// loopback: manifests, indexes, blobs, tags, the referrers tag-schema fallback (distribution 2.8
// has no referrers API), basic auth from a docker config, TLS with a custom CA, limits, timeouts.
import { createServer } from 'node:net';
import t from 'tap';
import { CredentialStore, RegistryClient, sha256Digest } from '../../../src/supplychain/oci/index.js';
import { startRegistry } from '../../helpers/registry.js';
import { serviceOrSkip } from '../../helpers/services.js';

t.test('plain registry', async (t) => {
  const reg = await serviceOrSkip(t, 'docker-registry', () => startRegistry());
  if (!reg) return;
  t.teardown(() => reg.stop());
  const client = new RegistryClient({ insecure: [reg.host] });
  t.teardown(() => client.close());
  const amd = await reg.push.image('app', 'amd64');
  const arm = await reg.push.image('app', 'arm64');
  const index = await reg.push.index('app', 'v1', [{ manifest: amd, architecture: 'amd64' }, { manifest: arm, architecture: 'arm64' }]);

  t.test('fetches an index by tag and computes its digest from the bytes', async (t) => {
    const m = await client.getManifest(reg.host, 'app', 'v1');
    t.equal(m.digest, index.digest);
    t.ok(m.isIndex);
    t.same(m.manifest.manifests?.map((d) => d.platform?.architecture), ['amd64', 'arm64']);
  });

  t.test('fetches a manifest by digest and a blob checked against its digest', async (t) => {
    const m = await client.getManifest(reg.host, 'app', amd.digest);
    t.notOk(m.isIndex);
    const config = await client.getBlob(reg.host, 'app', m.manifest.config!.digest, 1 << 20);
    t.equal(sha256Digest(config), m.manifest.config!.digest);
  });

  t.test('an unknown tag or repository is IMAGE_NOT_FOUND', async (t) => {
    await t.rejects(client.getManifest(reg.host, 'app', 'nope'), { code: 'IMAGE_NOT_FOUND' });
    await t.rejects(client.getManifest(reg.host, 'nothing/here', 'v1'), { code: 'IMAGE_NOT_FOUND' });
  });

  t.test('lists tags', async (t) => {
    t.same((await client.listTags(reg.host, 'app')).sort(), ['amd64', 'arm64', 'v1']);
  });

  t.test('referrers: distribution 2.8 has no API, so the sha256-<hex> tag index is read', async (t) => {
    t.same(await client.referrers(reg.host, 'app', amd.digest), { descriptors: [], via: 'referrers-tag' });
    const artifact = await reg.push.manifest('app', undefined, {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: (await reg.push.blob('app', '{}')).digest, size: 2 },
      layers: [], subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.digest, size: amd.bytes.length },
    });
    await reg.push.manifest('app', amd.digest.replace(':', '-'), {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: artifact.digest, size: artifact.bytes.length, artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json' },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.digest, size: amd.bytes.length, artifactType: 'application/spdx+json' },
      ],
    });
    const found = await client.referrers(reg.host, 'app', amd.digest, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    t.equal(found.via, 'referrers-tag');
    t.same(found.descriptors.map((d) => d.digest), [artifact.digest], 'filtered by artifactType on our side');
  });

  t.test('a manifest over the size limit is refused', async (t) => {
    const small = new RegistryClient({ insecure: [reg.host], maxManifestBytes: 100 });
    t.teardown(() => small.close());
    await t.rejects(small.getManifest(reg.host, 'app', 'v1'), { code: 'CONTENT_INVALID' });
  });

  t.test('a registry not listed as insecure is only spoken to over HTTPS', async (t) => {
    const strict = new RegistryClient({ retries: 0, timeoutMs: 2000 });
    t.teardown(() => strict.close());
    await t.rejects(strict.getManifest(reg.host, 'app', 'v1'), { code: 'REGISTRY_UNAVAILABLE' });
  });
});

t.test('basic auth over TLS with a custom CA', async (t) => {
  const reg = await serviceOrSkip(t, 'docker-registry', () => startRegistry({ tls: true, users: { ci: 's3cret' } }));
  if (!reg) return;
  t.teardown(() => reg.stop());
  await reg.push.image('private/app', 'v1');
  const config = (user: string, pass: string) => CredentialStore.fromDockerConfig({ auths: { [reg.host]: { auth: Buffer.from(`${user}:${pass}`).toString('base64') } } }, 'test');
  const client = new RegistryClient({ ca: [reg.ca!], credentials: config('ci', 's3cret') });
  t.teardown(() => client.close());
  t.equal((await client.getManifest(reg.host, 'private/app', 'v1')).manifest.schemaVersion, 2);

  const wrong = new RegistryClient({ ca: [reg.ca!], credentials: config('ci', 'guess') });
  t.teardown(() => wrong.close());
  await t.rejects(wrong.getManifest(reg.host, 'private/app', 'v1'), { code: 'REGISTRY_AUTH_FAILED' });

  const anonymous = new RegistryClient({ ca: [reg.ca!] });
  t.teardown(() => anonymous.close());
  await t.rejects(anonymous.getManifest(reg.host, 'private/app', 'v1'), { code: 'REGISTRY_AUTH_FAILED', message: /no.*credentials|basic credentials/ });

  const pullSecret = { credentials: config('ci', 's3cret') };
  t.ok(await anonymous.getManifest(reg.host, 'private/app', 'v1', pullSecret), 'credentials handed in per request (pull secrets) are used');

  const untrusted = new RegistryClient({ credentials: config('ci', 's3cret'), retries: 0 });
  t.teardown(() => untrusted.close());
  await t.rejects(untrusted.getManifest(reg.host, 'private/app', 'v1'), { code: 'REGISTRY_UNAVAILABLE' }, 'a certificate from an unknown CA is refused');
});

t.test('a registry that accepts connections and never answers times out', async (t) => {
  const sockets: import('node:net').Socket[] = [];
  const hang = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  t.teardown(() => { sockets.forEach((s) => s.destroy()); hang.close(); });
  const host = `127.0.0.1:${(hang.address() as { port: number }).port}`;
  const client = new RegistryClient({ insecure: [host], timeoutMs: 300, retries: 1 });
  t.teardown(() => client.close());
  const started = Date.now();
  await t.rejects(client.getManifest(host, 'app', 'v1'), { code: 'REGISTRY_UNAVAILABLE', message: /no answer within 300 ms/ });
  t.ok(Date.now() - started < 2000, 'bounded: timeout x (1 + retries) plus backoff');
  const deadline = AbortSignal.timeout(100);
  await t.rejects(client.getManifest(host, 'app', 'v1', { signal: deadline }), { code: 'REGISTRY_UNAVAILABLE', message: /deadline/ });
});

t.test('docker config.json parsing', async (t) => {
  const store = CredentialStore.fromDockerConfig({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('u:p:with:colons').toString('base64') }, 'ghcr.io': { username: 'a', password: 'b' } } }, 'cfg');
  t.same(store.get('docker.io'), { username: 'u', password: 'p:with:colons', identityToken: undefined });
  t.equal(store.get('ghcr.io')?.username, 'a');
  t.throws(() => CredentialStore.fromDockerConfig({}, 'cfg'), /no "auths"/);
});

