package store

import (
	"context"
	"time"
)

// ReservePoderoCall reserves the next slot of the shared Podero rate limit
// (GCRA: one call every interval, up to burst at once) using the database's
// clock, so every process shares one timeline. It returns how long the
// caller must wait before sending. When that wait would exceed maxWait,
// nothing is reserved and reserved is false: the caller should come back
// after wait.
func ReservePoderoCall(ctx context.Context, db DB, interval time.Duration, burst int, maxWait time.Duration) (wait time.Duration, reserved bool, err error) {
	var waitSecs float64
	err = db.QueryRow(ctx, `
		WITH cur AS (
			SELECT tat, hold_until, clock_timestamp() AS now
			FROM podero_limiter WHERE id = 1 FOR UPDATE
		), slot AS (
			SELECT now,
				greatest(now, tat - make_interval(secs => $1::float8 * ($2::float8 - 1)), hold_until) AS send_at,
				greatest(tat, now, hold_until) + make_interval(secs => $1::float8) AS next_tat
			FROM cur
		), taken AS (
			UPDATE podero_limiter SET tat = slot.next_tat FROM slot
			WHERE id = 1 AND slot.send_at - slot.now <= make_interval(secs => $3::float8)
			RETURNING 1
		)
		SELECT extract(epoch FROM slot.send_at - slot.now)::float8, EXISTS (SELECT FROM taken) FROM slot`,
		interval.Seconds(), float64(burst), maxWait.Seconds()).Scan(&waitSecs, &reserved)
	if err != nil {
		return 0, false, mapErr(err)
	}
	return time.Duration(waitSecs * float64(time.Second)), reserved, nil
}

// HoldPoderoCalls makes every process send nothing to Podero for d (a
// Retry-After), measured on the database's clock.
func HoldPoderoCalls(ctx context.Context, db DB, d time.Duration) error {
	_, err := db.Exec(ctx, `
		UPDATE podero_limiter SET hold_until = greatest(hold_until, clock_timestamp() + make_interval(secs => $1::float8))
		WHERE id = 1`, d.Seconds())
	return mapErr(err)
}

// PoderoHoldLeft is how long calls to Podero are still held (on the
// database's clock), zero if they are not.
func PoderoHoldLeft(ctx context.Context, db DB) (time.Duration, error) {
	var secs float64
	err := db.QueryRow(ctx, `SELECT CASE WHEN hold_until > now THEN extract(epoch FROM hold_until - now) ELSE 0 END::float8
		FROM podero_limiter, clock_timestamp() AS now WHERE id = 1`).Scan(&secs)
	if err != nil {
		return 0, mapErr(err)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// PoderoHold returns until when calls to Podero are held, zero if they are not.
func PoderoHold(ctx context.Context, db DB) (time.Time, error) {
	var until time.Time
	err := db.QueryRow(ctx, `SELECT CASE WHEN hold_until > clock_timestamp() THEN hold_until ELSE 'epoch' END
		FROM podero_limiter WHERE id = 1`).Scan(&until)
	if err != nil {
		return time.Time{}, mapErr(err)
	}
	if until.Unix() == 0 {
		return time.Time{}, nil
	}
	return until, nil
}
