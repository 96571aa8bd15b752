-- One row per (event, pseudonymous subject): the subject-level questions (who, how many,
-- everything that touched one subject's data; join events_v1 on event_id for the details).
-- Filled by ClickHouse from events_v1.
CREATE TABLE IF NOT EXISTS event_subjects_v1
(
    subject_id String COMMENT 'keyed HMAC of the raw identifier, never the identifier',
    occurred_at DateTime64(3, 'UTC'),
    event_id String,
    kind LowCardinality(String),
    service String,
    verdict String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (subject_id, occurred_at, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS event_subjects_mv TO event_subjects_v1 AS
SELECT subject_id, occurred_at, event_id, kind, service, verdict
FROM events_v1
ARRAY JOIN subjects AS subject_id;
