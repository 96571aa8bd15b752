import { setFlagsFromString } from "node:v8";

/**
 * How far V8 lets the old generation grow past what survived the last full collection, for a
 * long-running `serve`: 1.5 times instead of V8's own factor (up to 4 under a high allocation
 * rate), which let the heap sit at about three times its live size under a steady stream of
 * batches (docs/performance.md, bench:soak). V8 reads the flag at each collection, so setting it
 * at start-up takes effect; full collections come more often, on a heap that stays small.
 */
export const SERVE_HEAP_GROWING_PERCENT = 50;

export function boundHeapGrowth(percent = SERVE_HEAP_GROWING_PERCENT): void {
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
