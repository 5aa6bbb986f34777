// Registry credentials of the pod being admitted, as the kubelet would use them: the pod's
// imagePullSecrets plus those of its service account. Read through the API on first use and
// kept briefly, so a burst of pods costs one read per secret; a missing secret is no credential.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { AdmissionRequest } from '../admission/types.js';
import { podSpecLocation } from '../supplychain/images.js';
import { CredentialStore } from '../supplychain/oci/index.js';

interface PodSpecRefs {
  imagePullSecrets?: { name?: string }[];
  serviceAccountName?: string;
}

function podSpec(request: AdmissionRequest): PodSpecRefs | undefined {
  const object = request.object;
  const location = podSpecLocation(object?.kind ?? '');
  if (!object || !location) return undefined;
  let v: unknown = object;
  for (const part of location.pointer.split('/').slice(1)) v = (v as Record<string, unknown> | undefined)?.[part];
  return v as PodSpecRefs | undefined;
}

/** The `auths` of a kubernetes.io/dockerconfigjson secret, or the older kubernetes.io/dockercfg. */
export function credentialsOfSecret(secret: { type?: string; data?: Record<string, string> }, origin: string): CredentialStore | undefined {
  const data = secret.data ?? {};
  if (data['.dockerconfigjson']) return CredentialStore.fromDockerConfig(JSON.parse(Buffer.from(data['.dockerconfigjson'], 'base64').toString('utf8')), origin);
  if (data['.dockercfg']) return CredentialStore.fromDockerConfig({ auths: JSON.parse(Buffer.from(data['.dockercfg'], 'base64').toString('utf8')) }, origin);
  return undefined;
}

export class PullSecretReader {
  readonly #core: CoreV1Api;
  // ttlResolution 0: no debouncing timer per look-up (see the image verifier's cache)
  readonly #secrets = new LRUCache<string, { store?: CredentialStore }>({ max: 1000, ttl: 60_000, ttlResolution: 0 });
  readonly #accounts = new LRUCache<string, { names: string[] }>({ max: 1000, ttl: 60_000, ttlResolution: 0 });

  constructor(kc: KubeConfig, private readonly log: Logger) {
    this.#core = kc.makeApiClient(CoreV1Api);
  }

  async #secret(namespace: string, name: string): Promise<CredentialStore | undefined> {
    const key = `${namespace}/${name}`;
    const known = this.#secrets.get(key);
    if (known) return known.store;
    let store: CredentialStore | undefined;
    try {
      store = credentialsOfSecret(await this.#core.readNamespacedSecret({ namespace, name }), `secret ${key}`);
    } catch (err) {
      // never log the secret, only that it could not be used
      this.log.warn({ secret: key, reason: (err as Error).message.split('\n')[0]?.slice(0, 200) }, 'pull secret unusable; pulling without it');
    }
    this.#secrets.set(key, { store });
    return store;
  }

  async #accountSecrets(namespace: string, name: string): Promise<string[]> {
    const key = `${namespace}/${name}`;
    const known = this.#accounts.get(key);
    if (known) return known.names;
    let names: string[] = [];
    try {
      const sa = await this.#core.readNamespacedServiceAccount({ namespace, name });
      names = (sa.imagePullSecrets ?? []).map((s) => s.name).filter((n): n is string => !!n);
    } catch (err) {
      this.log.debug({ serviceAccount: key, reason: (err as Error).message.split('\n')[0] }, 'service account not readable');
    }
    this.#accounts.set(key, { names });
    return names;
  }

  /** Credentials for this request's pod; the pod's own secrets win over the service account's. */
  async credentialsFor(request: AdmissionRequest): Promise<CredentialStore | undefined> {
    const spec = podSpec(request);
    const namespace = request.namespace;
    if (!spec || !namespace) return undefined;
    const own = (spec.imagePullSecrets ?? []).map((s) => s.name).filter((n): n is string => !!n);
    const fromAccount = await this.#accountSecrets(namespace, spec.serviceAccountName || 'default');
    let merged: CredentialStore | undefined;
    for (const name of [...new Set([...fromAccount, ...own])]) {
      const store = await this.#secret(namespace, name);
      if (store) merged = (merged ?? new CredentialStore()).overlay(store);
    }
    return merged;
  }
}
