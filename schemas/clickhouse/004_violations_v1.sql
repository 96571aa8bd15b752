-- One row per (event, rule broken), with the lineage path that carried the data there.
CREATE TABLE IF NOT EXISTS violations_v1
(
    violation_id String COMMENT 'event_id:rule_id',
    event_id String,
    rule_id LowCardinality(String),
    basis LowCardinality(String) COMMENT 'deny or purpose-limitation',
    severity LowCardinality(String),
    mode LowCardinality(String) COMMENT 'enforce or shadow',
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    service String,
    job_namespace String,
    job_name String,
    run_id String,
    datasets Array(String),
    purposes Array(String) COMMENT 'purposes of the use that broke the rule',
    categories Array(String),
    collected_for Array(String),
    origins Array(String) COMMENT 'dataset#field where the data was collected',
    label_ids Array(String),
    path_id String COMMENT 'the lineage path(s) that carried the data here: see violation_paths_v1',
    subjects Array(String),
    subject_count UInt32 ALIAS length(subjects),
    data_subject String,
    recipient String,
    recipient_external UInt8,
    trace_id String,
    late_lineage UInt8 COMMENT '1 when found after lineage arrived late',
    reason String,
    detected_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (rule_id, occurred_at, violation_id);

-- Lineage paths of violations, stored once per distinct path set: join on path_id.
CREATE TABLE IF NOT EXISTS violation_paths_v1
(
    path_id String,
    lineage_path String COMMENT 'JSON: {paths:[{category,collectedFor,origin,hops:[...]}], use:{...}, totalPaths}',
    path_text String COMMENT 'the first path as one line: COLLECT ... => COPY ... => USE ...'
)
ENGINE = ReplacingMergeTree
ORDER BY path_id;

-- One row per (violation, subject): distinct people and records affected per rule. Filled
-- by ClickHouse from violations_v1.
CREATE TABLE IF NOT EXISTS violation_subjects_v1
(
    rule_id LowCardinality(String),
    subject_id String,
    occurred_at DateTime64(3, 'UTC'),
    violation_id String,
    event_id String,
    categories Array(String),
    service String,
    mode LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (rule_id, subject_id, violation_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS violation_subjects_mv TO violation_subjects_v1 AS
SELECT rule_id, subject_id, occurred_at, violation_id, event_id, categories, service, mode
FROM violations_v1
ARRAY JOIN subjects AS subject_id;

-- Violations with their lineage path, for reading. (No table aliases: ClickHouse qualifies the
-- tables with the database, which may be named like an alias.)
CREATE VIEW IF NOT EXISTS violations_with_paths AS
SELECT *
FROM violations_v1
LEFT JOIN violation_paths_v1 USING (path_id);
