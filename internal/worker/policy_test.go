package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/testdb"
)

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	highest := func(n int64) int64 { return n - 1 } // the top of the jitter range
	p := &RetryPolicy{Base: time.Second, Cap: time.Hour, Now: func() time.Time { return now }, Rand: highest}

	for _, tt := range []struct {
		attempt int
		ceiling time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {12, 2048 * time.Second},
		{13, time.Hour}, {100, time.Hour}, {10000, time.Hour},
	} {
		require.Equal(t, tt.ceiling-1, p.Delay(tt.attempt), "attempt %d", tt.attempt)
	}
	require.Equal(t, now.Add(4*time.Second), p.NextRetry(&rivertype.JobRow{Attempt: 3}).Add(1))

	// Full jitter: the lowest draw retries at once.
	p.Rand = func(int64) int64 { return 0 }
	require.Zero(t, p.Delay(50))

	// With the real source every delay is within [0, ceiling).
	p.Rand = nil
	for attempt := 1; attempt < 30; attempt++ {
		d := p.Delay(attempt)
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.Less(t, d, time.Hour)
	}

	// MaxAttemptsDefault spreads retries over about two days (expected
	// delay is half the ceiling).
	var expected time.Duration
	p.Rand = func(n int64) int64 { return n / 2 }
	for attempt := 1; attempt < MaxAttemptsDefault; attempt++ {
		expected += p.Delay(attempt)
	}
	require.InDelta(t, 48, expected.Hours(), 6)
}

func TestJitter(t *testing.T) {
	t.Parallel()
	for range 100 {
		d := jitter(10 * time.Second)
		require.GreaterOrEqual(t, d, 10*time.Second)
		require.LessOrEqual(t, d, 12*time.Second)
	}
	require.GreaterOrEqual(t, jitter(0), time.Second, "never an immediate stampede")
}

// TestPoderoErrorPolicy: what each kind of Podero failure does to the job.
func TestPoderoErrorPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	w := &DeviceWorker{cfg: Config{Pool: pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	args := reauth.DeviceArgs{OrgID: "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", UserID: "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
		DeviceKind: reauth.Inverter, DeviceID: "a2314723-06cc-4c2e-8819-118905579c7a"}

	isCancel := func(err error) bool { var c *river.JobCancelError; return errors.As(err, &c) }
	snooze := func(err error) (time.Duration, bool) {
		var s *rivertype.JobSnoozeError
		if errors.As(err, &s) {
			return s.Duration, true
		}
		return 0, false
	}

	for _, tt := range []struct {
		name       string
		err        *podero.Error
		cancel     bool
		snoozeMin  time.Duration // 0: not snoozed
		snoozeMax  time.Duration
		deviceGone bool
	}{
		{name: "NotFoundOnAuthSession", err: &podero.Error{Kind: podero.KindNotFound, Op: podero.OpAuthSession, Status: 404}, cancel: true, deviceGone: true},
		{name: "NotFoundOnUserList", err: &podero.Error{Kind: podero.KindNotFound, Op: podero.OpListUsers, Status: 404}, cancel: true},
		{name: "Invalid", err: &podero.Error{Kind: podero.KindInvalid, Op: podero.OpAuthSession, Status: 422}, cancel: true},
		{name: "RateLimited", err: &podero.Error{Kind: podero.KindRateLimited, Status: 429, RetryAfter: 30 * time.Second}, snoozeMin: 30 * time.Second, snoozeMax: 36 * time.Second},
		{name: "RateLimitedAbsurdRetryAfter", err: &podero.Error{Kind: podero.KindRateLimited, Status: 429, RetryAfter: 1000 * time.Hour}, snoozeMin: MaxSnooze, snoozeMax: MaxSnooze * 6 / 5},
		{name: "CircuitOpen", err: &podero.Error{Kind: podero.KindCircuitOpen, RetryAfter: 5 * time.Second}, snoozeMin: 5 * time.Second, snoozeMax: 6 * time.Second},
		{name: "Retryable", err: &podero.Error{Kind: podero.KindRetryable, Status: 503}},
		{name: "Unauthorized", err: &podero.Error{Kind: podero.KindUnauthorized, Status: 401}},
		{name: "Malformed", err: &podero.Error{Kind: podero.KindMalformed, Status: 200}},
		// Not about the device: retried with backoff, never cancelled.
		{name: "TokenEndpointNotFound", err: &podero.Error{Kind: podero.KindUnauthorized, Op: podero.OpToken, Status: 404}},
		{name: "TokenEndpointBadRequestWithoutCode", err: &podero.Error{Kind: podero.KindUnauthorized, Op: podero.OpToken, Status: 400}},
		{name: "RedirectFromAuthSession", err: &podero.Error{Kind: podero.KindUnexpected, Op: podero.OpAuthSession, Status: 302}},
		{name: "UndocumentedClientError", err: &podero.Error{Kind: podero.KindUnexpected, Op: podero.OpAuthSession, Status: 409}},
		// Throttling without a usable hint waits the default hold.
		{name: "RateLimitedNoHint", err: &podero.Error{Kind: podero.KindRateLimited, Status: 503, RetryAfter: podero.RetryAfterDefault, NoHint: true},
			snoozeMin: podero.RetryAfterDefault, snoozeMax: podero.RetryAfterDefault * 6 / 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := args
			a.DeviceID = reauthTestUUID(tt.name)
			got := w.poderoError(ctx, 1, a, tt.err)
			require.Equal(t, tt.cancel, isCancel(got))
			d, snoozed := snooze(got)
			require.Equal(t, tt.snoozeMin > 0, snoozed)
			if snoozed {
				require.GreaterOrEqual(t, d, tt.snoozeMin)
				require.LessOrEqual(t, d, tt.snoozeMax)
			}
			if !tt.cancel && !snoozed {
				require.ErrorIs(t, got, tt.err, "retried with backoff")
			}
			var gone int
			require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM device WHERE id = $1 AND gone_at IS NOT NULL", a.DeviceID).Scan(&gone))
			require.Equal(t, tt.deviceGone, gone == 1)
		})
	}
}

