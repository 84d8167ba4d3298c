package worker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/notify/webhook"
)

// TestEventGiveUp: an events endpoint answering 401, 403, 404 or a
// redirect (a partner's deploy) has the event retried for
// EventsGiveUpAfter after it was made; then it is given up: cancelled with
// a clear reason, logged at ERROR and counted. Any other refusal gives it
// up at once; a temporary failure on the last attempt is reported too.
func TestEventGiveUp(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	s, err := webhook.NewSender(webhook.SenderConfig{Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	require.NoError(t, err)
	var logs bytes.Buffer
	m := metrics.New(nil, nil)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	w := &EventWorker{cfg: Config{
		PostEvent: func(ctx context.Context, id string, payload any) error { return s.Post(ctx, srv.URL, id, payload) },
		Now:       func() time.Time { return now }, Metrics: m,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	}}
	job := func(age time.Duration, attempt int) *river.Job[reauth.EventArgs] {
		a := reauth.NewEvent(reauth.EventCompleted, reauth.EventSubject{SessionID: 7, JobID: 1, OrgID: "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
			UserID: "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", DeviceKind: reauth.Inverter, DeviceID: "a2314723-06cc-4c2e-8819-118905579c7a"}, "via_link")
		a.OccurredAt = now.Add(-age)
		return &river.Job[reauth.EventArgs]{JobRow: &rivertype.JobRow{ID: 9, CreatedAt: now.Add(-age), Attempt: attempt, MaxAttempts: 100}, Args: a}
	}
	isCancel := func(err error) bool { var c *river.JobCancelError; return errors.As(err, &c) }
	givenUp := func(reason string) float64 {
		families, err := m.Registry.Gather()
		require.NoError(t, err)
		for _, f := range families {
			if f.GetName() != "reauth_events_given_up_total" {
				continue
			}
			for _, mt := range f.GetMetric() {
				for _, l := range mt.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == reason {
						return mt.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}

	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTemporaryRedirect} {
		status.Store(int32(code))
		err := w.Work(context.Background(), job(EventsGiveUpAfterDefault-time.Minute, 5))
		require.Error(t, err, "%d", code)
		require.False(t, isCancel(err), "%d: retried within EVENTS_GIVE_UP_AFTER", code)
		require.Contains(t, err.Error(), "EVENTS_GIVE_UP_AFTER")
	}
	require.Zero(t, givenUp("unreachable"))
	require.NotContains(t, logs.String(), `"level":"ERROR"`)

	status.Store(http.StatusNotFound)
	err = w.Work(context.Background(), job(EventsGiveUpAfterDefault+time.Minute, 20))
	require.True(t, isCancel(err), "given up after EVENTS_GIVE_UP_AFTER")
	require.Contains(t, err.Error(), "given up after 24h1m0s (EVENTS_GIVE_UP_AFTER): the events endpoint still answers 404")
	require.Equal(t, 1.0, givenUp("unreachable"))
	require.Contains(t, logs.String(), `"level":"ERROR","msg":"event given up`)

	w.cfg.EventsGiveUpAfter = time.Hour // configurable
	require.True(t, isCancel(w.Work(context.Background(), job(2*time.Hour, 3))))
	require.Equal(t, 2.0, givenUp("unreachable"))

	status.Store(http.StatusGone)
	err = w.Work(context.Background(), job(time.Second, 1))
	require.True(t, isCancel(err), "another refusal gives up at once")
	require.Equal(t, 1.0, givenUp("refused"))

	status.Store(http.StatusServiceUnavailable)
	err = w.Work(context.Background(), job(time.Second, 1))
	require.False(t, isCancel(err))
	require.Zero(t, givenUp("attempts"))
	err = w.Work(context.Background(), job(time.Second, 100))
	require.Error(t, err, "River discards it")
	require.Equal(t, 1.0, givenUp("attempts"))
	require.Equal(t, 4, strings.Count(logs.String(), `"msg":"event given up`))
}

// TestOperatorRetried: an attempt right after the delivery gave up (a
// cancelled job, run again only by an operator's JobRetry) is an
// operator's retry; one after a temporary error is not.
func TestOperatorRetried(t *testing.T) {
	t.Parallel()
	row := func(attempt int, errs ...string) *rivertype.JobRow {
		r := &rivertype.JobRow{Attempt: attempt}
		for i, e := range errs {
			r.Errors = append(r.Errors, rivertype.AttemptError{Attempt: i + 1, Error: e})
		}
		return r
	}
	require.False(t, operatorRetried(row(1)))
	require.False(t, operatorRetried(row(2, "notify: email x: dial tcp: connection refused")))
	require.True(t, operatorRetried(row(2, "JobCancelError: every channel failed: webhook: 410 Gone")))
	require.True(t, operatorRetried(row(3, "timeout", "JobCancelError: no channel reaches the user")))
	require.False(t, operatorRetried(row(3, "JobCancelError: every channel failed: x", "timeout")), "a retry after the retried attempt failed again")
	require.False(t, operatorRetried(row(4, "JobCancelError: every channel failed: x")), "not the previous attempt")
}
