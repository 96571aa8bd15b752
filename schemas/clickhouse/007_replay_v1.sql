-- Violations found by `lineage-audit replay` (a rule evaluated over stored history) are marked.
ALTER TABLE violations_v1 ADD COLUMN IF NOT EXISTS retroactive UInt8 DEFAULT 0 COMMENT '1 when found by a replay over stored history';

-- Where each replay got to, so an interrupted one resumes and a finished one is not redone.
CREATE TABLE IF NOT EXISTS replay_progress_v1
(
    replay_id String COMMENT 'hash of the rules file and the window',
    rules_file String,
    cursor_at DateTime64(3, 'UTC'),
    cursor_event_id String,
    events UInt64,
    violations UInt64,
    done UInt8,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY replay_id;
