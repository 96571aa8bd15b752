-- One row per event id, whatever its time. events_v1 is keyed (kind, occurred_at, event_id) for
-- time-range questions, so a second content under a known id would be a new row, counted again.
-- event_ids_v1 keeps the content each id was first stored with; the store lets only that content
-- through (services/store/identity.ts) and records any other as an EVENT_ID_CONFLICT finding.
-- Sorted by a 64-bit hash of the id, in small granules: looking up a batch of N random ids reads
-- at most about N granules of 8-byte keys, however large the table grows.
CREATE TABLE IF NOT EXISTS event_ids_v1
(
    id_hash UInt64 COMMENT 'sipHash64(event_id)',
    event_id String,
    content_sha256 String COMMENT 'SHA-256 of what the emitter said, as eventContentDigest in services/store/identity.ts',
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    first_seen DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (id_hash, event_id)
SETTINGS index_granularity = 256;

-- Stores from before: register every stored id with its first content (the same digest, in SQL),
-- then take out what later contents added, and record them as conflicts.
DROP TABLE IF EXISTS event_contents_009;

CREATE TABLE event_contents_009 ENGINE = MergeTree ORDER BY event_id AS
SELECT event_id, content_sha256,
    any(kind) AS kind, any(occurred_at) AS occurred_at, any(service) AS service, any(job_name) AS job_name,
    any(arrayDistinct(arrayConcat(inputs, outputs))) AS datasets, any(length(subjects)) AS subject_count,
    min(ingested_at) AS first_seen
FROM (
    SELECT event_id, kind, occurred_at, service, job_name, inputs, outputs, subjects, ingested_at,
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
        concat(toString(length(pseudonym_key_id)), ':', pseudonym_key_id))))) AS content_sha256
    FROM events_v1
)
GROUP BY event_id, content_sha256;

INSERT INTO event_ids_v1 (id_hash, event_id, content_sha256, kind, occurred_at, first_seen)
SELECT sipHash64(event_id), event_id, argMin(content_sha256, first_seen), argMin(kind, first_seen), argMin(occurred_at, first_seen), min(first_seen)
FROM event_contents_009
WHERE event_id NOT IN (SELECT event_id FROM event_ids_v1)
GROUP BY event_id;

DROP TABLE IF EXISTS event_losers_009;

CREATE TABLE event_losers_009 ENGINE = MergeTree ORDER BY event_id AS
SELECT * FROM event_contents_009
WHERE (event_id, content_sha256) NOT IN (SELECT event_id, content_sha256 FROM event_ids_v1);

DROP TABLE IF EXISTS event_days_009;

CREATE TABLE event_days_009 ENGINE = MergeTree ORDER BY rule_id AS
SELECT DISTINCT rule_id, toDate(occurred_at) AS day FROM violation_subjects_v1
WHERE event_id IN (SELECT event_id FROM event_losers_009);

INSERT INTO findings_v1 (finding_id, kind, event_id, occurred_at, service, job_name, datasets, severity, detail, subject_count)
SELECT concat(event_id, ':EVENT_ID_CONFLICT:', substring(content_sha256, 1, 16)), 'EVENT_ID_CONFLICT', event_id, occurred_at, service, job_name,
    datasets, 'high',
    concat('event id already stored with other content (content sha256 ', substring(content_sha256, 1, 16), '…): this ', kind,
           ' was removed by migration 009 and is not counted'),
    subject_count
FROM event_losers_009;

ALTER TABLE events_v1 DELETE
WHERE (event_id, lower(hex(SHA256(concat(
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
        concat(toString(length(pseudonym_key_id)), ':', pseudonym_key_id)))))) IN (SELECT event_id, content_sha256 FROM event_losers_009)
SETTINGS mutations_sync = 2;

ALTER TABLE event_subjects_v1 DELETE WHERE event_id IN (SELECT event_id FROM event_losers_009) SETTINGS mutations_sync = 2;

INSERT INTO event_subjects_v1 (subject_id, occurred_at, event_id, kind, service, verdict)
SELECT subject_id, occurred_at, event_id, kind, service, verdict
FROM events_v1 FINAL ARRAY JOIN subjects AS subject_id
WHERE event_id IN (SELECT event_id FROM event_losers_009);

-- A later content at another time made violations of its own; at the same time it replaced the
-- first one's row (same key), which is then left as stored.
ALTER TABLE violations_v1 DELETE
WHERE event_id IN (SELECT event_id FROM event_losers_009)
  AND (event_id, occurred_at) NOT IN (SELECT event_id, occurred_at FROM event_ids_v1 WHERE event_id IN (SELECT event_id FROM event_losers_009))
SETTINGS mutations_sync = 2;

ALTER TABLE violation_subjects_v1 DELETE WHERE event_id IN (SELECT event_id FROM event_losers_009) SETTINGS mutations_sync = 2;

INSERT INTO violation_subjects_v1 (rule_id, subject_id, occurred_at, violation_id, event_id, categories, service, mode)
SELECT rule_id, subject_id, occurred_at, violation_id, event_id, categories, service, mode
FROM violations_v1 FINAL ARRAY JOIN subjects AS subject_id
WHERE event_id IN (SELECT event_id FROM event_losers_009);

ALTER TABLE affected_daily_v1 DELETE WHERE (rule_id, day) IN (SELECT rule_id, day FROM event_days_009) SETTINGS mutations_sync = 2;

INSERT INTO affected_daily_v1
SELECT rule_id, toDate(occurred_at) AS day, category, service, mode,
       uniqState(subject_id), uniqExactState(subject_id), uniqExactState(subject_id, category)
FROM violation_subjects_v1 FINAL
ARRAY JOIN categories AS category
WHERE (rule_id, toDate(occurred_at)) IN (SELECT rule_id, day FROM event_days_009)
GROUP BY rule_id, day, category, service, mode;

DROP TABLE IF EXISTS event_contents_009;

DROP TABLE IF EXISTS event_losers_009;

DROP TABLE IF EXISTS event_days_009;

-- From now on ClickHouse registers each id as its event row is written (the store writes only
-- rows of an id's first content, so the digest it writes again is the same).
CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_mv TO event_ids_v1 AS
SELECT sipHash64(event_id) AS id_hash, event_id,
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
