-- Quiet hours (SEND_WINDOW) are reckoned in the user's zone: the contact's
-- IANA timezone (PUT /v1/contacts), else one derived from the country
-- Podero's users list gives (kept by the sync with the rest of the user),
-- else DEFAULT_TIMEZONE. Both are as set or sent; NULL: none.
ALTER TABLE contact ADD COLUMN timezone text;
ALTER TABLE sync_user ADD COLUMN country text;
