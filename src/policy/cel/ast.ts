// A minimal view of cel-js AST nodes: enough to walk, rewrite `matches`, and estimate cost.
import type { ASTNode } from '@marcbachmann/cel-js';

export type Node = ASTNode & { args: any; op: string; start: number; end: number };

/** the macros that loop: one-variable, and cel-go's two-variable ones (Kubernetes 1.33+) */
export const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter', 'existsOne', 'transformList', 'transformMap', 'transformMapEntry', 'sortBy']);

/** The direct child expressions of a node, in source order. */
export function children(n: Node): Node[] {
  const a = n.args;
  switch (n.op) {
    case 'value': case 'id': case 'rootId': return [];
    case '.': case '.?': return [a[0]];
    case 'call': return a[1];
    case 'rcall': return [a[1], ...a[2]];
    case 'map': return a.flatMap((e: [Node, Node]) => e);
    case '!_': case '-_': case '?_': return Array.isArray(a) ? a : [a];
    // anything else: its node arguments, so no future node hides a `matches` from the RE2 rewrite
    default: return (Array.isArray(a) ? a : [a]).filter((x: unknown) => x && typeof x === 'object' && 'op' in (x as object));
  }
}

/** An identifier, plain (`object`) or root-scoped (`.object`, past comprehension variables). */
export function isIdentifier(n: Node, name?: string): boolean {
  return (n.op === 'id' || n.op === 'rootId') && (name === undefined || n.args === name);
}

/** `variables.x` (or `.variables.x`): the name x, else undefined. */
export function variableReference(n: Node): string | undefined {
  return (n.op === '.' || n.op === '.?') && isIdentifier(n.args[0], 'variables') ? (n.args[1] as string) : undefined;
}

export function walk(n: Node, visit: (n: Node) => void): void {
  visit(n);
  for (const c of children(n)) walk(c, visit);
}
