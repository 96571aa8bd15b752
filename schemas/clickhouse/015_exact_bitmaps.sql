-- Issue 9, speed: the exact per-subject count (docs/tables.md, "The issue-9 model") as bitmaps of
-- dense subject ordinals, so a count over a window merges a few bitmaps instead of joining the
-- holdings. Written by materializeExactCounts (services/store/exact-counts.ts) from the snapshot
-- `version` before it is committed; PARTITION BY version like the snapshot, so an old one is
-- dropped whole with it. Times are milliseconds since the epoch (UTC).

-- Dense ordinals (1, 2, ...) of the snapshot's subjects (those with holdings in the real history),
-- in subject order.
CREATE TABLE IF NOT EXISTS subject_ordinals_v1
(
    version UInt64,
    subject String,
    ordinal UInt32
)
ENGINE = MergeTree
PARTITION BY version
ORDER BY (version, subject);

-- One row per (rule, use or share, data category): the ordinals of the subjects it affected
-- exactly with a forbidden label of that category (the (use, subject) pairs of exactAffected).
CREATE TABLE IF NOT EXISTS exact_uses_v1
(
    version UInt64,
    rule_id LowCardinality(String),
    occurred_at Int64 COMMENT 'ms',
    category LowCardinality(String),
    event_id String,
    external UInt8 COMMENT '1 for a SHARE to an external recipient',
    subjects AggregateFunction(groupBitmap, UInt32)
)
ENGINE = MergeTree
PARTITION BY version
ORDER BY (version, rule_id, occurred_at, category, event_id)
-- A granule is read and its bitmaps deserialized whole: at the default 8,192 rows, a window's
-- partial day would decode thousands of uses' bitmaps for the few it needs.
SETTINGS index_granularity = 128;

-- The same, OR-ed over aligned blocks of `hours` (1, 24, 192, 768, 3072: an hour, a day, 8, 32 and
-- 128 days, the levels in services/store/exact-counts.ts): the block starting at `start` (a
-- multiple of its length since the epoch) holds every use in [start, start + length). A window
-- merges the largest blocks it covers whole, then smaller ones towards its edges, and the uses of
-- its partial hours from exact_uses_v1.
CREATE TABLE IF NOT EXISTS exact_rollups_v1
(
    version UInt64,
    rule_id LowCardinality(String),
    hours UInt16 COMMENT 'length of the block',
    start Int64 COMMENT 'ms, UTC',
    category LowCardinality(String),
    first Int64 COMMENT 'ms of the first use in the block with an exactly affected subject',
    last Int64 COMMENT 'ms of the last one',
    -- Bitmaps of this size do not compress: LZ4 would only add a pass over them.
    subjects AggregateFunction(groupBitmap, UInt32) CODEC(NONE)
)
ENGINE = MergeTree
PARTITION BY version
ORDER BY (version, rule_id, hours, start, category)
-- Granules of at most 4 rows or 1 MiB: a 32-day bitmap (megabytes) is read alone.
SETTINGS index_granularity = 4, index_granularity_bytes = 1048576;

-- One row per snapshot whose bitmaps are complete, written after them.
CREATE TABLE IF NOT EXISTS exact_versions_v1
(
    version UInt64,
    subjects UInt64 COMMENT 'ordinals given',
    uses UInt64 COMMENT 'rows of exact_uses_v1',
    elapsed_ms UInt64,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY version
ORDER BY version;
