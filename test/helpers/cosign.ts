// Attaches signatures to images the way cosign does: the legacy `sha256-<hex>.sig` tag, and
// Sigstore bundles as OCI referrers (through the referrers API when the registry has one, else
// also under the `sha256-<hex>` tag-schema index, as cosign v3 does on older registries).
import type { PushedManifest, Pusher } from './registry.js';
import type { LegacyLayer } from './sigstore.js';

export const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/** One of cosign's tag schemes: a manifest tagged sha256-<hex><suffix> whose layers carry the evidence. */
async function attachTagScheme(push: Pusher, repo: string, digest: string, suffix: '.sig' | '.att', mediaType: string, layers: LegacyLayer[]): Promise<PushedManifest> {
  const config = await push.blob(repo, JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [] } }));
  const descriptors = [];
  for (const l of layers) {
    const b = await push.blob(repo, l.payload);
    descriptors.push({ mediaType, digest: b.digest, size: b.size, annotations: l.annotations });
  }
  return push.manifest(repo, `${digest.replace(':', '-')}${suffix}`, {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
    layers: descriptors,
  });
}

/** The `sha256-<hex>.sig` tag: one simplesigning layer per signature. */
export const attachLegacySignatures = (push: Pusher, repo: string, digest: string, layers: LegacyLayer[]) =>
  attachTagScheme(push, repo, digest, '.sig', 'application/vnd.dev.cosign.simplesigning.v1+json', layers);

/** The `sha256-<hex>.att` tag: one DSSE envelope layer per attestation (cosign attest before v3). */
export const attachLegacyAttestations = (push: Pusher, repo: string, digest: string, layers: LegacyLayer[]) =>
  attachTagScheme(push, repo, digest, '.att', 'application/vnd.dsse.envelope.v1+json', layers);

/** Pushes the bundle as a referrer of `subject`; with `tagFallback`, also (re)writes the sha256-<hex> index. */
export async function attachBundle(push: Pusher, repo: string, subject: PushedManifest, bundles: object[], options: { tagFallback: boolean }): Promise<PushedManifest[]> {
  const empty = await push.blob(repo, '{}');
  const referrers: PushedManifest[] = [];
  for (const bundle of bundles) {
    const layer = await push.blob(repo, JSON.stringify(bundle));
    referrers.push(await push.manifest(repo, undefined, {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: BUNDLE_MEDIA_TYPE,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: empty.size },
      layers: [{ mediaType: BUNDLE_MEDIA_TYPE, digest: layer.digest, size: layer.size }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.bytes.length },
      annotations: { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1' },
    }));
  }
  if (options.tagFallback) {
    await push.manifest(repo, subject.digest.replace(':', '-'), {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: referrers.map((r) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: r.digest, size: r.bytes.length, artifactType: BUNDLE_MEDIA_TYPE })),
    });
  }
  return referrers;
}
