// Holds the active policy set and reloads it when files change. A broken edit is rejected
// whole: the last good set stays active, and the error is reported to the listener.
import { watch, type FSWatcher } from 'node:fs';
import { loadPolicySet, type PolicySet } from './load.js';
import type { PolicyFileError } from './types.js';

export interface ReloadListener {
  loaded(set: PolicySet): void;
  rejected(errors: PolicyFileError[]): void;
}

export class PolicyStore {
  #current?: PolicySet;
  #watchers: FSWatcher[] = [];
  #timer?: NodeJS.Timeout;
  #reloading = Promise.resolve();

  constructor(readonly paths: readonly string[], private readonly listener?: ReloadListener) {}

  get current(): PolicySet | undefined {
    return this.#current;
  }

  /** Loads once; resolves with the errors, if any (the previous set stays active). */
  async reload(): Promise<PolicyFileError[]> {
    const result = await loadPolicySet(this.paths);
    if (result.set) {
      this.#current = result.set;
      this.listener?.loaded(result.set);
      return [];
    }
    this.listener?.rejected(result.errors);
    return result.errors;
  }

  /** Watches the policy paths; changes are debounced so an editor's multi-step save loads once. */
  watch(debounceMs = 250): void {
    for (const p of this.paths) {
      const w = watch(p, { recursive: true }, () => {
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => {
          this.#reloading = this.#reloading.then(() => this.reload().then(() => undefined));
        }, debounceMs);
      });
      w.on('error', () => undefined);
      this.#watchers.push(w);
    }
  }

  /** resolves when any reload already triggered has finished (for tests and shutdown) */
  settled(): Promise<void> {
    return this.#reloading;
  }

  close(): void {
    clearTimeout(this.#timer);
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
  }
}
