package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth"
)

// Retry defaults: full-jitter exponential backoff from RetryBaseDefault,
// capped at RetryCapDefault; MaxAttemptsDefault (the contract's
// reauth.MaxAttemptsDefault) attempts spread over about two days (the expected delay is half the ceiling: 2^k s for the first
// twelve attempts, then 30 minutes each).
const (
	RetryBaseDefault   = time.Second
	RetryCapDefault    = time.Hour
	MaxAttemptsDefault = reauth.MaxAttemptsDefault
)

// MaxSnooze bounds how long a job waits on one Retry-After or open breaker,
// so an absurd header cannot park a device's request for years.
const MaxSnooze = 15 * time.Minute

// RetryPolicy is exponential backoff with full jitter: the delay before
// retry n is uniform in [0, min(Cap, Base·2^(n-1))).
type RetryPolicy struct {
	Base, Cap time.Duration
	Now       func() time.Time    // default time.Now
	Rand      func(n int64) int64 // uniform in [0, n); default math/rand/v2
}

// NextRetry implements river.ClientRetryPolicy.
func (p *RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return p.now().Add(p.Delay(job.Attempt))
}

// Delay returns the backoff before retrying after attempt (1-based).
func (p *RetryPolicy) Delay(attempt int) time.Duration {
	base, ceiling := p.Base, p.Cap
	if base <= 0 {
		base = RetryBaseDefault
	}
	if ceiling <= 0 {
		ceiling = RetryCapDefault
	}
	// base·2^shift, compared as base ≤ ceiling/2^shift so it cannot overflow.
	d := ceiling
	if shift := max(attempt-1, 0); shift < 63 && base <= ceiling>>shift {
		d = base << shift
	}
	rnd := p.Rand
	if rnd == nil {
		rnd = rand.Int64N
	}
	return time.Duration(rnd(int64(d)))
}

func (p *RetryPolicy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// jitter spreads out jobs that would otherwise all come back at once (after
// a shared Retry-After): d plus up to a fifth more, at least a second.
func jitter(d time.Duration) time.Duration {
	d = max(d, time.Second)
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// shutdownMiddleware returns a job that was cancelled because this process
// is shutting down to the queue at once, as a snooze: no failure recorded and
// no attempt used. Job timeouts (DeadlineExceeded) and operator cancels stay
// what they are.
type shutdownMiddleware struct{ river.MiddlewareDefaults }

func (shutdownMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	err := doInner(ctx)
	if err != nil && errors.Is(ctx.Err(), context.Canceled) && !errors.Is(context.Cause(ctx), rivertype.ErrJobCancelledRemotely) {
		return river.JobSnooze(0)
	}
	return err
}
