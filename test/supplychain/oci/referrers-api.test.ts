// The referrers API and bearer-token auth, against a small server answering as the OCI
// distribution spec v1.1 describes (Debian's distribution 2.8 has neither).
import t from 'tap';
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
