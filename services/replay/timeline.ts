import type { DataAccessEvent } from "../codec/index.ts";

/**
 * Stored lineage facts applied in the order they occurred, as far as the uses judged against
 * them have advanced: a use at time t is judged by every fact that occurred at or before t
 * (the same millisecond included), and by none that occurred after, whenever either arrived.
 */
export interface LineageTimeline {
  /** Applies every fact not applied yet that occurred at or before `at`; returns how many. */
  advanceTo(at: number): Promise<number>;
  /** Facts applied so far. */
  readonly applied: number;
}

/**
 * A timeline over `facts`, which must come in occurred order (oldest first), as
 * `Store.lineageFactsInTimeOrder` yields them; `apply` is called once per fact, in that order.
 * Only one fact is read ahead of the times asked for.
 */
export function createLineageTimeline(facts: AsyncIterable<DataAccessEvent>, apply: (fact: DataAccessEvent) => void): LineageTimeline {
  const iterator = facts[Symbol.asyncIterator]();
  let next: DataAccessEvent | undefined;
  let exhausted = false;
  let applied = 0;
  let previous = -Infinity;

  async function peek(): Promise<DataAccessEvent | undefined> {
    if (next || exhausted) return next;
    const r = await iterator.next();
    if (r.done) exhausted = true;
    else {
      if (r.value.occurredAt < previous) {
        throw new Error(`lineage facts out of time order: ${r.value.eventId} at ${r.value.occurredAt} after ${previous}`);
      }
      previous = r.value.occurredAt;
      next = r.value;
    }
    return next;
  }

  return {
    async advanceTo(at) {
      let n = 0;
      for (let f = await peek(); f && f.occurredAt <= at; f = await peek()) {
        next = undefined;
        apply(f);
        n++;
      }
      applied += n;
      return n;
    },
    get applied() {
      return applied;
    },
  };
}
