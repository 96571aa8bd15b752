-- Findings that are not rule violations: uses of data whose provenance is unknown, and their
-- resolution when lineage arrives late.
CREATE TABLE IF NOT EXISTS findings_v1
(
    finding_id String,
    kind LowCardinality(String),
    event_id String,
    occurred_at DateTime64(3, 'UTC'),
    service LowCardinality(String),
    job_name LowCardinality(String),
    datasets Array(String),
    severity LowCardinality(String),
    detail String,
    subject_count UInt32,
    detected_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(detected_at)
ORDER BY (kind, occurred_at, finding_id);

-- Input that could not be decoded or validated, with the reason and the original bytes
-- (withheld when the message carried raw identifiers).
CREATE TABLE IF NOT EXISTS dead_letters_v1
(
    dead_letter_id String,
    received_at DateTime64(3, 'UTC') DEFAULT now64(3),
    source String COMMENT 'file:line, http peer, or topic/partition/offset',
    reason String,
    error_code LowCardinality(String),
    payload_base64 String,
    payload_sha256 String,
    payload_bytes UInt32,
    redacted UInt8
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY dead_letter_id;
