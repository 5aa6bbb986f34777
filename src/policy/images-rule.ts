// A policy's images[] rules applied to one request: every image of the object that a rule
// matches is verified (concurrently, within the request deadline); failures become one cause per
// image with its stable code, and /mutate gets tag -> digest pins for what was verified.
import { LRUCache } from 'lru-cache';
import type { AdmissionRequest } from '../admission/types.js';
import type { Endpoint } from '../admission/types.js';
import { imagesOf, type ImageUse } from '../supplychain/images.js';
import type { ImageVerdict, ImageVerifier, Lookup } from '../supplychain/image-verifier.js';
import type { CompiledImageRule } from '../supplychain/image-rule.js';
import { parseImageReference, ReferenceError, type CredentialStore, type ImageReference, type RequestScope } from '../supplychain/oci/index.js';
import type { PolicyResult } from './evaluate.js';
import type { CompiledPolicy } from './types.js';

/**
 * References parsed before, by their text: a cluster names the same images again and again, and
 * parsing one allocates its parts every time. Frozen, since every request shares them; bounded
 * (2,000 of at most 512 characters: under 2 MB), since a client may send any strings. Invalid
 * ones are not kept: they are rare, and their errors quote them whole.
 */
const PARSED = new LRUCache<string, ImageReference>({ max: 2_000 });
const PARSED_MAX_LENGTH = 512;

export function parsedReference(image: string): ImageReference | ReferenceError {
  let ref = PARSED.get(image);
  if (ref) return ref;
  try {
    ref = Object.freeze(parseImageReference(image));
  } catch (err) {
    if (err instanceof ReferenceError) return err;
    throw err;
  }
  if (image.length <= PARSED_MAX_LENGTH) PARSED.set(image, ref);
  return ref;
}

/**
 * What every images policy of one request shares, so nothing is done twice: the images of the
 * object found once, each semver range resolved (a tag listing) once, and each field pinned at
 * most once on /mutate. (References are parsed once for all requests: parsedReference.)
 */
export class RequestImages {
  readonly uses: ImageUse[];
  readonly pinned = new Set<string>();
  readonly #semver = new Map<string, Promise<string | Lookup>>();

  constructor(request: AdmissionRequest) {
    const object = request.object;
    this.uses = object && request.operation !== 'DELETE' && request.operation !== 'CONNECT' ? imagesOf(object) : [];
  }

  resolveSemver(verifier: ImageVerifier, ref: ImageReference, range: string, scope: RequestScope): Promise<string | Lookup> {
    const key = `${ref.registry}/${ref.repository} ${range}`;
    let tag = this.#semver.get(key);
    if (!tag) this.#semver.set(key, (tag = verifier.resolveSemver(ref, range, scope)));
    return tag;
  }
}

export interface ImageRuleContext {
  request: AdmissionRequest;
  images: RequestImages;
  endpoint: Endpoint;
  verifier?: ImageVerifier;
  /** the request deadline as a signal, made only when a registry is actually contacted */
  signal?: () => AbortSignal;
  /** the pod's pull secrets and its service account's, when in a cluster */
  credentials?: CredentialStore;
}

const short = (digest?: string) => (digest ? `${digest.slice(0, 19)}…` : 'digest unknown');

function describe(v: ImageVerdict, rule: CompiledImageRule, use: ImageUse): string {
  const what = `image ${v.image} (${use.field}${v.digest ? `, ${short(v.digest)}` : ''})`;
  const hint = v.code === 'SIGNATURE_NOT_FOUND' ? '; sign it (cosign sign) with an accepted identity' : '';
  return `${what} [${rule.label}]: ${v.code}: ${v.message}${hint}`;
}

/** one image use of the object, parsed, with the policy's rules that apply to it */
interface Target {
  use: ImageUse;
  ref: ImageReference | ReferenceError;
  applicable: CompiledImageRule[];
}

/**
 * The request's registry scope, its deadline signal made on first use: cached verdicts never
 * touch it, so the hot path makes no timer. A class, not an object literal with a getter: a
 * getter closure made per call gave every scope a hidden class of its own (kept in the old
 * generation), which held the closure and through it the whole request past every scavenge
 * (13 KB promoted per admission, a mark-compact every 1.4 s at 500 requests/s).
 */
class LazyScope implements RequestScope {
  constructor(private readonly ctx: ImageRuleContext) {}

  get signal(): AbortSignal | undefined {
    return this.ctx.signal?.();
  }

  get credentials(): CredentialStore | undefined {
    return this.ctx.credentials;
  }
}

interface Checked {
  use: ImageUse;
  rule: CompiledImageRule;
  verdict: ImageVerdict;
}

/**
 * The verdicts of one image use under the rules that apply to it. Synchronous when every verdict
 * is cached (the common case: busy images, warm cache), so a warm admission makes no promise per
 * image; the rest go to the registry through verify().
 */
