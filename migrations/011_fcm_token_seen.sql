-- When each of a contact's FCM tokens was last registered (named in a
-- PUT /v1/contacts or `reauth contacts set`): token → timestamptz, for
-- the tokens in fcm_tokens. A token older than FCM's staleness window
-- (270 days, store.FCMTokenMaxAge) is not sent to, and the daily
-- reauth_prune job removes it.
ALTER TABLE contact ADD COLUMN fcm_registered_at jsonb NOT NULL DEFAULT '{}';

-- The tokens stored before carry no time: they count as registered now.
UPDATE contact SET fcm_registered_at = (SELECT jsonb_object_agg(t, now()) FROM unnest(fcm_tokens) AS t)
WHERE fcm_tokens <> '{}';
