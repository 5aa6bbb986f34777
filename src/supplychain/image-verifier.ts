// Verifies one image reference against one compiled images[] rule: tag -> digest, discover every
// signature cosign may have attached, verify each against the rule's authorities, and say which
// signature (or why none) vouches for the digest. Verified results only are cached, keyed by
// digest + rule key (policy and trust-root revisions); concurrent look-ups share one promise.
import { LRUCache } from 'lru-cache';
import { RegistryError, type ImageReference, type RegistryClient, type RequestScope } from './oci/index.js';
import type { CompiledImageRule } from './image-rule.js';
import { highestMatchingTag, SemverRangeError } from './semver-range.js';
import { simpleSigningDigest } from './sigstore/cosign-legacy.js';
import { dssePredicateType, judgeAttestations } from './sigstore/attestations.js';
import { discoverSignatures, type Discovered, type Evidence, type EvidenceSource } from './sigstore/discovery.js';
import {
  inTotoStatement, mostSpecific, parseBundle, statementNamesDigest, VerificationFailure, verifyBundle, type CompiledAuthority, type SignerIdentity, type VerificationCode,
} from './sigstore/index.js';

export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

export interface ImageVerdict {
  /** the reference as written in the object */
  image: string;
  /** normalised reference */
  ref: string;
  /** the digest that was checked: the pinned one, or what the tag resolved to */
  digest?: string;
  /** the tag that was resolved, when the reference had one and no digest */
  resolvedTag?: string;
  verified: boolean;
  authority?: string;
  identity?: SignerIdentity;
  /** where the accepted signature was found */
  source?: EvidenceSource;
  location?: string;
  code?: VerificationCode;
  message?: string;
  /** true when the failure is the registry's (unreachable, auth): failurePolicy decides */
  registryError?: boolean;
  cached?: boolean;
  /** every signature tried, per authority, for `trustgate verify` */
  attempts?: Attempt[];
  /** the places searched */
  searched?: string[];
  /** attestations verified and satisfied: "name (predicateType)" */
  attestations?: string[];
}

export interface Attempt {
  authority: string;
  location: string;
  source: EvidenceSource;
  ok: boolean;
  code?: VerificationCode;
  message?: string;
}

export interface VerifierMetrics {
  /** a 'refresh' is counted besides the 'hit' it was started by */
  cache(result: 'hit' | 'miss' | 'coalesced' | 'refresh'): void;
  verification(result: string, ms: number): void;
}

export interface ImageVerifierOptions {
  cacheTtlMs?: number;
  cacheMaxEntries?: number;
  /** how long a tag -> digest resolution is reused (0: resolve every time) */
  tagTtlMs?: number;
  /** upper bound of one shared look-up, whatever the callers' deadlines */
  lookupTimeoutMs?: number;
  /** registries some policy names literally, or trusts by flag: the only ones ever contacted */
  allowedRegistries?: () => ReadonlySet<string>;
  metrics?: VerifierMetrics;
  /** the largest attestation read (bundle or envelope); default 32 MiB */
  maxAttestationBytes?: number;
  /** what verdict and tag ages are measured by (milliseconds); tests move one by hand */
  clock?: { now(): number };
}

export type Lookup = Omit<ImageVerdict, 'image' | 'ref' | 'resolvedTag' | 'cached'>;

const failure = (code: VerificationCode, message: string, registryError = false): Lookup => ({ verified: false, code, message, registryError });

/**
 * What a cached verdict keeps: what an admission and its record use. The evidence trail (every
 * attempt, the places searched) and the signer's certificate extensions, which conditions have
 * already been judged on, are for the first caller and `trustgate verify`: at 10,000 cached
 * digests they were about two thirds of the cache.
 */
function verdictToKeep(v: Lookup): Lookup {
  const kept: Lookup = { verified: v.verified, digest: v.digest, authority: v.authority, source: v.source, location: v.location, attestations: v.attestations };
  if (v.identity) kept.identity = { subject: v.identity.subject, issuer: v.identity.issuer, extensions: {} };
  return kept;
}

