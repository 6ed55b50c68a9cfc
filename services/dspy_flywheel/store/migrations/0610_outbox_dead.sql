-- An outbox row that can never be sent (larger than the broker takes, a topic name it refuses, a
-- record that no longer decodes or encodes) is set aside with the reason (bus/outbox.py) instead
-- of blocking every row after it. It stays in its table for inspection; the relay skips it.
ALTER TABLE optimizer_outbox
    ADD COLUMN IF NOT EXISTS dead_at timestamptz,
    ADD COLUMN IF NOT EXISTS dead_reason text;
ALTER TABLE rollout_outbox
    ADD COLUMN IF NOT EXISTS dead_at timestamptz,
    ADD COLUMN IF NOT EXISTS dead_reason text;
ALTER TABLE trigger_outbox
    ADD COLUMN IF NOT EXISTS dead_at timestamptz,
    ADD COLUMN IF NOT EXISTS dead_reason text;
