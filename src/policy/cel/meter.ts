// Runtime cost: every element visit of an input list is charged to the expression being
// evaluated, as Kubernetes charges CEL cost at runtime. Evaluation is synchronous, so one
// meter serves the process; it is re-armed before every expression.

export class CostLimitError extends Error {
  readonly code = 'COST_LIMIT_EXCEEDED';
}

/** Element visits one expression may make: e.g. two nested loops over ~700-item lists. */
export const DEFAULT_RUNTIME_COST_LIMIT = 500_000;

let remaining = Number.POSITIVE_INFINITY;
let limit = Number.POSITIVE_INFINITY;
// An expression can start another before it ends (a variable is evaluated when first read):
// the inner one's meter is pushed over the outer's and popped when it ends, so the outer goes
// on metered with what it had left.
const outer: number[] = [];

export function armMeter(budget: number): void {
  outer.push(remaining, limit);
  remaining = budget;
  limit = budget;
}

/** Refills the armed meter: an expression evaluated a second way starts from its full budget. */
export function rearmMeter(): void {
  remaining = limit;
}

export function disarmMeter(): void {
  limit = outer.pop()!;
  remaining = outer.pop()!;
}

/** Throws when the armed expression ran out of budget, even if an operator absorbed the error. */
export function assertWithinBudget(): void {
  if (remaining < 0) throw exceeded();
}

const exceeded = () => new CostLimitError(`the expression exceeded its runtime cost limit of ${limit} list element visits`);

const isIndex = (key: string | symbol): boolean => {
  if (typeof key !== 'string') return false;
  const c = key.charCodeAt(0);
  return c >= 48 && c <= 57;
};

const metered: ProxyHandler<unknown[]> = {
  get(target, key, receiver) {
    // Sticky: CEL's all/exists/||/&& absorb errors and go on, so once the budget is spent
    // every further visit fails at once, and the evaluation ends as exceeded whatever it returns.
    if (isIndex(key) && --remaining < 0) throw exceeded();
    return Reflect.get(target, key, receiver);
  },
};

/**
 * Lists this short are not metered: loops nest at most two deep (three are refused at load),
 * so unmetered work is at most SHORT_LIST^2 visits per expression, and the hot path stays fast.
 */
export const SHORT_LIST = 32;

export function meterList<T>(list: T[]): T[] {
  return list.length <= SHORT_LIST ? list : new Proxy(list, metered as ProxyHandler<T[]>);
}