function registryFailure(err: RegistryError): Lookup {
  switch (err.code) {
    case 'REGISTRY_AUTH_FAILED': return failure('REGISTRY_AUTH_FAILED', err.message, true);
    case 'IMAGE_NOT_FOUND': return failure('IMAGE_NOT_FOUND', err.message);
    case 'REGISTRY_NOT_ALLOWED': return failure('REGISTRY_NOT_ALLOWED', err.message);
    default: return failure('REGISTRY_UNAVAILABLE', err.message, true);
  }
}

/** a verdict is the digest's under one rule (its key holds the policy and trust-root revisions) */
const verdictKey = (ref: ImageReference, digest: string, rule: CompiledImageRule) => `${ref.registry}/${ref.repository}@${digest}|${rule.key}`;
const tagKey = (ref: ImageReference) => `${ref.registry}/${ref.repository}:${ref.tag}`;

export class ImageVerifier {
  readonly #cache: LRUCache<string, Lookup>;
  readonly #tags: LRUCache<string, { digest: string; at: number }>;
  readonly #inflight = new Map<string, Promise<Lookup>>();
  readonly #tagReads = new Map<string, Promise<string>>();
  readonly #lookupTimeoutMs: number;
  readonly #tagTtlMs: number;
  readonly #cacheTtlMs: number;
  readonly #clock: { now(): number };

  constructor(readonly client: RegistryClient, readonly options: ImageVerifierOptions = {}) {
    this.#cacheTtlMs = options.cacheTtlMs ?? 5 * 60_000;
    this.#clock = options.clock ?? performance;
    // ttlResolution 0: lru-cache otherwise debounces its clock with a timer made on the first
    // look-up of every millisecond, one timer per admission at 500 requests/s
    this.#cache = new LRUCache({ max: options.cacheMaxEntries ?? 10_000, ttl: this.#cacheTtlMs, ttlResolution: 0, perf: this.#clock });
    this.#tagTtlMs = options.tagTtlMs ?? 15_000;
    // no ttl of its own: a resolution's age is its `at`, checked on every use
    this.#tags = new LRUCache({ max: options.cacheMaxEntries ?? 10_000 });
    this.#lookupTimeoutMs = options.lookupTimeoutMs ?? 7_000;
  }

  /**
   * The verdict at once, when the registry is not needed: a pinned digest, or a tag resolved less
   * than tagTtlMs ago, whose verdict is cached (a refresh ahead starts as in verify()). Admissions
   * of busy images take this path without a promise; undefined sends the caller to verify().
   */
  cachedVerdict(image: string, ref: ImageReference, rule: CompiledImageRule, scope: RequestScope = {}): ImageVerdict | undefined {
    if (this.#refuseUnnamed(ref)) return undefined;
    let digest = ref.digest;
    if (!digest) {
      digest = this.#freshTag(tagKey(ref), ref, scope);
      if (!digest) return undefined;
    }
    return this.#cachedLookup(verdictKey(ref, digest, rule), image, ref, digest, rule, scope);
  }

  /** A hit of the verdict cache (counted, and refreshed ahead past 80 % of its life), or undefined. */
  #cachedLookup(key: string, image: string, ref: ImageReference, digest: string, rule: CompiledImageRule, scope: RequestScope): ImageVerdict | undefined {
    const cached = this.#cache.get(key);
    if (!cached) return undefined;
    this.options.metrics?.cache('hit');
    if (this.#cache.getRemainingTTL(key) < this.#cacheTtlMs * 0.2 && !this.#inflight.has(key)) {
      this.options.metrics?.cache('refresh');
      void this.#share(key, ref, digest, rule, scope.credentials);
    }
    return { image, ref: ref.normalized, resolvedTag: ref.digest ? undefined : ref.tag, ...cached, cached: true };
  }

