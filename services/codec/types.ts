export const EventKind = {
  collect: "COLLECT",
  derive: "DERIVE",
  use: "USE",
  share: "SHARE",
  delete: "DELETE",
} as const;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

export const Transform = {
  copy: "COPY",
  join: "JOIN",
  hash: "HASH",
  aggregate: "AGGREGATE",
  filter: "FILTER",
  enrich: "ENRICH",
  other: "OTHER",
} as const;
export type Transform = (typeof Transform)[keyof typeof Transform];

export const Masking = { none: "NONE", masked: "MASKED", anonymised: "ANONYMISED" } as const;
export type Masking = (typeof Masking)[keyof typeof Masking];

/** Pseudonymous subject ids on the wire: the emitters' keyed HMAC, 32 lowercase hex digits. */
export const PSEUDONYM_PATTERN = /^[0-9a-f]{32}$/;

export interface DatasetField {
  name: string;
  /** fideslang data category keys held by this field. */
  categories: string[];
}

export interface Dataset {
  namespace: string;
  name: string;
  /** Fields touched; empty means the whole dataset. */
  fields: DatasetField[];
}

export interface FieldRef {
  namespace: string;
  name: string;
  field: string;
}

export interface FieldMapping {
  output: FieldRef;
  inputs: FieldRef[];
  transform: Transform;
  /**
   * Whether this mapping masks or anonymises its output field, besides the event's `masking`
   * (which applies to every mapping): absent, null or NONE, as the event. Schema version 3.
   */
  masking?: Masking | null;
}

/** A field mapping's own masking, when it has one (not absent, null or NONE). */
export function ownMasking(mapping: Pick<FieldMapping, "masking">): Masking | undefined {
  const own = mapping.masking;
  return own && own !== Masking.none ? own : undefined;
}

/** The masking a field mapping applies: its own, or else its event's. */
export function mappingMasking(event: Pick<DataAccessEvent, "masking">, mapping: Pick<FieldMapping, "masking">): Masking {
  return ownMasking(mapping) ?? event.masking;
}

export interface Recipient {
  name: string;
  external: boolean;
}

/** One data-access event as the current reader schema (DataAccessEvent v3) sees it. */
export interface DataAccessEvent {
  eventId: string;
  kind: EventKind;
  /** Milliseconds since the Unix epoch. */
  occurredAt: number;
  service: string;
  job: { namespace: string; name: string };
  runId: string;
  inputs: Dataset[];
  outputs: Dataset[];
  transform: Transform;
  fieldLineage: FieldMapping[];
  masking: Masking;
  purposes: string[];
  dataSubject: string;
  /** Pseudonymous subject ids (keyed HMAC hex), never raw identifiers. */
  subjects: string[];
  recipient: Recipient | null;
  traceparent: string | null;
  pseudonymKeyId: string;
  attributes: Record<string, string>;
}
