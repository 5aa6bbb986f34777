// Static worst-case cost of an expression, as Kubernetes estimates CEL cost at load time:
// every node costs 1, a comprehension costs its body times the length of the list it iterates.
// Input lists are bounded by InputLimits.maxListLength (enforced when a review is converted).
import { COMPREHENSIONS, children, type Node } from './ast.js';

export function estimateCost(n: Node, assumedListLength: number): number {
  if (n.op === 'rcall' && COMPREHENSIONS.has(n.args[0])) {
    const [, receiver, macroArgs] = n.args as [string, Node, Node[]];
    const length = receiver.op === 'list' ? (receiver.args as Node[]).length : assumedListLength;
    const body = macroArgs.slice(1).reduce((sum, a) => sum + estimateCost(a, assumedListLength), 0);
    return 1 + estimateCost(receiver, assumedListLength) + length * (body + 1);
  }
  return children(n).reduce((sum, c) => sum + estimateCost(c, assumedListLength), 1);
}
