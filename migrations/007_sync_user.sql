-- The device sync's users, as each organization's users list last showed
-- them, and when each one's devices were last listed. The list is upserted
-- as it streams in, writing only rows that changed; a frequent dispatcher
-- queues the users due (synced_at older than SYNC_INTERVAL), oldest first,
-- as many as the sync's share of the rate serves.
CREATE TABLE sync_user (
    org_id                uuid        NOT NULL,
    user_id               uuid        NOT NULL,
    email                 text,
    external_user_id      text,
    -- Devices of each kind by the users list; NULL: unknown (list the kind).
    num_inverters         integer,
    num_electric_vehicles integer,
    num_wallboxes         integer,
    -- The device-list calls one sync of the user takes: the kinds it has
    -- or may have. 0: nothing to list, never queued.
    sync_kinds            smallint    GENERATED ALWAYS AS (
        (coalesce(num_inverters, 1) > 0)::int + (coalesce(num_electric_vehicles, 1) > 0)::int
        + (coalesce(num_wallboxes, 1) > 0)::int
    ) STORED,
    created_at            timestamptz NOT NULL DEFAULT now(), -- first listed
    changed_at            timestamptz NOT NULL DEFAULT now(), -- the listing that last changed the row
    synced_at             timestamptz,                        -- devices last listed; NULL: never
    -- The reauth_sync_user job queued for the user; NULL: none. A job that
    -- finished without clearing it (cancelled, discarded) no longer counts.
    queued_job            bigint,
    -- Not in the organization's latest complete users list (left, or
    -- deleted at Podero); cleared when listed again.
    gone_at               timestamptz,
    PRIMARY KEY (org_id, user_id)
);
-- The dispatcher's walk: users due, oldest sync first (never synced first
-- of all).
CREATE INDEX sync_user_due ON sync_user (synced_at NULLS FIRST, created_at, user_id)
    WHERE gone_at IS NULL AND queued_job IS NULL AND sync_kinds > 0;
CREATE INDEX sync_user_queued ON sync_user (queued_job) WHERE queued_job IS NOT NULL;

-- Each organization's latest complete users list.
CREATE TABLE sync_org (
    org_id    uuid        PRIMARY KEY,
    listed_at timestamptz NOT NULL, -- when the listing began
    users     integer     NOT NULL, -- users it listed (not deleted)
    took      interval    NOT NULL
);
