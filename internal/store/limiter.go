package store

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"time"

	"github.com/reauth/reauth/internal/podero"
)

// This file holds the queries of podero_limiter: the shared rate limit, its
// Retry-After hold, and the budget read from them.

// Reservation asks the shared limiter for one call's slot.
type Reservation struct {
	// Interval is the time between calls at the full rate (1/rate), Burst
	// how many may go at once after a quiet spell.
	Interval time.Duration
	Burst    int
	// MaxWait is the furthest ahead a slot may be reserved; a slot further
	// away is not reserved.
	MaxWait time.Duration
	// Sync: the call is the device sync's. While requests wait (a
	// request's slot was not free at once within the last BusyFor), sync
	// calls also keep to SyncInterval, their share of the rate: a sync
	// call whose share is not due yet reserves nothing (it would hold up
	// the requests behind it) and is told when it is.
	Sync         bool
	SyncInterval time.Duration
	// Purpose is what the call is for, counted in the rates
	// (PoderoCallRates); "" counts as podero.PurposeOther.
	Purpose string
}

// RateWindow is the time constant of the per-purpose call rates: they
// average about the last minute.
const RateWindow = time.Minute

// BusyFor is how long a request that waited for its slot counts as waiting
// for the sync's share.
const BusyFor = 2 * time.Second

// ReservePoderoCall reserves the next free slot on the shared rate limit
// (GCRA: one call every interval, up to burst at once) using the database's
// clock, so every process shares one timeline, and never before a hold
// (Retry-After). It returns how long the caller must wait before sending.
// When that wait would exceed r.MaxWait, nothing is reserved and reserved
// is false: the caller should come back after wait at the earliest.
func ReservePoderoCall(ctx context.Context, db DB, r Reservation) (wait time.Duration, reserved bool, err error) {
	var waitSecs float64
	err = db.QueryRow(ctx, `
		WITH cur AS (
			SELECT tat, hold_until, sync_tat, busy_until, clock_timestamp() AS now
			FROM podero_limiter WHERE id = 1 FOR UPDATE
		), slot AS (
			SELECT now, tat, sync_tat,
				greatest(now, tat - make_interval(secs => $1::float8 * ($2::float8 - 1)), hold_until) AS send_at,
				CASE WHEN $4 AND busy_until > now THEN sync_tat ELSE '-infinity' END AS lane_at
			FROM cur
		), taken AS (
			UPDATE podero_limiter SET
				tat = greatest(slot.tat, slot.now, slot.send_at) + make_interval(secs => $1::float8),
				sync_tat = CASE WHEN $4 THEN greatest(slot.lane_at, slot.send_at) + make_interval(secs => $5::float8) ELSE slot.sync_tat END,
				busy_until = CASE WHEN NOT $4 AND slot.send_at > slot.now THEN slot.now + make_interval(secs => $6::float8) ELSE podero_limiter.busy_until END,
				rates = (SELECT coalesce(jsonb_object_agg(e.key, round((e.value::float8 * exp(-greatest(extract(epoch FROM slot.now - podero_limiter.rates_at), 0) / $8::float8)
						+ CASE WHEN e.key = $7 THEN 1 / $8::float8 ELSE 0 END)::numeric, 6)), '{}')
					FROM jsonb_each_text(jsonb_build_object($7::text, 0) || podero_limiter.rates) e),
				rates_at = slot.now
			FROM slot
			WHERE id = 1 AND slot.send_at - slot.now <= make_interval(secs => $3::float8) AND slot.lane_at <= slot.now
			RETURNING 1
		)
		SELECT extract(epoch FROM greatest(slot.send_at, slot.lane_at) - slot.now)::float8, EXISTS (SELECT FROM taken) FROM slot`,
		r.Interval.Seconds(), float64(max(r.Burst, 1)), r.MaxWait.Seconds(), r.Sync, r.SyncInterval.Seconds(), BusyFor.Seconds(),
		cmp.Or(r.Purpose, podero.PurposeOther), RateWindow.Seconds()).Scan(&waitSecs, &reserved)
	if err != nil {
		return 0, false, mapErr(err)
	}
	return time.Duration(waitSecs * float64(time.Second)), reserved, nil
}

