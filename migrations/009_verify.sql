-- Verified completion: a login through the link is checked at Podero
-- (reauth_verify, VERIFY_AFTER after the callback, again until
-- VERIFY_TIMEOUT). verified_at: when Podero showed the device
-- authenticated again; a completion still lapsed after VERIFY_TIMEOUT
-- becomes 'unverified' (the user gets a fresh link).
ALTER TABLE auth_session DROP CONSTRAINT auth_session_state_check;
ALTER TABLE auth_session ADD CONSTRAINT auth_session_state_check
    CHECK (state IN ('open', 'completed', 'cancelled', 'superseded', 'completed_elsewhere', 'device_gone', 'unverified'));
ALTER TABLE auth_session
    ADD COLUMN verified_at timestamptz,
    -- The reason of the request that made the session ("sweep", "api",
    -- "verification_failed", ...); NULL: none given, or made before 009.
    ADD COLUMN reason      text;
