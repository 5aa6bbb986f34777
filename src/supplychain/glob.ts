// Image globs for images[].match and exclude, compiled once to anchored RE2 patterns:
// `*` matches within one path segment, `**` across segments, `?` one character.
import { compileRegex } from '../policy/cel/index.js';

export function globToRegex(glob: string): string {
  let out = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      out += '.*';
      i++;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[\\^$.|+(){}[\]]/g, '\\$&');
  }
  return `${out}$`;
}

export function compileGlobs(globs: readonly string[]): (ref: string) => boolean {
  const patterns = globs.map((g) => compileRegex(globToRegex(g)));
  return (ref) => patterns.some((p) => p.matches(ref));
}
