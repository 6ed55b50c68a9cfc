-- One offsets table for the services that read every partition themselves (trigger, rollout:
-- store/stateful.py). ``service`` names the reader, ``scope`` its deployment. The rows of
-- ``trigger_offsets`` and ``rollout_offsets`` move here, so a restart resumes where it was.
CREATE TABLE IF NOT EXISTS service_offsets (
    service     text NOT NULL,
    scope       text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, scope, topic, partition)
);

INSERT INTO service_offsets (service, scope, topic, partition, next_offset, updated_at)
    SELECT 'trigger', scope, topic, partition, next_offset, updated_at FROM trigger_offsets
    UNION ALL
    SELECT 'rollout', scope, topic, partition, next_offset, updated_at FROM rollout_offsets
ON CONFLICT DO NOTHING;

DROP TABLE trigger_offsets;
DROP TABLE rollout_offsets;
