-- The lineage outbox's marks. Every stored lineage fact (lineage_facts_v1, written with its
-- batch) is to be published on the shared Kafka lineage topic; the ones without a row here for
-- that topic are the outbox, published again after a crash or a failed send. Publishing twice is
-- harmless: the topic is compacted by fact_key.
CREATE TABLE IF NOT EXISTS lineage_published_v1
(
    fact_key String,
    topic String COMMENT 'the Kafka lineage topic the fact was published to',
    published_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, fact_key);
