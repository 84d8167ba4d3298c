-- What the last device sync saw of a device besides its authentication:
-- its make and model (messages name the device by them), its lifecycle at
-- Podero, its ID at the manufacturer, and its owner's email (a request and
-- contact without one use it before asking Podero for the user list).
-- Null when Podero sent null, or the device was never synced.
ALTER TABLE device
    ADD COLUMN manufacturer       text,
    ADD COLUMN model              text,
    ADD COLUMN lifecycle_state    text,
    -- Podero's lifecycle_error metadata, as sent (at most 2 KiB).
    ADD COLUMN lifecycle_error    jsonb,
    ADD COLUMN external_device_id text,
    ADD COLUMN owner_email        text;
