// Development TLS material: a self-signed CA and a serving certificate it signs (ECDSA P-256).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';

// selfsigned (and the ASN.1 libraries under it, ~3 MiB of heap) is loaded only when a
// certificate is generated: a replica serving its mounted certificate never needs it
const generator = async () => (await import('selfsigned')).default;
/** selfsigned's extension type, which its typings do not export */
type CertificateExtension = NonNullable<NonNullable<Parameters<typeof import('selfsigned').generate>[1]>['extensions']>[number];

export interface CertificatePaths { caCert: string; cert: string; key: string }

export function certificatePaths(dir: string): CertificatePaths {
  return { caCert: join(dir, 'ca.crt'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
}

function isIPAddress(name: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(name) || name.includes(':');
}

export interface PemPair { cert: string; key: string }

/** A new CA (ECDSA P-256) valid for validDays. */
export async function generateCa(commonName: string, validDays = 365): Promise<PemPair> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + validDays * 86_400_000);
  const ca = await (await generator()).generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate, notAfterDate,
    extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }],
  });
  return { cert: ca.cert, key: ca.private };
}

/** A leaf certificate for commonName with the given extensions, signed by ca (ECDSA P-256). */
async function issueLeaf(ca: PemPair, commonName: string, extensions: CertificateExtension[], validDays: number): Promise<PemPair> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + validDays * 86_400_000);
  const leaf = await (await generator()).generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate, notAfterDate,
    ca: { key: ca.key, cert: ca.cert },
    extensions: [{ name: 'basicConstraints', cA: false }, ...extensions],
  });
  return { cert: leaf.cert, key: leaf.private };
}

/** A serving certificate for dnsNames (and IPs), signed by ca. */
export function issueServingCertificate(ca: PemPair, dnsNames: readonly string[], validDays = 365): Promise<PemPair> {
  return issueLeaf(ca, dnsNames[0] ?? 'localhost', [
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: dnsNames.map((n) => (isIPAddress(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
  ], validDays);
}

/** A client certificate for commonName, signed by ca: how the API server authenticates to a webhook (--client-ca). */
export function issueClientCertificate(ca: PemPair, commonName: string, validDays = 365): Promise<PemPair> {
  return issueLeaf(ca, commonName, [
    { name: 'keyUsage', digitalSignature: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ], validDays);
}

/** Writes a CA certificate and a serving pair where the TLS reloader looks for them. */
export async function writeCertificates(dir: string, caCert: string, serving: PemPair): Promise<CertificatePaths> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = certificatePaths(dir);
  await writeFile(paths.caCert, caCert, { mode: 0o644 });
  // key first: the reloader skips a pair whose halves do not match, so a half-written pair is never served
  await writeFile(paths.key, serving.key, { mode: 0o600 });
  await writeFile(paths.cert, serving.cert, { mode: 0o644 });
  return paths;
}

export async function generateCertificates(dir: string, dnsNames: readonly string[], validDays = 365): Promise<CertificatePaths> {
  const ca = await generateCa('trustgate development CA', validDays);
  return writeCertificates(dir, ca.cert, await issueServingCertificate(ca, dnsNames, validDays));
}

/** A new CA and a client certificate for commonName it issued, for the API server to present (serve --client-ca). */
export async function generateClientCertificate(dir: string, commonName: string, validDays = 365): Promise<CertificatePaths> {
  const ca = await generateCa('trustgate API server client CA', validDays);
  const client = await issueClientCertificate(ca, commonName, validDays);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = { caCert: join(dir, 'client-ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') };
  await writeFile(paths.caCert, ca.cert, { mode: 0o644 });
  await writeFile(paths.key, client.key, { mode: 0o600 });
  await writeFile(paths.cert, client.cert, { mode: 0o644 });
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
