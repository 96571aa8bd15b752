export { createLineageGraph, datasetId, fieldKey, factKey, factDigest, labelKey, labelId, WHOLE_DATASET } from "./graph.ts";
export type { LineageGraph, LineageObserver } from "./graph.ts";
export type { Hop, Label, FieldSelector, LabelLookup, ApplyResult } from "./types.ts";
