package worker

import (
	"context"
	"time"

	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/store"
)

// Limiter is the rate limit on calls to Podero that every process shares,
// kept in Postgres (see store.ReservePoderoCall). It implements
// podero.Limiter. A waiting caller holds no database connection.
type Limiter struct {
	DB store.DB
	// Rate is calls per second for all processes together; 0 means no
	// limit, though holds (Retry-After) still apply.
	Rate float64
	// Burst is how many calls may go at once after a quiet spell (at least 1).
	Burst int
	// MaxWait is the longest a caller waits for a slot; a longer wait is
	// returned instead, so the job snoozes rather than occupying a worker.
	MaxWait time.Duration
	// Metrics observes waits and deferrals; nil for none.
	Metrics *metrics.Metrics
}

// Wait blocks until the caller may send one request, or returns how long to
// come back after when the wait would exceed MaxWait.
func (l *Limiter) Wait(ctx context.Context) (time.Duration, error) {
	// Never reserve a slot the caller's deadline (the request timeout)
	// would not live to use, keeping half the time left for the request
	// itself: defer instead, so the job snoozes rather than failing an
	// attempt on a timeout.
	maxWait := l.MaxWait
	if dl, ok := ctx.Deadline(); ok {
		maxWait = max(0, min(maxWait, time.Until(dl)/2))
	}
	var wait time.Duration
	var reserved bool
	var err error
	if l.Rate > 0 {
		interval := time.Duration(float64(time.Second) / l.Rate)
		wait, reserved, err = store.ReservePoderoCall(ctx, l.DB, interval, max(l.Burst, 1), maxWait)
	} else {
		// No limit: only a hold counts, and reading it writes nothing.
		wait, err = store.PoderoHoldLeft(ctx, l.DB)
		reserved = wait <= maxWait
	}
	if err != nil {
		return 0, err
	}
	l.Metrics.LimiterWaited(wait, !reserved)
	if !reserved {
		return wait, nil
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return 0, nil
}

// HoldUntil makes every process send nothing to Podero before t, or for
// MaxSnooze at most.
func (l *Limiter) HoldUntil(ctx context.Context, t time.Time) error {
	return store.HoldPoderoCalls(ctx, l.DB, min(time.Until(t), MaxSnooze))
}
