// Kubernetes regex library plus the RE2 replacement for the built-in `matches`.
import type { Environment } from '@marcbachmann/cel-js';
import { chargeSize } from '../meter.js';
import { regexFind, regexFindAll, regexMatches } from '../regex.js';

/** the name the compiler rewrites `matches` calls to */
export const RE2_MATCHES = 'tgRe2Matches';

export function registerRegex(env: Environment): void {
  env
    .registerFunction(`string.${RE2_MATCHES}(string): bool`, (s: string, p: string) => regexMatches(s, p))
    .registerFunction(`${RE2_MATCHES}(string, string): bool`, (s: string, p: string) => regexMatches(s, p))
    .registerFunction('string.find(string): string', (s: string, p: string) => regexFind(s, p))
    // the matches' text is at most the string's, as for split
    .registerFunction('string.findAll(string): list<string>', (s: string, p: string) => {
      chargeSize(s.length);
      return regexFindAll(s, p);
    })
    .registerFunction('string.findAll(string, int): list<string>', (s: string, p: string, n: bigint) => {
      chargeSize(s.length);
      return regexFindAll(s, p, n < 0n ? -1 : Number(n));
    });
}
