// The DecisionRecord of DESIGN.md: one per admission request, nothing secret in it.
import { readFileSync } from 'node:fs';
import type { AdmissionRequest, Endpoint, KubeObject } from '../admission/types.js';
import { clip, type JsonPatchOperation } from '../admission/response.js';
import type { PolicyResult } from '../policy/index.js';
import type { AppliedException } from '../policy/exceptions.js';
import type { AuthorizationRecord } from '../policy/authorization.js';
import { canonicalSha256 } from './canonical.js';
import type { Checkpoint } from './checkpoint.js';

/** What was verified for one image under one policy: never a credential, never unverified claims. */
export interface ImageRecord {
  policy: string;
  ref: string;
  digest?: string;
  /** the tag resolved to `digest`, when the object named a tag */
  tag?: string;
  verified: boolean;
  authority?: string;
  identity?: { issuer?: string; subject?: string };
  /** where the accepted signature was found: cosign-tag, referrers-api, referrers-tag */
  source?: string;
  code?: string;
  attestations: string[];
}

/**
 * A policy's messages as recorded. A message can carry object text (a messageExpression that
 * quotes a field) and a schema over a 10,000-item list can fail on every item: bounded, so one
 * admission cannot write megabytes into every sink. The response has its own, smaller bounds.
 */
const MAX_RECORDED_MESSAGES = 100;
const MAX_RECORDED_MESSAGE_LENGTH = 2048;

/** a reviewer's reason or error is its text, of any length: kept as long as a message */
function clippedAuthorization(a: AuthorizationRecord): AuthorizationRecord {
  const long = (s?: string) => s !== undefined && s.length > MAX_RECORDED_MESSAGE_LENGTH;
  return long(a.reason) || long(a.error) ? { ...a, error: a.error && clip(a.error, MAX_RECORDED_MESSAGE_LENGTH), reason: a.reason && clip(a.reason, MAX_RECORDED_MESSAGE_LENGTH) } : a;
}

function recordedMessages(messages: string[]): string[] {
  let fits = messages.length <= MAX_RECORDED_MESSAGES;
  for (let i = 0; fits && i < messages.length; i++) fits = messages[i]!.length <= MAX_RECORDED_MESSAGE_LENGTH;
  if (fits) return messages;
  const kept = messages.slice(0, MAX_RECORDED_MESSAGES).map((m) => clip(m, MAX_RECORDED_MESSAGE_LENGTH));
  if (messages.length > MAX_RECORDED_MESSAGES) kept.push(`… and ${messages.length - MAX_RECORDED_MESSAGES} more messages`);
  return kept;
}

function imageRecords(results: readonly PolicyResult[]): ImageRecord[] {
  const out: ImageRecord[] = [];
  for (const r of results) {
    for (const v of r.images ?? []) {
      const rec: ImageRecord = { policy: r.name, ref: v.ref, verified: v.verified, attestations: v.attestations ?? [] };
      if (v.digest) rec.digest = v.digest;
      if (v.resolvedTag) rec.tag = v.resolvedTag;
      if (v.authority) rec.authority = v.authority;
      if (v.identity?.subject || v.identity?.issuer) rec.identity = { ...(v.identity.issuer ? { issuer: v.identity.issuer } : {}), ...(v.identity.subject ? { subject: v.identity.subject } : {}) };
      if (v.source) rec.source = v.source;
      if (v.code) rec.code = v.code;
      out.push(rec);
    }
  }
  return out;
}

/**
 * A cluster object a policy read as `params`: which version decided, so an auditor can tell a
 * decision that changed because the params changed. The content only by its digest.
 */
export interface ParamsRecord {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  resourceVersion?: string;
  sha256: string;
}

/** params objects are the watch cache's, unchanged until replaced: each is digested once */
const paramsDigests = new WeakMap<object, string>();

function paramsRecords(objects: readonly KubeObject[] | undefined): ParamsRecord[] | undefined {
  if (!objects) return undefined;
  return objects.map((o) => {
    let sha256 = paramsDigests.get(o);
    if (sha256 === undefined) paramsDigests.set(o, (sha256 = canonicalSha256(o)));
    const m = o.metadata ?? {};
    // key order is the canonical order; undefined members are left out of the record
    return { apiVersion: String(o.apiVersion ?? ''), kind: String(o.kind ?? ''), name: m.name ?? '', namespace: m.namespace, resourceVersion: m.resourceVersion as string | undefined, sha256 };
  });
}

/** Who asked for a decision, when a client certificate authenticated it (--client-ca). */
/** A PolicyException that waived some or all of a policy's failures: why, until when, and what it waived. */
type ExceptionRecord = AppliedException;

// members in key order, as the record's own
const exceptionRecord = (e: ExceptionRecord): ExceptionRecord => ({ expires: e.expires, messages: recordedMessages(e.messages), name: e.name, reason: clip(e.reason, MAX_RECORDED_MESSAGE_LENGTH), ticket: e.ticket });

export interface Caller {
  /** the certificate's first name: its common name, else its first DNS name */
  name: string;
  /** sha256 of the certificate (DER), hex: which certificate, across rotations */
  certificateSha256: string;
}