// PoderoCallRates returns the calls a second reserved on the shared rate
// limit over about the last RateWindow, by purpose, as of now. With no rate
// limit nothing is reserved and nothing counted.
func PoderoCallRates(ctx context.Context, db DB) (map[string]float64, error) {
	rows, err := db.Query(ctx, `
		SELECT e.key, e.value::float8 * exp(-greatest(extract(epoch FROM clock_timestamp() - l.rates_at), 0) / $1::float8)
		FROM podero_limiter l, jsonb_each_text(l.rates) e WHERE l.id = 1`, RateWindow.Seconds())
	if err != nil {
		return nil, mapErr(err)
	}
	rates := map[string]float64{}
	for rows.Next() {
		var k string
		var v float64
		if err := rows.Scan(&k, &v); err != nil {
			return nil, mapErr(err)
		}
		rates[k] = v
	}
	return rates, mapErr(rows.Err())
}

// HoldPoderoCalls makes every process send nothing to Podero for d (a
// Retry-After), measured on the database's clock.
func HoldPoderoCalls(ctx context.Context, db DB, d time.Duration) error {
	_, err := db.Exec(ctx, `
		UPDATE podero_limiter SET hold_until = greatest(hold_until, clock_timestamp() + make_interval(secs => $1::float8))
		WHERE id = 1`, d.Seconds())
	return mapErr(err)
}

// holdSecondsSQL is a scalar subquery: PoderoHoldLeft in seconds.
const holdSecondsSQL = `(SELECT CASE WHEN hold_until > now THEN extract(epoch FROM hold_until - now) ELSE 0 END::float8
		FROM podero_limiter, clock_timestamp() AS now WHERE id = 1)`

// PoderoHoldLeft is how long calls to Podero are still held (on the
// database's clock), zero if they are not.
func PoderoHoldLeft(ctx context.Context, db DB) (time.Duration, error) {
	var secs float64
	err := db.QueryRow(ctx, `SELECT `+holdSecondsSQL).Scan(&secs)
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

// Budget is how Podero's rate limit is being spent, for every process
// together: what operators see in `reauth stats`, /ops and /metrics.
type Budget struct {
	// Rates are the calls a second by purpose over about the last minute
	// (see PoderoCallRates); purposes without calls are absent.
	Rates map[string]float64 `json:"calls_per_second"`
	// Waiting is the reauthentication requests (reauth_device jobs) not
	// yet worked.
	Waiting int64 `json:"requests_waiting"`
}

// requestPurposes are the purposes that work down the requests.
var requestPurposes = []string{podero.PurposeRequest, podero.PurposeSweep, podero.PurposeRenewal}

// RequestRate is the calls a second the requests get.
func (b Budget) RequestRate() float64 {
	var r float64
	for _, p := range requestPurposes {
		r += b.Rates[p]
	}
	return r
}

// DrainTime is how long the waiting requests take at the rate they get: 0
// with none waiting, and ok false when they wait but get no calls at all.
func (b Budget) DrainTime() (d time.Duration, ok bool) {
	if b.Waiting == 0 {
		return 0, true
	}
	r := b.RequestRate()
	if r < 1e-3 {
		return 0, false
	}
	return time.Duration(math.Min(float64(b.Waiting)/r, float64(100*24*time.Hour/time.Second)) * float64(time.Second)), true
}

// DrainText says DrainTime for people: "-" with none waiting.
func (b Budget) DrainText() string {
	d, ok := b.DrainTime()
	switch {
	case !ok:
		return "never at this rate: the requests get no calls"
	case b.Waiting == 0:
		return "-"
	}
	return fmt.Sprintf("about %s at %.2f calls/s", d.Round(time.Second), b.RequestRate())
}

// GetBudget reads the budget.
func GetBudget(ctx context.Context, db DB) (Budget, error) {
	rates, err := PoderoCallRates(ctx, db)
	if err != nil {
		return Budget{}, err
	}
	b := Budget{Rates: rates}
	b.Waiting, err = requestsWaiting(ctx, db)
	return b, err
}
