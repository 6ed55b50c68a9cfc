-- Rollout controller (the rollout service). ``scope`` separates deployments sharing a schema.
-- State, consumed offsets, decisions, audit rows and outbox events of one batch are written in
-- one transaction, so a restart resumes exactly where the last committed batch ended.
CREATE TABLE IF NOT EXISTS rollout_state (
    scope      text NOT NULL,
    worker_id  text NOT NULL,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, worker_id)
);

CREATE TABLE IF NOT EXISTS rollout_offsets (
    scope       text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, topic, partition)
);

-- Every decision: promote, roll back, keep, guard rollback, operator pin/unpin/promote/rollback.
CREATE TABLE IF NOT EXISTS rollout_decisions (
    scope             text NOT NULL,
    worker_id         text NOT NULL,
    sequence          bigint NOT NULL,
    decision          text NOT NULL,
    stable_version    integer,
    candidate_version integer,
    candidate_share   double precision NOT NULL DEFAULT 0,
    pinned            boolean NOT NULL DEFAULT false,
    reason            text NOT NULL,
    evidence          jsonb NOT NULL DEFAULT '{}'::jsonb,
    decided_by        text NOT NULL,
    command_id        text,
    job_id            text,
    traceparent       text,
    decided_at        timestamptz NOT NULL,
    PRIMARY KEY (scope, worker_id, sequence)
);

CREATE TABLE IF NOT EXISTS rollout_outbox (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    scope        text NOT NULL,
    topic        text NOT NULL,
    key          text,
    event_type   text NOT NULL,
    record       jsonb NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS rollout_outbox_pending
    ON rollout_outbox (scope, id) WHERE published_at IS NULL;
