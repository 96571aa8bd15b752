-- Every OpenLineage RunEvent that passed the schema, from any intake (HTTP, Kafka, files), with
-- what it became: the ids of the events it was mapped to (a DERIVE, a USE or SHARE), or why it
-- is no lineage (START, RUNNING, FAIL, ABORT, OTHER, or a COMPLETE with nothing to record).
-- A RunEvent delivered again replaces its row (docs/openlineage.md).
CREATE TABLE IF NOT EXISTS openlineage_events_v1
(
    job_namespace String,
    job_name String,
    run_id String,
    event_type LowCardinality(String) COMMENT 'START, RUNNING, COMPLETE, ABORT, FAIL, OTHER, or empty when absent',
    event_time String COMMENT 'eventTime as the producer wrote it',
    event_time_ms DateTime64(3, 'UTC') COMMENT 'eventTime as a time (0 when unreadable)',
    producer String,
    explanation String COMMENT 'what it became, or why it is no lineage; dead-lettered: reason when a mapped event was refused',
    event_ids Array(String) COMMENT 'events_v1.event_id of the events it became',
    source String COMMENT 'http peer #n, topic/partition@offset or file:line',
    received_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (job_namespace, job_name, run_id, event_type, event_time);
