-- Collector: curated training examples (content encrypted, metadata plain), the feedback/execution
-- join state, idempotency gate, drop counters, per-worker policies and dataset snapshots.

CREATE TABLE IF NOT EXISTS training_examples (
    id                bigserial PRIMARY KEY,
    event_id          text NOT NULL UNIQUE,          -- ExecutionRecorded event id
    execution_id      text NOT NULL UNIQUE,
    worker_id         text NOT NULL,
    worker_type       text NOT NULL,
    program_version   text,
    success           boolean NOT NULL,
    score             double precision,              -- feedback score, else the worker's metric
    latency_ms        double precision NOT NULL,
    lm_calls          integer NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    has_label         boolean NOT NULL,
    label_source      text,
    feedback_event_id text,
    feedback_at       timestamptz,
    input_hash        bytea NOT NULL,                -- HMAC of worker id + anonymized inputs
    key_id            text NOT NULL,                 -- encryption key of the *_enc columns
    inputs_enc        bytea NOT NULL,
    outputs_enc       bytea,
    label_enc         bytea,
    executed_at       timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS training_examples_worker_id ON training_examples (worker_id, id);
-- input_hash is an HMAC over worker id + inputs: unique per worker on its own.
CREATE INDEX IF NOT EXISTS training_examples_input_hash ON training_examples (input_hash);
CREATE INDEX IF NOT EXISTS training_examples_worker_created ON training_examples (worker_id, created_at);

-- Join state: an execution waiting for feedback, feedback waiting for its execution, or a
-- tombstone for a dropped execution (so late feedback is counted, not orphaned).
CREATE TABLE IF NOT EXISTS collector_pending (
    execution_id       text PRIMARY KEY,
    worker_id          text NOT NULL,
    key_id             text NOT NULL,
    execution_event_id text,
    execution_enc      bytea,
    feedback_event_id  text,
    feedback_enc       bytea,
    dropped_reason     text,
    first_seen_at      timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS collector_pending_expires ON collector_pending (expires_at);

-- Idempotency gate: an event id is processed at most once (inserted in the same transaction as
-- its effects). Pruned by the retention job after FLYWHEEL_COLLECTOR_PROCESSED_TTL_H.
CREATE TABLE IF NOT EXISTS collector_processed_events (
    event_id     text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS collector_processed_events_at ON collector_processed_events (processed_at);

CREATE TABLE IF NOT EXISTS collector_drops (
    worker_id  text NOT NULL,
    reason     text NOT NULL,
    count      bigint NOT NULL DEFAULT 0,
    last_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker_id, reason)
);

-- Per-worker overrides; NULL columns fall back to the collector's settings.
CREATE TABLE IF NOT EXISTS collector_policies (
    worker_id                text PRIMARY KEY,
    accept_unlabeled_success boolean,
    min_score                double precision,
    max_field_chars          integer,
    drop_duplicates          boolean,
    pending_ttl_s            integer,
    retention_max_age_days   integer,
    retention_max_count      integer,
    updated_at               timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dataset_snapshots (
    id            bigserial PRIMARY KEY,
    worker_id     text NOT NULL,
    version       integer NOT NULL,
    purpose       text NOT NULL,
    example_ids   bigint[] NOT NULL,
    example_count integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (worker_id, version)
);

-- PII placeholder numbering per worker (scope): keyed digests only, never raw values, so the
-- same value keeps the same <KIND_n> across restarts and collector instances.
CREATE TABLE IF NOT EXISTS collector_placeholders (
    scope       text NOT NULL,
    digest      text NOT NULL,
    placeholder text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, digest),
    UNIQUE (scope, placeholder)
);
