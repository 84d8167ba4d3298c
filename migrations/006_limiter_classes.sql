-- The limiter serves users before the fleet: sync_tat is the sync's own
-- GCRA timeline (a share of the rate) that applies while reauthentication
-- requests wait, which busy_until tells: a request that had to wait for its
-- slot sets it a little into the future.
ALTER TABLE podero_limiter
    ADD COLUMN sync_tat   timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN busy_until timestamptz NOT NULL DEFAULT '-infinity';

-- What the budget is spent on: an exponentially weighted rate of reserved
-- calls per purpose (calls a second over about the last minute), kept up to
-- date as of rates_at by the reservations themselves, at no extra write.
ALTER TABLE podero_limiter
    ADD COLUMN rates    jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN rates_at timestamptz NOT NULL DEFAULT now();
