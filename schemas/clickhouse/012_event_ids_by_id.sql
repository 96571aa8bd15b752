-- event_ids_v1 was sorted by a hash of the id, so a batch of new ids touched most of its granules
-- however the ids were made, and ClickHouse computed each event's content digest in a view.
-- event_ids_v2 is sorted by the id itself: ids that grow with time (UUIDv7, which the SDK now
-- makes, or a job's counter) look up and merge within a few granules. The store writes each new
-- id's row itself, with the digest the processor computed (services/store/identity.ts), before
-- the event row, so no view computes it again.
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
