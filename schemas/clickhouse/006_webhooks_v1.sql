-- Durable outbox of alerts: one row per (subscription, rule, job run, window), decided together
-- with the violations that raised it; later versions record delivery progress.
CREATE TABLE IF NOT EXISTS webhook_outbox_v1
(
    webhook_id String COMMENT 'the webhook-id header: the same on every attempt',
    subscription_id String,
    rule_id LowCardinality(String),
    severity LowCardinality(String),
    mode LowCardinality(String),
    service String,
    job_namespace String,
    job_name String,
    run_id String,
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    first_violation_id String,
    state LowCardinality(String) DEFAULT 'pending' COMMENT 'pending, delivered, failed or disabled',
    attempts UInt32 DEFAULT 0,
    next_attempt_at DateTime64(3, 'UTC') DEFAULT now64(3),
    last_status Int32 DEFAULT 0,
    version UInt64 COMMENT '1 when decided; a later time for each delivery update',
    created_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (subscription_id, webhook_id);

-- Every delivery attempt and its outcome.
CREATE TABLE IF NOT EXISTS webhook_deliveries_v1
(
    webhook_id String,
    subscription_id String,
    attempt UInt32,
    at DateTime64(3, 'UTC') DEFAULT now64(3),
    status_code Int32 COMMENT '0 when no answer came',
    outcome LowCardinality(String) COMMENT 'delivered, retry, disabled or gave_up',
    duration_ms UInt32,
    error String,
    payload_bytes UInt32
)
ENGINE = MergeTree
ORDER BY (subscription_id, webhook_id, attempt);

-- Endpoints switched off (410 Gone).
CREATE TABLE IF NOT EXISTS webhook_endpoints_v1
(
    subscription_id String,
    disabled UInt8,
    reason String,
    at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(at)
ORDER BY subscription_id;