  /** The verdict for one image under one rule; never throws for registry or signature trouble. */
  async verify(image: string, ref: ImageReference, rule: CompiledImageRule, scope: RequestScope = {}): Promise<ImageVerdict> {
    const base = { image, ref: ref.normalized };
    const refused = this.#refuseUnnamed(ref);
    if (refused) return { ...base, ...refused };
    let digest = ref.digest;
    let resolvedTag: string | undefined;
    try {
      if (!digest) {
        resolvedTag = ref.tag;
        digest = await this.#resolveTag(ref, scope);
      }
    } catch (err) {
      if (err instanceof RegistryError) return { ...base, resolvedTag, ...registryFailure(err) };
      throw err;
    }
    const key = verdictKey(ref, digest, rule);
    const cached = this.#cachedLookup(key, image, ref, digest, rule, scope);
    if (cached) return cached;
    let pending = this.#inflight.get(key);
    if (pending) this.options.metrics?.cache('coalesced');
    else {
      this.options.metrics?.cache('miss');
      pending = this.#share(key, ref, digest, rule, scope.credentials);
    }
    const result = await raceDeadline(pending, scope.signal);
    return { ...base, resolvedTag, ...result };
  }

  /**
   * The one look-up of a key that every caller shares (never rejects). A verified verdict is kept
   * for cacheTtlMs; one past 80 % of that is verified again in the background while it still
   * answers, so a busy image never has an admission wait for its full verification, and a verdict
   * that no longer holds (the signature is gone, the identity no longer matches) is dropped at
   * once rather than served to the end of its life. A registry failure during such a refresh
   * leaves the verdict to expire as it would have.
   */
  #share(key: string, ref: ImageReference, digest: string, rule: CompiledImageRule, credentials: RequestScope['credentials']): Promise<Lookup> {
    const started = performance.now();
    // a shared look-up has its own bound, so one caller's short deadline cannot fail the others
    const pending = this.#lookup(ref, digest, rule, { credentials, signal: AbortSignal.timeout(this.#lookupTimeoutMs) })
      .then((result) => {
        if (result.verified) this.#cache.set(key, verdictToKeep(result));
        else if (!result.registryError) this.#cache.delete(key);
        this.options.metrics?.verification(result.verified ? 'verified' : result.code ?? 'failed', performance.now() - started);
        return result;
      })
      // a bug must not become an unhandled rejection nor a pass: it is an error failurePolicy decides
      .catch((err: Error) => failure('INTERNAL_ERROR', `verification failed unexpectedly: ${err.message}`, true))
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, pending);
    return pending;
  }

  /** Flux's semver resolution: the highest matching tag of the repository. */
  async resolveSemver(ref: ImageReference, range: string, scope: RequestScope = {}): Promise<string | Lookup> {
    const refused = this.#refuseUnnamed(ref);
    if (refused) return refused;
    try {
      const tag = highestMatchingTag(await this.client.listTags(ref.registry, ref.repository, scope), range);
      return tag ?? failure('IMAGE_NOT_FOUND', `no tag of ${ref.registry}/${ref.repository} satisfies semver ${JSON.stringify(range)}`);
    } catch (err) {
      if (err instanceof RegistryError) return registryFailure(err);
      if (err instanceof SemverRangeError) return failure('INVALID_IMAGE_REFERENCE', `spec.ref.semver ${JSON.stringify(range)}: ${err.message}`);
      throw err;
    }
  }

  /** Hosts a user smuggles into an object are never contacted: only those the policies (or flags) name. */
  #refuseUnnamed(ref: ImageReference): Lookup | undefined {
    const allowed = this.options.allowedRegistries?.();
    if (!allowed || allowed.has(ref.registry)) return undefined;
    return failure('REGISTRY_NOT_ALLOWED', `registry ${ref.registry} is named by no policy's images[].match (nor --insecure-registry); trustgate does not contact it, so nothing there can be verified`);
  }

  /**
   * Tag to digest, reused for tagTtlMs. Concurrent reads of one tag share one manifest read, and
   * a resolution past 80 % of its life is re-read in the background while it still answers, so a
   * busy tag never expires under load (every admission naming it used to wait for the registry,
   * each with its own read, queued behind the 8-per-registry limit). What is served is never
   * older than tagTtlMs: an entry whose re-read has not landed by then expires as before.
   */
  async #resolveTag(ref: ImageReference, scope: RequestScope): Promise<string> {
    const key = tagKey(ref);
    if (this.#tagTtlMs <= 0) return (await this.client.getManifest(ref.registry, ref.repository, ref.tag!, scope)).digest;
    const fresh = this.#freshTag(key, ref, scope);
    if (fresh) return fresh;
    return raceAbort(this.#readTag(key, ref, scope.credentials), scope.signal, () => {
      throw new RegistryError('REGISTRY_UNAVAILABLE', `${ref.registry}: the request deadline passed`);
    });
  }

  /** The digest of a resolution younger than tagTtlMs (re-read in the background past 80 % of it), or undefined. */
  #freshTag(key: string, ref: ImageReference, scope: RequestScope): string | undefined {
    const known = this.#tagTtlMs > 0 ? this.#tags.get(key) : undefined;
    if (!known) return undefined;
    const age = this.#clock.now() - known.at;
    if (age >= this.#tagTtlMs) return undefined;
    if (age > this.#tagTtlMs * 0.8) this.#readTag(key, ref, scope.credentials).catch(() => undefined);
    return known.digest;
  }

  /** One manifest read per tag at a time, under its own time bound (not one caller's deadline). */
  #readTag(key: string, ref: ImageReference, credentials: RequestScope['credentials']): Promise<string> {
    let reading = this.#tagReads.get(key);
    if (!reading) {
      const at = this.#clock.now();
      reading = this.client.getManifest(ref.registry, ref.repository, ref.tag!, { credentials, signal: AbortSignal.timeout(this.#lookupTimeoutMs) })
        .then((m) => {
          // its age counts from when the read began: what was served is never older than tagTtlMs
          this.#tags.set(key, { digest: m.digest, at });
          return m.digest;
        })
        .finally(() => this.#tagReads.delete(key));
      this.#tagReads.set(key, reading);
    }
    return reading;
  }

  async #lookup(ref: ImageReference, digest: string, rule: CompiledImageRule, scope: RequestScope): Promise<Lookup> {
    const found = await discoverSignatures(this.client, ref.registry, ref.repository, digest, scope, { attestations: rule.attestations.length > 0, maxAttestationBytes: this.options.maxAttestationBytes });
    let signed: Lookup | undefined;
    if (rule.requireSignature) {
      signed = await this.#signatures(ref, digest, rule, scope, found);
      if (!signed.verified || !rule.attestations.length) return signed;
    }
    const attested = judgeAttestations(found, digest, rule);
    if (found.errors.length && !attested.verified) return { digest, searched: found.searched, ...registryFailure(found.errors[0]!) };
    if (!attested.verified) return { digest, searched: found.searched, attempts: signed?.attempts, ...failure(attested.code!, attested.message!, attested.error) };
    return signed
      ? { ...signed, attestations: attested.names }
      : { verified: true, digest, searched: found.searched, attestations: attested.names, authority: attested.authority, identity: attested.identity, source: attested.source, location: attested.location };
  }

  async #signatures(ref: ImageReference, digest: string, rule: CompiledImageRule, scope: RequestScope, found: Discovered): Promise<Lookup> {
    let manifestBytes: Promise<Buffer> | undefined;
    const manifest = () => (manifestBytes ??= this.client.getManifest(ref.registry, ref.repository, digest, scope).then((m) => m.bytes));
    const failures: VerificationFailure[] = [];
    const accepted: Lookup[] = [];
    const attempts: Attempt[] = [];
    const searched = found.searched;
    for (const authority of rule.authorities) {
      let ok: Lookup | undefined;
      for (const evidence of found.evidence) {
        const attempt = { authority: authority.name, location: evidence.location, source: evidence.source };
        try {
          const verified = await this.#verifyEvidence(evidence, digest, authority, manifest);
          if (verified) {
            attempts.push({ ...attempt, ok: true });
            ok = { verified: true, digest, authority: authority.name, identity: verified, source: evidence.source, location: evidence.location, attempts, searched };
            break;
          }
        } catch (err) {
          if (err instanceof VerificationFailure) {
            failures.push(err);
            attempts.push({ ...attempt, ok: false, code: err.code, message: err.message });
          } else if (err instanceof RegistryError) found.errors.push(err);
          else throw err;
        }
      }
      if (ok) accepted.push(ok);
      if (ok && !rule.requireAll) return ok;
      if (!ok && rule.requireAll) break;
    }
    if (rule.requireAll && accepted.length === rule.authorities.length) return { ...accepted[0]!, authority: accepted.map((a) => a.authority).join('+') };
    // absence of evidence proves nothing when a place could not be searched: fail as the registry's fault
    if (found.errors.length) return { digest, attempts, searched, ...registryFailure(found.errors[0]!) };
    const best = mostSpecific(failures);
    if (!best) {
      return { digest, attempts, searched, ...failure('SIGNATURE_NOT_FOUND', `no signature found (searched ${searched.join(', ')}); expected one from ${rule.authorities.map((a) => `${a.name}: ${a.describe}`).join(' or ')}`) };
    }
    const extra = failures.length > 1 ? ` (${failures.length} signatures tried)` : '';
    return { digest, attempts, searched, ...failure(best.code, `${best.message}${extra}`) };
  }

  /** The signer's identity (or {} for a key) when this evidence is a valid signature of `digest`; undefined when it is not a signature at all. */
  async #verifyEvidence(evidence: Evidence, digest: string, authority: CompiledAuthority, manifest: () => Promise<Buffer>): Promise<SignerIdentity | undefined> {
    if (evidence.unreadable) throw new VerificationFailure('BUNDLE_INVALID', `${evidence.location}: ${evidence.unreadable}`);
    if (evidence.payload) {
      const bundle = parseBundle(evidence.bundle, evidence.location);
      const verified = verifyBundle(bundle, evidence.payload, authority);
      const signed = simpleSigningDigest(verified.payload).digest;
      if (signed !== digest) throw new VerificationFailure('DIGEST_MISMATCH', `a valid signature by ${authority.name}, but of ${signed}, not ${digest}`);
      return verified.identity ?? { extensions: {} };
    }
    const predicateType = dssePredicateType(evidence.bundle);
    // attestations travel as referrers too; they are not image signatures
    if (predicateType !== undefined && predicateType !== COSIGN_SIGN_PREDICATE) return undefined;
    const bundle = parseBundle(evidence.bundle, evidence.location);
    if (bundle.content.$case === 'messageSignature') {
      const md = bundle.content.messageSignature.messageDigest;
      const hex = md ? Buffer.from(md.digest).toString('hex') : '';
      if (`sha256:${hex}` !== digest) throw new VerificationFailure('DIGEST_MISMATCH', `${evidence.location} signs sha256:${hex}, not ${digest}`);
      const verified = verifyBundle(bundle, await manifest(), authority);
      return verified.identity ?? { extensions: {} };
    }
    const verified = verifyBundle(bundle, undefined, authority);
    const statement = inTotoStatement(verified);
    if (!statementNamesDigest(statement, digest)) throw new VerificationFailure('DIGEST_MISMATCH', `a valid signature by ${authority.name}, but its subject is not ${digest}`);
    return verified.identity ?? { extensions: {} };
  }
}

/**
 * A shared look-up, or what the caller's abort (its deadline) makes of it if that comes first:
 * onAborted's value, or its exception. The look-up itself goes on for the others.
 */
async function raceAbort<T>(pending: Promise<T>, signal: AbortSignal | undefined, onAborted: () => T): Promise<T> {
  if (!signal) return pending;
  if (signal.aborted) return onAborted();
  let onAbort!: () => void;
  const aborted = new Promise<T>((resolve, reject) => {
    onAbort = () => {
      try {
        resolve(onAborted());
      } catch (err) {
        reject(err);
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([pending, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

const raceDeadline = (pending: Promise<Lookup>, signal: AbortSignal | undefined) =>
  raceAbort(pending, signal, () => failure('DEADLINE_EXCEEDED', 'the request deadline passed before the image could be verified', true));
