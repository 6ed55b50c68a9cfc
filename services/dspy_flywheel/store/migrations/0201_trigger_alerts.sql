-- The trigger's outbox carries Alert events too (accuracy below threshold), not only
-- OptimizationRequested: each row names its event type. Rows written before keep the default.
ALTER TABLE trigger_outbox
    ADD COLUMN IF NOT EXISTS event_type text NOT NULL DEFAULT 'OptimizationRequested';
CREATE INDEX IF NOT EXISTS trigger_outbox_alerts
    ON trigger_outbox (worker_id, created_at) WHERE event_type = 'Alert';
