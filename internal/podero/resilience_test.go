package podero

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

// fakeClock is a Config.Now that only moves when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeLimiter is a Limiter that records its calls.
type fakeLimiter struct {
	at func() string // what a Wait records, e.g. the server's hit counters

	mu       sync.Mutex
	deferFor time.Duration
	waitErr  error
	holdErr  error
	waits    []string
	holds    []time.Time
}

func (l *fakeLimiter) Wait(ctx context.Context) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := ""
	if l.at != nil {
		rec = l.at()
	}
	l.waits = append(l.waits, rec)
	return l.deferFor, l.waitErr
}

func (l *fakeLimiter) HoldUntil(ctx context.Context, t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holds = append(l.holds, t)
	return l.holdErr
}

func (l *fakeLimiter) setDefer(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deferFor = d
}

func (l *fakeLimiter) Waits() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.waits...)
}

func (l *fakeLimiter) Holds() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.holds...)
}

// hits is an at func for fakeLimiter: the fake's request counters.
func hits(f *fake) func() string {
	return func() string { return fmt.Sprintf("token=%d api=%d", f.tokenHits.Load(), f.apiHits.Load()) }
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func call(c *Client) error {
	return callCtx(context.Background(), c)
}

func callCtx(ctx context.Context, c *Client) error {
	_, err := c.AuthSession(ctx, testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
	return err
}

// switchable answers 500 while down is set, and hands out sessions
// otherwise.
func switchable(down *atomic.Bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			respond(http.StatusInternalServerError, `down`)(w, r)
			return
		}
		okSession(w, r)
	}
}

