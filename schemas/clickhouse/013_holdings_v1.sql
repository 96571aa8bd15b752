-- Issue 9, exact affected users (docs/tables.md, "The issue-9 model"): per-subject holdings with
-- validity intervals, the fields each use read, and per rule the labels each use must not see.
-- Written by refreshProvenance (services/store/provenance.ts) from the stored events, as one
-- complete snapshot per `version` (a partition each, so an old snapshot is dropped whole); readers
-- take the highest version in provenance_versions_v1, written after the snapshot's rows. Times
-- are milliseconds since the epoch (UTC); an open interval ends at 9007199254740991.
CREATE TABLE IF NOT EXISTS holdings_v1
(
    version UInt64,
    variant UInt8 COMMENT '0 real; 1 without deletions; 2 without deletions, every run carrying everyone (for the reasons)',
    subject String,
    field String COMMENT 'namespace/name#field (#* for the whole dataset)',
    label_key String COMMENT 'the lineage label; empty for the row saying the data is there at all',
    category LowCardinality(String),
    declaration UInt8 COMMENT '1 when the label rests only on collections naming nobody',
    evidence UInt8 COMMENT '1 when the subject''s presence in the field rests on per-subject evidence',
    valid_from Int64 COMMENT 'ms, inclusive',
    valid_to Int64 COMMENT 'ms, exclusive'
)
ENGINE = MergeTree
PARTITION BY version
ORDER BY (version, variant, field, subject, valid_from);

CREATE TABLE IF NOT EXISTS use_reads_v1
(
    version UInt64,
    event_id String,
    occurred_at Int64 COMMENT 'ms',
    kind LowCardinality(String),
    external UInt8 COMMENT '1 for a SHARE to an external recipient',
    whole_table UInt8 COMMENT '1 when the use names no subjects',
    subjects Array(String),
    field String
)
ENGINE = MergeTree
PARTITION BY version
ORDER BY (version, occurred_at, event_id, field);

CREATE TABLE IF NOT EXISTS use_forbidden_v1
(
    version UInt64,
    event_id String,
    rule_id LowCardinality(String),
    label_key String,
    category LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY version
ORDER BY (version, rule_id, event_id, label_key);

CREATE TABLE IF NOT EXISTS provenance_versions_v1
(
    version UInt64,
    holdings UInt64,
    reads UInt64,
    subjects UInt64 COMMENT 'subjects whose holdings were computed',
    source_events UInt64 COMMENT 'rows of events_v1 when the snapshot was computed (with source_ingested: is it stale?)',
    source_ingested String COMMENT 'max(ingested_at) of events_v1 then, and the number of violation rows',
    policy String COMMENT 'digest of the policy whose rules chose the forbidden labels',
    elapsed_ms UInt64,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY version;
