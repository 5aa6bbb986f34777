import { EvaluationError } from '@marcbachmann/cel-js';

/** Library functions report misuse as CEL evaluation errors, which the policy's failurePolicy handles. */
export function celError(message: string): never {
  throw new EvaluationError(message);
}

export function toIndex(n: bigint, what: string): number {
  if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) celError(`${what}: index ${n} out of range`);
  return Number(n);
}
