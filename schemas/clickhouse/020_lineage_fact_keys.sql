-- A job's runs that repeat its lineage store it once. Each COLLECT and DERIVE row names the lineage
-- fact it is an instance of (lineage_facts_v1.fact_key); a DERIVE's edges are written by the run
-- that first brought its fact, and every later run with the same lineage (the same job, datasets,
-- fields, transforms and masking) points at them through fact_key instead of writing them again.
-- Rows stored before this migration have '' there, and each DERIVE's edges under its own event_id.
ALTER TABLE events_v1
    ADD COLUMN IF NOT EXISTS fact_key String DEFAULT '' COMMENT 'COLLECT, DERIVE: the lineage fact the event is an instance of (lineage_facts_v1.fact_key); a DERIVE''s edges are in lineage_edges_v1 under it';

ALTER TABLE lineage_edges_v1
    ADD COLUMN IF NOT EXISTS fact_key String DEFAULT '' COMMENT 'the lineage fact whose edge this is: the DERIVE runs with events_v1.fact_key equal to it all made it' AFTER event_id;

ALTER TABLE lineage_edges_in_v1
    ADD COLUMN IF NOT EXISTS fact_key String DEFAULT '' AFTER event_id;

DROP VIEW IF EXISTS lineage_edges_in_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS lineage_edges_in_mv TO lineage_edges_v1 AS
SELECT event_id, fact_key, occurred_at, service, job_namespace, job_name, run_id,
    from_dataset, from_field, to_dataset, to_field, transform, masking
FROM lineage_edges_in_v1
ARRAY JOIN from_datasets AS from_dataset, from_fields AS from_field, to_datasets AS to_dataset,
    to_fields AS to_field, transforms AS transform, maskings AS masking;
