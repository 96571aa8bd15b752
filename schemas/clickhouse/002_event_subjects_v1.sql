-- One row per (event, pseudonymous subject): the subject-level questions (who, how many,
-- everything that touched one subject's data). Filled by ClickHouse from events_v1.
CREATE TABLE IF NOT EXISTS {db}.event_subjects_v1
(
    subject_id String COMMENT 'keyed HMAC of the raw identifier, never the identifier',
    event_id String,
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    service String,
    job_name String,
    datasets Array(String) COMMENT 'outputs for COLLECT/DERIVE, inputs otherwise',
    categories Array(String),
    purposes Array(String),
    data_subject String,
    verdict String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (subject_id, occurred_at, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_subjects_mv TO {db}.event_subjects_v1 AS
SELECT subject_id, event_id, kind, occurred_at, service, job_name,
       if(kind IN ('COLLECT', 'DERIVE'), outputs, inputs) AS datasets,
       categories, purposes, data_subject, verdict
FROM {db}.events_v1
ARRAY JOIN subjects AS subject_id;
