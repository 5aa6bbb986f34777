// Large reviews, one memory budget. A parsed AdmissionReview costs about nine times its body in
// heap (a 16 MiB review of small objects holds ~140 MiB), so a few large ones at once would
// exhaust a bounded heap and kill the replica. Bodies from LARGE_BODY_BYTES up take their size
// from a shared budget before they are parsed and give it back when answered; while the budget
// is spent they wait in order, and one that cannot start in time is refused (503), not crashed
// on. Bodies below the threshold — every ordinary review — never touch it.

export const LARGE_BODY_BYTES = 1024 * 1024;

export class BodyBudgetBusyError extends Error {
  readonly code = 'BODY_BUDGET_BUSY';
}

interface Waiter {
  bytes: number;
  start: () => void;
  timer: NodeJS.Timeout;
}

export class BodyBudget {
  #inUse = 0;
  #queue: Waiter[] = [];

  /** capacityBytes: large bodies in evaluation at once; one body larger than it still runs alone */
  constructor(readonly capacityBytes: number) {}

  get inUse(): number {
    return this.#inUse;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves with a release function once bytes fit (in arrival order); rejects after waitMs. */
  acquire(bytes: number, waitMs: number): Promise<() => void> {
    if (!this.#queue.length && this.#fits(bytes)) return Promise.resolve(this.#take(bytes));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        start: () => resolve(this.#take(bytes)),
        timer: setTimeout(() => {
          this.#queue.splice(this.#queue.indexOf(waiter), 1);
          reject(new BodyBudgetBusyError(`a large review (${bytes} bytes) waited ${waitMs} ms for memory and could not start: ${this.#inUse} bytes of large reviews are in evaluation, ${this.#queue.length} more waiting; retry`));
          this.#startWaiters(); // the head may have been the one that did not fit
        }, waitMs),
      };
      this.#queue.push(waiter);
    });
  }

  #fits(bytes: number): boolean {
    return this.#inUse === 0 || this.#inUse + bytes <= this.capacityBytes;
  }

  #take(bytes: number): () => void {
    this.#inUse += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inUse -= bytes;
      this.#startWaiters();
    };
  }

  #startWaiters(): void {
    while (this.#queue.length && this.#fits(this.#queue[0]!.bytes)) {
      const next = this.#queue.shift()!;
      clearTimeout(next.timer);
      next.start();
    }
  }
}
