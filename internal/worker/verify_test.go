package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/session"
	"github.com/reauth/reauth/internal/store"
)

// TestVerify: the check after a success confirms a device Podero lists
// authenticated (reauth.completed verified true); a device still lapsed is
// checked again VERIFY_AFTER later until VERIFY_TIMEOUT, then the session is
// unverified, the partner gets reauth.verification_failed and the user a
// fresh link whose first message is the retry message.
func TestVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	yes, no := true, false

	type testBundle struct {
		*unitBundle
		mu  sync.Mutex
		now time.Time
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tb := &testBundle{now: time.Now()}
		tb.unitBundle = newUnitBundle(t, func(c *Config) {
			c.VerifyAfter, c.VerifyTimeout = 15*time.Minute, 2*time.Hour
			c.PostEvent = func(context.Context, string, any) error { return nil }
			c.Now = func() time.Time { tb.mu.Lock(); defer tb.mu.Unlock(); return tb.now }
		})
		return tb
	}
	// completed makes the device's session and completes it through its
	// link, as the callback does; it returns the session.
	completed := func(t *testing.T, b *testBundle) store.Session {
		t.Helper()
		id := b.session(t)
		rc, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
		require.NoError(t, err)
		sess, err := store.GetSession(ctx, b.pool, id)
		require.NoError(t, err)
		require.NoError(t, b.cfg.sessions().Finish(ctx, rc, sess, session.ResultSuccess))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'reauth_verify' AND args ->> 'session_id' = $1`, fmt.Sprint(id)))
		sess, err = store.GetSession(ctx, b.pool, id)
		require.NoError(t, err)
		return sess
	}
	check := func(t *testing.T, b *testBundle, id int64) *rivertest.WorkResult {
		t.Helper()
		w := rivertest.NewWorker(t, riverpgxv5.New(b.pool), b.riverConfig(), &VerifyWorker{cfg: b.cfg})
		res, err := b.committed(t, func(tx pgx.Tx) (*rivertest.WorkResult, error) {
			return w.Work(ctx, t, tx, reauth.VerifyArgs{SessionID: id}, nil)
		})
		require.NoError(t, err)
		return res
	}
	events := func(t *testing.T, b *testBundle, typ string) []reauth.EventArgs {
		t.Helper()
		rows, err := b.pool.Query(ctx, `SELECT args FROM river_job WHERE kind = 'reauth_event' AND args ->> 'type' = $1 ORDER BY id`, typ)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (reauth.EventArgs, error) {
			var raw []byte
			var ev reauth.EventArgs
			if err := r.Scan(&raw); err != nil {
				return ev, err
			}
			return ev, json.Unmarshal(raw, &ev)
		})
		require.NoError(t, err)
		return out
	}
	device := func(authenticated bool, actions ...podero.Action) podero.Device {
		return podero.Device{ID: unitDevice, IsAuthenticated: &authenticated, Actions: actions}
	}

	t.Run("Confirm", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sess := completed(t, b)
		b.podero.listed = []podero.Device{device(true)}
		require.Equal(t, river.EventKindJobCompleted, check(t, b, sess.ID).EventKind)
		got, err := store.GetSession(ctx, b.pool, sess.ID)
		require.NoError(t, err)
		require.NotNil(t, got.VerifiedAt)
		evs := events(t, b, reauth.EventCompleted)
		require.Len(t, evs, 2, "the callback's and the confirmation's")
		require.Equal(t, &no, evs[0].Verified)
		require.Equal(t, &yes, evs[1].Verified)
		require.Equal(t, fmt.Sprintf("evt_completed_verified_s%d", sess.ID), evs[1].ID)

		require.Equal(t, river.EventKindJobCompleted, check(t, b, sess.ID).EventKind, "checked again: nothing to do")
		require.Len(t, events(t, b, reauth.EventCompleted), 2)
		require.Equal(t, 1, b.podero.lists, "a verified session is not asked about again")
	})

	t.Run("TimeoutUnverified", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sess := completed(t, b)
		// Lapsed, or authenticated but asked to reauthenticate: not taken.
		b.podero.listed = []podero.Device{device(false)}
		res := check(t, b, sess.ID)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.WithinDuration(t, time.Now().Add(15*time.Minute), res.Job.ScheduledAt, 5*time.Second, "checked again VERIFY_AFTER later")
		b.podero.listed = []podero.Device{device(true, podero.Action{Code: "reauthenticate"})}
		b.mu.Lock()
		b.now = sess.FinishedAt.Add(time.Hour + 50*time.Minute)
		b.mu.Unlock()
		res = check(t, b, sess.ID)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.WithinDuration(t, time.Now().Add(10*time.Minute), res.Job.ScheduledAt, 5*time.Second, "never past VERIFY_TIMEOUT")
		require.Empty(t, events(t, b, reauth.EventVerificationFailed))

		b.mu.Lock()
		b.now = sess.FinishedAt.Add(2*time.Hour + time.Second)
		b.mu.Unlock()
		require.Equal(t, river.EventKindJobCompleted, check(t, b, sess.ID).EventKind)
		got, err := store.GetSession(ctx, b.pool, sess.ID)
		require.NoError(t, err)
		require.Equal(t, store.SessionUnverified, got.State)
		failed := events(t, b, reauth.EventVerificationFailed)
		require.Len(t, failed, 1)
		require.Contains(t, failed[0].Detail, "VERIFY_TIMEOUT")
		require.Equal(t, sess.ID, failed[0].SessionID)

		// The fresh request, and its first message: the retry message.
		var raw []byte
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT args FROM river_job WHERE kind = 'reauth_device' AND args ->> 'reason' = $1`,
			reauth.ReasonVerificationFailed).Scan(&raw))
		var a reauth.DeviceArgs
		require.NoError(t, json.Unmarshal(raw, &a))
		require.True(t, a.Force)
		before := len(b.email.sent())
		tx := b.tx(t)
		res, err = b.deviceTestWorker(t).Work(ctx, t, tx, a, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.NoError(t, tx.Commit(ctx))
		msgs := b.email.sent()
		require.Len(t, msgs, before+1, "the fresh link is sent, past REAUTH_REPEAT_COOLDOWN")
		last := msgs[len(msgs)-1]
		require.True(t, last.Retry, "its first message says the last login did not work")
		require.Equal(t, 0, last.Step)
		require.Equal(t, unitEmail, last.To)
		require.NotEqual(t, sess.ID, lastSession(t, b.unitBundle))
	})

	t.Run("NotListed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sess := completed(t, b)
		require.Equal(t, river.EventKindJobCompleted, check(t, b, sess.ID).EventKind, "a device Podero no longer lists is left to the sync")
		got, err := store.GetSession(ctx, b.pool, sess.ID)
		require.NoError(t, err)
		require.Equal(t, store.SessionCompleted, got.State)
		require.Nil(t, got.VerifiedAt)
	})
}

func lastSession(t *testing.T, b *unitBundle) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT max(id) FROM auth_session`).Scan(&id))
	return id
}

// TestAuthenticated: Podero's word that a login took.
func TestAuthenticated(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	require.True(t, Authenticated(podero.Device{IsAuthenticated: &yes}))
	require.False(t, Authenticated(podero.Device{IsAuthenticated: &no}))
	require.False(t, Authenticated(podero.Device{}), "unknown is not authenticated")
	require.False(t, Authenticated(podero.Device{IsAuthenticated: &yes, Actions: []podero.Action{{Code: "reauthenticate"}}}))
	require.True(t, Authenticated(podero.Device{IsAuthenticated: &yes, Actions: []podero.Action{{Code: "update_firmware"}}}))
}
