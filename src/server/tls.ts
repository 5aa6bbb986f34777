// Serving certificate and key (and the CA that client certificates must chain to, when callers
// are authenticated), reloaded when the files change (cert-manager rotates them in place
// through symlink swaps, so the directories are watched, not the files).
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { dirname } from 'node:path';
import type { Server as HttpsServer } from 'node:https';

export interface TlsFiles { cert: string; key: string; clientCa?: string }

export interface TlsMaterial { cert: Buffer; key: Buffer; clientCa?: Buffer; notAfter: Date }

export async function readTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  const [cert, key, clientCa] = await Promise.all([readFile(files.cert), readFile(files.key), files.clientCa ? readFile(files.clientCa) : undefined]);
  const x509 = new X509Certificate(cert);
  const privateKey = createPrivateKey(key);
  // a certificate that does not belong to the key would make every handshake fail
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`${files.cert} does not match the key in ${files.key}`);
  // an unreadable client CA would let no caller in (or, left out, any certificate the system trusts)
  if (files.clientCa) new X509Certificate(clientCa!);
  return { cert, key, clientCa, notAfter: new Date(x509.validTo) };
}

/** What a TLS context is made of: a reload must carry the client CA too, or it would be dropped. */
export function secureContextOptions(m: TlsMaterial) {
  return { cert: m.cert, key: m.key, minVersion: 'TLSv1.2' as const, ...(m.clientCa ? { ca: m.clientCa } : {}) };
}

export interface TlsReloadEvents {
  reloaded(material: TlsMaterial): void;
  failed(error: Error): void;
}

export class TlsReloader {
  #watchers: FSWatcher[] = [];
  #timer?: NodeJS.Timeout;

  constructor(private readonly files: TlsFiles, private readonly events: TlsReloadEvents) {}

  start(server: HttpsServer, debounceMs = 200): void {
    const reload = () => {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(async () => {
        try {
          const m = await readTlsMaterial(this.files);
          server.setSecureContext(secureContextOptions(m));
          this.events.reloaded(m);
        } catch (err) {
          // keep serving with the old certificate; a half-written pair is retried on the next event
          this.events.failed(err as Error);
        }
      }, debounceMs);
    };
    const { cert, key, clientCa } = this.files;
    for (const dir of new Set([cert, key, ...(clientCa ? [clientCa] : [])].map((f) => dirname(f)))) {
      const w = watch(dir, reload);
      w.on('error', (err) => this.events.failed(err));
      this.#watchers.push(w);
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    for (const w of this.#watchers) w.close();
  }
}
