package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/store"
)

// TestDeviceWorker runs reauth_device jobs through River's test worker
// against a real database, with Podero and the email channel faked.
func TestDeviceWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// sessionRow is the one session stored, and how many there are.
	sessionRow := func(t *testing.T, b *unitBundle) (id, jobID int64, authURL, email string) {
		t.Helper()
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM auth_session`))
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT id, job_id, authentication_url, email FROM auth_session`).Scan(&id, &jobID, &authURL, &email))
		return id, jobID, authURL, email
	}
	notification := func(t *testing.T, b *unitBundle, session int64, step int) string {
		t.Helper()
		var state string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT state FROM notification WHERE session_id = $1 AND step = $2 AND channel = 'email'`,
			session, step).Scan(&state))
		return state
	}

	t.Run("StoresOneSessionAndSendsTheFirstMessageOnce", func(t *testing.T) {
		t.Parallel()
		b := newUnitBundle(t, func(c *Config) { c.ReminderOffsets = []time.Duration{24 * time.Hour} })
		tx := b.tx(t)
		tw := b.deviceTestWorker(t)
		res, err := tw.Work(ctx, t, tx, unitArgs(), nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, []string{unitDevice}, b.podero.devices, "one session asked for, for the device")

		id, jobID, authURL, email := sessionRow(t, b)
		require.Equal(t, res.Job.ID, jobID)
		require.Equal(t, "https://connect.podero.test/connect/1", authURL)
		require.Equal(t, unitEmail, email)
		msgs := b.email.sent()
		require.Len(t, msgs, 1)
		require.Equal(t, unitEmail, msgs[0].To)
		require.Equal(t, fmt.Sprintf("reauth-%d-0", id), msgs[0].Key)
		require.Zero(t, msgs[0].Step)
		require.True(t, strings.HasPrefix(msgs[0].Link, unitBase+"/r/"), msgs[0].Link)
		require.Equal(t, store.NotificationSent, notification(t, b, id, 0))
		// The first reminder is scheduled by the same job; no reauth_notify
		// job was needed for the first message.
		rem := b.reminders(t, id)
		require.Len(t, rem, 1)
		require.Equal(t, rivertype.JobStateScheduled, rem[0].State)
		require.JSONEq(t, fmt.Sprintf(`{"session_id": %d, "step": 1}`, id), string(rem[0].EncodedArgs))
		require.WithinDuration(t, time.Now().Add(24*time.Hour), rem[0].ScheduledAt, time.Minute)

		// The job runs again (an operator's retry): its session is stored
		// and its message sent, so nothing happens.
		res, err = tw.WorkJob(ctx, t, tx, b.retry(t, tx, res.Job.ID))
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, 2, res.Job.Attempt)
		require.Equal(t, 1, b.podero.calls(), "Podero not asked again")
		require.Len(t, b.email.sent(), 1, "the message not sent again")
		sessionRow(t, b)
	})

	t.Run("RetriedJobDeliversWithoutAskingPoderoAgain", func(t *testing.T) {
		t.Parallel()
		b := newUnitBundle(t)
		b.email.errs = []error{errors.New("451 4.3.0 try again later")}
		tx := b.tx(t)
		tw := b.deviceTestWorker(t)
		res, err := tw.Work(ctx, t, tx, unitArgs(), nil)
		require.ErrorContains(t, err, "451 4.3.0")
		requireRetried(t, res)
		id, _, _, _ := sessionRow(t, b)
		require.Equal(t, store.NotificationSending, notification(t, b, id, 0), "left to the retry")

		res, err = tw.WorkJob(ctx, t, tx, res.Job)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, 1, b.podero.calls(), "the retry found its session stored")
		msgs := b.email.sent()
		require.Len(t, msgs, 2)
		require.Equal(t, msgs[0].Key, msgs[1].Key, "the same message, under the same key")
		require.Equal(t, msgs[0].Link, msgs[1].Link)
		sessionRow(t, b)
		require.Equal(t, store.NotificationSent, notification(t, b, id, 0))
	})

	t.Run("PoderoAnswers", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name  string
			err   *podero.Error
			event river.EventKind
			state rivertype.JobState // for an error: retried (requireRetried)
			gone  bool
			// snooze: the job waits at least this long, at most 20% more.
			snooze time.Duration
		}{
			// About the device or the request: cancelled, nothing sent.
			{name: "DeviceNotFound", err: &podero.Error{Kind: podero.KindNotFound, Op: podero.OpAuthSession, Status: 404},
				event: river.EventKindJobCancelled, state: rivertype.JobStateCancelled, gone: true},
			{name: "Invalid", err: &podero.Error{Kind: podero.KindInvalid, Op: podero.OpAuthSession, Status: 422},
				event: river.EventKindJobCancelled, state: rivertype.JobStateCancelled},
			// An outage: retried with backoff.
			{name: "Outage", err: &podero.Error{Kind: podero.KindRetryable, Op: podero.OpAuthSession, Status: 503},
				event: river.EventKindJobFailed},
			{name: "TokenRejected", err: &podero.Error{Kind: podero.KindUnauthorized, Op: podero.OpToken, Status: 401},
				event: river.EventKindJobFailed},
			// Throttled: held for Retry-After, without using an attempt.
			{name: "TooManyRequests", err: &podero.Error{Kind: podero.KindRateLimited, Op: podero.OpAuthSession, Status: 429, RetryAfter: 30 * time.Second},
				event: river.EventKindJobSnoozed, state: rivertype.JobStateScheduled, snooze: 30 * time.Second},
			{name: "CircuitOpen", err: &podero.Error{Kind: podero.KindCircuitOpen, Op: podero.OpAuthSession, RetryAfter: 10 * time.Second},
				event: river.EventKindJobSnoozed, state: rivertype.JobStateScheduled, snooze: 10 * time.Second},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := newUnitBundle(t)
				b.podero.errs = []error{tt.err}
				tx := b.tx(t)
				tw := b.deviceTestWorker(t)
				start := time.Now()
				res, err := tw.Work(ctx, t, tx, unitArgs(), nil)
				if tt.event == river.EventKindJobFailed {
					require.ErrorIs(t, err, tt.err)
				}
				if tt.event == river.EventKindJobFailed {
					requireRetried(t, res)
				} else {
					require.Equal(t, tt.event, res.EventKind)
					require.Equal(t, tt.state, res.Job.State)
				}
				require.Equal(t, 1, b.podero.calls())
				require.Zero(t, b.count(t, `SELECT count(*) FROM auth_session`), "no session")
				require.Empty(t, b.email.sent(), "nothing sent")
				require.Equal(t, tt.gone, b.count(t, `SELECT count(*) FROM device WHERE id = $1 AND gone_at IS NOT NULL`, unitDevice) == 1)
				if tt.state == rivertype.JobStateCancelled {
					require.Contains(t, res.Job.Errors[len(res.Job.Errors)-1].Error, string(tt.err.Kind))
				}
				if tt.snooze > 0 {
					require.GreaterOrEqual(t, res.Job.ScheduledAt.Sub(start), tt.snooze)
					require.LessOrEqual(t, res.Job.ScheduledAt.Sub(start), tt.snooze*6/5+time.Second)
					require.Empty(t, res.Job.Errors, "a hold is no failure")
				}
				if tt.state == rivertype.JobStateCancelled {
					return
				}
				// The next attempt, Podero answering again, sends the link.
				res, err = tw.WorkJob(ctx, t, tx, res.Job)
				require.NoError(t, err)
				require.Equal(t, river.EventKindJobCompleted, res.EventKind)
				require.Equal(t, 2, b.podero.calls())
				require.Len(t, b.email.sent(), 1)
				require.Equal(t, 1, b.count(t, `SELECT count(*) FROM auth_session`))
			})
		}
	})

	t.Run("NobodyToReachAsksPoderoNothing", func(t *testing.T) {
		t.Parallel()
		b := newUnitBundle(t)
		// The request's address was refused before: as good as none.
		require.NoError(t, store.SuppressEmail(ctx, b.pool, unitEmail, "550 5.1.1 no such mailbox"))
		res, err := b.deviceTestWorker(t).Work(ctx, t, b.tx(t), unitArgs(), nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Contains(t, res.Job.Errors[0].Error, "no way to reach the user")
		require.Zero(t, b.podero.calls(), "no link asked for nobody")
		require.Empty(t, b.email.sent())
	})
}

// requireRetried asserts that the job's attempt failed and it is to be
// retried: not finalized, its one error recorded, in River's retryable state
// (or available, when the backoff is short enough for River to skip it).
func requireRetried(t *testing.T, res *rivertest.WorkResult) {
	t.Helper()
	require.Equal(t, river.EventKindJobFailed, res.EventKind)
	require.Contains(t, []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateAvailable}, res.Job.State)
	require.Nil(t, res.Job.FinalizedAt)
	require.Len(t, res.Job.Errors, 1)
	require.Equal(t, 1, res.Job.Errors[0].Attempt)
}
