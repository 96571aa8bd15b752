export { computeProvenance, OPEN_END } from "./holdings.ts";
export type { HoldingRow, UseReadRow, ForbiddenRow, ProvenanceRows } from "./holdings.ts";
