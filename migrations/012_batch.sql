-- One message per user per step (BATCH_WINDOW): which message carries each
-- session's step. A session's step belongs to exactly one message, named by
-- its idempotency key; a grouped message has a row for each session it
-- covers, written once, when the job that sends it first claims them, so a
-- retried or rescued job sends the same message again, never another, and
-- no session's step is in two messages.
CREATE TABLE notification_claim (
    session_id       bigint      NOT NULL REFERENCES auth_session (id),
    step             int         NOT NULL CHECK (step >= 0),
    idempotency_key  text        NOT NULL,
    -- The job that claimed it (a reauth_device job for a first message
    -- sent at once, else a reauth_notify job).
    job_id           bigint      NOT NULL,
    -- When the message went out (or was skipped, the link being opened
    -- already): the session's next reminder may follow. NULL: not yet.
    done_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, step)
);
CREATE INDEX notification_claim_key ON notification_claim (idempotency_key);
CREATE INDEX notification_claim_job ON notification_claim (job_id);

-- Find a user's pending grouped reauth_notify job without scanning river_job.
CREATE INDEX river_job_reauth_notify_user ON river_job ((args ->> 'user_id'))
    WHERE kind = 'reauth_notify' AND state IN ('scheduled', 'available', 'retryable');
