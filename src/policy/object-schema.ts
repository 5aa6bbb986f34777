// Policies' object schemas (spec.schema, JSON Schema 2020-12) compiled with ajv, made safe to
// run on hostile objects: every regex on RE2, uniqueItems in linear time, formats asserted.
import type { ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import ajvFormats from 'ajv-formats';
import { canonicalJson } from '../audit/canonical.js';
import { compileRegex } from './cel/index.js';

/**
 * JSON Schema `pattern` and `patternProperties` run on RE2 like every user regex: on V8's
 * backtracking engine `^(a+)+$` against a 33-character name ran for minutes, and no deadline
 * can interrupt it. A pattern RE2 does not support (lookaround, backreferences) fails the load.
 */
const re2ForAjv = Object.assign(
  (pattern: string) => {
    const re = compileRegex(pattern);
    // ajv shares compiled patterns by their text, as RegExp's toString gives it
    return { test: (s: string) => re.matcher(s).find(), toString: () => `re2:${pattern}` };
  },
  { code: 'trustgateRe2' },
);

/**
 * The first pair of equal items, by canonical JSON (JSON Schema equality: same keys and values,
 * in any order). ajv compares every pair of non-scalar items: `uniqueItems` over 20,000
 * containers took 90 s, beyond any deadline's reach; a key per item makes it linear.
 */
export function firstDuplicate(items: readonly unknown[]): [number, number] | undefined {
  const seen = new Map<string, number>();
  for (let i = 0; i < items.length; i++) {
    const key = canonicalJson(items[i]);
    const earlier = seen.get(key);
    if (earlier !== undefined) return [earlier, i];
    seen.set(key, i);
  }
  return undefined;
}

function uniqueItems(unique: boolean, data: unknown): boolean {
  if (!unique || !Array.isArray(data)) return true;
  const pair = firstDuplicate(data);
  if (!pair) return true;
  const [j, i] = pair;
  (uniqueItems as { errors?: unknown[] }).errors = [{ keyword: 'uniqueItems', message: `must NOT have duplicate items (items ## ${j} and ${i} are identical)`, params: { i, j } }];
  return false;
}

// ajv reports a format it does not know through its logger, and then ignores the keyword
const unknownFormats: string[] = [];
// ajv-formats is CommonJS: under ESM its plugin is the module's `default`
const addFormats = ajvFormats.default;

// One Ajv for object schemas; compiled once per policy revision at load, never per request.
// Formats are asserted (ajv-formats: uri, email, hostname, ipv4, date-time, uuid …).
const ajv = new Ajv2020({
  allErrors: true, strict: false, code: { regExp: re2ForAjv },
  logger: { log() {}, error() {}, warn: (message: unknown) => void (typeof message === 'string' && message.startsWith('unknown format') && unknownFormats.push(message)) },
});
addFormats(ajv);
ajv.removeKeyword('uniqueItems');
ajv.addKeyword({ keyword: 'uniqueItems', schemaType: 'boolean', errors: true, validate: uniqueItems });

/**
 * Compiles one policy's schema on its own. A format ajv does not know fails the load: ignored,
 * it would pass everything while its author believes it checks. Nothing is kept between
 * compiles, so hot reloads (and two policies) may use one `$id` and the instance does not grow.
 */
export function compileObjectSchema(schema: object): ValidateFunction {
  unknownFormats.length = 0;
  try {
    const validate = ajv.compile(schema);
    if (unknownFormats.length) {
      const [, name, path] = /unknown format "(.*)" ignored in schema at path "(.*)"/.exec(unknownFormats[0]!) ?? [];
      throw new Error(`unknown format ${JSON.stringify(name ?? unknownFormats[0])} at ${path ?? '#'}; the formats checked are ${Object.keys(ajv.formats).join(', ')}`);
    }
    return validate;
  } finally {
    ajv.removeSchema();
  }
}
