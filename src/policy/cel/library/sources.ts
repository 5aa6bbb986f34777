// trustgate's own CEL functions for source URLs, so policies never compare URLs as strings:
//   sourceWithin(url, entry)  true when the canonical URL lies within the allow entry
//   canonicalSource(url)      the canonical form, for messages
import type { Environment } from '@marcbachmann/cel-js';
import { canonicaliseSource, entryAllows, formatSource, parseAllowEntry, SourceURLError } from '../../sources.js';
import { celError } from './fail.js';

function canonical(url: string) {
  try {
    return canonicaliseSource(url);
  } catch (err) {
    return celError(err instanceof SourceURLError ? err.message : String(err));
  }
}

export function registerSources(env: Environment): void {
  env
    .registerFunction('sourceWithin(string, string): bool', (url: string, entry: string) => {
      let e;
      try {
        e = parseAllowEntry(entry);
      } catch (err) {
        return celError(`sourceWithin: bad entry: ${(err as Error).message}`);
      }
      return entryAllows(e.canonical, canonical(url));
    })
    .registerFunction('canonicalSource(string): string', (url: string) => formatSource(canonical(url)));
}
