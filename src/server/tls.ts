// Serving certificate and key, reloaded when the files change (cert-manager rotates them in
// place through symlink swaps, so the directory is watched, not the files).
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { dirname } from 'node:path';
import type { Server as HttpsServer } from 'node:https';

export interface TlsMaterial { cert: Buffer; key: Buffer; notAfter: Date }

export async function readTlsMaterial(certFile: string, keyFile: string): Promise<TlsMaterial> {
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  const x509 = new X509Certificate(cert);
  const privateKey = createPrivateKey(key);
  // a certificate that does not belong to the key would make every handshake fail
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`${certFile} does not match the key in ${keyFile}`);
  return { cert, key, notAfter: new Date(x509.validTo) };
}

export interface TlsReloadEvents {
  reloaded(material: TlsMaterial): void;
  failed(error: Error): void;
}

export class TlsReloader {
  #watchers: FSWatcher[] = [];
  #timer?: NodeJS.Timeout;

  constructor(private readonly certFile: string, private readonly keyFile: string, private readonly events: TlsReloadEvents) {}

  start(server: HttpsServer, debounceMs = 200): void {
    const reload = () => {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(async () => {
        try {
          const m = await readTlsMaterial(this.certFile, this.keyFile);
          server.setSecureContext({ cert: m.cert, key: m.key, minVersion: 'TLSv1.2' });
          this.events.reloaded(m);
        } catch (err) {
          // keep serving with the old certificate; a half-written pair is retried on the next event
          this.events.failed(err as Error);
        }
      }, debounceMs);
    };
    for (const dir of new Set([dirname(this.certFile), dirname(this.keyFile)])) {
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
