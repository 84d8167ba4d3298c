package worker

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/store"
)

// SyncRateShareDefault is the share of the rate the device sync may take
// while reauthentication requests wait.
const SyncRateShareDefault = 0.5

// Limiter is the rate limit on calls to Podero that every process shares,
// kept in Postgres (see store.ReservePoderoCall). It implements
// podero.Limiter. A waiting caller holds no database connection.
//
// It serves users before the fleet (podero.ClassOf the call's context): an
// interactive call reserves the next free slot, up to MaxWait ahead; a bulk
// (sweep) or sync call reserves one only when it is at most LowHorizon
// ahead, and otherwise waits in the process for the line to shorten; one
// still in line after MaxWait is deferred by the wait it can expect (at
// least MaxWait; lineDeferral), not told to come back in a second. So the
// line of reserved slots in front of a user's request stays short whatever
// the backlog, and a backlog waits in river_job (or in a worker) without
// snoozing and coming back: no churn of job rows. The sync takes at most
// SyncShare of the rate while requests wait.
//
// A reserved slot is checked against a hold (Retry-After) once more right
// before the call goes: a hold set meanwhile by any process holds it too.
type Limiter struct {
	DB store.DB
	// Rate is calls per second for all processes together; 0 means no
	// limit, though holds (Retry-After) still apply.
	Rate float64
	// Burst is how many calls may go at once after a quiet spell (at least 1).
	Burst int
	// MaxWait is the longest a caller waits in all (for its turn and its
	// slot), and never more than half the time its context has left; a
	// longer wait is returned instead, so the job snoozes.
	MaxWait time.Duration
	// SyncShare is the share of Rate the sync may take while requests
	// wait; 0 means SyncRateShareDefault.
	SyncShare float64
	// Metrics observes waits and deferrals; nil for none.
	Metrics *metrics.Metrics

	// gates line up the process's bulk and sync callers, first come first
	// served: only the head of each line asks the database for a slot.
	gatesOnce sync.Once
	gates     [podero.ClassSync + 1]chan struct{}
	// inLine counts each class's callers waiting for its gate.
	inLine [podero.ClassSync + 1]atomic.Int64
}

// How a reserved slot is kept: the hold is looked at holdCheckLead before
// it, and a call more than lateTolerance behind it takes a new one (at most
// maxLate times), so late calls never bunch up with the ones after them.
const (
	holdCheckLead = 20 * time.Millisecond
	lateTolerance = 50 * time.Millisecond
	maxLate       = 3
)

// LowHorizon is how far ahead a bulk or sync call may reserve its slot at
// rate: one second's worth of calls, and at least two.
func LowHorizon(rate float64) time.Duration {
	return max(time.Second, time.Duration(2*float64(time.Second)/rate))
}

// Wait blocks until the caller may send one request, or returns how long to
// come back after when the wait would exceed MaxWait.
func (l *Limiter) Wait(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	budget := l.MaxWait
	if dl, ok := ctx.Deadline(); ok {
		budget = max(0, min(budget, time.Until(dl)/2))
	}
	class := podero.ClassOf(ctx)
	late := 0
	release := func() {}
	if class != podero.ClassInteractive && l.Rate > 0 {
		// Wait for this class's turn in the process; the interactive ones
		// never wait in line.
		gate := l.gate(class)
		ahead := l.inLine[class].Add(1) - 1
		t := time.NewTimer(budget)
		select {
		case gate <- struct{}{}:
			l.inLine[class].Add(-1)
			t.Stop()
			var once sync.Once
			release = func() { once.Do(func() { <-gate }) }
			defer release()
		case <-t.C:
			left := l.inLine[class].Add(-1)
			l.Metrics.LimiterWaited(budget, true)
			return l.lineDeferral(min(ahead, left)), nil
		case <-ctx.Done():
			l.inLine[class].Add(-1)
			t.Stop()
			return 0, ctx.Err()
		}
	}
	for {
		left := budget - time.Since(start)
		wait, reserved, err := l.reserve(ctx, class, left)
		if err != nil {
			return 0, err
		}
		if !reserved {
			// Not this call's turn yet: wait in the process while that fits
			// the budget (nothing written meanwhile), else defer.
			pause := wait
			if class != podero.ClassInteractive && l.Rate > 0 {
				// Come back when the line should have room, give or take.
				pause = max(wait-LowHorizon(l.Rate), 0) + rand.N(time.Duration(float64(time.Second)/l.Rate))
			}
			if pause >= left {
				l.Metrics.LimiterWaited(time.Since(start)+wait, true)
				return wait, nil
			}
			if !sleep(ctx, pause) {
				return 0, ctx.Err()
			}
			continue
		}
		release() // the next in line may ask while this one waits for its slot
		if l.Rate <= 0 && wait <= 0 {
			// No limit, no hold: the reservation was a look at the hold,
			// just now.
			l.Metrics.LimiterWaited(time.Since(start), false)
			return 0, nil
		}
		slot := time.Now().Add(wait)
		// A hold set after the reservation holds this call too: look just
		// before the slot, so the look does not make the call late.
		if !sleep(ctx, wait-holdCheckLead) {
			return 0, ctx.Err()
		}
		held, err := l.holdLeft(ctx)
		if err != nil {
			return 0, err
		}
		if held <= 0 {
			if !sleep(ctx, time.Until(slot)) {
				return 0, ctx.Err()
			}
			// A call far behind its slot (a slow look, a busy machine)
			// would go out together with the next ones: it takes a new
			// slot instead, a few times at most.
			if time.Since(slot) > lateTolerance && late < maxLate {
				late++
				continue
			}
			l.Metrics.LimiterWaited(time.Since(start), false)
			return 0, nil
		}
		if held >= budget-time.Since(start) {
			l.Metrics.LimiterWaited(time.Since(start)+held, true)
			return held, nil
		}
		if !sleep(ctx, held) {
			return 0, ctx.Err()
		}
	}
}

