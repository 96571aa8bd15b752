// Rows as the store's tables take them (column names are the ClickHouse columns). The
// processor declares them because it is the one that needs a place to put them (the port);
// the ClickHouse store implements it.

/** Columns left out take the table's defaults; inputs, outputs, trace ids and counts are computed by ClickHouse. */
export interface EventRow {
  event_id: string;
  kind: string;
  occurred_at: number;
  service: string;
  job_namespace: string;
  job_name: string;
  run_id: string;
  data_subject: string;
  schema_fingerprint: string;
  schema_version: number;
  input_fields?: string[];
  output_fields?: string[];
  /** COLLECT: the categories of each output field, aligned with output_fields. */
  output_categories?: string[][];
  categories?: string[];
  purposes?: string[];
  collected_for?: string[];
  label_ids?: string[];
  subjects?: string[];
  transform?: string;
  masking?: string;
  recipient?: string;
  recipient_external?: number;
  verdict?: string;
  traceparent?: string;
  pseudonym_key_id?: string;
  attributes?: Record<string, string>;
  /** COLLECT and DERIVE: the lineage fact the event is an instance of (lineage_facts_v1.fact_key, lineage_edges_v1.fact_key). */
  fact_key?: string;
}

export interface LabelRow {
  label_id: string;
  origin: string;
  category: string;
  collected_for: string[];
  data_subject: string;
}

/** What a row of edges has of the DERIVE that made them. */
export interface EdgeEventColumns {
  event_id: string;
  /** The fact the edges belong to: every run that repeats it points at them by this key (events_v1.fact_key). */
  fact_key: string;
  occurred_at: number;
  service: string;
  job_namespace: string;
  job_name: string;
  run_id: string;
}

/** One edge, as lineage_edges_v1 holds it (one row an edge). */
export interface EdgeRow extends EdgeEventColumns {
  from_dataset: string;
  from_field: string;
  to_dataset: string;
  to_field: string;
  transform: string;
  masking: string;
}

/**
 * A DERIVE's edges as the processor writes them (lineage_edges_in_v1): the event's columns once,
 * its edges in parallel arrays (edge i is from_datasets[i]#from_fields[i] to
 * to_datasets[i]#to_fields[i]); ClickHouse unrolls them into lineage_edges_v1, one row an edge.
 */
export interface EdgesRow extends EdgeEventColumns {
  from_datasets: string[];
  from_fields: string[];
  to_datasets: string[];
  to_fields: string[];
  transforms: string[];
  maskings: string[];
}

/** A DERIVE's edges one by one, as lineage_edges_v1 holds them. */
export function edgeRowsOf(row: EdgesRow): EdgeRow[] {
  return row.from_datasets.map((from, i) => ({
    event_id: row.event_id,
    fact_key: row.fact_key,
    occurred_at: row.occurred_at,
    service: row.service,
    job_namespace: row.job_namespace,
    job_name: row.job_name,
    run_id: row.run_id,
    from_dataset: from,
    from_field: row.from_fields[i] as string,
    to_dataset: row.to_datasets[i] as string,
    to_field: row.to_fields[i] as string,
    transform: row.transforms[i] as string,
    masking: row.maskings[i] as string,
  }));
}

export interface FactRow {
  fact_key: string;
  kind: string;
  occurred_at: number;
  event_id: string;
  /** The event as JSON, without its subjects: enough to rebuild the lineage graph. */
  fact: string;
}

export interface ViolationRow {
  violation_id: string;
  event_id: string;
  rule_id: string;
  basis: string;
  severity: string;
  mode: string;
  kind: string;
  occurred_at: number;
  service: string;
  job_namespace: string;
  job_name: string;
  run_id: string;
  datasets: string[];
  purposes: string[];
  categories: string[];
  collected_for: string[];
  origins: string[];
  label_ids: string[];
  path_id: string;
  subjects: string[];
  data_subject: string;
  recipient: string;
  recipient_external: number;
  trace_id: string;
  late_lineage: number;
  reason: string;
  /** 1 when found by a replay over stored history. */
  retroactive?: number;
}

export interface PathRow {
  path_id: string;
  lineage_path: string;
  path_text: string;
}

/** An alert decided and waiting in the durable outbox (webhook_outbox_v1). */
export interface OutboxRow {
  webhook_id: string;
  subscription_id: string;
  rule_id: string;
  severity: string;
  mode: string;
  service: string;
  job_namespace: string;
  job_name: string;
  run_id: string;
  window_start: number;
  window_end: number;
  first_violation_id: string;
  version: number;
}

export interface FindingRow {
  finding_id: string;
  kind: string;
  event_id: string;
  occurred_at: number;
  service: string;
  job_name: string;
  datasets: string[];
  severity: string;
  detail: string;
  subject_count: number;
}

export interface DeadLetterRow {
  dead_letter_id: string;
  source: string;
  reason: string;
  error_code: string;
  payload_base64: string;
  payload_sha256: string;
  payload_bytes: number;
  redacted: number;
}

/** Everything one batch of events produced; written together, idempotently. */
export interface AuditBatch {
  events: EventRow[];
  labels: LabelRow[];
  /** One row a DERIVE with edges. */
  edges: EdgesRow[];
  facts: FactRow[];
  violations: ViolationRow[];
  paths: PathRow[];
  outbox: OutboxRow[];
  findings: FindingRow[];
  deadLetters: DeadLetterRow[];
}

export function emptyBatch(): AuditBatch {
  return { events: [], labels: [], edges: [], facts: [], violations: [], paths: [], outbox: [], findings: [], deadLetters: [] };
}
