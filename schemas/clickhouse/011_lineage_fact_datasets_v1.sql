-- Which lineage facts name which dataset, as input or output: a bounded lineage graph fetches
-- only the facts around the datasets a batch touches (and their upstream), not every fact.
-- Filled by ClickHouse from lineage_facts_v1.
CREATE TABLE IF NOT EXISTS lineage_fact_datasets_v1
(
    dataset String COMMENT 'namespace/name',
    role LowCardinality(String) COMMENT 'input or output',
    fact_key String
)
ENGINE = ReplacingMergeTree
ORDER BY (dataset, role, fact_key);

CREATE MATERIALIZED VIEW IF NOT EXISTS lineage_fact_datasets_mv TO lineage_fact_datasets_v1 AS
SELECT ref.1 AS dataset, ref.2 AS role, fact_key
FROM lineage_facts_v1
ARRAY JOIN arrayDistinct(arrayConcat(
    arrayMap(d -> (concat(JSONExtractString(d, 'namespace'), '/', JSONExtractString(d, 'name')), 'output'), JSONExtractArrayRaw(fact, 'outputs')),
    arrayMap(m -> (concat(JSONExtractString(m, 'output', 'namespace'), '/', JSONExtractString(m, 'output', 'name')), 'output'), JSONExtractArrayRaw(fact, 'fieldLineage')),
    arrayMap(d -> (concat(JSONExtractString(d, 'namespace'), '/', JSONExtractString(d, 'name')), 'input'), JSONExtractArrayRaw(fact, 'inputs')),
    arrayFlatten(arrayMap(m -> arrayMap(i -> (concat(JSONExtractString(i, 'namespace'), '/', JSONExtractString(i, 'name')), 'input'), JSONExtractArrayRaw(m, 'inputs')), JSONExtractArrayRaw(fact, 'fieldLineage')))
)) AS ref;

-- Stores created before this table: index the facts already there.
INSERT INTO lineage_fact_datasets_v1
SELECT ref.1 AS dataset, ref.2 AS role, fact_key
FROM lineage_facts_v1
ARRAY JOIN arrayDistinct(arrayConcat(
    arrayMap(d -> (concat(JSONExtractString(d, 'namespace'), '/', JSONExtractString(d, 'name')), 'output'), JSONExtractArrayRaw(fact, 'outputs')),
    arrayMap(m -> (concat(JSONExtractString(m, 'output', 'namespace'), '/', JSONExtractString(m, 'output', 'name')), 'output'), JSONExtractArrayRaw(fact, 'fieldLineage')),
    arrayMap(d -> (concat(JSONExtractString(d, 'namespace'), '/', JSONExtractString(d, 'name')), 'input'), JSONExtractArrayRaw(fact, 'inputs')),
    arrayFlatten(arrayMap(m -> arrayMap(i -> (concat(JSONExtractString(i, 'namespace'), '/', JSONExtractString(i, 'name')), 'input'), JSONExtractArrayRaw(m, 'inputs')), JSONExtractArrayRaw(fact, 'fieldLineage')))
)) AS ref;
