-- Lineage edges, field to field (from_field '*' when the derivation named no columns), one
-- row per DERIVE event and edge: walk them with recursive CTEs.
CREATE TABLE IF NOT EXISTS lineage_edges_v1
(
    event_id String,
    occurred_at DateTime64(3, 'UTC'),
    service String,
    job_namespace String,
    job_name String,
    run_id String,
    from_dataset String,
    from_field String,
    to_dataset String,
    to_field String,
    transform String,
    masking String
)
ENGINE = ReplacingMergeTree
ORDER BY (to_dataset, to_field, from_dataset, from_field, event_id);

-- Distinct lineage facts (COLLECT and DERIVE without their subjects): what a restarted
-- processor replays to rebuild its lineage graph.
CREATE TABLE IF NOT EXISTS lineage_facts_v1
(
    fact_key String,
    kind LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    event_id String,
    fact String COMMENT 'the event as JSON, subjects removed'
)
ENGINE = ReplacingMergeTree
ORDER BY fact_key;

-- Purpose labels: data of a category, about a kind of subject, collected for some purposes at
-- an origin field. events_v1.label_ids and violations_v1.label_ids point here.
CREATE TABLE IF NOT EXISTS labels_v1
(
    label_id String,
    origin String COMMENT 'namespace/name#field where the data was collected',
    category String,
    collected_for Array(String),
    data_subject String
)
ENGINE = ReplacingMergeTree
ORDER BY label_id;
