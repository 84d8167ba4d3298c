-- A reminder opt-out (RFC 8058 one-click unsubscribe, POST /u/{token}):
-- when the user stopped the session's reminders. The session stays open (its
-- link still works), but no reminder is sent or scheduled after this; the
-- first message was sent already. NULL: reminders go on.
ALTER TABLE auth_session ADD COLUMN reminders_stopped_at timestamptz;
