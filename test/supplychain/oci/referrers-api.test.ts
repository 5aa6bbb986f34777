// The referrers API and bearer-token auth, against a small server answering as the OCI
// distribution spec v1.1 describes (Debian's distribution 2.8 has neither); and rate limiting,
// which Debian's registry cannot be made to do.
import t from 'tap';
import { retryAfterSeconds } from '../../../src/supplychain/oci/client.js';
import { CredentialStore, RegistryClient } from '../../../src/supplychain/oci/index.js';
import { startOciServer } from '../../helpers/oci-server.js';

const BUNDLE_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

t.test('referrers through the API, filtered by artifactType, behind a bearer-token challenge', async (t) => {
  const server = await startOciServer({ bearer: { user: 'puller', password: 'pw' } });
  t.teardown(() => server.stop());
  const image = await server.push.image('team/app', 'v1');
  const empty = await server.push.blob('team/app', '{}');
  for (const artifactType of [BUNDLE_TYPE, 'application/spdx+json']) {
    await server.push.manifest('team/app', undefined, {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: 2 }, layers: [],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.digest, size: image.bytes.length },
    });
  }
  const credentials = CredentialStore.fromDockerConfig({ auths: { [server.host]: { username: 'puller', password: 'pw' } } }, 'test');
  const client = new RegistryClient({ insecure: [server.host], credentials });
  t.teardown(() => client.close());

  const found = await client.referrers(server.host, 'team/app', image.digest, BUNDLE_TYPE);
  t.equal(found.via, 'referrers-api');
  t.same(found.descriptors.map((d) => d.artifactType), [BUNDLE_TYPE]);
  t.equal((await client.referrers(server.host, 'team/app', image.digest)).descriptors.length, 2);
  t.same((await client.referrers(server.host, 'team/app', `sha256:${'0'.repeat(64)}`)).descriptors, [], 'an unknown digest has no referrers (200, empty index)');
  t.equal(server.stats.tokens, 1, 'one token, reused for the same repository scope');

  await server.push.manifest('team/app', 'broken', Buffer.from('{"schemaVersion": 2, '), 'application/vnd.oci.image.manifest.v1+json');
  await t.rejects(client.getManifest(server.host, 'team/app', 'broken'), { code: 'CONTENT_INVALID', message: /not JSON/ }, 'a registry serving a broken manifest is refused, not parsed half');

  const anonymous = new RegistryClient({ insecure: [server.host] });
  t.teardown(() => anonymous.close());
  await t.rejects(anonymous.getManifest(server.host, 'team/app', 'v1'), { code: 'REGISTRY_AUTH_FAILED', message: /anonymous/ });
});

t.test('a rate-limited registry: a short pause is retried, a long one is the answer, said as such', async (t) => {
  const server = await startOciServer();
  t.teardown(() => server.stop());
  await server.push.image('team/app', 'v1');
  const client = new RegistryClient({ insecure: [server.host], retries: 2 });
  t.teardown(() => client.close());

  server.rateLimit(1);
  const before = server.pulls;
  t.ok((await client.getManifest(server.host, 'team/app', 'v1')).digest, 'a 429 without Retry-After is retried like a 5xx');
  t.equal(server.pulls - before, 2);

  server.rateLimit(5, '3600');
  const limited = server.pulls;
  await t.rejects(client.getManifest(server.host, 'team/app', 'v1'), { code: 'REGISTRY_UNAVAILABLE', message: /team\/app: manifest v1: rate limited by the registry \(HTTP 429, retry after 3600 s\)/ });
  t.equal(server.pulls - limited, 1, 'an hour\'s pause is not asked for again within the review');
});

t.test('Retry-After in seconds or as an HTTP date', async (t) => {
  const now = Date.parse('2026-12-01T10:00:00Z');
  t.equal(retryAfterSeconds('120', now), 120);
  t.equal(retryAfterSeconds('Tue, 01 Dec 2026 10:01:00 GMT', now), 60);
  t.equal(retryAfterSeconds('Tue, 01 Dec 2026 09:00:00 GMT', now), 0, 'a date in the past: no pause');
  t.equal(retryAfterSeconds('soon', now), undefined);
  t.equal(retryAfterSeconds(undefined, now), undefined);
});
