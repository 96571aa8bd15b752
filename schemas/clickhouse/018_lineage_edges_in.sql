-- The processor writes a derivation's edges as one row per event, its edges in parallel arrays,
-- and ClickHouse unrolls them into lineage_edges_v1 (one row per edge, as before): a RunEvent
-- with column lineage of 20 fields is one row to encode and parse, not 20 that each repeat the
-- event's id, time, service, job and run. Null: this table keeps nothing itself.
CREATE TABLE IF NOT EXISTS lineage_edges_in_v1
(
    event_id String,
    occurred_at DateTime64(3, 'UTC'),
    service String,
    job_namespace String,
    job_name String,
    run_id String,
    from_datasets Array(String),
    from_fields Array(String),
    to_datasets Array(String),
    to_fields Array(String),
    transforms Array(String),
    maskings Array(String)
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS lineage_edges_in_mv TO lineage_edges_v1 AS
SELECT event_id, occurred_at, service, job_namespace, job_name, run_id,
    from_dataset, from_field, to_dataset, to_field, transform, masking
FROM lineage_edges_in_v1
ARRAY JOIN from_datasets AS from_dataset, from_fields AS from_field, to_datasets AS to_dataset,
    to_fields AS to_field, transforms AS transform, maskings AS masking;
