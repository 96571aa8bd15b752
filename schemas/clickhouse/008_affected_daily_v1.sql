-- Affected subjects per (rule, day, data category, service, mode), as aggregate states: the
-- "how many distinct users did rule X affect between A and B" answer without scanning every
-- (violation, subject) row. `subjects` is approximate (uniq, HyperLogLog-like, about 1-2%
-- error), `subjects_exact` exact (uniqExact); merge them over the days of the window.
CREATE TABLE IF NOT EXISTS affected_daily_v1
(
    rule_id LowCardinality(String),
    day Date,
    category LowCardinality(String),
    service LowCardinality(String),
    mode LowCardinality(String),
    subjects AggregateFunction(uniq, String),
    subjects_exact AggregateFunction(uniqExact, String),
    records_exact AggregateFunction(uniqExact, String, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (rule_id, day, category, service, mode);

CREATE MATERIALIZED VIEW IF NOT EXISTS affected_daily_mv TO affected_daily_v1 AS
SELECT rule_id, toDate(occurred_at) AS day, category, service, mode,
       uniqState(subject_id) AS subjects,
       uniqExactState(subject_id) AS subjects_exact,
       uniqExactState(subject_id, category) AS records_exact
FROM violation_subjects_v1
ARRAY JOIN categories AS category
GROUP BY rule_id, day, category, service, mode;

-- Stores created before this view: fill it from what is there (states of sets: a row counted
-- twice changes nothing).
INSERT INTO affected_daily_v1
SELECT rule_id, toDate(occurred_at) AS day, category, service, mode,
       uniqState(subject_id), uniqExactState(subject_id), uniqExactState(subject_id, category)
FROM violation_subjects_v1
ARRAY JOIN categories AS category
GROUP BY rule_id, day, category, service, mode;
