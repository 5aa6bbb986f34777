// Reading decision logs back: a file sink's file (with its rotated siblings, oldest first),
// or a spool directory (its segments in order). Each line keeps its position for messages.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface LogLine { position: number; where: string; text: string }

/** The files behind a source, oldest first. */
export function logFiles(source: string): string[] {
  if (!existsSync(source)) throw new Error(`${source}: no such file or directory`);
  if (statSync(source).isDirectory()) {
    return readdirSync(source).filter((f) => /^segment-\d{9}\.jsonl$/.test(f)).sort().map((f) => join(source, f));
  }
  const dir = dirname(source);
  const base = basename(source);
  const rotated = readdirSync(dir)
    .flatMap((f) => (f.startsWith(`${base}.`) && /^\d+$/.test(f.slice(base.length + 1)) ? [Number(f.slice(base.length + 1))] : []))
    .sort((a, b) => b - a)
    .map((n) => join(dir, `${base}.${n}`));
  return [...rotated, source];
}

export function* readLogLines(sources: readonly string[]): Generator<LogLine> {
  for (const source of sources) {
    for (const file of logFiles(source)) {
      const lines = readFileSync(file, 'utf8').split('\n');
      for (let i = 0; i < lines.length; i++) if (lines[i]!.trim()) yield { position: i + 1, where: `${file}:${i + 1}`, text: lines[i]! };
    }
  }
}
