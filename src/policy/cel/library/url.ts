// Kubernetes URL library: url(), isURL() and the accessors, on WHATWG URL parsing.
import type { Environment } from '@marcbachmann/cel-js';
import { celError } from './fail.js';

export class CelURL {
  constructor(readonly raw: string, readonly parsed: URL, readonly isPathOnly: boolean) {}
  toString(): string { return this.raw; }
}

function parseURL(s: string): CelURL | undefined {
  // Kubernetes accepts absolute URIs and absolute paths, nothing relative
  if (s.startsWith('/')) {
    try { return new CelURL(s, new URL(s, 'http://path.invalid'), true); } catch { return undefined; }
  }
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(s)) return undefined;
  try { return new CelURL(s, new URL(s), false); } catch { return undefined; }
}

export function registerURL(env: Environment): void {
  env
    .registerType('URL', CelURL)
    .registerFunction('url(string): URL', (s: string) => parseURL(s) ?? celError(`url: ${JSON.stringify(s)} is not an absolute URI or absolute path`))
    .registerFunction('isURL(string): bool', (s: string) => parseURL(s) !== undefined)
    .registerFunction('URL.getScheme(): string', (u: CelURL) => (u.isPathOnly ? '' : u.parsed.protocol.replace(/:$/, '')))
    .registerFunction('URL.getHost(): string', (u: CelURL) => (u.isPathOnly ? '' : u.parsed.host))
    .registerFunction('URL.getHostname(): string', (u: CelURL) => (u.isPathOnly ? '' : u.parsed.hostname.replace(/^\[(.*)\]$/, '$1')))
    .registerFunction('URL.getPort(): string', (u: CelURL) => (u.isPathOnly ? '' : u.parsed.port))
    .registerFunction('URL.getEscapedPath(): string', (u: CelURL) => u.parsed.pathname)
    .registerFunction('URL.getQuery(): map<string, list<string>>', (u: CelURL) => {
      const out: Record<string, string[]> = {};
      for (const [k, v] of u.parsed.searchParams) {
        if (k === '__proto__') continue;
        (out[k] ??= []).push(v);
      }
      return out;
    })
    .registerFunction('string(URL): string', (u: CelURL) => u.raw);
}
