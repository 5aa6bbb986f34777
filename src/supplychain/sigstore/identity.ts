// Who signed: the Fulcio certificate's SAN, issuer and extensions, and our identity matching.
// Matching is ours because @sigstore/verify treats a plain identity as an unanchored JS regexp:
// subject/issuer are byte-exact, the RegExp forms must match the whole string on RE2.
import { ASN1Obj } from '@sigstore/core';
import type { Signer } from '@sigstore/verify';
import { compileRegex } from '../../policy/cel/index.js';

/** Fulcio's OID 1.3.6.1.4.1.57264.1.N, by N, with the names cosign and policy-controller use. */
const FULCIO_EXTENSIONS: Record<number, string> = {
  2: 'githubWorkflowTrigger', 3: 'githubWorkflowSha', 4: 'githubWorkflowName', 5: 'githubWorkflowRepository', 6: 'githubWorkflowRef',
  9: 'buildSignerURI', 10: 'buildSignerDigest', 11: 'runnerEnvironment', 12: 'sourceRepositoryURI', 13: 'sourceRepositoryDigest',
  14: 'sourceRepositoryRef', 15: 'sourceRepositoryIdentifier', 16: 'sourceRepositoryOwnerURI', 17: 'sourceRepositoryOwnerIdentifier',
  18: 'buildConfigURI', 19: 'buildConfigDigest', 20: 'buildTrigger', 21: 'runInvocationURI', 22: 'sourceRepositoryVisibilityAtSigning',
  23: 'deploymentEnvironment',
};
export const FULCIO_EXTENSION_NAMES = Object.values(FULCIO_EXTENSIONS);
const FULCIO_ARC = '1.3.6.1.4.1.57264.1.';

/** The signer as policies see it (and as the decision record stores it). */
export interface SignerIdentity {
  subject?: string;
  issuer?: string;
  extensions: Record<string, string>;
}

export function signerIdentity(signer: Signer): SignerIdentity {
  const extensions: Record<string, string> = {};
  for (const { oid, value } of signer.identity?.oids ?? []) {
    const id = oid?.id?.join('.') ?? '';
    if (!id.startsWith(FULCIO_ARC)) continue;
    const n = Number(id.slice(FULCIO_ARC.length));
    const name = FULCIO_EXTENSIONS[n];
    if (!name) continue;
    // 1.2-1.6 hold raw ASCII; from 1.8 on the value is a DER UTF8String
    let text: string;
    try {
      text = n >= 8 ? ASN1Obj.parseBuffer(Buffer.from(value)).value.toString('utf8') : Buffer.from(value).toString('utf8');
    } catch {
      continue;
    }
    extensions[name] = text;
  }
  return { subject: signer.identity?.subjectAlternativeName, issuer: signer.identity?.extensions?.issuer, extensions };
}

export interface IdentitySpec {
  issuer?: string;
  issuerRegExp?: string;
  subject?: string;
  subjectRegExp?: string;
  /** exact values of Fulcio extensions, e.g. githubWorkflowRepository: org/repo */
  extensions?: Record<string, string>;
}

export type IdentityMatcher = ((who: SignerIdentity) => boolean) & { describe: string };

export class IdentitySpecError extends Error {}

function whole(pattern: string, what: string): (s: string) => boolean {
  let re;
  try {
    // RE2 full match: an unanchored pattern must not admit a prefix or suffix of an identity
    re = compileRegex(`^(?:${pattern})$`);
  } catch (err) {
    throw new IdentitySpecError(`${what} ${JSON.stringify(pattern)} is not a valid RE2 expression: ${(err as Error).message}`);
  }
  return (s) => re.matches(s);
}

export function compileIdentity(spec: IdentitySpec): IdentityMatcher {
  if (spec.issuer === undefined && spec.issuerRegExp === undefined) throw new IdentitySpecError('an identity needs issuer or issuerRegExp');
  if (spec.subject === undefined && spec.subjectRegExp === undefined) throw new IdentitySpecError('an identity needs subject or subjectRegExp');
  for (const name of Object.keys(spec.extensions ?? {})) {
    if (!FULCIO_EXTENSION_NAMES.includes(name)) throw new IdentitySpecError(`unknown certificate extension ${name}; known: ${FULCIO_EXTENSION_NAMES.join(', ')}`);
  }
  const issuer = spec.issuer !== undefined ? (s: string) => s === spec.issuer : whole(spec.issuerRegExp!, 'issuerRegExp');
  const subject = spec.subject !== undefined ? (s: string) => s === spec.subject : whole(spec.subjectRegExp!, 'subjectRegExp');
  const extensions = Object.entries(spec.extensions ?? {});
  const match = (who: SignerIdentity) =>
    who.issuer !== undefined && who.subject !== undefined && issuer(who.issuer) && subject(who.subject) &&
    extensions.every(([k, v]) => who.extensions[k] === v);
  const describe = `${spec.subject ?? `~${spec.subjectRegExp}`} from ${spec.issuer ?? `~${spec.issuerRegExp}`}`;
  return Object.assign(match, { describe });
}
