package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/session"
	"github.com/reauth/reauth/internal/store"
)

// TestNotifyWorker runs reauth_notify jobs (the reminders) through River's
// test worker against a real database, with the email channel faked.
func TestNotifyWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	offsets := func(c *Config) { c.ReminderOffsets = []time.Duration{24 * time.Hour, 72 * time.Hour} }
	notifications := func(t *testing.T, b *unitBundle, id int64, step int) int {
		t.Helper()
		return b.count(t, `SELECT count(*) FROM notification WHERE session_id = $1 AND step = $2`, id, step)
	}
	// scheduled is the session's scheduled reminders, by step.
	scheduled := func(t *testing.T, b *unitBundle, id int64) map[int]*rivertype.JobRow {
		t.Helper()
		out := map[int]*rivertype.JobRow{}
		for _, j := range b.reminders(t, id) {
			var a reauth.NotifyArgs
			require.NoError(t, a.UnmarshalJSON(j.EncodedArgs))
			if j.State == rivertype.JobStateScheduled {
				out[a.Step] = j
			}
		}
		return out
	}

	t.Run("RemindsOncePerStep", func(t *testing.T) {
		t.Parallel()
		b := newUnitBundle(t, offsets)
		id := b.session(t)
		require.Len(t, b.email.sent(), 1, "the first message")
		tw := b.notifyTestWorker(t)
		work := func(job *rivertype.JobRow) (*rivertest.WorkResult, error) {
			return b.committed(t, func(tx pgx.Tx) (*rivertest.WorkResult, error) { return tw.WorkJob(ctx, t, tx, job) })
		}

		// The first reminder, as scheduled by the request's job.
		rem := scheduled(t, b, id)
		require.Len(t, rem, 1)
		res, err := work(rem[1])
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		msgs := b.email.sent()
		require.Len(t, msgs, 2)
		require.Equal(t, 1, msgs[1].Step)
		require.Equal(t, fmt.Sprintf("reauth-%d-1", id), msgs[1].Key)
		require.Equal(t, unitEmail, msgs[1].To)
		require.Equal(t, msgs[0].Link, msgs[1].Link, "the same link")
		require.Equal(t, 1, notifications(t, b, id, 1))
		// The next one is scheduled, at its offset (72 h after creation).
		rem = scheduled(t, b, id)
		require.Len(t, rem, 1)
		require.Contains(t, rem, 2)
		require.WithinDuration(t, time.Now().Add(72*time.Hour), rem[2].ScheduledAt, time.Minute)

		// The last step: sent, and nothing scheduled after it.
		res, err = work(rem[2])
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		msgs = b.email.sent()
		require.Len(t, msgs, 3)
		require.Equal(t, 2, msgs[2].Step)
		require.Equal(t, 1, notifications(t, b, id, 2))

		// The same step again (a second job for it): nothing sent.
		res, err = b.committed(t, func(tx pgx.Tx) (*rivertest.WorkResult, error) {
			return tw.Work(ctx, t, tx, reauth.NotifyArgs{SessionID: id, Step: 2}, nil)
		})
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Len(t, b.email.sent(), 3, "one message a step")
		require.Equal(t, 1, notifications(t, b, id, 2))
		require.Empty(t, scheduled(t, b, id), "no step after the last")
	})

	for _, result := range []string{session.ResultSuccess, session.ResultCancel} {
		t.Run("NothingForAClosedSession/"+result, func(t *testing.T) {
			t.Parallel()
			b := newUnitBundle(t, offsets)
			id := b.session(t)
			sess, err := store.GetSession(ctx, b.pool, id)
			require.NoError(t, err)
			rc, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
			require.NoError(t, err)
			require.NoError(t, session.Sessions{Pool: b.pool}.Finish(ctx, rc, sess, result))

			// A reminder that was already running when the session closed.
			res, err := b.notifyTestWorker(t).Work(ctx, t, b.tx(t), reauth.NotifyArgs{SessionID: id, Step: 1}, nil)
			require.NoError(t, err)
			require.Equal(t, river.EventKindJobCompleted, res.EventKind)
			require.Len(t, b.email.sent(), 1, "only the first message, sent while it was open")
			require.Zero(t, notifications(t, b, id, 1), "not even begun")
			require.Empty(t, scheduled(t, b, id), "no reminder after it")
		})
	}

	t.Run("StepBeyondTheScheduleCancelled", func(t *testing.T) {
		t.Parallel()
		b := newUnitBundle(t, offsets)
		id := b.session(t)
		res, err := b.notifyTestWorker(t).Work(ctx, t, b.tx(t), reauth.NotifyArgs{SessionID: id, Step: 3}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Contains(t, res.Job.Errors[0].Error, "beyond the reminder schedule")
		require.Len(t, b.email.sent(), 1)
		require.Zero(t, notifications(t, b, id, 3))
	})
}
