// Runtime cost: every element visit of an input list, and every iteration of a comprehension
// over any list (also lists made during evaluation: map/filter/split results, variables), is
// charged to the expression being evaluated, as Kubernetes charges CEL cost at runtime; so is
// every string, list or bytes value a function builds, by its size, before it is built (a
// doubling `+` or `replace('', s)` would otherwise grow past the heap in a few steps). A time
// limit backs the count up for work that visits no list elements (string scans inside loops).
// Evaluation is synchronous, so one meter serves the process; it is armed per expression.
import * as celJs from '@marcbachmann/cel-js';

export class CostLimitError extends Error {
  readonly code = 'COST_LIMIT_EXCEEDED';
}

/**
 * Cost units one expression may spend: e.g. two nested loops over ~700-item lists, or 5M
 * characters built (SIZE_PER_UNIT).
 */
export const DEFAULT_RUNTIME_COST_LIMIT = 500_000;
/** characters, list items or bytes built per cost unit (Kubernetes charges 0.1 per character) */
export const SIZE_PER_UNIT = 10;
/** Wall time one expression may run: ~10,000 times what a policy expression takes on a Pod. */
export const DEFAULT_RUNTIME_TIME_LIMIT_MS = 1000;

let remaining = Number.POSITIVE_INFINITY;
let limit = Number.POSITIVE_INFINITY;
let timeLimit = Number.POSITIVE_INFINITY;
let deadline = Number.POSITIVE_INFINITY;
/**
 * Date.now() after which the armed expression is stopped; NaN until its first loop starts,
 * since an expression without loops does bounded work and should not pay for a clock read.
 */
let until = Number.POSITIVE_INFINITY;
let stoppedByTime = 0;
// An expression can start another before it ends (a variable is evaluated when first read):
// the inner one's meter is pushed over the outer's and popped when it ends, so the outer goes
// on metered with what it had left.
const outer: number[] = [];

export function armMeter(budget: number, timeLimitMs: number, deadlineMs: number): void {
  outer.push(remaining, limit, until, stoppedByTime, timeLimit, deadline);
  remaining = budget;
  limit = budget;
  timeLimit = timeLimitMs;
  deadline = deadlineMs;
  until = Number.NaN;
  stoppedByTime = 0;
}

/**
 * Refills the armed meter: an expression evaluated a second way starts from its full budget
 * (only while it is not exhausted; a spent budget or time ends the evaluation instead).
 */
export function rearmMeter(): void {
  remaining = limit;
}

export function disarmMeter(): void {
  deadline = outer.pop()!;
  timeLimit = outer.pop()!;
  stoppedByTime = outer.pop()!;
  until = outer.pop()!;
  limit = outer.pop()!;
  remaining = outer.pop()!;
}

/** Whether the armed expression (not one it started) has spent its budget or its time. */
export function meterExhausted(): boolean {
  return remaining < 0;
}

/** Throws when the armed expression ran out of budget, even if an operator absorbed the error. */
export function assertWithinBudget(): void {
  if (remaining < 0) throw exceeded();
}

const exceeded = () => new CostLimitError(stoppedByTime
  ? 'the expression exceeded its runtime time limit'
  : `the expression exceeded its runtime cost limit of ${limit} (list element visits; every ${SIZE_PER_UNIT} characters or items built count one)`);

// Sticky: CEL's all/exists/||/&& absorb errors and go on, so once the budget is spent every
// further visit fails at once, and the evaluation ends as exceeded whatever it returns.
function charge(): void {
  if (--remaining < 0) throw exceeded();
  // the clock is read every 32 visits: Date.now() on each would double a fast loop's cost
  if ((remaining & 0x1f) === 0 && until !== Number.POSITIVE_INFINITY) checkTime();
}

function checkTime(): void {
  const now = Date.now();
  if (Number.isNaN(until)) until = Math.min(now + timeLimit, deadline);
  if (now > until) {
    remaining = -1;
    stoppedByTime = 1;
    throw exceeded();
  }
}

/** Charges work a library function does without visiting list elements one by one (pairwise comparisons). */
export function chargeWork(units: number): void {
  spend(units);
  if (until !== Number.POSITIVE_INFINITY) checkTime();
}

function spend(units: number): void {
  if (remaining < 0) throw exceeded();
  remaining -= units;
  if (remaining < 0) throw exceeded();
}

/**
 * Charges a value a function is about to build (characters, items or bytes). Values under
 * SIZE_PER_UNIT are free: each operation's result is then that small, and the operations
 * themselves are bounded by the expression's size times its metered iterations.
 */
export function chargeSize(size: number): void {
  // no clock read: one build is at most the budget's worth of characters
  if (size >= SIZE_PER_UNIT) spend(Math.floor(size / SIZE_PER_UNIT));
}

const isIndex = (key: string | symbol): boolean => {
  if (typeof key !== 'string') return false;
  const c = key.charCodeAt(0);
  return c >= 48 && c <= 57;
};

const metered: ProxyHandler<unknown[]> = {
  get(target, key, receiver) {
    if (isIndex(key)) charge();
    return Reflect.get(target, key, receiver);
  },
};
const meteredLists = new WeakSet<object>();

/**
 * Lists this short are not metered: loops nest at most two deep (three are refused at load),
 * so unmetered work is at most SHORT_LIST^2 visits per expression, and the hot path stays fast.
 */
export const SHORT_LIST = 32;

export function meterList<T>(list: T[]): T[] {
  if (list.length <= SHORT_LIST || meteredLists.has(list)) return list;
  const proxy = new Proxy(list, metered as ProxyHandler<T[]>);
  meteredLists.add(proxy);
  return proxy;
}

/**
 * What a comprehension iterates: metered, whoever made the list. Each loop's start also reads
 * the clock, so loops over short lists with costly bodies are bounded in time too.
 */
export function meterIteration<T>(items: T[]): T[] {
  if (remaining < 0) throw exceeded();
  if (until !== Number.POSITIVE_INFINITY) checkTime();
  return meterList(items);
}

// the hooks are trustgate's patches to cel-js (patches/): without them loops over lists made
// during evaluation and the values functions build would go unmetered, so refuse to start instead
if (typeof celJs.setIterationHook !== 'function' || typeof celJs.setSizeHook !== 'function') {
  throw new Error('@marcbachmann/cel-js is not patched: run `npm ci` (its postinstall applies patches/ with patch-package)');
}
celJs.setIterationHook(meterIteration as (items: unknown[]) => unknown[]);
celJs.setSizeHook(chargeSize);
