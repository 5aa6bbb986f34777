// Where cosign puts signatures, all three places: the legacy `sha256-<hex>.sig` tag, Sigstore
// bundles attached as OCI referrers (referrers API), and the same under the referrers tag-schema
// fallback (`sha256-<hex>` index). Only fetches; verification is verify.ts's job.
import { RegistryError, type RegistryClient, type RequestScope } from '../oci/index.js';
import { DSSE_LAYER_MEDIA_TYPE, legacyAttestationToBundle, legacyLayerToBundle, SIMPLESIGNING_MEDIA_TYPE } from './cosign-legacy.js';

export type EvidenceSource = 'cosign-tag' | 'cosign-att-tag' | 'referrers-api' | 'referrers-tag';

export interface Evidence {
  source: EvidenceSource;
  /** where exactly: the .sig tag and layer, or the referrer manifest digest */
  location: string;
  /** bundle JSON (legacy layers converted to v0.1) */
  bundle: unknown;
  /** for a legacy layer, the simplesigning payload the signature is over */
  payload?: Buffer;
  /** a problem with this piece of evidence found while reading it */
  unreadable?: string;
}

export interface Discovered {
  evidence: Evidence[];
  /** registry failures that kept a place from being searched: no pass may rest on their absence */
  errors: RegistryError[];
  searched: string[];
}

const BUNDLE_ARTIFACT_PREFIX = 'application/vnd.dev.sigstore.bundle';
const MAX_SIGNATURE_LAYERS = 32;
const MAX_REFERRERS = 32;
const MAX_SIGNATURE_BYTES = 1024 * 1024;

export interface DiscoveryOptions {
  /** also read the `.att` tag, and allow attestation-sized blobs */
  attestations?: boolean;
  /** the largest attestation (bundle or envelope) read, in bytes; SBOMs are big */
  maxAttestationBytes?: number;
}

/** A piece of evidence that could not be read: registry trouble is recorded as such; an oversized or malformed piece is unreadable evidence, not an outage. */
function evidenceFailed(err: unknown, out: Discovered, source: EvidenceSource, location: string): void {
  if (err instanceof RegistryError && err.code !== 'CONTENT_INVALID') return swallowMissing(err, out.errors);
  out.evidence.push({ source, location, bundle: undefined, unreadable: (err as Error).message });
}

function swallowMissing(err: unknown, errors: RegistryError[]): void {
  if (err instanceof RegistryError) {
    if (err.code !== 'IMAGE_NOT_FOUND') errors.push(err);
    return;
  }
  throw err;
}

/** One of cosign's tag schemes: `sha256-<hex>.sig` (simplesigning layers) or `.att` (DSSE envelope layers). */
interface TagScheme {
  suffix: '.sig' | '.att';
  mediaType: string;
  source: EvidenceSource;
  evidence(annotations: Record<string, string>, blob: Buffer): Pick<Evidence, 'bundle' | 'payload'>;
}

const SIGNATURE_TAG: TagScheme = {
  suffix: '.sig', mediaType: SIMPLESIGNING_MEDIA_TYPE, source: 'cosign-tag',
  evidence: (annotations, payload) => ({ bundle: legacyLayerToBundle(annotations, payload), payload }),
};
const ATTESTATION_TAG: TagScheme = {
  suffix: '.att', mediaType: DSSE_LAYER_MEDIA_TYPE, source: 'cosign-att-tag',
  evidence: (annotations, envelope) => ({ bundle: legacyAttestationToBundle(annotations, envelope) }),
};

async function tagScheme(scheme: TagScheme, client: RegistryClient, registry: string, repository: string, digest: string, scope: RequestScope, out: Discovered, maxBytes: number): Promise<void> {
  const tag = `${digest.replace(':', '-')}${scheme.suffix}`;
  out.searched.push(`cosign tag ${tag}`);
  let manifest;
  try {
    manifest = await client.getManifest(registry, repository, tag, scope);
  } catch (err) {
    return swallowMissing(err, out.errors);
  }
  const layers = (manifest.manifest.layers ?? []).filter((l) => l.mediaType === scheme.mediaType).slice(0, MAX_SIGNATURE_LAYERS);
  await Promise.all(layers.map(async (layer, i) => {
    const location = `${tag} layer ${i}`;
    try {
      if (layer.size > maxBytes) throw new Error(`${layer.size} bytes exceeds the ${maxBytes}-byte limit`);
      const blob = await client.getBlob(registry, repository, layer.digest, maxBytes, scope);
      out.evidence.push({ source: scheme.source, location, ...scheme.evidence(layer.annotations ?? {}, blob) });
    } catch (err) {
      evidenceFailed(err, out, scheme.source, location);
    }
  }));
}

async function referrerBundles(client: RegistryClient, registry: string, repository: string, digest: string, scope: RequestScope, out: Discovered, maxBytes: number): Promise<void> {
  let found;
  try {
    found = await client.referrers(registry, repository, digest, undefined, scope);
  } catch (err) {
    out.searched.push('referrers');
    return swallowMissing(err, out.errors);
  }
  out.searched.push(found.via === 'referrers-api' ? 'referrers API' : `referrers tag ${digest.replace(':', '-')}`);
  const bundles = found.descriptors.filter((d) => d.artifactType?.startsWith(BUNDLE_ARTIFACT_PREFIX)).slice(0, MAX_REFERRERS);
  await Promise.all(bundles.map(async (d) => {
    const location = `referrer ${d.digest}`;
    try {
      const m = await client.getManifest(registry, repository, d.digest, scope);
      const layer = (m.manifest.layers ?? []).find((l) => l.mediaType.startsWith(BUNDLE_ARTIFACT_PREFIX));
      if (!layer) throw new Error('the referrer holds no Sigstore bundle layer');
      if (layer.size > maxBytes) throw new Error(`${layer.size} bytes exceeds the ${maxBytes}-byte limit`);
      const bytes = await client.getBlob(registry, repository, layer.digest, maxBytes, scope);
      out.evidence.push({ source: found.via, location, bundle: JSON.parse(bytes.toString('utf8')) });
    } catch (err) {
      evidenceFailed(err, out, found.via, location);
    }
  }));
}

/** Every signature (and, when asked, attestation) cosign may have attached to this digest, from every place, fetched concurrently. */
export async function discoverSignatures(client: RegistryClient, registry: string, repository: string, digest: string, scope: RequestScope = {}, options: DiscoveryOptions = {}): Promise<Discovered> {
  const out: Discovered = { evidence: [], errors: [], searched: [] };
  const maxBytes = options.attestations ? options.maxAttestationBytes ?? 32 * 1024 * 1024 : MAX_SIGNATURE_BYTES;
  await Promise.all([
    tagScheme(SIGNATURE_TAG, client, registry, repository, digest, scope, out, MAX_SIGNATURE_BYTES),
    referrerBundles(client, registry, repository, digest, scope, out, maxBytes),
    options.attestations ? tagScheme(ATTESTATION_TAG, client, registry, repository, digest, scope, out, maxBytes) : undefined,
  ]);
  return out;
}
