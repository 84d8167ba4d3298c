-- Devices the service has been asked about. A device is identified by its
-- kind and Podero's id for it.
CREATE TABLE device (
    kind        text        NOT NULL CHECK (kind IN ('inverter', 'electric_vehicle', 'wallbox')),
    id          uuid        NOT NULL,
    org_id      uuid        NOT NULL,
    user_id     uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- gone_at is set when Podero answered 404 for the device.
    gone_at     timestamptz,
    PRIMARY KEY (kind, id)
);
CREATE INDEX device_org_user ON device (org_id, user_id);

-- Authentication sessions Podero returned. At most one per device is open;
-- a newer one supersedes it in the same transaction that stores it.
CREATE TABLE auth_session (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_kind        text        NOT NULL,
    device_id          uuid        NOT NULL,
    podero_session_id  uuid        NOT NULL,
    authentication_url text        NOT NULL CHECK (authentication_url <> ''),
    state              text        NOT NULL DEFAULT 'open'
                       CHECK (state IN ('open', 'completed', 'cancelled', 'superseded')),
    -- The link token is HMAC(LINK_SECRET, link_nonce); only its SHA-256 is
    -- stored, for lookup.
    link_nonce         bytea       NOT NULL,
    link_hash          bytea       NOT NULL UNIQUE,
    email              text,
    locale             text        NOT NULL DEFAULT 'en',
    -- The partner's pages the user lands on after the login; the service's
    -- configured pages when null.
    success_url        text,
    cancel_url         text,
    -- The reauth_device job that created the session.
    job_id             bigint      UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    opened_at          timestamptz,
    -- finished_at is when the session left 'open'.
    finished_at        timestamptz,
    FOREIGN KEY (device_kind, device_id) REFERENCES device (kind, id),
    CHECK ((state = 'open') = (finished_at IS NULL))
);
CREATE UNIQUE INDEX auth_session_one_open ON auth_session (device_kind, device_id) WHERE state = 'open';
CREATE INDEX auth_session_device ON auth_session (device_kind, device_id, created_at DESC);

-- One row per message per (session, step, channel), written before the
-- message is sent and marked after, so a retry resends the same message under
-- the same idempotency key and never a second, different one.
CREATE TABLE notification (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id       bigint      NOT NULL REFERENCES auth_session (id),
    step             int         NOT NULL CHECK (step >= 0),
    channel          text        NOT NULL CHECK (channel IN ('email', 'push', 'webhook')),
    recipient        text        NOT NULL,
    idempotency_key  text        NOT NULL UNIQUE,
    state            text        NOT NULL DEFAULT 'sending' CHECK (state IN ('sending', 'sent', 'failed')),
    attempts         int         NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    UNIQUE (session_id, step, channel)
);

-- Find a device's reauth_device jobs without scanning river_job.
CREATE INDEX river_job_reauth_device ON river_job ((args ->> 'device_id'), id DESC) WHERE kind = 'reauth_device';
