-- How a device's user is reached, per (org, user): upserted by
-- PUT /v1/contacts/{org_id}/{user_id} and `reauth contacts set`.
CREATE TABLE contact (
    org_id      uuid        NOT NULL,
    user_id     uuid        NOT NULL,
    email       text,
    locale      text,
    -- FCM registration tokens; one FCM reports unregistered is removed.
    fcm_tokens  text[]      NOT NULL DEFAULT '{}',
    -- Channels in order of preference; the next is used when one fails permanently.
    channels    text[]      NOT NULL DEFAULT '{email}' CHECK (channels <@ '{email,push,webhook}'),
    opted_out   text[]      NOT NULL DEFAULT '{}' CHECK (opted_out <@ '{email,push,webhook}'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);

-- Addresses an SMTP server refused permanently (5xx to RCPT TO): no email
-- goes to them again until an operator deletes the row.
CREATE TABLE email_suppression (
    address     text        PRIMARY KEY, -- lower case
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A step's message may go out on several channels in turn (the next after a
-- permanent failure), all under the step's one idempotency key.
ALTER TABLE notification DROP CONSTRAINT notification_idempotency_key_key;

-- Every click on a session's link, not only the first; and the user's
-- cancel, kept when the session is completed after it.
ALTER TABLE auth_session
    ADD COLUMN clicks         int NOT NULL DEFAULT 0,
    ADD COLUMN last_opened_at timestamptz,
    ADD COLUMN cancelled_at   timestamptz;
UPDATE auth_session SET cancelled_at = finished_at WHERE state = 'cancelled';
UPDATE auth_session SET clicks = 1, last_opened_at = opened_at WHERE opened_at IS NOT NULL;

-- A device Podero no longer knows closes its open session (device_gone),
-- whichever path marks it gone (a 404, the sync): its reminders find the
-- session closed and send nothing, and its link says it is no longer valid.
ALTER TABLE auth_session DROP CONSTRAINT auth_session_state_check;
ALTER TABLE auth_session ADD CONSTRAINT auth_session_state_check
    CHECK (state IN ('open', 'completed', 'cancelled', 'superseded', 'completed_elsewhere', 'device_gone'));
CREATE FUNCTION reauth_close_gone_device_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth_session SET state = 'device_gone', finished_at = now()
    WHERE device_kind = NEW.kind AND device_id = NEW.id AND state = 'open';
    RETURN NULL;
END
$$;
CREATE TRIGGER device_gone_closes_sessions AFTER UPDATE OF gone_at ON device
    FOR EACH ROW WHEN (OLD.gone_at IS NULL AND NEW.gone_at IS NOT NULL)
    EXECUTE FUNCTION reauth_close_gone_device_sessions();

-- Find a session's pending reminders without scanning river_job.
CREATE INDEX river_job_reauth_notify ON river_job ((args ->> 'session_id'))
    WHERE kind = 'reauth_notify' AND state IN ('scheduled', 'available', 'retryable');