export interface DecisionRecord {
  schema: 'trustgate.dev/decision/v1';
  decisionId: string;
  time: string;
  replica: string;
  seq?: number;
  prevHash?: string;
  hash?: string;
  /** with --audit-signing-key: a signature over the chain head before this record */
  checkpoint?: Checkpoint;
  request: {
    uid: string;
    kind: AdmissionRequest['kind'];
    resource: AdmissionRequest['resource'];
    subResource: string;
    namespace: string;
    name: string;
    operation: AdmissionRequest['operation'];
    /** username and groups only: userInfo.extra may hold tokens and is never recorded */
    userInfo: { username: string; groups: string[] };
    dryRun: boolean;
    objectSha256: string | null;
  };
  endpoint: Endpoint;
  allowed: boolean;
  /** the authorization checks policies made (SubjectAccessReviews) and their answers, when they made any */
  authorizations?: AuthorizationRecord[];
  /** with --client-ca: who asked */
  caller?: Caller;
  durationMs: number;
  /** parts of the duration: policy evaluation (image verification joins with image rules) */
  timings: { evaluationMs: number; imagesMs?: number };
  policySetRevision: string;
  policies: { name: string; revision: string; mode: string; result: string; code?: string; messages: string[]; annotations?: Record<string, string>; params?: ParamsRecord[]; exceptions?: ExceptionRecord[] }[];
  images: ImageRecord[];
  patch: JsonPatchOperation[];
  labels: { cluster: string; version: string };
}

export const TRUSTGATE_VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

export function objectDigest(object: unknown): string | null {
  if (object === null || object === undefined) return null;
  return canonicalSha256(object);
}

/**
 * The patch as recorded: a mutation policy's values are object content (an environment value,
 * an annotation), recorded by digest as objects are; tag-to-digest pins are kept as they are.
 */
function patchRecord(patch: JsonPatchOperation[], results: readonly PolicyResult[]): JsonPatchOperation[] {
  if (!patch.length || !results.some((r) => r.mutated)) return patch;
  const fromMutations = new Set(results.flatMap((r) => (r.mutated ? r.patch ?? [] : [])));
  return patch.map((o) => (fromMutations.has(o) && Object.hasOwn(o, 'value') ? { op: o.op, path: o.path, valueSha256: canonicalSha256(o.value ?? null) } : o));
}

export function buildDecisionRecord(input: {
  decisionId: string;
  replica: string;
  request: AdmissionRequest;
  endpoint: Endpoint;
  allowed: boolean;
  startedAt: number;
  evaluationMs?: number;
  imagesMs?: number;
  policySetRevision: string;
  results: readonly PolicyResult[];
  patch: JsonPatchOperation[];
  labels?: { cluster: string; version: string };
  authorizations?: AuthorizationRecord[];
  caller?: Caller;
}): DecisionRecord {
  const r = input.request;
  const time = new Date().toISOString();
  const objectSha256 = objectDigest(r.object ?? r.oldObject);
  // members in key order, the canonical order: the record is serialised on every admission's
  // path, and canonical JSON copies only the objects whose keys are out of order
  return {
    allowed: input.allowed,
    authorizations: input.authorizations?.length ? input.authorizations.map(clippedAuthorization) : undefined,
    caller: input.caller,
    decisionId: input.decisionId,
    // after the digest above, the last costly step before the record is sealed
    durationMs: Math.round((performance.now() - input.startedAt) * 1000) / 1000,
    endpoint: input.endpoint,
    images: imageRecords(input.results),
    labels: input.labels ?? { cluster: '', version: TRUSTGATE_VERSION },
    patch: patchRecord(input.patch, input.results),
    policies: input.results.map((p) => ({ annotations: p.annotations, code: p.code, exceptions: p.exceptions?.map(exceptionRecord), messages: recordedMessages(p.messages), mode: p.mode, name: p.name, params: paramsRecords(p.params), result: p.result, revision: p.revision })),
    policySetRevision: input.policySetRevision,
    replica: input.replica,
    request: {
      dryRun: r.dryRun === true,
      kind: r.kind,
      name: r.name ?? r.object?.metadata?.name ?? r.oldObject?.metadata?.name ?? '',
      namespace: r.namespace ?? '',
      objectSha256,
      operation: r.operation,
      resource: r.resource,
      subResource: r.subResource ?? '',
      uid: r.uid,
      userInfo: { groups: r.userInfo.groups ?? [], username: r.userInfo.username ?? '' },
    },
    schema: 'trustgate.dev/decision/v1',
    time,
    timings: { evaluationMs: Math.round((input.evaluationMs ?? 0) * 1000) / 1000, ...(input.imagesMs !== undefined ? { imagesMs: Math.round(input.imagesMs * 1000) / 1000 } : {}) },
  };
}

// NUL, and a surrogate without its partner
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const storable = (s: string) => s.replace(UNSTORABLE, '\ufffd');

/**
 * Replaces, in place, every NUL and unpaired surrogate in the record's strings and keys by
 * U+FFFD: text no JSON consumer should have to take, and PostgreSQL's jsonb refuses.
 */
export function replaceUnstorableText(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (typeof value[i] === 'string') value[i] = storable(value[i]);
      else replaceUnstorableText(value[i]);
    }
    return;
  }
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    const v = o[key];
    const k = storable(key);
    if (k !== key) delete o[key];
    // defined, not assigned: a "__proto__" key would set the prototype instead
    if (k !== key || typeof v === 'string') Object.defineProperty(o, k, { value: typeof v === 'string' ? storable(v) : v, enumerable: true, writable: true, configurable: true });
    if (typeof v !== 'string') replaceUnstorableText(v);
  }
}
