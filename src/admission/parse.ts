// Checks an incoming AdmissionReview and returns its request, or a clear 400-class error.
import type { AdmissionRequest, AdmissionReview } from './types.js';

export class AdmissionInputError extends Error {
  constructor(readonly error: string, message: string, readonly statusCode = 400) {
    super(message);
  }
}

const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);
export const MAX_OBJECT_DEPTH = 100;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(message: string): never {
  throw new AdmissionInputError('InvalidAdmissionReview', message);
}

function checkGVK(v: unknown, field: string, last: 'kind' | 'resource'): void {
  if (!isObject(v)) bad(`request.${field} must be an object with group, version and ${last}`);
  for (const k of ['group', 'version', last]) {
    if (typeof v[k] !== 'string') bad(`request.${field}.${k} must be a string`);
  }
  if (!(v[last] as string)) bad(`request.${field}.${last} must not be empty`);
}

/**
 * Depth of nesting, measured without recursion so a hostile body cannot exhaust the stack.
 * Every review passes through here: the stack is two flat arrays, with no pair per container.
 */
export function nestingDepth(root: unknown, limit: number): number {
  if (typeof root !== 'object' || root === null) return 0;
  let max = 0;
  const values: object[] = [root];
  const depths: number[] = [1];
  while (values.length) {
    const v = values.pop()!;
    const d = depths.pop()!;
    if (d > max) max = d;
    if (max > limit) return max;
    if (Array.isArray(v)) {
      for (const child of v) if (typeof child === 'object' && child !== null) values.push(child), depths.push(d + 1);
    } else {
      for (const key in v) {
        const child = (v as Record<string, unknown>)[key];
        if (typeof child === 'object' && child !== null) values.push(child), depths.push(d + 1);
      }
    }
  }
  return max;
}

export function parseReview(body: unknown): AdmissionRequest {
  if (!isObject(body)) bad('the body must be a JSON AdmissionReview object');
  if (body.apiVersion !== 'admission.k8s.io/v1') {
    bad(`apiVersion must be admission.k8s.io/v1, got ${JSON.stringify(body.apiVersion ?? null)}; configure the webhook with admissionReviewVersions: ["v1"]`);
  }
  if (body.kind !== 'AdmissionReview') bad(`kind must be AdmissionReview, got ${JSON.stringify(body.kind ?? null)}`);
  const req = (body as unknown as AdmissionReview).request as unknown;
  if (!isObject(req)) bad('request is missing');
  if (typeof req.uid !== 'string' || req.uid === '') bad('request.uid is missing: the API server always sends one, and the response must echo it');
  checkGVK(req.kind, 'kind', 'kind');
  checkGVK(req.resource, 'resource', 'resource');
  if (typeof req.operation !== 'string' || !OPERATIONS.has(req.operation)) bad(`request.operation must be one of CREATE, UPDATE, DELETE, CONNECT, got ${JSON.stringify(req.operation ?? null)}`);
  for (const f of ['subResource', 'name', 'namespace'] as const) {
    if (req[f] !== undefined && typeof req[f] !== 'string') bad(`request.${f} must be a string`);
  }
  if (req.userInfo !== undefined && !isObject(req.userInfo)) bad('request.userInfo must be an object');
  for (const f of ['object', 'oldObject'] as const) {
    if (req[f] !== undefined && req[f] !== null && !isObject(req[f])) bad(`request.${f} must be an object or null`);
    if (isObject(req[f]) && nestingDepth(req[f], MAX_OBJECT_DEPTH) > MAX_OBJECT_DEPTH) {
      throw new AdmissionInputError('ObjectTooDeep', `request.${f} is nested deeper than ${MAX_OBJECT_DEPTH} levels; no Kubernetes object needs that`);
    }
  }
  if (req.operation === 'CREATE' && !isObject(req.object)) bad('a CREATE request must carry request.object');
  if (req.dryRun !== undefined && typeof req.dryRun !== 'boolean') bad('request.dryRun must be a boolean');
  return { ...(req as unknown as AdmissionRequest), userInfo: (req.userInfo as AdmissionRequest['userInfo']) ?? {} };
}
