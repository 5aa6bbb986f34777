// Callers of /validate and /mutate authenticated by client certificate: the API server presents
// one when its AdmissionConfiguration says so. Without it, anything that can reach the port can
// have made-up reviews decided and recorded, and a forged decision in the audit trail reads
// like a real one. Health and metrics stay open (kubelet probes and scrapers present none).
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Caller } from '../audit/record.js';

export interface ClientAuthOptions {
  /** accepted common names or DNS names of the caller's certificate; empty: any the CA issued */
  names: readonly string[];
}

export interface ClientRefusal { status: 401 | 403; message: string }

/** A connection's verdict: refused, or the caller as decision records name it. */
export type ClientVerdict = { refusal: ClientRefusal } | { caller: Caller };

// a connection's certificate does not change: checked once per connection, not per review
const verdicts = new WeakMap<TLSSocket, ClientVerdict>();

/** The caller's names: the subject's common name(s) and the DNS names of the certificate. */
function certificateNames(cert: PeerCertificate): string[] {
  const cn = cert.subject?.CN as string | string[] | undefined;
  const dns = (cert.subjectaltname ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4));
  return [...(Array.isArray(cn) ? cn : cn ? [cn] : []), ...dns];
}

function judge(socket: TLSSocket, options: ClientAuthOptions): ClientVerdict {
  const cert = socket.getPeerCertificate();
  if (!socket.authorized) {
    // Node reports a missing certificate as an unverifiable one: say which it is
    const presented = Object.keys(cert ?? {}).length > 0;
    const why = !presented ? 'no certificate was presented' : `the certificate does not verify: ${String(socket.authorizationError ?? 'unknown error')}`;
    return { refusal: { status: 401, message: `admission reviews need a client certificate issued by the --client-ca (${why})` } };
  }
  const names = certificateNames(cert);
  if (options.names.length && !names.some((n) => options.names.includes(n))) {
    return { refusal: { status: 403, message: `the client certificate (${names.join(', ') || 'no names'}) is not one of --client-name ${options.names.join(', ')}` } };
  }
  return { caller: { name: names[0] ?? '', certificateSha256: (cert.fingerprint256 ?? '').replace(/:/g, '').toLowerCase() } };
}

/** Whether the caller on this connection may send reviews, and who it is: worked out once per connection. */
export function checkClient(socket: TLSSocket, options: ClientAuthOptions): ClientVerdict {
  let verdict = verdicts.get(socket);
  if (verdict === undefined) {
    verdict = judge(socket, options);
    verdicts.set(socket, verdict);
  }
  return verdict;
}
