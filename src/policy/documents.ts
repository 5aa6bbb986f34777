// Reads policy files: YAML (several documents a file) with positions kept for every node.
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { LineCounter, parseAllDocuments, isNode, type Document as YamlDocument } from 'yaml';
import { PolicyFileError, type SourcePosition } from './types.js';

export interface LoadedDocument {
  file: string;
  value: Record<string, unknown>;
  /** position of the node at a JSON path inside this document */
  positionOf(path: readonly (string | number)[]): SourcePosition;
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
    if (info.isDirectory()) {
      const entries = await readdir(p, { recursive: true, withFileTypes: true });
      for (const e of entries) {
        if (e.isFile() && /\.ya?ml$/.test(e.name) && !e.name.startsWith('.')) out.push(join(e.parentPath, e.name));
      }
    } else {
      out.push(p);
    }
  }
  return out.sort();
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
      positionOf(path) {
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
    const shown = relative(process.cwd(), file) || file;
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
