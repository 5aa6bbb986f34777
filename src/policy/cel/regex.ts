// Every user-supplied regular expression runs here: RE2 semantics, linear time, no ReDoS.
import { LRUCache } from 'lru-cache';
import { RE2JS } from 're2js';

export class RegexSyntaxError extends Error {
  readonly code = 'INVALID_REGEX';
  constructor(readonly pattern: string, detail: string) {
    super(`invalid regular expression ${JSON.stringify(pattern)}: ${detail}`);
  }
}

type Compiled = ReturnType<typeof RE2JS.compile>;

/**
 * Longest pattern compiled. Matching is linear, but compiling is not free: a pattern read from
 * the object under review (`s.matches(object.x)`) of 1 MB took 1.8 s and 150 MB to compile.
 * Policy patterns are a few hundred characters.
 */
export const MAX_PATTERN_LENGTH = 8192;

// Patterns usually come from policy literals, so a small cache keeps dynamic ones cheap too;
// it is bounded by pattern text as well as entries, since a compiled program grows with it.
const cache = new LRUCache<string, Compiled>({ max: 512, maxSize: 256 * 1024, sizeCalculation: (_re, pattern) => pattern.length + 1 });

export function compileRegex(pattern: string): Compiled {
  let re = cache.get(pattern);
  if (re) return re;
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new RegexSyntaxError(pattern.slice(0, 64), `${pattern.length} characters, more than the ${MAX_PATTERN_LENGTH} a pattern may have`);
  }
  try {
    re = RE2JS.compile(pattern);
  } catch (err) {
    throw new RegexSyntaxError(pattern, (err as Error).message.replace(/^error parsing regexp: /, ''));
  }
  cache.set(pattern, re);
  return re;
}

/** CEL `matches`: true when the pattern matches any substring (RE2 `find`). */
export function regexMatches(text: string, pattern: string): boolean {
  return compileRegex(pattern).matcher(text).find();
}

export function regexFind(text: string, pattern: string): string {
  const m = compileRegex(pattern).matcher(text);
  return m.find() ? (m.group(0) ?? '') : '';
}

export function regexFindAll(text: string, pattern: string, limit = -1): string[] {
  const out: string[] = [];
  if (limit === 0) return out;
  const m = compileRegex(pattern).matcher(text);
  while (m.find()) {
    out.push(m.group(0) ?? '');
    if (limit > 0 && out.length >= limit) break;
  }
  return out;
}
