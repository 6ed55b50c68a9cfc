-- Trigger service state. ``scope`` separates deployments sharing one schema (= topic prefix).
-- Worker state and consumed offsets are written in one transaction, so a restart resumes exactly
-- where the last committed batch ended; requests go out through the outbox in that transaction.
CREATE TABLE IF NOT EXISTS trigger_state (
    scope      text NOT NULL,
    worker_id  text NOT NULL,
    state      jsonb NOT NULL,
    view       jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, worker_id)
);

CREATE TABLE IF NOT EXISTS trigger_offsets (
    scope       text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, topic, partition)
);

CREATE TABLE IF NOT EXISTS trigger_outbox (
    event_id    text PRIMARY KEY,
    scope       text NOT NULL,
    worker_id   text NOT NULL,
    job_id      text NOT NULL,
    topic       text NOT NULL,
    record      jsonb NOT NULL,
    traceparent text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX IF NOT EXISTS trigger_outbox_unsent
    ON trigger_outbox (scope, created_at) WHERE sent_at IS NULL;
