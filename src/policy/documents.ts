// Reads policy files: YAML (several documents a file) with positions kept for every node.
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { LineCounter, parseAllDocuments, isMap, isNode, isScalar, type Document as YamlDocument } from 'yaml';
import { PolicyFileError, type SourcePosition } from './types.js';

export interface LoadedDocument {
  file: string;
  value: Record<string, unknown>;
  /** position of the node at a JSON path inside this document (with key: of its key) */
  positionOf(path: readonly (string | number)[], options?: { key?: boolean }): SourcePosition;
  /** position of a character inside a one-line string scalar; the scalar's own position otherwise */
  positionInScalar(path: readonly (string | number)[], offset: number): SourcePosition;
}

const MAX_FILE_BYTES = 4 * 1024 * 1024;

export async function listPolicyFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    let info;
    try {
      info = await stat(p);
    } catch {
      throw new Error(`${p}: no such file or directory`);
    }
    if (info.isDirectory()) await collectYaml(p, out, new Set([await realpath(p)]));
    else out.push(p);
  }
  return out.sort();
}

/**
 * The YAML files under dir. Hidden names are skipped (editors' temporary files, `.git`, and a
 * mounted ConfigMap's `..data` and `..2026_…` directories) and symlinks are followed: a
 * ConfigMap volume shows each key as a symlink through `..data`, which the kubelet swaps in one
 * step on an update, so what is read is always one version, under the key's own name.
 * A directory reached twice (a symlink loop) is read once.
 */
async function collectYaml(dir: string, out: string[], seen: Set<string>): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    let info;
    try {
      info = await stat(path);
    } catch {
      continue; // a dangling symlink, or removed since the listing
    }
    if (info.isFile()) {
      if (/\.ya?ml$/.test(name)) out.push(path);
    } else if (info.isDirectory()) {
      const real = await realpath(path);
      if (seen.has(real)) continue;
      seen.add(real);
      await collectYaml(path, out, seen);
    }
  }
}

export function parseYamlDocuments(file: string, text: string): { documents: LoadedDocument[]; errors: PolicyFileError[] } {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const documents: LoadedDocument[] = [];
  const errors: PolicyFileError[] = [];
  const at = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col };
  };
  if (!Array.isArray(docs)) return { documents, errors };
  for (const doc of docs as YamlDocument[]) {
    if (doc.errors.length) {
      for (const e of doc.errors) errors.push(new PolicyFileError(at(e.pos[0]), e.message.split('\n')[0]!));
      continue;
    }
    if (doc.contents === null) continue; // an empty document between separators
    const docStart = doc.contents && isNode(doc.contents) && doc.contents.range ? doc.contents.range[0] : 0;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // e.g. an alias to an anchor of another document: YAML documents do not share anchors
      errors.push(new PolicyFileError(at(docStart), (err as Error).message.split('\n')[0]!));
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      errors.push(new PolicyFileError(at(docStart), 'a policy document must be a mapping with apiVersion, kind, metadata and spec'));
      continue;
    }
    documents.push({
      file,
      value: value as Record<string, unknown>,
      positionInScalar(path, offset) {
        const node = doc.getIn(path, true);
        if (isScalar(node) && node.range && typeof node.source === 'string' && !node.source.includes('\n')) {
          const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE';
          // escapes before the offset would shift it; exact for the usual unescaped expression
          if (node.type === 'PLAIN' || quoted) return at(node.range[0] + (quoted ? 1 : 0) + offset);
        }
        return this.positionOf(path);
      },
      positionOf(path, options) {
        if (options?.key && path.length) {
          const parent = doc.getIn(path.slice(0, -1), true);
          if (isMap(parent)) {
            const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(path.at(-1)));
            if (pair && isNode(pair.key) && pair.key.range) return at(pair.key.range[0]);
          }
        }
        // walk up until a node exists: a missing property is reported at its parent
        for (let depth = path.length; depth >= 0; depth--) {
          const node = doc.getIn(path.slice(0, depth), true);
          if (isNode(node) && node.range) return at(node.range[0]);
        }
        return at(docStart);
      },
    });
  }
  return { documents, errors };
}

export async function readPolicyDocuments(paths: readonly string[]): Promise<{ documents: LoadedDocument[]; errors: PolicyFileError[] }> {
  const files = await listPolicyFiles(paths);
  const documents: LoadedDocument[] = [];
  const errors: PolicyFileError[] = [];
  for (const file of files) {
    // relative to the working directory when below it, so messages stay short and clickable
    const rel = relative(process.cwd(), file);
    const shown = rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
    const info = await stat(file);
    if (info.size > MAX_FILE_BYTES) {
      errors.push(new PolicyFileError({ file: shown, line: 1, col: 1 }, `file is ${info.size} bytes, over the ${MAX_FILE_BYTES}-byte limit for policy files`));
      continue;
    }
    const parsed = parseYamlDocuments(shown, await readFile(file, 'utf8'));
    documents.push(...parsed.documents);
    errors.push(...parsed.errors);
  }
  return { documents, errors };
}
