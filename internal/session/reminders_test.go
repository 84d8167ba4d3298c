package session

import (
	"bytes"
	"context"
	"errors"
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

// TestStopReminders: the opt-out cancels the open session's pending
// reminder, records itself so that a reminder being recorded as sent
// schedules no further one (store.FinishMessage), sends one event, and leaves
// the session open; a second one, or one for a finished session, stops
// nothing. Its token finds the session only with the right secret.
func TestStopReminders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	s := Sessions{Pool: pool, Events: true, Logger: slog.New(slog.DiscardHandler)}
	links, err := link.NewSigner(bytes.Repeat([]byte("k"), 32))
	require.NoError(t, err)
	require.NoError(t, store.UpsertDevice(ctx, pool, reauth.Inverter, dev, org, user))
	var id int64
	nonce := link.NewNonce()
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		id, err = s.Create(ctx, client, tx, New{Request: reauth.DeviceArgs{OrgID: org, UserID: user, DeviceKind: reauth.Inverter, DeviceID: dev},
			NewSession: store.NewSession{DeviceKind: reauth.Inverter, DeviceID: dev, PoderoSessionID: "5e550000-0000-4000-8000-000000000002",
				AuthenticationURL: "https://connect.example/x", LinkNonce: nonce, LinkHash: link.Hash(links.Token(nonce)), Locale: "en", ExpiresAt: time.Now().Add(time.Hour)}})
		return err
	}))
	reminder, err := client.Insert(ctx, reauth.NotifyArgs{SessionID: id, Step: 1}, &river.InsertOpts{ScheduledAt: time.Now().Add(24 * time.Hour)})
	require.NoError(t, err)

	token := links.UnsubscribeToken(id, nonce)
	sess, err := s.ByUnsubscribeToken(ctx, links, token)
	require.NoError(t, err)
	require.Equal(t, id, sess.ID)
	other, err := link.NewSigner(bytes.Repeat([]byte("o"), 32))
	require.NoError(t, err)
	for _, bad := range []struct {
		links *link.Signer
		token string
	}{{other, token}, {nil, token}, {links, links.Token(nonce)}, {links, links.UnsubscribeToken(id+1, nonce)}} {
		_, err := s.ByUnsubscribeToken(ctx, bad.links, bad.token)
		require.True(t, errors.Is(err, store.ErrNotFound), "%v", err)
	}

	reminds := func() bool {
		t.Helper()
		var open []int64
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
			open, err = store.FinishMessage(ctx, tx, nil, "", 0, []int64{id})
			return err
		}))
		return len(open) == 1
	}
	require.True(t, reminds())

	stopped, err := s.StopReminders(ctx, client, sess)
	require.NoError(t, err)
	require.True(t, stopped)
	var state string
	require.NoError(t, pool.QueryRow(ctx, "SELECT state FROM river_job WHERE id = $1", reminder.Job.ID).Scan(&state))
	require.Equal(t, "cancelled", state)
	require.False(t, reminds(), "a reminder being recorded now schedules no further one")
	sess, err = store.GetSession(ctx, pool, id)
	require.NoError(t, err)
	require.Equal(t, store.SessionOpen, sess.State, "the session stays open")
	require.NotNil(t, sess.RemindersStoppedAt)

	stopped, err = s.StopReminders(ctx, client, sess)
	require.NoError(t, err)
	require.False(t, stopped, "stopped before")
	require.NoError(t, s.Finish(ctx, client, sess, ResultSuccess), "completing still works")
	stopped, err = s.StopReminders(ctx, client, sess)
	require.NoError(t, err)
	require.False(t, stopped)

	var events int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reauth_event' AND args ->> 'type' = $1`,
		reauth.EventRemindersStopped).Scan(&events))
	require.Equal(t, 1, events)
}