func TestBreaker(t *testing.T) {
	t.Parallel()

	const coolOff = 30 * time.Second

	// tripped returns a client whose breaker the fake's 500s just opened
	// after two failures, with the clock at the moment it opened.
	tripped := func(t *testing.T, api http.HandlerFunc, cfg Config) (*fake, *Client, *fakeClock) {
		t.Helper()
		clock := newFakeClock()
		f := newFake(t, fakeOpts{}, api)
		cfg.Now, cfg.BreakerFailures, cfg.BreakerCoolOff = clock.Now, 2, coolOff
		c := f.client(t, cfg)
		for range 2 {
			requireKind(t, call(c), KindRetryable, OpAuthSession, 500)
		}
		require.Equal(t, BreakerStatus{State: BreakerOpen, Failures: 2, OpenUntil: clock.Now().Add(coolOff)}, c.Breaker())
		return f, c, clock
	}

	t.Run("OpensAfterConsecutiveFailures", func(t *testing.T) {
		t.Parallel()

		var down atomic.Bool
		down.Store(true)
		f, c, clock := tripped(t, switchable(&down), Config{})
		require.Equal(t, int32(2), f.apiHits.Load())

		for i := range 5 {
			clock.Advance(time.Second)
			e := requireKind(t, call(c), KindCircuitOpen, OpAuthSession, 0)
			require.Equal(t, coolOff-time.Duration(i+1)*time.Second, e.RetryAfter)
			require.True(t, e.Temporary())
			require.Equal(t, "podero auth_session: circuit_open: circuit breaker open", e.Error())
		}
		require.Equal(t, int32(2), f.apiHits.Load(), "no request reaches Podero while open")
		require.Equal(t, int32(1), f.tokenHits.Load())
	})

	t.Run("FailuresMustBeConsecutive", func(t *testing.T) {
		t.Parallel()

		var status atomic.Int32
		api := func(w http.ResponseWriter, r *http.Request) {
			if s := int(status.Load()); s != 0 {
				respond(s, `{}`)(w, r)
				return
			}
			okSession(w, r)
		}
		f := newFake(t, fakeOpts{}, api)
		c := f.client(t, Config{BreakerFailures: 2, Now: newFakeClock().Now})

		for _, s := range []int32{500, 404, 502, 0, 504} {
			status.Store(s)
			_ = call(c)
		}
		require.Equal(t, BreakerStatus{State: BreakerClosed, Failures: 1}, c.Breaker())
	})

	t.Run("ClientErrorsDoNotTrip", func(t *testing.T) {
		t.Parallel()

		tests := []struct {
			name string
			api  http.HandlerFunc
			kind ErrorKind
		}{
			{"BadRequest", respond(400, `{}`), KindInvalid},
			{"NotFound", respond(404, `{}`), KindNotFound},
			{"Unprocessable", respond(422, `{"detail":[]}`), KindInvalid},
			{"Unauthorized", respond(401, `{}`), KindUnauthorized},
			{"TooManyRequests", respond(429, `{}`, "Retry-After", "1"), KindRateLimited},
			{"UnavailableWithRetryAfter", respond(503, `{}`, "Retry-After", "1"), KindRateLimited},
			{"Malformed", respond(200, `{"authentication_url":null}`), KindMalformed},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()

				f := newFake(t, fakeOpts{}, tt.api)
				c := f.client(t, Config{BreakerFailures: 1, Now: newFakeClock().Now})
				for range 3 {
					e, ok := AsError(call(c))
					require.True(t, ok)
					require.Equal(t, tt.kind, e.Kind)
				}
				require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker())
			})
		}
	})

	// Throttling without a usable hint, and answers the API does not
	// document, count like a 5xx: a Podero answering every call with
	// "503 Retry-After: 0" or a maintenance redirect is not asked again and
	// again.
	t.Run("NoHintAndUnexpectedTrip", func(t *testing.T) {
		t.Parallel()

		const past = "Sun, 06 Nov 1994 08:49:37 GMT"
		tests := []struct {
			name string
			api  http.HandlerFunc
			kind ErrorKind
		}{
			{"UnavailableRetryAfterZero", respond(503, `{}`, "Retry-After", "0"), KindRateLimited},
			{"UnavailableRetryAfterNegative", respond(503, `{}`, "Retry-After", "-5"), KindRateLimited},
			{"UnavailableRetryAfterPast", respond(503, `{}`, "Retry-After", past), KindRateLimited},
			{"TooManyRequestsWithout", respond(429, `{}`), KindRateLimited},
			{"Redirect", respond(307, ``, "Location", "https://maintenance.example/"), KindUnexpected},
			{"Gone", respond(410, `{}`), KindUnexpected},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()

				f := newFake(t, fakeOpts{}, tt.api)
				clock := newFakeClock()
				c := f.client(t, Config{BreakerFailures: 2, Now: clock.Now})
				for range 2 {
					e, ok := AsError(call(c))
					require.True(t, ok)
					require.Equal(t, tt.kind, e.Kind)
					require.True(t, e.Temporary())
				}
				require.Equal(t, BreakerOpen, c.Breaker().State)
				requireKind(t, call(c), KindCircuitOpen, OpAuthSession, 0)
				require.Equal(t, int32(2), f.apiHits.Load())
			})
		}
	})

	t.Run("HalfOpenAfterCoolOff", func(t *testing.T) {
		t.Parallel()

		var down atomic.Bool
		down.Store(true)
		_, c, clock := tripped(t, switchable(&down), Config{})
		openUntil := c.Breaker().OpenUntil

		clock.Advance(coolOff - time.Nanosecond)
		require.Equal(t, BreakerOpen, c.Breaker().State)
		clock.Advance(time.Nanosecond)
		require.Equal(t, BreakerStatus{State: BreakerHalfOpen, Failures: 2, OpenUntil: openUntil}, c.Breaker())
	})

	t.Run("ProbeSuccessCloses", func(t *testing.T) {
		t.Parallel()

		var down atomic.Bool
		down.Store(true)
		f, c, clock := tripped(t, switchable(&down), Config{})

		down.Store(false)
		clock.Advance(coolOff)
		require.NoError(t, call(c))
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker())
		require.Equal(t, int32(3), f.apiHits.Load())

		callOK(t, c)
		require.Equal(t, int32(4), f.apiHits.Load())
	})

	t.Run("ProbeFailureReopens", func(t *testing.T) {
		t.Parallel()

		var down atomic.Bool
		down.Store(true)
		f, c, clock := tripped(t, switchable(&down), Config{})

		clock.Advance(coolOff + 5*time.Second)
		requireKind(t, call(c), KindRetryable, OpAuthSession, 500)
		require.Equal(t, BreakerStatus{State: BreakerOpen, Failures: 3, OpenUntil: clock.Now().Add(coolOff)}, c.Breaker())

		e := requireKind(t, call(c), KindCircuitOpen, OpAuthSession, 0)
		require.Equal(t, coolOff, e.RetryAfter)
		require.Equal(t, int32(3), f.apiHits.Load())
	})

	t.Run("ClientErrorProbeCloses", func(t *testing.T) {
		t.Parallel()

		var notFound atomic.Bool
		api := func(w http.ResponseWriter, r *http.Request) {
			if notFound.Load() {
				respond(404, `{}`)(w, r)
				return
			}
			respond(500, `down`)(w, r)
		}
		_, c, clock := tripped(t, api, Config{})

		notFound.Store(true)
		clock.Advance(coolOff)
		requireKind(t, call(c), KindNotFound, OpAuthSession, 404)
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker(), "Podero answered")
	})

	t.Run("ExactlyOneProbe", func(t *testing.T) {
		t.Parallel()

		var down, hold atomic.Bool
		down.Store(true)
		arrived, release := make(chan struct{}, 1), make(chan struct{})
		api := func(w http.ResponseWriter, r *http.Request) {
			if hold.Load() {
				arrived <- struct{}{}
				select {
				case <-release:
				case <-time.After(10 * time.Second):
				}
			}
			switchable(&down)(w, r)
		}
		f, c, clock := tripped(t, api, Config{})

		down.Store(false)
		hold.Store(true)
		clock.Advance(coolOff)
		probe := make(chan error, 1)
		go func() { probe <- call(c) }()
		<-arrived
		hold.Store(false)

		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = call(c) })
		}
		wg.Wait()
		for _, err := range errs {
			e := requireKind(t, err, KindCircuitOpen, OpAuthSession, 0)
			require.Equal(t, BreakerProbeWaitDefault, e.RetryAfter)
		}
		require.Equal(t, BreakerHalfOpen, c.Breaker().State)
		require.Equal(t, int32(3), f.apiHits.Load(), "only the probe was sent")

		close(release)
		require.NoError(t, <-probe)
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker())
		callOK(t, c)
	})

	t.Run("DeferredProbeLetsAnotherProbe", func(t *testing.T) {
		t.Parallel()

		var down atomic.Bool
		down.Store(true)
		l := &fakeLimiter{}
		f, c, clock := tripped(t, switchable(&down), Config{Limiter: l})

		down.Store(false)
		clock.Advance(coolOff)
		l.setDefer(time.Second)
		requireKind(t, call(c), KindRateLimited, OpAuthSession, 0)
		require.Equal(t, BreakerHalfOpen, c.Breaker().State)

		l.setDefer(0)
		require.NoError(t, call(c), "the deferred probe gave its place up")
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker())
		require.Equal(t, int32(3), f.apiHits.Load())
	})

	t.Run("LateOutcomeOfEarlierRequestIgnored", func(t *testing.T) {
		t.Parallel()

		// The first request hangs until released and then fails; the
		// second fails at once; every later one succeeds.
		var n atomic.Int32
		arrived, release := make(chan struct{}), make(chan struct{})
		api := func(w http.ResponseWriter, r *http.Request) {
			switch n.Add(1) {
			case 1:
				close(arrived)
				select {
				case <-release:
				case <-time.After(10 * time.Second):
				}
				respond(500, `late`)(w, r)
			case 2:
				respond(500, `down`)(w, r)
			default:
				okSession(w, r)
			}
		}
		clock := newFakeClock()
		f := newFake(t, fakeOpts{}, api)
		c := f.client(t, Config{BreakerFailures: 1, Now: clock.Now})

		late := make(chan error, 1)
		go func() { late <- call(c) }()
		<-arrived
		requireKind(t, call(c), KindRetryable, OpAuthSession, 500)
		require.Equal(t, BreakerOpen, c.Breaker().State)
		clock.Advance(coolOff)
		callOK(t, c)
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker())

		close(release)
		requireKind(t, <-late, KindRetryable, OpAuthSession, 500)
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker(),
			"a request sent before the breaker opened says nothing about now")
	})

	t.Run("TokenEndpointFailuresCount", func(t *testing.T) {
		t.Parallel()

		clock := newFakeClock()
		f := newFake(t, fakeOpts{tokenStatus: 502, tokenBody: `bad gateway`}, okSession)
		c := f.client(t, Config{BreakerFailures: 2, Now: clock.Now})
		for range 2 {
			requireKind(t, call(c), KindRetryable, OpToken, 502)
		}
		e := requireKind(t, call(c), KindCircuitOpen, OpToken, 0)
		require.Equal(t, BreakerCoolOffDefault, e.RetryAfter)
		require.Equal(t, int32(2), f.tokenHits.Load())
		require.Zero(t, f.apiHits.Load())
		require.Equal(t, BreakerOpen, c.Breaker().State)
	})

	t.Run("OpenSkipsLimiter", func(t *testing.T) {
		t.Parallel()

		l := &fakeLimiter{}
		_, c, _ := tripped(t, respond(500, `down`), Config{Limiter: l})
		require.Len(t, l.Waits(), 3, "token, API, API")
		requireKind(t, call(c), KindCircuitOpen, OpAuthSession, 0)
		require.Len(t, l.Waits(), 3)
	})

	t.Run("CallerCancelDoesNotCount", func(t *testing.T) {
		t.Parallel()

		arrived := make(chan struct{}, 1)
		api := func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-r.Context().Done()
		}
		f := newFake(t, fakeOpts{}, api)
		c := f.client(t, Config{BreakerFailures: 1, Now: newFakeClock().Now})

		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		e := requireKind(t, callCtx(ctx, c), KindRetryable, OpAuthSession, 0)
		require.Equal(t, "canceled", e.Detail)
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker())
	})

	t.Run("TimeoutCounts", func(t *testing.T) {
		t.Parallel()

		api := func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
		f := newFake(t, fakeOpts{}, api)
		c := f.client(t, Config{BreakerFailures: 1, RequestTimeout: 100 * time.Millisecond, Now: newFakeClock().Now})
		e := requireKind(t, call(c), KindRetryable, OpAuthSession, 0)
		require.Equal(t, "timeout", e.Detail)
		require.Equal(t, BreakerOpen, c.Breaker().State)
	})

	t.Run("LogsStateChanges", func(t *testing.T) {
		t.Parallel()

		var logs syncBuffer
		var down atomic.Bool
		down.Store(true)
		_, c, clock := tripped(t, switchable(&down), Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		require.Contains(t, logs.String(), `level=WARN msg="podero: circuit breaker open" failures=2`)
		require.NotContains(t, logs.String(), "closed")

		down.Store(false)
		clock.Advance(coolOff)
		callOK(t, c)
		require.Contains(t, logs.String(), `level=INFO msg="podero: circuit breaker closed" failures=2`)
	})
}