// holdLeft is how long calls to Podero are still held: by the look at
// the hold the caller's context carries (podero.WithHoldLooked) when that
// is at most holdCheckLead old, as a look before a reserved slot may be;
// else by a look now.
func (l *Limiter) holdLeft(ctx context.Context) (time.Duration, error) {
	if at, left, ok := podero.HoldLooked(ctx); ok {
		if age := time.Since(at); age >= 0 && age <= holdCheckLead {
			return max(left-age, 0), nil
		}
	}
	return store.PoderoHoldLeft(ctx, l.DB)
}

// lineDeferral is how long a caller that timed out in its class's line,
// with ahead callers still waiting in front of it, comes back after: the
// wait it can expect, at least MaxWait (the budget it was given) or the
// line ahead (and the caller at the gate) at the whole rate, whichever is
// longer. Never less: with many processes sharing the rate, the tail of
// each one's line would otherwise snooze and come back every second,
// rewriting its job rows each time (churn).
func (l *Limiter) lineDeferral(ahead int64) time.Duration {
	line := time.Duration(float64(max(ahead, 0)+1) * float64(time.Second) / l.Rate)
	return max(l.MaxWait, line)
}

// gate is the line of class's callers in this process.
func (l *Limiter) gate(class podero.Class) chan struct{} {
	l.gatesOnce.Do(func() {
		for i := range l.gates {
			l.gates[i] = make(chan struct{}, 1)
		}
	})
	return l.gates[class]
}

// reserve asks for a slot for a call of class within maxWait.
func (l *Limiter) reserve(ctx context.Context, class podero.Class, maxWait time.Duration) (time.Duration, bool, error) {
	if l.Rate <= 0 {
		// No limit: only a hold counts, and reading it writes nothing.
		wait, err := l.holdLeft(ctx)
		return wait, err == nil && wait <= maxWait, err
	}
	interval := time.Duration(float64(time.Second) / l.Rate)
	r := store.Reservation{Interval: interval, Burst: max(l.Burst, 1), MaxWait: maxWait, Purpose: podero.PurposeOf(ctx)}
	if class != podero.ClassInteractive {
		r.MaxWait = min(maxWait, LowHorizon(l.Rate))
	}
	if class == podero.ClassSync {
		share := l.SyncShare
		if share <= 0 || share > 1 {
			share = SyncRateShareDefault
		}
		r.Sync, r.SyncInterval = true, time.Duration(float64(interval)/share)
	}
	return store.ReservePoderoCall(ctx, l.DB, r)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// HoldUntil makes every process send nothing to Podero before t, or for
// MaxSnooze at most.
func (l *Limiter) HoldUntil(ctx context.Context, t time.Time) error {
	return store.HoldPoderoCalls(ctx, l.DB, min(time.Until(t), MaxSnooze))
}
