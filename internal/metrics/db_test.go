package metrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// gauges returns every gauge m's registry gathers, by name and label
// values ("name/value/...").
func gauges(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			name := f.GetName()
			for _, l := range mt.GetLabel() {
				name += "/" + l.GetValue()
			}
			if mt.GetGauge() != nil {
				out[name] = mt.GetGauge().GetValue()
			}
		}
	}
	return out
}

// badNotifyArgs are reauth_notify args of the wrong types, as another
// language might insert them.
type badNotifyArgs struct {
	SessionID any `json:"session_id"`
	Step      any `json:"step,omitempty"`
}

func (badNotifyArgs) Kind() string { return "reauth_notify" }

func ago(d time.Duration) *time.Time {
	t := time.Now().Add(-d)
	return &t
}

// TestDBCollector: the oldest waiting job's age by queue, the messages
// undelivered for longer than UndeliveredAfter and the Retry-After hold,
// read from River's and the store's tables.
func TestDBCollector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		g := gauges(t, New(testdb.New(t), nil))
		for _, q := range queues {
			v, ok := g["reauth_queue_oldest_job_seconds/"+q]
			require.True(t, ok, "queue %s has a series from the start", q)
			require.Zero(t, v, q)
		}
		require.Contains(t, g, "reauth_messages_undelivered")
		require.Zero(t, g["reauth_messages_undelivered"])
		require.Contains(t, g, "reauth_podero_hold_seconds")
		require.Zero(t, g["reauth_podero_hold_seconds"])
	})

	t.Run("PoderoHold", func(t *testing.T) {
		t.Parallel()
		pool := testdb.New(t)
		require.NoError(t, store.HoldPoderoCalls(ctx, pool, 10*time.Minute))
		require.InDelta(t, 600, gauges(t, New(pool, nil))["reauth_podero_hold_seconds"], 5)
	})

	t.Run("OldestWaitingJob", func(t *testing.T) {
		t.Parallel()
		pool := testdb.New(t)
		notify := func(session int64) reauth.NotifyArgs { return reauth.NotifyArgs{SessionID: session, Step: 1} }
		// podero: an available job due an hour ago, and a newer one.
		testdb.InsertJob(t, pool, reauth.DeviceArgs{DeviceKind: reauth.Inverter, DeviceID: "a"}, nil, testdb.Job{ScheduledAt: ago(time.Hour)})
		testdb.InsertJob(t, pool, reauth.DeviceArgs{DeviceKind: reauth.Inverter, DeviceID: "b"}, nil, testdb.Job{ScheduledAt: ago(time.Minute)})
		// notify: a retryable job due 10 minutes ago; a scheduled one due in
		// an hour and an available one not due yet wait for nothing.
		testdb.InsertJob(t, pool, notify(1), nil, testdb.Job{State: rivertype.JobStateRetryable, Attempt: 1, ScheduledAt: ago(10 * time.Minute)})
		testdb.InsertJob(t, pool, notify(2), nil, testdb.Job{State: rivertype.JobStateScheduled, ScheduledAt: ago(-time.Hour)})
		testdb.InsertJob(t, pool, notify(3), nil, testdb.Job{ScheduledAt: ago(-time.Hour)})
		// events: a scheduled job whose time has passed waits too.
		testdb.InsertJob(t, pool, reauth.NotifyArgs{SessionID: 4}, &river.InsertOpts{Queue: reauth.QueueEvents},
			testdb.Job{State: rivertype.JobStateScheduled, ScheduledAt: ago(2 * time.Minute)})
		// maintenance: finished and running jobs, however old, do not wait.
		for i, st := range []rivertype.JobState{rivertype.JobStateCompleted, rivertype.JobStateRunning, rivertype.JobStateDiscarded} {
			testdb.InsertJob(t, pool, reauth.NotifyArgs{SessionID: int64(10 + i)}, &river.InsertOpts{Queue: reauth.QueueMaintenance},
				testdb.Job{State: st, ScheduledAt: ago(5 * time.Hour), Attempt: 1})
		}
		// another queue with a waiting job gets its own series.
		testdb.InsertJob(t, pool, reauth.NotifyArgs{SessionID: 6}, &river.InsertOpts{Queue: "custom"}, testdb.Job{ScheduledAt: ago(30 * time.Second)})

		g := gauges(t, New(pool, nil))
		require.InDelta(t, 3600, g["reauth_queue_oldest_job_seconds/podero"], 5)
		require.InDelta(t, 600, g["reauth_queue_oldest_job_seconds/notify"], 5)
		require.InDelta(t, 120, g["reauth_queue_oldest_job_seconds/events"], 5)
		require.Zero(t, g["reauth_queue_oldest_job_seconds/maintenance"])
		require.InDelta(t, 30, g["reauth_queue_oldest_job_seconds/custom"], 5)
		require.Equal(t, 2.0, g["reauth_queue_jobs/podero/available"], "queue depth read with it")
	})

	t.Run("UndeliveredMessages", func(t *testing.T) {
		t.Parallel()
		pool := testdb.New(t)
		n := 0
		// session makes an open session created at created, made by job
		// (0: none).
		session := func(created time.Time, job int64) int64 {
			n++
			dev := fmt.Sprintf("a2314723-06cc-4c2e-8819-%012d", n)
			require.NoError(t, store.UpsertDevice(ctx, pool, reauth.Inverter, dev, "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"))
			id, err := store.CreateSession(ctx, pool, store.NewSession{DeviceKind: reauth.Inverter, DeviceID: dev,
				PoderoSessionID: "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", AuthenticationURL: "https://app.podero.com/x",
				LinkNonce: []byte{byte(n)}, LinkHash: []byte{byte(n)}, Locale: "en", JobID: job, CreatedAt: created,
				ExpiresAt: time.Now().Add(time.Hour)})
			require.NoError(t, err)
			return id
		}
		reminder := func(s int64, j testdb.Job) {
			testdb.InsertJob(t, pool, reauth.NotifyArgs{SessionID: s, Step: 1}, nil, j)
		}
		long := UndeliveredAfter + 5*time.Minute

		// Counted: a reminder due long ago, still waiting.
		reminder(session(time.Now().Add(-2*time.Hour), 0), testdb.Job{ScheduledAt: ago(long)})
		// Counted: a reminder retrying, its retry not due yet, its first
		// attempt long ago.
		reminder(session(time.Now().Add(-2*time.Hour), 0), testdb.Job{State: rivertype.JobStateRetryable, Attempt: 1,
			ScheduledAt: ago(-time.Minute), Errors: []rivertype.AttemptError{{At: time.Now().Add(-long), Attempt: 1, Error: "smtp: 451"}}})
		// Counted: a first message whose request job retries its send, the
		// session made long ago.
		dj := testdb.InsertJob(t, pool, reauth.DeviceArgs{DeviceKind: reauth.Inverter, DeviceID: "x"}, nil,
			testdb.Job{State: rivertype.JobStateRetryable, Attempt: 1, ScheduledAt: ago(-time.Minute)})
		session(time.Now().Add(-long), dj.ID)

		// Not counted: due only a few minutes ago.
		reminder(session(time.Now().Add(-2*time.Hour), 0), testdb.Job{ScheduledAt: ago(5 * time.Minute)})
		// Not counted: a reminder not due yet.
		reminder(session(time.Now().Add(-2*time.Hour), 0), testdb.Job{State: rivertype.JobStateScheduled, ScheduledAt: ago(-time.Hour)})
		// Not counted: the step was sent on a channel (its job not yet
		// completed).
		sent := session(time.Now().Add(-2*time.Hour), 0)
		reminder(sent, testdb.Job{State: rivertype.JobStateRunning, Attempt: 1, ScheduledAt: ago(long)})
		nt, err := store.BeginNotification(ctx, pool, sent, 1, "email", "u@example.com", "k-sent")
		require.NoError(t, err)
		require.NoError(t, store.FinishNotification(ctx, pool, nt.ID, store.NotificationSent, ""))
		// Not counted: the session is closed.
		closed := session(time.Now().Add(-2*time.Hour), 0)
		reminder(closed, testdb.Job{ScheduledAt: ago(long)})
		ok, err := store.FinishSession(ctx, pool, closed, store.SessionCompleted, []string{store.SessionOpen})
		require.NoError(t, err)
		require.True(t, ok)
		// Not counted: the step gave up (every channel failed).
		reminder(session(time.Now().Add(-2*time.Hour), 0), testdb.Job{State: rivertype.JobStateCancelled, Attempt: 1, ScheduledAt: ago(long)})
		// Not counted: a request job with no session yet (a backlog, which
		// reauth_queue_oldest_job_seconds shows).
		testdb.InsertJob(t, pool, reauth.DeviceArgs{DeviceKind: reauth.Inverter, DeviceID: "y"}, nil, testdb.Job{ScheduledAt: ago(long)})
		// Args a worker would cancel do not fail the query.
		for _, a := range []badNotifyArgs{{SessionID: "x"}, {SessionID: 1.5}, {SessionID: "99999999999999999999"}, {SessionID: 7, Step: "one"}} {
			testdb.InsertJob(t, pool, a, nil, testdb.Job{ScheduledAt: ago(long)})
		}

		require.Equal(t, 3.0, gauges(t, New(pool, nil))["reauth_messages_undelivered"])
	})
}

// TestBudgetPurposes: the calls a second are exported for every purpose of
// podero.Purposes, 0 without calls, and a purpose not on that list counts
// as other, so the label set stays bounded.
func TestBudgetPurposes(t *testing.T) {
	t.Parallel()
	m := New(nil, nil)
	m.WatchBudget(func(context.Context) (BudgetReading, error) {
		return BudgetReading{Rates: map[string]float64{"sweep": 2, "other": 0.25, "made_up": 0.5}}, nil
	})
	g := gauges(t, m)
	want := map[string]float64{"auth_session": 0, "renewal": 0, "sweep": 2, "user_lookup": 0, "sync": 0, "verify": 0, "token": 0, "other": 0.75}
	got := map[string]float64{}
	for k, v := range g {
		if p, ok := strings.CutPrefix(k, "reauth_podero_calls_per_second/"); ok {
			got[p] = v
		}
	}
	require.Equal(t, want, got)
}
