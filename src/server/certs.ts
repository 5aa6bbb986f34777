// Development TLS material: a self-signed CA and a serving certificate it signs (ECDSA P-256).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface CertificatePaths { caCert: string; cert: string; key: string }

export function certificatePaths(dir: string): CertificatePaths {
  return { caCert: join(dir, 'ca.crt'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
}

function isIPAddress(name: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(name) || name.includes(':');
}

export async function generateCertificates(dir: string, dnsNames: readonly string[], validDays = 365): Promise<CertificatePaths> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + validDays * 86_400_000);
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'trustgate development CA' }], {
    keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate, notAfterDate,
    extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }],
  });
  const serving = await selfsigned.generate([{ name: 'commonName', value: dnsNames[0] ?? 'localhost' }], {
    keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate, notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: dnsNames.map((n) => (isIPAddress(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
    ],
  });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = certificatePaths(dir);
  await writeFile(paths.caCert, ca.cert, { mode: 0o644 });
  await writeFile(paths.cert, serving.cert, { mode: 0o644 });
  await writeFile(paths.key, serving.private, { mode: 0o600 });
  return paths;
}

/** Reuses development certificates in dir while they are valid for another day, else makes new ones. */
export async function ensureDevelopmentCertificates(dir: string, dnsNames: readonly string[]): Promise<{ paths: CertificatePaths; generated: boolean }> {
  const paths = certificatePaths(dir);
  try {
    const cert = new X509Certificate(await readFile(paths.cert));
    await readFile(paths.key);
    if (new Date(cert.validTo).getTime() > Date.now() + 86_400_000 && dnsNames.every((n) => cert.checkHost(n) || cert.checkIP(n))) {
      return { paths, generated: false };
    }
  } catch {
    // missing or unreadable: generate below
  }
  return { paths: await generateCertificates(dir, dnsNames), generated: true };
}
