-- event_ids_v1 was sorted by a hash of the id, so a batch of new ids touched most of its granules
-- however the ids were made. event_ids_v2 is sorted by the id itself: ids that grow with time
-- (UUIDv7, which the SDK now makes, or a job's counter) look up and merge within a few granules.
-- As before, ClickHouse fills it as event rows are written (event_ids_v2_mv, below), computing
-- each event's content digest on its own threads rather than the processor's.
CREATE TABLE IF NOT EXISTS event_ids_v2
(
    event_id String,
    content_sha256 String COMMENT 'SHA-256 of what the emitter said, as eventContentDigest in services/store/identity.ts',
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    first_seen DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY event_id;

DROP VIEW IF EXISTS event_ids_mv;

-- (Present unless an earlier run of this migration was cut short after dropping it.)
CREATE TABLE IF NOT EXISTS event_ids_v1
(
    id_hash UInt64,
    event_id String,
    content_sha256 String,
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    first_seen DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (id_hash, event_id);

INSERT INTO event_ids_v2 (event_id, content_sha256, kind, occurred_at, first_seen)
SELECT event_id, argMin(content_sha256, first_seen), argMin(kind, first_seen), argMin(occurred_at, first_seen), min(first_seen)
FROM event_ids_v1
WHERE event_id NOT IN (SELECT event_id FROM event_ids_v2)
GROUP BY event_id;

DROP TABLE IF EXISTS event_ids_v1;

-- The same digest as migration 009 and eventContentDigest in services/store/identity.ts.
CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_v2_mv TO event_ids_v2 AS
SELECT event_id,
    lower(hex(SHA256(concat(
    concat(toString(length(kind)), ':', kind),
    concat(toString(length(toString(toUnixTimestamp64Milli(occurred_at)))), ':', toString(toUnixTimestamp64Milli(occurred_at))),
    concat(toString(length(service)), ':', service),
    concat(toString(length(job_namespace)), ':', job_namespace),
    concat(toString(length(job_name)), ':', job_name),
    concat(toString(length(run_id)), ':', run_id),
    concat(toString(length(input_fields)), '[', arrayStringConcat(arrayMap(v -> concat(toString(length(v)), ':', v), arraySort(input_fields))), ']'),
    concat(toString(length(output_fields)), '[', arrayStringConcat(arrayMap(v -> concat(toString(length(v)), ':', v), arraySort(output_fields))), ']'),
    concat(toString(length(purposes)), '[', arrayStringConcat(arrayMap(v -> concat(toString(length(v)), ':', v), arraySort(purposes))), ']'),
    concat(toString(length(data_subject)), ':', data_subject),
    concat(toString(length(subjects)), '[', arrayStringConcat(arrayMap(v -> concat(toString(length(v)), ':', v), arraySort(subjects))), ']'),
    concat(toString(length(transform)), ':', transform),
    concat(toString(length(masking)), ':', masking),
    concat(toString(length(recipient)), ':', recipient),
    concat(toString(length(toString(recipient_external))), ':', toString(recipient_external)),
    concat(toString(length(traceparent)), ':', traceparent),
    concat(toString(length(pseudonym_key_id)), ':', pseudonym_key_id))))) AS content_sha256,
    kind, occurred_at
FROM events_v1;
