// Rules about the source itself that a type checker cannot see.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

const SRC = new URL('../src/', import.meta.url).pathname;
const sources = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);

t.test('no object literal defines a getter', async (t) => {
  // Each evaluation of `{ get x() { … } }` makes a new closure, so each object gets a hidden
  // class of its own, kept in the old generation, which holds the closure and everything it
  // captures past every scavenge. Twice a per-request getter kept whole reviews alive this way
  // (session 7: `variables`, 300 MB promoted per 35,000 admissions; session 10: the images
  // rules' registry scope, 13 KB per admission and a mark-compact every 1.4 s). A class with a
  // getter on its prototype does the same job.
  const offenders: string[] = [];
  for (const file of sources(SRC)) {
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      if (/[{,(]\s*get\s+[\w$]+\s*\(/.test(line)) offenders.push(`${file.slice(SRC.length)}:${i + 1}: ${line.trim()}`);
    });
  }
  t.same(offenders, []);
});
