-- One row per (event, pseudonymous subject): the subject-level questions (who, how many,
-- everything that touched one subject's data).
CREATE TABLE IF NOT EXISTS {db}.event_subjects_v1
(
    subject_id String COMMENT 'keyed HMAC of the raw identifier, never the identifier',
    event_id String,
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    service LowCardinality(String),
    job_name LowCardinality(String),
    datasets Array(String),
    categories Array(LowCardinality(String)),
    purposes Array(LowCardinality(String)),
    data_subject LowCardinality(String),
    verdict LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (subject_id, occurred_at, event_id);