func reauthTestUUID(name string) string {
	b := []byte("00000000-0000-4000-8000-000000000000")
	for i, c := range []byte(name) {
		pos := len(b) - 1 - i%12
		b[pos] = "0123456789abcdef"[(int(b[pos])+int(c))%16]
	}
	return string(b)
}

func TestShutdownMiddleware(t *testing.T) {
	t.Parallel()
	m := &shutdownMiddleware{}
	failing := func(ctx context.Context) error { return ctx.Err() }

	// Cancelled because the client is stopping: back to the queue as a snooze.
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("stop"))
	var s *rivertype.JobSnoozeError
	require.ErrorAs(t, m.Work(ctx, &rivertype.JobRow{}, failing), &s)
	require.Zero(t, s.Duration)

	// Cancelled by an operator: stays a cancellation.
	ctx, cancel = context.WithCancelCause(context.Background())
	cancel(rivertype.ErrJobCancelledRemotely)
	require.ErrorIs(t, m.Work(ctx, &rivertype.JobRow{}, failing), context.Canceled)

	// Timed out: stays a failure, retried with backoff.
	ctx, cancelT := context.WithTimeout(context.Background(), 0)
	defer cancelT()
	require.ErrorIs(t, m.Work(ctx, &rivertype.JobRow{}, failing), context.DeadlineExceeded)

	// Finished: untouched.
	require.NoError(t, m.Work(context.Background(), &rivertype.JobRow{}, func(context.Context) error { return nil }))
}

// TestLimiterDefersPastDeadline: a slot further away than half the
// caller's remaining time is not reserved: the caller is told to come back
// (the job snoozes) instead of timing out while waiting and losing an
// attempt. Without a deadline, MaxWait alone decides.
func TestLimiterDefersPastDeadline(t *testing.T) {
	t.Parallel()
	l := &Limiter{DB: testdb.New(t), Rate: 1, Burst: 1, MaxWait: 10 * time.Second}
	ctx := context.Background()
	wait, err := l.Wait(ctx) // the burst: at once
	require.NoError(t, err)
	require.Zero(t, wait)

	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	deferFor, err := l.Wait(short) // the next slot is ~1 s away: more than half of 1 s
	require.NoError(t, err)
	require.Greater(t, deferFor, 500*time.Millisecond)
	require.Less(t, time.Since(start), 300*time.Millisecond, "it did not wait")

	deferFor, err = l.Wait(ctx) // no deadline: waits for the slot
	require.NoError(t, err)
	require.Zero(t, deferFor)
}

// TestLimiterCountsAFreshHoldLook: a look at the hold the caller's context
// carries counts while it is at most holdCheckLead old (no look of its
// own), a hold it found is waited for, and an older look is not trusted:
// the hold set meanwhile holds the call.
func TestLimiterCountsAFreshHoldLook(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	l := &Limiter{DB: pool, MaxWait: 10 * time.Second}
	require.NoError(t, l.HoldUntil(ctx, time.Now().Add(300*time.Millisecond)))

	// Fresh and not held: it goes at once, though the database holds.
	wait, err := l.Wait(podero.WithHoldLooked(ctx, time.Now(), 0))
	require.NoError(t, err)
	require.Zero(t, wait)

	// Stale: the database's hold counts.
	start := time.Now()
	wait, err = l.Wait(podero.WithHoldLooked(ctx, time.Now().Add(-time.Second), 0))
	require.NoError(t, err)
	require.Zero(t, wait)
	require.Greater(t, time.Since(start), 200*time.Millisecond, "it waited for the hold")

	// Fresh and held: it waits for what the look found.
	start = time.Now()
	wait, err = l.Wait(podero.WithHoldLooked(ctx, time.Now(), 200*time.Millisecond))
	require.NoError(t, err)
	require.Zero(t, wait)
	require.Greater(t, time.Since(start), 150*time.Millisecond, "it waited for the hold it was told of")
}

// TestLimiterLineTimeoutDefersByTheWait: a bulk or sync caller that does not
// get to the head of its process's line within its budget (MaxWait) comes
// back after at least that budget, or after the line ahead of it at the
// rate when longer, never after about a second (LowHorizon): with many
// replicas the tail of each line would snooze every second, churning job
// rows.
func TestLimiterLineTimeoutDefersByTheWait(t *testing.T) {
	t.Parallel()
	l := &Limiter{Rate: 10, Burst: 1, MaxWait: 1500 * time.Millisecond}
	require.Less(t, LowHorizon(l.Rate), l.MaxWait, "the old deferral was shorter than the budget")
	for _, class := range []podero.Class{podero.ClassBulk, podero.ClassSync} {
		l.gate(class) <- struct{}{} // a caller at the head of the line, waiting for its slot
		ctx := podero.WithClass(context.Background(), class)
		start := time.Now()
		deferFor, err := l.Wait(ctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), l.MaxWait, "it waited its budget in line")
		require.GreaterOrEqual(t, deferFor, l.MaxWait, "class %d: deferred by at least MaxWait", class)
		<-l.gate(class)
		require.Zero(t, l.inLine[class].Load(), "it left the line")
	}
	// The line ahead at the rate, when longer than MaxWait: 29 waiting and
	// one at the gate, at 10 calls/s, 3 s.
	require.Equal(t, 3*time.Second, l.lineDeferral(29))
	require.Equal(t, l.MaxWait, l.lineDeferral(0))
}
