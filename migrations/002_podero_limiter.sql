-- The one rate limiter every process shares for calls to Podero (GCRA: tat is
-- the theoretical arrival time of the next request), and the time before
-- which nobody may call Podero because it answered with Retry-After.
CREATE TABLE podero_limiter (
    id         int         PRIMARY KEY CHECK (id = 1),
    tat        timestamptz NOT NULL DEFAULT '-infinity',
    hold_until timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO podero_limiter (id) VALUES (1);
