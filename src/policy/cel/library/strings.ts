// Kubernetes strings library (cel-go ext strings v2) functions that cel-js lacks.
import type { Environment } from '@marcbachmann/cel-js';
import { celError, toIndex } from './fail.js';
import { chargeSize } from '../meter.js';
import { formatString } from './format.js';

class StringsNamespace {}

function replaceN(s: string, from: string, to: string, n: bigint): string {
  chargeSize(replacedLength(s, from, to, n));
  if (n < 0n) return s.split(from).join(to);
  let out = '';
  let rest = s;
  for (let i = 0n; i < n; i++) {
    const at = rest.indexOf(from);
    if (at < 0) break;
    out += rest.slice(0, at) + to;
    rest = rest.slice(at + from.length);
    if (from === '') {
      if (rest === '') return out;
      out += rest[0];
      rest = rest.slice(1);
    }
  }
  return out + rest;
}

/** the length replaceN's result will have (an empty `from` matches before every character and at the end), counted without building it */
function replacedLength(s: string, from: string, to: string, n: bigint): number {
  const limit = n < 0n ? Number.POSITIVE_INFINITY : Number(n);
  let count = 0;
  if (from === '') count = Math.min(s.length + 1, limit);
  else for (let at = s.indexOf(from); at >= 0 && count < limit; at = s.indexOf(from, at + from.length)) count++;
  return s.length + count * (to.length - from.length);
}

/** the code point at `at` (CEL indexes strings by code point) without spreading the whole string */
function codePointAt(s: string, at: number): string | undefined {
  let i = 0;
  for (const ch of s) if (i++ === at) return ch;
  return at === i ? '' : undefined;
}

function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    switch (ch) {
      case '\\': out += '\\\\'; break;
      case '"': out += '\\"'; break;
      case '\n': out += '\\n'; break;
      case '\r': out += '\\r'; break;
      case '\t': out += '\\t'; break;
      case '\b': out += '\\b'; break;
      case '\f': out += '\\f'; break;
      case '\v': out += '\\v'; break;
      case '\x07': out += '\\a'; break;
      default: out += ch;
    }
  }
  return out + '"';
}

export function registerStrings(env: Environment): void {
  env
    .registerFunction('string.charAt(int): string', (s: string, i: bigint) => {
      const ch = codePointAt(s, toIndex(i, 'charAt'));
      return ch ?? celError(`charAt: index ${i} out of range for a string of length ${[...s].length}`);
    })
    .registerFunction('string.replace(string, string): string', (s: string, a: string, b: string) => replaceN(s, a, b, -1n))
    .registerFunction('string.replace(string, string, int): string', (s: string, a: string, b: string, n: bigint) => replaceN(s, a, b, n))
    .registerFunction('string.reverse(): string', (s: string) => {
      chargeSize(s.length);
      return [...s].reverse().join('');
    })
    .registerFunction('string.format(list): string', (s: string, args: unknown[]) => {
      // the output is at most the template plus each argument's text once per verb
      const out = formatString(s, args);
      chargeSize(out.length);
      return out;
    })
    .registerType('StringsNamespace', StringsNamespace)
    .registerConstant('strings', 'StringsNamespace', new StringsNamespace())
    .registerFunction('StringsNamespace.quote(string): string', (_ns: unknown, s: string) => {
      chargeSize(s.length);
      return quote(s);
    });
}
