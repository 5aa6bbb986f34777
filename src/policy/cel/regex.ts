// Every user-supplied regular expression runs here: RE2 semantics, linear time, no ReDoS.
import { RE2JS } from 're2js';

export class RegexSyntaxError extends Error {
  readonly code = 'INVALID_REGEX';
  constructor(readonly pattern: string, detail: string) {
    super(`invalid regular expression ${JSON.stringify(pattern)}: ${detail}`);
  }
}

type Compiled = ReturnType<typeof RE2JS.compile>;

// Patterns usually come from policy literals, so a small cache keeps dynamic ones cheap too.
const MAX_CACHED = 512;
const cache = new Map<string, Compiled>();

export function compileRegex(pattern: string): Compiled {
  let re = cache.get(pattern);
  if (re) return re;
  try {
    re = RE2JS.compile(pattern);
  } catch (err) {
    throw new RegexSyntaxError(pattern, (err as Error).message.replace(/^error parsing regexp: /, ''));
  }
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string);
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
