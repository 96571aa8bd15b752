-- OpenLineage JobEvents and DatasetEvents (static metadata) are logged beside RunEvents: each
-- row says which kind it is, and a DatasetEvent's dataset is part of the key (it has no job or
-- run, so two DatasetEvents of one time would otherwise be one row).
ALTER TABLE openlineage_events_v1
    ADD COLUMN IF NOT EXISTS event_kind LowCardinality(String) DEFAULT 'RunEvent' COMMENT 'RunEvent, JobEvent or DatasetEvent' AFTER run_id,
    ADD COLUMN IF NOT EXISTS dataset String COMMENT 'DatasetEvent: namespace/name of the dataset it describes; empty otherwise' AFTER event_kind,
    MODIFY ORDER BY (job_namespace, job_name, run_id, event_type, event_time, dataset);
