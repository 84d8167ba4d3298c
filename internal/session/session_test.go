package session

import (
	"context"
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

const (
	org  = "0a000000-0000-4000-8000-00000000000a"
	user = "0c000000-0000-4000-8000-00000000000c"
	dev  = "d1000000-0000-4000-8000-000000000001"
)

// TestRecipient: a request's own address and language win over the
// contact's; a renewal's (the expired session's) lose to them, and are
// kept where the contact has none; a suppressed address says so.
func TestRecipient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	s := Sessions{Pool: pool}
	req := reauth.DeviceArgs{OrgID: org, UserID: user, DeviceKind: reauth.Inverter, DeviceID: dev, Email: "own@example.com", Locale: "sv"}
	renewal := req
	renewal.Reason = reauth.ReasonLinkExpired

	t.Run("NoContact", func(t *testing.T) {
		r, err := s.Recipient(ctx, pool, reauth.DeviceArgs{OrgID: org, UserID: user, DeviceKind: reauth.Inverter, DeviceID: dev}, time.Time{})
		require.NoError(t, err)
		require.Equal(t, "", r.Email)
		require.Equal(t, "en", r.Locale)
		for _, a := range []reauth.DeviceArgs{req, renewal} {
			r, err := s.Recipient(ctx, pool, a, time.Time{})
			require.NoError(t, err)
			require.Equal(t, "own@example.com", r.Email)
			require.Equal(t, "sv", r.Locale)
			require.False(t, r.Suppressed)
		}
	})

	email, locale := "contact@example.com", "de"
	_, err := store.UpsertContact(ctx, pool, org, user, store.ContactUpdate{Email: &email, Locale: &locale})
	require.NoError(t, err)
	require.NoError(t, store.SuppressEmail(ctx, pool, "own@example.com", "550 no such user"))

	t.Run("RequestWins", func(t *testing.T) {
		r, err := s.Recipient(ctx, pool, req, time.Time{})
		require.NoError(t, err)
		require.Equal(t, "own@example.com", r.Email)
		require.Equal(t, "sv", r.Locale)
		require.True(t, r.Suppressed, "the request's address was refused before")
	})
	t.Run("ContactWinsOverARenewal", func(t *testing.T) {
		r, err := s.Recipient(ctx, pool, renewal, time.Time{})
		require.NoError(t, err)
		require.Equal(t, "contact@example.com", r.Email)
		require.Equal(t, "de", r.Locale)
		require.False(t, r.Suppressed)
	})
	t.Run("RenewalKeepsItsOwnWhereTheContactHasNone", func(t *testing.T) {
		other := renewal
		other.UserID = "0c000000-0000-4000-8000-0000000000cc"
		r, err := s.Recipient(ctx, pool, other, time.Time{})
		require.NoError(t, err)
		require.Equal(t, "own@example.com", r.Email)
		require.Equal(t, "sv", r.Locale)
		require.True(t, r.Suppressed, "the renewal's address was refused before")
	})
}

// TestFinish: a cancelled session may still complete, a completed one is
// not cancelled afterwards, and a success through an old link completes
// the device's open session too.
func TestFinish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	s := Sessions{Pool: pool, Logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, store.UpsertDevice(ctx, pool, reauth.Inverter, dev, org, user))
	n := 0
	create := func() store.Session {
		t.Helper()
		n++
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
		nonce := link.NewNonce()
		id, err := s.Create(ctx, nil, tx, New{Request: reauth.DeviceArgs{OrgID: org, UserID: user, DeviceKind: reauth.Inverter, DeviceID: dev},
			NewSession: store.NewSession{DeviceKind: reauth.Inverter, DeviceID: dev, PoderoSessionID: fmt.Sprintf("5e550000-0000-4000-8000-%012d", n), AuthenticationURL: "https://connect.example/x",
				LinkNonce: nonce, LinkHash: nonce, Locale: "en", ExpiresAt: time.Now().Add(time.Hour)}})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		sess, err := store.GetSession(ctx, pool, id)
		require.NoError(t, err)
		return sess
	}
	state := func(id int64) string {
		t.Helper()
		sess, err := store.GetSession(ctx, pool, id)
		require.NoError(t, err)
		return sess.State
	}

	first := create()
	require.NoError(t, s.Finish(ctx, nil, first, ResultCancel))
	require.Equal(t, store.SessionCancelled, state(first.ID))
	require.NoError(t, s.Finish(ctx, nil, first, ResultSuccess))
	require.Equal(t, store.SessionCompleted, state(first.ID), "a cancelled session may still complete")
	require.NoError(t, s.Finish(ctx, nil, first, ResultCancel))
	require.Equal(t, store.SessionCompleted, state(first.ID), "a completed session stays completed")

	old, cur := create(), create()
	require.Equal(t, store.SessionSuperseded, state(old.ID), "a new session supersedes the open one")
	require.NoError(t, s.Finish(ctx, nil, old, ResultSuccess))
	require.Equal(t, store.SessionSuperseded, state(old.ID))
	require.Equal(t, store.SessionCompleted, state(cur.ID), "a success through an old link completes the device's open session")
	old, err := store.GetSession(ctx, pool, old.ID)
	require.NoError(t, err)
	_, landing, err := s.Follow(ctx, old)
	require.NoError(t, err)
	require.Equal(t, Connected, landing)
}

// TestEvents: each transition's event is inserted with the transition,
// once per session (the event ID is the type and session), and none when
// events are off.
func TestEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	s := Sessions{Pool: pool, Events: true, Logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, store.UpsertDevice(ctx, pool, reauth.Inverter, dev, org, user))
	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		nonce := link.NewNonce()
		id, err = s.Create(ctx, client, tx, New{Request: reauth.DeviceArgs{OrgID: org, UserID: user, DeviceKind: reauth.Inverter, DeviceID: dev, Reason: "api:test"},
			NewSession: store.NewSession{DeviceKind: reauth.Inverter, DeviceID: dev, PoderoSessionID: "5e550000-0000-4000-8000-000000000001",
				AuthenticationURL: "https://connect.example/x", LinkNonce: nonce, LinkHash: nonce, Locale: "en", JobID: 42, ExpiresAt: time.Now().Add(time.Hour)}})
		return err
	}))
	sess, err := store.GetSession(ctx, pool, id)
	require.NoError(t, err)
	require.NoError(t, s.Open(ctx, client, sess))
	require.NoError(t, s.Open(ctx, client, sess))
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		c, err := s.CompletedElsewhere(ctx, client, tx, Device{Kind: reauth.Inverter, ID: dev, OrgID: org, UserID: user})
		require.Equal(t, id, c)
		return err
	}))
	require.NoError(t, s.Finish(ctx, client, sess, ResultSuccess), "nothing left to finish")

	rows, err := pool.Query(ctx, `SELECT args ->> 'id', coalesce(args ->> 'detail', '') FROM river_job WHERE kind = 'reauth_event' ORDER BY id`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id, detail string
		err := r.Scan(&id, &detail)
		return id + " " + detail, err
	})
	require.NoError(t, err)
	sid := fmt.Sprint(id)
	require.Equal(t, []string{"evt_link_created_s" + sid + " api:test", "evt_link_opened_s" + sid + " ", "evt_completed_s" + sid + " elsewhere"}, got)

	off := Sessions{Pool: pool}
	require.NoError(t, off.Emit(ctx, nil, nil, reauth.EventFailed, Subject(sess), "x"), "events off: no client needed")
}
