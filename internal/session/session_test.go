package session

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

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
		r, err := s.Recipient(ctx, pool, reauth.DeviceArgs{OrgID: org, UserID: user})
		require.NoError(t, err)
		require.Equal(t, "", r.Email)
		require.Equal(t, "en", r.Locale)
		for _, a := range []reauth.DeviceArgs{req, renewal} {
			r, err := s.Recipient(ctx, pool, a)
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
		r, err := s.Recipient(ctx, pool, req)
		require.NoError(t, err)
		require.Equal(t, "own@example.com", r.Email)
		require.Equal(t, "sv", r.Locale)
		require.True(t, r.Suppressed, "the request's address was refused before")
	})
	t.Run("ContactWinsOverARenewal", func(t *testing.T) {
		r, err := s.Recipient(ctx, pool, renewal)
		require.NoError(t, err)
		require.Equal(t, "contact@example.com", r.Email)
		require.Equal(t, "de", r.Locale)
		require.False(t, r.Suppressed)
	})
	t.Run("RenewalKeepsItsOwnWhereTheContactHasNone", func(t *testing.T) {
		other := renewal
		other.UserID = "0c000000-0000-4000-8000-0000000000cc"
		r, err := s.Recipient(ctx, pool, other)
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
