-- What the last device sync saw at Podero.
ALTER TABLE device
    ADD COLUMN is_authenticated  boolean,
    ADD COLUMN action_needed     boolean,
    ADD COLUMN actions           jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN connection_status text,
    ADD COLUMN synced_at         timestamptz,
    -- needs_reauth: the manufacturer login lapsed (by the sync's account);
    -- the sweep reads it through the partial index below.
    ADD COLUMN needs_reauth      boolean GENERATED ALWAYS AS (
        gone_at IS NULL AND (is_authenticated IS FALSE OR actions @> '[{"code": "reauthenticate"}]')
    ) STORED;
CREATE INDEX device_needs_reauth ON device (kind, id) WHERE needs_reauth;
CREATE INDEX device_org_synced ON device (org_id, user_id, synced_at);

-- A sync that finds the device authenticated again closes its open session
-- as completed elsewhere (the user fixed it without our link).
ALTER TABLE auth_session DROP CONSTRAINT auth_session_state_check;
ALTER TABLE auth_session ADD CONSTRAINT auth_session_state_check
    CHECK (state IN ('open', 'completed', 'cancelled', 'superseded', 'completed_elsewhere'));

-- For psql users: each device with its latest session, latest message and
-- latest request job.
CREATE VIEW reauth_device_status AS
SELECT d.kind, d.id, d.org_id, d.user_id, d.is_authenticated, d.needs_reauth, d.gone_at, d.synced_at,
       s.id AS session, s.state AS session_state, s.created_at AS session_created_at, s.opened_at, s.finished_at,
       n.state AS message_state, n.sent_at,
       j.id AS job, j.state AS job_state, j.attempt AS job_attempt,
       j.errors[array_upper(j.errors, 1)] ->> 'error' AS job_last_error
FROM device d
LEFT JOIN LATERAL (SELECT * FROM auth_session s WHERE s.device_kind = d.kind AND s.device_id = d.id
                   ORDER BY s.created_at DESC, s.id DESC LIMIT 1) s ON true
LEFT JOIN LATERAL (SELECT * FROM notification n WHERE n.session_id = s.id ORDER BY n.id DESC LIMIT 1) n ON true
LEFT JOIN LATERAL (SELECT * FROM river_job j WHERE j.kind = 'reauth_device' AND j.args ->> 'device_id' = d.id::text
                   ORDER BY j.id DESC LIMIT 1) j ON true;

-- Jobs that failed at least once and are not done, or gave up, with the last error.
CREATE VIEW reauth_failing_jobs AS
SELECT j.id, j.kind, j.queue, j.state, j.attempt, j.max_attempts, j.created_at, j.scheduled_at,
       j.args ->> 'device_kind' AS device_kind, j.args ->> 'device_id' AS device_id,
       j.errors[array_upper(j.errors, 1)] ->> 'error' AS last_error,
       (j.errors[array_upper(j.errors, 1)] ->> 'at')::timestamptz AS last_error_at
FROM river_job j
WHERE j.state IN ('retryable', 'discarded', 'cancelled') OR (j.state = 'available' AND j.attempt > 0);
