-- Every accepted data-access event, one row each. Idempotent on event_id: a replayed event
-- lands on the same sorting key and ReplacingMergeTree keeps one row (query with FINAL, or
-- count with uniqExact(event_id), for exact numbers before merges).
-- Columns the processor leaves out take their defaults; ALIAS columns are computed when read.
CREATE TABLE IF NOT EXISTS events_v1
(
    event_id String,
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    service String,
    job_namespace String,
    job_name String,
    run_id String,
    input_fields Array(String) DEFAULT [] COMMENT 'fields read, namespace/name#field (#* = whole dataset)',
    output_fields Array(String) DEFAULT [] COMMENT 'fields written (COLLECT, DERIVE)',
    inputs Array(String) ALIAS arrayDistinct(arrayMap(x -> splitByChar('#', x)[1], input_fields)) COMMENT 'datasets read, namespace/name',
    outputs Array(String) ALIAS arrayDistinct(arrayMap(x -> splitByChar('#', x)[1], output_fields)) COMMENT 'datasets written',
    categories Array(String) DEFAULT [] COMMENT 'COLLECT: categories collected; USE/SHARE: categories of the labels that reach the data used',
    purposes Array(String) DEFAULT [] COMMENT 'COLLECT: collected for; USE/SHARE: declared purpose',
    collected_for Array(String) DEFAULT [] COMMENT 'USE/SHARE: purposes the data reaching it was collected for',
    label_ids Array(String) DEFAULT [] COMMENT 'USE/SHARE: labels reaching it (see labels_v1)',
    data_subject String,
    subjects Array(String) DEFAULT [] COMMENT 'pseudonymous subject ids (keyed HMAC)',
    subject_count UInt32 ALIAS length(subjects),
    transform String DEFAULT '',
    masking String DEFAULT '',
    recipient String DEFAULT '',
    recipient_external UInt8 DEFAULT 0,
    verdict String DEFAULT '' COMMENT 'USE/SHARE: ok, violation, shadow or unknown_provenance',
    traceparent String DEFAULT '' COMMENT 'W3C traceparent of the emitting operation',
    trace_id String ALIAS substring(traceparent, 4, 32),
    span_id String ALIAS substring(traceparent, 37, 16),
    schema_fingerprint String,
    schema_version UInt16,
    pseudonym_key_id String DEFAULT 'default',
    attributes Map(String, String) DEFAULT map(),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (kind, occurred_at, event_id);
