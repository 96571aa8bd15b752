-- Issue 10, replay compiled to SQL (docs/tables.md, "Replay in SQL"). A use's verdict depends
-- only on its shape (what it reads, for what, by whom, to whom) and on the lineage as it was at its
-- time, so the engine groups the stored uses by shape, evaluates each shape once per lineage epoch
-- (the compiled rules), and joins the verdicts back onto the uses by shape and time (ASOF JOIN).
-- `use_shape` is computed at insert, so grouping 100M uses reads one UInt64 column; in parts
-- written before this migration it is computed when read.
ALTER TABLE events_v1 ADD COLUMN IF NOT EXISTS use_shape UInt64
    MATERIALIZED cityHash64(kind, service, job_namespace, job_name, data_subject, purposes, recipient, recipient_external, input_fields)
    COMMENT 'USE/SHARE: hash of what decides the verdict (kind, service, job, data subject, purposes, recipient, fields read)';

-- Working tables of one replay (`replay_id`, a partition each, dropped when it finishes). They are
-- rebuilt when a replay starts or resumes; the cursor in replay_progress_v1 says which days are done.
CREATE TABLE IF NOT EXISTS replay_shapes_v1
(
    replay_id String,
    shape_id UInt64 COMMENT 'events_v1.use_shape',
    kind LowCardinality(String),
    service String,
    job_namespace String,
    job_name String,
    data_subject String,
    purposes Array(String),
    recipient String,
    recipient_external UInt8,
    input_fields Array(String),
    uses UInt64 COMMENT 'stored rows of this shape in the window',
    first_at DateTime64(3, 'UTC'),
    last_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY replay_id
ORDER BY (replay_id, shape_id);

CREATE TABLE IF NOT EXISTS replay_timeline_v1
(
    replay_id String,
    dataset String COMMENT 'namespace/name',
    field String COMMENT 'empty for `described`',
    at DateTime64(3, 'UTC') COMMENT 'when the lineage fact that brought it occurred',
    what LowCardinality(String) COMMENT 'described: a COLLECT or DERIVE wrote the dataset; field: the lineage named the field; label: a label reached the field',
    label_id String,
    category String,
    collected_for Array(String),
    data_subject String,
    origin String
)
ENGINE = MergeTree
PARTITION BY replay_id
ORDER BY (replay_id, dataset, at, field);

CREATE TABLE IF NOT EXISTS replay_epochs_v1
(
    replay_id String,
    shape_id UInt64,
    valid_from DateTime64(3, 'UTC') COMMENT 'the verdict holds for uses of the shape from here to the next epoch',
    violations Array(Tuple(
        rule_id String,
        basis String,
        severity String,
        mode String,
        purposes Array(String),
        categories Array(String),
        collected_for Array(String),
        origins Array(String),
        label_ids Array(String),
        path_id String,
        reason String))
)
ENGINE = MergeTree
PARTITION BY replay_id
ORDER BY (replay_id, shape_id, valid_from);
