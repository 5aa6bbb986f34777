// Supply chain: image references, the OCI client, Sigstore verification, the images rule.
import { readFile } from 'node:fs/promises';
import { ImageVerifier, type VerifierMetrics } from './image-verifier.js';
import { CredentialStore, RegistryClient } from './oci/index.js';

export { ImageVerifier, type ImageVerdict, type VerifierMetrics } from './image-verifier.js';
export { imagesOf, podSpecLocation, type ImageUse } from './images.js';

export interface SupplyChainConfig {
  registryConfig?: string;
  insecureRegistries: string[];
  registryCa: string[];
  /** registries the loaded policies name: read on every look-up, so a reload takes effect at once */
  namedRegistries: () => ReadonlySet<string>;
  metrics?: VerifierMetrics;
  observeRegistry?: (host: string, outcome: string, ms: number) => void;
}

/** The verifier `serve` and `eval` use: credentials and CAs read once at start. */
export async function createImageVerifier(config: SupplyChainConfig): Promise<ImageVerifier> {
  const credentials = config.registryConfig ? await CredentialStore.fromFile(config.registryConfig) : new CredentialStore();
  const ca = await Promise.all(config.registryCa.map(async (path) => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new Error(`registry CA ${path}: ${(err as Error).message.split('\n')[0]}`);
    }
  }));
  const insecure = new Set(config.insecureRegistries.map((h) => h.toLowerCase()));
  const client = new RegistryClient({ credentials, insecure, ca, observe: config.observeRegistry });
  let named: ReadonlySet<string> | undefined;
  let allowed: ReadonlySet<string> = insecure;
  return new ImageVerifier(client, {
    metrics: config.metrics,
    // rebuilt only when a reload brings a new set of named registries
    allowedRegistries: () => {
      const now = config.namedRegistries();
      if (now !== named) allowed = new Set([...(named = now), ...insecure]);
      return allowed;
    },
  });
}