function verifyUse({ use, ref, applicable }: Target, rules: readonly CompiledImageRule[], ctx: ImageRuleContext, scope: LazyScope): Checked[] | Promise<Checked[]> {
  if (ref instanceof ReferenceError) {
    // an unparseable reference cannot be shown to be signed: it fails every images rule
    return [{ use, rule: rules[0]!, verdict: { image: use.image, ref: use.image, verified: false, code: 'INVALID_IMAGE_REFERENCE', message: ref.message } }];
  }
  if (!applicable.length) return [];
  const verifier = ctx.verifier;
  if (!verifier) {
    const verdict = { image: use.image, ref: ref.normalized, verified: false, registryError: true, code: 'IMAGE_VERIFICATION_UNAVAILABLE' as const, message: 'this trustgate has no image verifier configured (offline test run?)' };
    return applicable.map((rule) => ({ use, rule, verdict }));
  }
  const checked: Checked[] = [];
  if (!use.semver) {
    for (let i = 0; i < applicable.length; i++) {
      const rule = applicable[i]!;
      const verdict = verifier.cachedVerdict(use.image, ref, rule, scope);
      if (!verdict) return verifyUseAsync(use, ref, applicable.slice(i), ctx, verifier, scope, checked);
      checked.push({ use, rule, verdict });
    }
    return checked;
  }
  return verifyUseAsync(use, ref, applicable, ctx, verifier, scope, checked);
}

/** The rules left after the cached ones (`done`), through the registry. */
async function verifyUseAsync(use: ImageUse, ref: ImageReference, rules: readonly CompiledImageRule[], ctx: ImageRuleContext, verifier: ImageVerifier, scope: LazyScope, done: Checked[]): Promise<Checked[]> {
  let target = ref;
  if (use.semver) {
    const resolved = await ctx.images.resolveSemver(verifier, ref, use.semver, scope);
    if (typeof resolved !== 'string') return rules.map((rule) => ({ use, rule, verdict: { image: use.image, ref: ref.normalized, ...resolved } }));
    target = parseImageReference(`${ref.registry}/${ref.repository}:${resolved}`);
  }
  const rest = await Promise.all(rules.map(async (rule) => ({ use, rule, verdict: await verifier.verify(use.image, target, rule, scope) })));
  return done.length ? [...done, ...rest] : rest;
}

type Cause = NonNullable<PolicyResult['causes']>[number];

/**
 * Adds the images rules' causes to the result. A definite failure outranks "could not check":
 * the request is refused whatever failurePolicy says; errors alone leave it to failurePolicy.
 */
function addCauses(result: PolicyResult, failures: readonly Cause[], errors: readonly Cause[]): void {
  if (failures.length) result.result = 'fail';
  else if (result.result === 'pass') result.result = 'error';
  const all = [...failures, ...errors];
  result.code ??= all[0]!.code as PolicyResult['code'];
  result.messages.push(...all.map((f) => f.message));
  result.causes = [...(result.causes ?? []), ...all];
}

/**
 * Distinct images one policy verifies per request. Real Pods and templates name a handful; a
 * Pod padded with thousands of tags would turn one admission into thousands of registry
 * look-ups (and fill the verdict cache with them). Past this the policy fails, whatever its
 * failurePolicy, so padding cannot turn verification into an allow.
 */
const MAX_IMAGES_PER_POLICY = 100;

/** Folds the images rules' verdicts into the policy's result (mutating it), returning nothing new. */
export async function applyImageRules(policy: CompiledPolicy, result: PolicyResult, ctx: ImageRuleContext): Promise<void> {
  const uses = ctx.images.uses;
  if (!uses.length) return;
  const targets = uses.map((use): Target => {
    const ref = parsedReference(use.image);
    return { use, ref, applicable: ref instanceof ReferenceError ? [] : policy.images.filter((r) => r.matches(ref)) };
  });
  const matched = new Set<string>();
  for (const { ref, applicable } of targets) if (applicable.length) matched.add((ref as ImageReference).normalized);
  if (matched.size > MAX_IMAGES_PER_POLICY) {
    const message = `the object names ${matched.size} distinct images these rules apply to; trustgate verifies at most ${MAX_IMAGES_PER_POLICY} per policy and request, and checked none`;
    addCauses(result, [{ code: 'TOO_MANY_IMAGES', message }], []);
    return;
  }
  const scope = new LazyScope(ctx);
  const parts = targets.map((target) => verifyUse(target, policy.images, ctx, scope));
  // a warm cache answers every image at once: no promise to wait for
  const checked = (parts.some((p) => p instanceof Promise) ? await Promise.all(parts) : (parts as Checked[][])).flat();
  const failures: Cause[] = [];
  const errors: Cause[] = [];
  for (const { use, rule, verdict } of checked) {
    if (verdict.verified) continue;
    const cause = { code: verdict.code ?? 'SIGNATURE_NOT_FOUND', message: describe(verdict, rule, use), image: use.image };
    if (verdict.registryError) errors.push({ ...cause, registryError: true });
    else failures.push(cause);
  }
  result.images = checked.map((c) => c.verdict);
  if (failures.length || errors.length) addCauses(result, failures, errors);
  // what was verified is pinned even when another image fails: the patch applies only if the
  // request is admitted anyway (a warn-mode policy, failurePolicy: Ignore, an exception)
  if (ctx.endpoint !== 'mutate') return;
  const isPod = ctx.request.object?.kind === 'Pod';
  const patch: NonNullable<PolicyResult['patch']> = [];
  for (const { use, rule, verdict } of checked) {
    if (!verdict.verified || !rule.mutateDigest || !use.patchable || (!isPod && !rule.mutateTemplates)) continue;
    // two policies pinning the same field make one operation, not two
    if (!verdict.resolvedTag || !verdict.digest || ctx.images.pinned.has(use.pointer)) continue;
    ctx.images.pinned.add(use.pointer);
    // the tag stays for humans; the runtime pulls by the digest that was verified
    patch.push({ op: 'replace', path: use.pointer, value: `${use.image}@${verdict.digest}` });
  }
  if (patch.length) result.patch = patch;
}
