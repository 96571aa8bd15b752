-- Issue 9: the exact model (docs/tables.md, "The issue-9 model") rebuilds every COLLECT from the
-- stored events, and a COLLECT's categories are per field: `categories` is their union. This
-- column holds them per output field, aligned with output_fields. Rows stored before it have []
-- there; the model then gives each field the union (docs/tables.md says so).
ALTER TABLE events_v1 ADD COLUMN IF NOT EXISTS output_categories Array(Array(String)) DEFAULT [] COMMENT 'COLLECT: categories per output field, aligned with output_fields' AFTER output_fields;
