-- The holdout gate's decision record of each published version (n, paired counts b / c, gain,
-- interval, p-value, confidence, margin, reason): what proved it before it shipped.
ALTER TABLE programs ADD COLUMN IF NOT EXISTS gate jsonb NOT NULL DEFAULT '{}'::jsonb;