func TestUnauthorizedRetry(t *testing.T) {
	t.Parallel()

	// rejectFirst answers 401 to the first token the fake issued.
	rejectFirst := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+tokenPrefix+"1" {
			respond(401, `{"detail":"Unauthorized"}`)(w, r)
			return
		}
		okSession(w, r)
	}

	t.Run("RetriedOnceWithNewToken", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{expiresIn: 3600}, rejectFirst)
		c := f.client(t, Config{})
		require.NoError(t, call(c))
		require.Equal(t, int32(2), f.tokenHits.Load())
		require.Equal(t, int32(2), f.apiHits.Load())
		require.Equal(t, "Bearer "+tokenPrefix+"2", f.lastAPI(t).Header.Get("Authorization"))

		callOK(t, c)
		require.Equal(t, int32(2), f.tokenHits.Load(), "the new token is kept")
	})

	t.Run("SecondUnauthorizedFails", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(401, `{"detail":"Unauthorized"}`))
		c := f.client(t, Config{})
		e := requireKind(t, call(c), KindUnauthorized, OpAuthSession, 401)
		require.True(t, e.Temporary())
		require.Equal(t, int32(2), f.tokenHits.Load())
		require.Equal(t, int32(2), f.apiHits.Load())
	})

	t.Run("ForbiddenNotRetried", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(403, `{}`))
		requireKind(t, call(f.client(t, Config{})), KindUnauthorized, OpAuthSession, 403)
		require.Equal(t, int32(1), f.tokenHits.Load())
		require.Equal(t, int32(1), f.apiHits.Load())
	})

	t.Run("ConcurrentRejectionsFetchOnce", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{tokenDelay: 20 * time.Millisecond}, rejectFirst)
		c := f.client(t, Config{})
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = call(c) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int32(2), f.tokenHits.Load(), "a late 401 for the old token does not drop the new one")
	})

	t.Run("InvalidateOnlyDropsThatToken", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, okSession)
		c := f.client(t, Config{})
		callOK(t, c)
		c.invalidate(tokenPrefix + "0")
		callOK(t, c)
		require.Equal(t, int32(1), f.tokenHits.Load())
		c.invalidate(tokenPrefix + "1")
		callOK(t, c)
		require.Equal(t, int32(2), f.tokenHits.Load())
	})
}

