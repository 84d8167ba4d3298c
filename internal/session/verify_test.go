package session

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// TestVerify: a success queues the device's check VerifyAfter later and
// sends reauth.completed with verified false; Confirm records it verified
// with reauth.completed verified true under its own ID, once; Unverified
// moves a completion to unverified with reauth.verification_failed and a
// forced fresh request, once, and asks for none when the device has a newer
// session.
func TestVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	now := time.Now()
	s := Sessions{Pool: pool, Events: true, Verify: true, VerifyAfter: 10 * time.Minute, Now: func() time.Time { return now },
		Logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, store.UpsertDevice(ctx, pool, reauth.Inverter, dev, org, user))
	n := 0
	create := func() store.Session {
		t.Helper()
		n++
		var id int64
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
			nonce := link.NewNonce()
			id, err = s.Create(ctx, client, tx, New{Request: reauth.DeviceArgs{OrgID: org, UserID: user, DeviceKind: reauth.Inverter, DeviceID: dev, Reason: "api"},
				NewSession: store.NewSession{DeviceKind: reauth.Inverter, DeviceID: dev, PoderoSessionID: fmt.Sprintf("5e550000-0000-4000-8000-%012d", n),
					AuthenticationURL: "https://connect.example/x", LinkNonce: nonce, LinkHash: nonce, Email: "u@example.com", Locale: "de",
					ExpiresAt: now.Add(time.Hour)}})
			return err
		}))
		sess, err := store.GetSession(ctx, pool, id)
		require.NoError(t, err)
		require.Equal(t, "api", sess.Reason, "the session keeps its request's reason")
		return sess
	}
	get := func(id int64) store.Session {
		t.Helper()
		sess, err := store.GetSession(ctx, pool, id)
		require.NoError(t, err)
		return sess
	}
	event := func(id string) map[string]any {
		t.Helper()
		var raw []byte
		require.NoError(t, pool.QueryRow(ctx, `SELECT args FROM river_job WHERE kind = 'reauth_event' AND args ->> 'id' = $1`, id).Scan(&raw))
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	count := func(kind, arg string, v any) int {
		t.Helper()
		var c int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND args ->> $2 = $3`, kind, arg, fmt.Sprint(v)).Scan(&c))
		return c
	}

	t.Run("Confirm", func(t *testing.T) {
		sess := create()
		require.NoError(t, s.Finish(ctx, client, sess, ResultSuccess))
		var at time.Time
		require.NoError(t, pool.QueryRow(ctx, `SELECT scheduled_at FROM river_job WHERE kind = 'reauth_verify' AND (args ->> 'session_id')::bigint = $1`,
			sess.ID).Scan(&at))
		require.WithinDuration(t, now.Add(10*time.Minute), at, time.Second, "checked VerifyAfter after the callback")
		sid := fmt.Sprint(sess.ID)
		require.Equal(t, false, event("evt_completed_s" + sid)["verified"], "the callback's completion is not verified yet")

		sess = get(sess.ID)
		ok, err := s.Confirm(ctx, client, sess)
		require.NoError(t, err)
		require.True(t, ok)
		require.NotNil(t, get(sess.ID).VerifiedAt)
		require.Equal(t, store.SessionCompleted, get(sess.ID).State)
		ev := event("evt_completed_verified_s" + sid)
		require.Equal(t, true, ev["verified"])
		require.Equal(t, reauth.EventCompleted, ev["type"])
		require.Equal(t, "via_link", ev["detail"])
		ok, err = s.Confirm(ctx, client, sess)
		require.NoError(t, err)
		require.False(t, ok, "confirmed once")
		moved, _, err := s.Unverified(ctx, client, sess, "x")
		require.NoError(t, err)
		require.False(t, moved, "a verified completion never becomes unverified")
	})

	t.Run("Unverified", func(t *testing.T) {
		sess := create()
		require.NoError(t, s.Finish(ctx, client, sess, ResultSuccess))
		sess = get(sess.ID)
		moved, requested, err := s.Unverified(ctx, client, sess, "still lapsed")
		require.NoError(t, err)
		require.True(t, moved)
		require.True(t, requested)
		got := get(sess.ID)
		require.Equal(t, store.SessionUnverified, got.State)
		require.NotNil(t, got.FinishedAt)
		ev := event("evt_verification_failed_s" + fmt.Sprint(sess.ID))
		require.Equal(t, reauth.EventVerificationFailed, ev["type"])
		require.Equal(t, "still lapsed", ev["detail"])

		var raw []byte
		require.NoError(t, pool.QueryRow(ctx, `SELECT args FROM river_job WHERE kind = 'reauth_device' AND args ->> 'reason' = $1`,
			reauth.ReasonVerificationFailed).Scan(&raw))
		var a reauth.DeviceArgs
		require.NoError(t, json.Unmarshal(raw, &a))
		require.NoError(t, a.Validate())
		require.Equal(t, reauth.DeviceArgs{OrgID: org, UserID: user, DeviceKind: reauth.Inverter, DeviceID: dev, Email: "u@example.com", Locale: "de",
			Reason: reauth.ReasonVerificationFailed, Force: true}, a)

		moved, requested, err = s.Unverified(ctx, client, sess, "still lapsed")
		require.NoError(t, err)
		require.False(t, moved || requested, "once")
		ok, err := s.Confirm(ctx, client, get(sess.ID))
		require.NoError(t, err)
		require.False(t, ok, "an unverified session is not confirmed later")
		_, landing, err := s.Follow(ctx, get(sess.ID))
		require.NoError(t, err)
		require.Equal(t, Superseded, landing, "its link leads nowhere until the fresh session exists")
	})

	t.Run("NewerSession", func(t *testing.T) {
		sess := create()
		require.NoError(t, s.Finish(ctx, client, sess, ResultSuccess))
		newer := create()
		before := count("reauth_device", "reason", reauth.ReasonVerificationFailed)
		moved, requested, err := s.Unverified(ctx, client, get(sess.ID), "still lapsed")
		require.NoError(t, err)
		require.True(t, moved)
		require.False(t, requested, "the device has a newer session: no fresh request")
		require.Equal(t, before, count("reauth_device", "reason", reauth.ReasonVerificationFailed))
		require.Equal(t, store.SessionOpen, get(newer.ID).State)
	})

	t.Run("Off", func(t *testing.T) {
		off := s
		off.Verify = false
		sess := create()
		require.NoError(t, off.Finish(ctx, client, sess, ResultSuccess))
		require.Zero(t, count("reauth_verify", "session_id", sess.ID), "Verify off: no check")
	})

	t.Run("Elsewhere", func(t *testing.T) {
		sess := create()
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := s.CompletedElsewhere(ctx, client, tx, Device{Kind: reauth.Inverter, ID: dev, OrgID: org, UserID: user})
			return err
		}))
		require.Equal(t, true, event("evt_completed_s" + fmt.Sprint(sess.ID))["verified"], "Podero's listing said so")
		require.Zero(t, count("reauth_verify", "session_id", sess.ID), "nothing to check")
	})
}
