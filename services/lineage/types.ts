import type { Masking, Transform } from "../codec/index.ts";

/** One step of a lineage path: where the labelled data was collected, then each derivation. */
export interface Hop {
  kind: "COLLECT" | "DERIVE";
  /** Dataset id, `namespace/name`. */
  dataset: string;
  field: string;
  service: string;
  /** Job id, `namespace/name`. */
  job: string;
  runId: string;
  eventId: string;
  occurredAt: number;
  transform?: Transform;
  masking?: Masking;
  /** Set when a declassification rule reclassified the label at this hop. */
  declassifiedBy?: string;
}

/**
 * A purpose label on a field: data of `category`, about `dataSubject`, collected for
 * `collectedFor` at `origin`. Its identity is that tuple; `path` is how it got here.
 */
export interface Label {
  key: string;
  /** labelId(key), the id stored in labels_v1. */
  id: string;
  category: string;
  collectedFor: string[];
  dataSubject: string;
  /** `dataset#field` where the data was collected. */
  origin: string;
  path: Hop[];
}

/** A field read by a use: `*` stands for the whole dataset. */
export interface FieldSelector {
  dataset: string;
  fields: string[];
}

export interface LabelLookup {
  labels: Label[];
  /** Datasets read that no COLLECT or DERIVE has described: their provenance is unknown. */
  unknownDatasets: string[];
}

/** Datasets whose labels changed while applying a fact. */
export interface ApplyResult {
  /** False when the same lineage fact was applied before (idempotent replays, repeated daily jobs). */
  applied: boolean;
  changedDatasets: string[];
  /**
   * The fact's id (`factDigest`) for a COLLECT or DERIVE, applied now or before: a run that repeats
   * a known fact is stored pointing at it (events_v1.fact_key), its edges not written again.
   */
  fact?: string;
}
