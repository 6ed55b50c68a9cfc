-- Optimizer and manager: jobs, the program registry, worker acknowledgements, the outbox.

CREATE TABLE IF NOT EXISTS optimization_jobs (
    job_id           text PRIMARY KEY,
    worker_id        text NOT NULL,
    status           text NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'rejected', 'failed', 'cancelled')),
    reason           text NOT NULL DEFAULT 'manual',
    optimizer        text NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}'::jsonb,
    program_ref      text,
    metric_ref       text,
    requested_by     text NOT NULL DEFAULT 'system',
    evidence         jsonb NOT NULL DEFAULT '{}'::jsonb,
    traceparent      text,
    request_event_id text,
    progress         double precision NOT NULL DEFAULT 0,
    message          text,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    snapshot_id      bigint,
    program_version  integer,
    holdout_before   double precision,
    holdout_after    double precision,
    lm_calls         bigint,
    tokens           bigint,
    cpu_s            double precision,
    wall_s           double precision,
    owner            text,
    owner_host       text,
    owner_pid        integer,
    heartbeat_at     timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS optimization_jobs_worker ON optimization_jobs (worker_id, created_at DESC);
CREATE INDEX IF NOT EXISTS optimization_jobs_open ON optimization_jobs (status)
    WHERE status IN ('queued', 'running');

-- Every program version a worker may serve; (worker_id, version) is the identity.
CREATE TABLE IF NOT EXISTS programs (
    worker_id      text NOT NULL,
    version        integer NOT NULL CHECK (version > 0),
    state          jsonb NOT NULL,
    signature      jsonb NOT NULL,
    optimizer      text NOT NULL,
    params         jsonb NOT NULL DEFAULT '{}'::jsonb,
    job_id         text,
    snapshot_id    bigint,
    holdout_before double precision,
    holdout_after  double precision,
    lm_calls       bigint,
    tokens         bigint,
    cpu_s          double precision,
    wall_s         double precision,
    requested_by   text NOT NULL DEFAULT 'system',
    reason         text,
    size_bytes     integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker_id, version)
);
-- A job publishes at most one version, even if its publish step runs twice.
CREATE UNIQUE INDEX IF NOT EXISTS programs_job_once ON programs (job_id) WHERE job_id IS NOT NULL;

-- What each worker instance did with a published version (from program-acks).
CREATE TABLE IF NOT EXISTS program_acks (
    event_id    text PRIMARY KEY,
    worker_id   text NOT NULL,
    instance_id text NOT NULL,
    version     integer,
    status      text NOT NULL,
    reason      text,
    traceparent text,
    acked_at    timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS program_acks_worker ON program_acks (worker_id, acked_at DESC);

-- Events written in the same transaction as the rows they describe; a relay publishes them.
CREATE TABLE IF NOT EXISTS optimizer_outbox (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    topic        text NOT NULL,
    key          text,
    event_type   text NOT NULL,
    record       jsonb NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS optimizer_outbox_pending ON optimizer_outbox (id) WHERE published_at IS NULL;
