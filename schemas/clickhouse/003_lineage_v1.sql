-- Lineage edges, field to field (from_field '*' when the derivation named no columns), one
-- row per DERIVE event and edge: walk them with recursive CTEs.
CREATE TABLE IF NOT EXISTS {db}.lineage_edges_v1
(
    event_id String,
    occurred_at DateTime64(3, 'UTC'),
    service LowCardinality(String),
    job_namespace LowCardinality(String),
    job_name LowCardinality(String),
    run_id String,
    from_dataset String,
    from_field String,
    to_dataset String,
    to_field String,
    transform LowCardinality(String),
    masking LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (to_dataset, to_field, from_dataset, from_field, event_id);

-- Distinct lineage facts (COLLECT and DERIVE without their subjects): what a restarted
-- processor replays to rebuild its lineage graph.
CREATE TABLE IF NOT EXISTS {db}.lineage_facts_v1
(
    fact_key String,
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    event_id String,
    fact String COMMENT 'the event as JSON, subjects removed'
)
ENGINE = ReplacingMergeTree
ORDER BY fact_key;