func TestLimiter(t *testing.T) {
	t.Parallel()

	t.Run("WaitsBeforeEveryRequest", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{expiresIn: 3600}, okSession)
		l := &fakeLimiter{at: hits(f)}
		c := f.client(t, Config{Limiter: l})
		callOK(t, c)
		callOK(t, c)
		require.Equal(t, []string{"token=0 api=0", "token=1 api=0", "token=1 api=1"}, l.Waits())
		require.Empty(t, l.Holds())
	})

	t.Run("WaitsBeforeRetriedRequests", func(t *testing.T) {
		t.Parallel()

		api := func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "Bearer "+tokenPrefix+"1" {
				respond(401, `{}`)(w, r)
				return
			}
			okSession(w, r)
		}
		f := newFake(t, fakeOpts{}, api)
		l := &fakeLimiter{at: hits(f)}
		callOK(t, f.client(t, Config{Limiter: l}))
		require.Equal(t, []string{"token=0 api=0", "token=1 api=0", "token=1 api=1", "token=2 api=1"}, l.Waits())
	})

	t.Run("DeferredTokenRequestNotSent", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, okSession)
		l := &fakeLimiter{deferFor: 3 * time.Second}
		c := f.client(t, Config{Limiter: l, BreakerFailures: 1})
		e := requireKind(t, call(c), KindRateLimited, OpToken, 0)
		require.Equal(t, 3*time.Second, e.RetryAfter)
		require.True(t, e.Temporary())
		require.Zero(t, f.tokenHits.Load()+f.apiHits.Load())
		require.Empty(t, l.Holds())
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker())
	})

	t.Run("DeferredAPIRequestNotSent", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, okSession)
		l := &fakeLimiter{}
		c := f.client(t, Config{Limiter: l})
		callOK(t, c)
		l.setDefer(1500 * time.Millisecond)
		e := requireKind(t, call(c), KindRateLimited, OpAuthSession, 0)
		require.Equal(t, 1500*time.Millisecond, e.RetryAfter)
		require.Equal(t, int32(1), f.apiHits.Load())
	})

	t.Run("WaitErrorIsRetryable", func(t *testing.T) {
		t.Parallel()

		storeDown := errors.New("limiter store down")
		f := newFake(t, fakeOpts{}, okSession)
		c := f.client(t, Config{Limiter: &fakeLimiter{waitErr: storeDown}, BreakerFailures: 1})
		e := requireKind(t, call(c), KindRetryable, OpToken, 0)
		require.ErrorIs(t, e, storeDown)
		require.Zero(t, f.tokenHits.Load()+f.apiHits.Load())
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker(), "nothing was sent")
	})

	t.Run("RetryAfterHolds", func(t *testing.T) {
		t.Parallel()

		clock := newFakeClock() // read only: shared by the subtests
		date := clock.Now().Add(30 * time.Second).Format(http.TimeFormat)
		tests := []struct {
			name   string
			api    http.HandlerFunc
			kind   ErrorKind
			status int
			wait   time.Duration // RetryAfter and the hold; 0: no hold
		}{
			{"TooManyRequestsSeconds", respond(429, `{}`, "Retry-After", "7"), KindRateLimited, 429, 7 * time.Second},
			{"TooManyRequestsDate", respond(429, `{}`, "Retry-After", date), KindRateLimited, 429, 30 * time.Second},
			{"TooManyRequestsWithout", respond(429, `{}`), KindRateLimited, 429, RetryAfterDefault},
			{"TooManyRequestsZero", respond(429, `{}`, "Retry-After", "0"), KindRateLimited, 429, RetryAfterDefault},
			{"TooManyRequestsGarbage", respond(429, `{}`, "Retry-After", "soon"), KindRateLimited, 429, RetryAfterDefault},
			{"UnavailableSeconds", respond(503, `{}`, "Retry-After", "11"), KindRateLimited, 503, 11 * time.Second},
			{"UnavailableDate", respond(503, `{}`, "Retry-After", date), KindRateLimited, 503, 30 * time.Second},
			{"UnavailableWithout", respond(503, `{}`), KindRetryable, 503, 0},
			// No hint is not "at once": the default hold, for every process.
			{"UnavailableZero", respond(503, `{}`, "Retry-After", "0"), KindRateLimited, 503, RetryAfterDefault},
			{"UnavailableNegative", respond(503, `{}`, "Retry-After", "-1"), KindRateLimited, 503, RetryAfterDefault},
			{"UnavailablePast", respond(503, `{}`, "Retry-After", clock.Now().Add(-time.Minute).Format(http.TimeFormat)), KindRateLimited, 503, RetryAfterDefault},
			{"UnavailableGarbage", respond(503, `{}`, "Retry-After", "soon"), KindRateLimited, 503, RetryAfterDefault},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()

				f := newFake(t, fakeOpts{}, tt.api)
				l := &fakeLimiter{}
				c := f.client(t, Config{Limiter: l, Now: clock.Now})
				e := requireKind(t, call(c), tt.kind, OpAuthSession, tt.status)
				require.Equal(t, tt.wait, e.RetryAfter)
				if tt.wait == 0 {
					require.Empty(t, l.Holds())
					return
				}
				require.Equal(t, []time.Time{clock.Now().Add(tt.wait)}, l.Holds())
			})
		}
	})

	t.Run("TokenEndpointRateLimitedHolds", func(t *testing.T) {
		t.Parallel()

		clock := newFakeClock()
		f := newFake(t, fakeOpts{tokenStatus: 429, tokenBody: `{}`}, okSession)
		l := &fakeLimiter{}
		c := f.client(t, Config{Limiter: l, Now: clock.Now})
		e := requireKind(t, call(c), KindRateLimited, OpToken, 429)
		require.Equal(t, RetryAfterDefault, e.RetryAfter)
		require.Equal(t, []time.Time{clock.Now().Add(RetryAfterDefault)}, l.Holds())
	})

	t.Run("HoldFailureOnlyLogged", func(t *testing.T) {
		t.Parallel()

		var logs syncBuffer
		f := newFake(t, fakeOpts{}, respond(429, `{}`, "Retry-After", "2"))
		l := &fakeLimiter{holdErr: errors.New("hold store down")}
		c := f.client(t, Config{Limiter: l, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		e := requireKind(t, call(c), KindRateLimited, OpAuthSession, 429)
		require.Equal(t, 2*time.Second, e.RetryAfter)
		require.Len(t, l.Holds(), 1)
		require.Contains(t, logs.String(), `level=WARN msg="podero: rate limiter hold failed"`)
		require.Contains(t, logs.String(), "hold store down")
	})
}

func TestResponseDistrust(t *testing.T) {
	t.Parallel()

	t.Run("ContentType", func(t *testing.T) {
		t.Parallel()

		tests := []struct {
			name        string
			contentType string // "-": none at all
			ok          bool
		}{
			{"JSON", "application/json", true},
			{"JSONCharset", "application/json; charset=utf-8", true},
			{"UpperCase", "Application/JSON", true},
			{"StructuredSuffix", "application/vnd.podero+json", true},
			{"Absent", "-", true},
			{"HTML", "text/html; charset=utf-8", false},
			{"PlainText", "text/plain", false},
			{"JavaScript", "application/javascript", false},
			{"Unparsable", "json", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()

				// A body that is a fine user list whatever it is labelled.
				api := func(w http.ResponseWriter, r *http.Request) {
					if tt.contentType == "-" {
						w.Header()["Content-Type"] = nil // no sniffing either
					} else {
						w.Header().Set("Content-Type", tt.contentType)
					}
					_, _ = w.Write([]byte(`[]`))
				}
				f := newFake(t, fakeOpts{}, api)
				users, err := f.client(t, Config{}).ListUsers(context.Background(), testOrg)
				if tt.ok {
					require.NoError(t, err)
					require.Empty(t, users)
					return
				}
				e := requireKind(t, err, KindMalformed, OpListUsers, 200)
				require.Contains(t, e.Detail, "not JSON")
			})
		}
	})

	// stalling sends header, then part of a body, then nothing until the
	// client goes away: a client reading the body to its end would hang.
	stalling := func(header http.Header, chunk []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				w.Header()[k] = v
			}
			_, _ = w.Write(chunk)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}
	tests := []struct {
		name   string
		header http.Header
		chunk  []byte
	}{
		{"NonJSONNotRead", http.Header{"Content-Type": {"text/html"}}, []byte("<html>")},
		{"DeclaredTooLarge", http.Header{"Content-Type": {"application/json"}, "Content-Length": {fmt.Sprint(2 * MaxBodyBytes)}}, []byte("[")},
		{"StreamedTooLarge", http.Header{"Content-Type": {"application/json"}}, []byte("[" + strings.Repeat(" ", MaxBodyBytes+1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			f := newFake(t, fakeOpts{}, stalling(tt.header, tt.chunk))
			c := f.client(t, Config{RequestTimeout: 8 * time.Second})
			start := time.Now()
			// auth_session answers are capped at MaxBodyBytes (lists at MaxListBytes).
			_, err := c.AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
			requireKind(t, err, KindMalformed, OpAuthSession, 200)
			require.Less(t, time.Since(start), 4*time.Second, "rejected without waiting for the rest of the body")
		})
	}
}

func TestTokenExpiryUsesClock(t *testing.T) {
	t.Parallel()

	clock := newFakeClock()
	f := newFake(t, fakeOpts{expiresIn: 3600}, okSession)
	c := f.client(t, Config{Now: clock.Now})
	callOK(t, c)

	clock.Advance(3600*time.Second - TokenRefreshEarlyDefault - time.Second)
	callOK(t, c)
	require.Equal(t, int32(1), f.tokenHits.Load())

	clock.Advance(2 * time.Second)
	callOK(t, c)
	require.Equal(t, int32(2), f.tokenHits.Load())
	require.Equal(t, "Bearer "+tokenPrefix+"2", f.lastAPI(t).Header.Get("Authorization"))
}
