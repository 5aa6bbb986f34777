// Validates policy documents against the JSON Schema shipped in schema/ (the one editors use).
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { didYouMean } from '../did-you-mean.js';
import type { LoadedDocument } from './documents.js';
import { PolicyFileError } from './types.js';

export const POLICY_SCHEMA_PATH = new URL('../../schema/policy.schema.json', import.meta.url);
/** ValidatingAdmissionPolicy and its binding: the fields trustgate reads (it refers to the policy schema's definitions) */
export const VAP_SCHEMA_PATH = new URL('../../schema/vap.schema.json', import.meta.url);

// verbose: an error carries the schema it failed, whose properties name what a misspelt field meant
const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });
const policySchema = JSON.parse(readFileSync(POLICY_SCHEMA_PATH, 'utf8'));
const validateDocument = ajv.compile(policySchema);
const validateAuthorizations = ajv.compile(policySchema.definitions.authorizationRules);
const validateVapDocument = ajv.compile(JSON.parse(readFileSync(VAP_SCHEMA_PATH, 'utf8')));
/** Kyverno's ValidatingPolicy: the VAP schema's pieces, with Kyverno's own fields */
export const KYVERNO_SCHEMA_PATH = new URL('../../schema/kyverno.schema.json', import.meta.url);
const validateKyvernoDocument = ajv.compile(JSON.parse(readFileSync(KYVERNO_SCHEMA_PATH, 'utf8')));

function pathOf(instancePath: string): string[] {
  return instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function describe(e: ErrorObject): string {
  const where = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : 'document';
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = (e.params as { additionalProperty: string }).additionalProperty;
      return `${where}: unknown field "${field}"${didYouMean(field, Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {}))}`;
    }
    case 'required': return `${where}: missing required field "${(e.params as { missingProperty: string }).missingProperty}"`;
    case 'enum': return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const': return `${where}: must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    default: return `${where}: ${e.message}`;
  }
}

/** Schema errors of one document (trustgate's own, a Validating/MutatingAdmissionPolicy or binding, or a Kyverno ValidatingPolicy), each at the position of the offending node. */
export function schemaErrors(doc: LoadedDocument, which: 'trustgate' | 'vap' | 'kyverno' = 'trustgate'): PolicyFileError[] {
  const validate = which === 'vap' ? validateVapDocument : which === 'kyverno' ? validateKyvernoDocument : validateDocument;
  if (validate(doc.value)) return [];
  const errors = (validate.errors ?? []).filter((e) => e.keyword !== 'if');
  const seen = new Set<string>();
  const out: PolicyFileError[] = [];
  for (const e of errors) {
    const path = pathOf(e.instancePath);
    const unknownField = e.keyword === 'additionalProperties';
    if (unknownField) path.push((e.params as { additionalProperty: string }).additionalProperty);
    const err = new PolicyFileError(doc.positionOf(path, { key: unknownField }), describe(e));
    if (!seen.has(err.message)) out.push(err), seen.add(err.message);
  }
  return out;
}

/** Problems of a list of authorization answers as PolicyTest's `authorizations` takes them (for eval --authorizations). */
export function authorizationRulesErrors(value: unknown): string[] {
  if (validateAuthorizations(value)) return [];
  // named as in a PolicyTest: authorizations.0: missing required field "verb"
  return [...new Set((validateAuthorizations.errors ?? []).map((e) => describe({ ...e, instancePath: `/authorizations${e.instancePath}` })))];
}
