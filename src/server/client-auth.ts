// Callers of /validate and /mutate authenticated by client certificate: the API server presents
// one when its AdmissionConfiguration says so. Without it, anything that can reach the port can
// have made-up reviews decided and recorded, and a forged decision in the audit trail reads
// like a real one. Health and metrics stay open (kubelet probes and scrapers present none).
import type { TLSSocket } from 'node:tls';

export interface ClientAuthOptions {
  /** accepted common names or DNS names of the caller's certificate; empty: any the CA issued */
  names: readonly string[];
}

export interface ClientRefusal { status: 401 | 403; message: string }

// a connection's certificate does not change: checked once per connection, not per review
const verdicts = new WeakMap<TLSSocket, ClientRefusal | null>();

/** The caller's names: the subject's common name(s) and the DNS names of the certificate. */
function certificateNames(socket: TLSSocket): string[] {
  const cert = socket.getPeerCertificate();
  const cn = cert.subject?.CN as string | string[] | undefined;
  const dns = (cert.subjectaltname ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4));
  return [...(Array.isArray(cn) ? cn : cn ? [cn] : []), ...dns];
}

function judge(socket: TLSSocket, options: ClientAuthOptions): ClientRefusal | null {
  if (!socket.authorized) {
    // Node reports a missing certificate as an unverifiable one: say which it is
    const presented = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
    const why = !presented ? 'no certificate was presented' : `the certificate does not verify: ${String(socket.authorizationError ?? 'unknown error')}`;
    return { status: 401, message: `admission reviews need a client certificate issued by the --client-ca (${why})` };
  }
  if (!options.names.length) return null;
  const names = certificateNames(socket);
  if (names.some((n) => options.names.includes(n))) return null;
  return { status: 403, message: `the client certificate (${names.join(', ') || 'no names'}) is not one of --client-name ${options.names.join(', ')}` };
}

/** null when the caller on this connection may send reviews, else why not. */
export function refuseClient(socket: TLSSocket, options: ClientAuthOptions): ClientRefusal | null {
  let verdict = verdicts.get(socket);
  if (verdict === undefined) {
    verdict = judge(socket, options);
    verdicts.set(socket, verdict);
  }
  return verdict;
}

/** Who asked, as a decision record names it: the certificate's first name and its fingerprint. */
export interface Caller {
  name: string;
  /** sha256 of the certificate (DER), hex: which certificate, across rotations */
  certificateSha256: string;
}

const callers = new WeakMap<TLSSocket, Caller>();

/** The authenticated caller on this connection (worked out once per connection). */
export function callerOf(socket: TLSSocket): Caller {
  let caller = callers.get(socket);
  if (!caller) {
    const cert = socket.getPeerCertificate();
    caller = { name: certificateNames(socket)[0] ?? '', certificateSha256: (cert.fingerprint256 ?? '').replace(/:/g, '').toLowerCase() };
    callers.set(socket, caller);
  }
  return caller;
}
