// Registry credentials and the distribution auth dance: anonymous first, then what the
// WWW-Authenticate challenge asks for (Bearer token from the realm, or Basic).
import { readFile } from 'node:fs/promises';

export interface Credential {
  username?: string;
  password?: string;
  /** an OAuth2 refresh token (docker config `identitytoken`) */
  identityToken?: string;
}

/** Credentials by registry host; `docker.io` also answers to Docker Hub's legacy keys. */
export class CredentialStore {
  #byHost = new Map<string, Credential>();

  set(host: string, credential: Credential): void {
    this.#byHost.set(normalizeHost(host), credential);
  }

  get(host: string): Credential | undefined {
    return this.#byHost.get(normalizeHost(host));
  }

  get size(): number {
    return this.#byHost.size;
  }

  /** Another store's entries layered over this one's (pull secrets over the global config). */
  overlay(other: CredentialStore | undefined): CredentialStore {
    if (!other?.size) return this;
    const merged = new CredentialStore();
    for (const [h, c] of this.#byHost) merged.#byHost.set(h, c);
    for (const [h, c] of other.#byHost) merged.#byHost.set(h, c);
    return merged;
  }

  /** The `auths` of a docker config.json (a file or a kubernetes.io/dockerconfigjson secret). */
  static fromDockerConfig(json: unknown, origin: string): CredentialStore {
    const store = new CredentialStore();
    const auths = (json as { auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }> } | null)?.auths;
    if (!auths || typeof auths !== 'object') throw new Error(`${origin}: no "auths" object`);
    for (const [key, entry] of Object.entries(auths)) {
      let { username, password } = entry;
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) throw new Error(`${origin}: the auth of ${key} is not base64 user:password`);
        username = decoded.slice(0, colon);
        password = decoded.slice(colon + 1);
      }
      store.set(key, { username, password, identityToken: entry.identitytoken || undefined });
    }
    return store;
  }

  static async fromFile(path: string): Promise<CredentialStore> {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      throw new Error(`registry config ${path}: ${(err as Error).message.split('\n')[0]}`);
    }
    return CredentialStore.fromDockerConfig(json, path);
  }
}

/** `https://index.docker.io/v1/` -> docker.io, `https://ghcr.io` -> ghcr.io */
export function normalizeHost(key: string): string {
  let host = key.trim().replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') host = 'docker.io';
  return host;
}

export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/** WWW-Authenticate: Bearer realm="…",service="…",scope="…" (quoted values may hold commas). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme, params };
}

export function basicAuthorization(c: Credential): string {
  return `Basic ${Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64')}`;
}
