// One refresher of the exact model per process: `serve`'s alert deliverer and investigation
// console both need the model up to date, and a refresh rebuilds it from the whole stored history
// (minutes at a million users), so they share one, and never run two at once.

import type { Policy } from "../rules/index.ts";
import { refreshProvenance } from "./provenance.ts";
import type { Store } from "./store.ts";

export interface ModelRefresher {
  /**
   * The exact model brought up to date with what was stored at `since` (ms since the epoch) or
   * later: a refresh that began reading then is shared, else one is queued behind the one running.
   * Rejects when that refresh fails.
   */
  upToDate(since: number): Promise<void>;
  /** Whether a refresh is running or queued. */
  readonly updating: boolean;
  /** Resolves when no refresh is running or queued (a failed one included). */
  idle(): Promise<void>;
}

export function createModelRefresher(store: Store, policy: Policy): ModelRefresher {
  /** The latest refresh asked for: when it began reading (Infinity while queued), and its end. */
  let latest: { startedAt: number; done: Promise<void> } | undefined;
  let pending = 0;
  return {
    upToDate(since) {
      if (latest && latest.startedAt >= since) return latest.done;
      const before = latest?.done ?? Promise.resolve();
      const next: { startedAt: number; done: Promise<void> } = { startedAt: Infinity, done: Promise.resolve() };
      pending++;
      next.done = before
        .catch(() => undefined) // its callers were told
        .then(async () => {
          next.startedAt = Date.now();
          await refreshProvenance(store, policy);
        })
        .finally(() => pending--);
      latest = next;
      return next.done;
    },
    get updating() {
      return pending > 0;
    },
    async idle() {
      await latest?.done.catch(() => undefined);
    },
  };
}
