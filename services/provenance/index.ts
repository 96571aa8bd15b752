export { computeProvenance, provenanceModel, OPEN_END, Variant } from "./holdings.ts";
export type { ProvenanceModel } from "./holdings.ts";
export type { ErasureFinding, UnknownTarget, HoldingRow, UseReadRow, ForbiddenRow, ProvenanceRows } from "./holdings.ts";
