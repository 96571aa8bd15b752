-- Every accepted data-access event, one row each. Idempotent on event_id: a replayed event
-- lands on the same sorting key and ReplacingMergeTree keeps one row (query with FINAL, or
-- count with uniqExact(event_id), for exact numbers before merges).
CREATE TABLE IF NOT EXISTS {db}.events_v1
(
    event_id String,
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    service LowCardinality(String),
    job_namespace LowCardinality(String),
    job_name LowCardinality(String),
    run_id String,
    inputs Array(String) COMMENT 'datasets read, namespace/name',
    input_fields Array(String) COMMENT 'fields read, namespace/name#field',
    outputs Array(String) COMMENT 'datasets written (COLLECT, DERIVE)',
    output_fields Array(String),
    categories Array(LowCardinality(String)) COMMENT 'COLLECT: categories collected; USE/SHARE: categories of the labels that reach the data used',
    purposes Array(LowCardinality(String)) COMMENT 'COLLECT: collected for; USE/SHARE: declared purpose',
    collected_for Array(LowCardinality(String)) COMMENT 'USE/SHARE: purposes the data reaching it was collected for',
    label_keys Array(String) COMMENT 'USE/SHARE: origin|category|collected_for|subject of each label reaching it',
    data_subject LowCardinality(String),
    subject_count UInt32,
    transform LowCardinality(String),
    masking LowCardinality(String),
    recipient String,
    recipient_external UInt8,
    verdict LowCardinality(String) COMMENT 'USE/SHARE: ok, violation, shadow or unknown_provenance',
    trace_id String,
    span_id String,
    schema_fingerprint LowCardinality(String),
    schema_version UInt16,
    pseudonym_key_id LowCardinality(String),
    attributes Map(String, String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (kind, occurred_at, event_id);
