package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// TestNotificationClaims: a user's grouped message claims every session
// due at its step that no message has yet, fixed once claimed; a session's
// own message keeps it out of any group; a reminder takes only the sessions
// whose previous step went out, in a message whose reminders nobody
// stopped.
func TestNotificationClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	inv := opsSession(t, pool, reauth.Inverter, "a2314723-06cc-4c2e-8819-118905579c7a")
	ev := opsSession(t, pool, reauth.ElectricVehicle, "b2314723-06cc-4c2e-8819-118905579c7a")
	own := opsSession(t, pool, reauth.Wallbox, "c2314723-06cc-4c2e-8819-118905579c7a")
	claim := func(step int, job int64, createdBy time.Time) ([]int64, string) {
		var ids []int64
		var key string
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			require.NoError(t, store.LockUserMessages(ctx, tx, opsOrg, opsUser))
			var err error
			ids, key, err = store.ClaimUserStep(ctx, tx, opsOrg, opsUser, step, job, createdBy)
			return err
		}))
		return ids, key
	}
	// finish records message key at step sent (its rows ids) and done.
	finish := func(key string, step int, ids ...int64) {
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := store.FinishMessage(ctx, tx, ids, key, step, nil)
			return err
		}))
	}

	// The wallbox's request asked for its own message.
	c, err := store.ClaimSession(ctx, pool, own, 0, 7)
	require.NoError(t, err)
	require.Equal(t, store.MessageKey([]int64{own}, 0), c.Key)

	ids, key := claim(0, 100, time.Now())
	require.Equal(t, []int64{inv, ev}, ids)
	require.Equal(t, store.MessageKey(ids, 0), key)
	require.NotEqual(t, store.MessageKey([]int64{inv}, 0), key, "a group's key is not a session's own")
	got, err := store.JobMessage(ctx, pool, 100)
	require.NoError(t, err)
	require.Equal(t, key, got)
	// Claimed once: another job finds nothing, a session's own job finds
	// the group's claim.
	ids, _ = claim(0, 101, time.Now())
	require.Empty(t, ids)
	c, err = store.ClaimSession(ctx, pool, ev, 0, 102)
	require.NoError(t, err)
	require.Equal(t, key, c.Key)
	require.Equal(t, int64(100), c.JobID)

	// The message's rows go together, under its key.
	rows, err := store.BeginMessage(ctx, pool, []int64{inv, ev}, 0, "email", "u@example.com", key)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	begun, err := store.MessageBegun(ctx, pool, []int64{inv, ev}, 0, key)
	require.NoError(t, err)
	require.Equal(t, []int64{inv, ev}, begun)
	// No reminder before the step went out.
	ids, _ = claim(1, 200, time.Now())
	require.Empty(t, ids)
	finish(key, 0, rows[0].ID, rows[1].ID)
	// Nor for sessions created after the cutoff.
	ids, _ = claim(1, 200, time.Now().Add(-time.Hour))
	require.Empty(t, ids)
	// The wallbox's own message is not done: only the group reminds.
	ids, key1 := claim(1, 200, time.Now())
	require.Equal(t, []int64{inv, ev}, ids)

	// An opt-out through one device of the group stops the group's reminders.
	finish(key1, 1)
	_, err = store.StopReminders(ctx, pool, inv)
	require.NoError(t, err)
	ids, _ = claim(2, 300, time.Now())
	require.Empty(t, ids)

	// A claim not begun is let go.
	_, err = store.BeginNotification(ctx, pool, own, 0, "email", "u@example.com", store.MessageKey([]int64{own}, 0))
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return store.ReleaseClaims(ctx, tx, 7, 0) }))
	c, err = store.ClaimSession(ctx, pool, own, 0, 8)
	require.NoError(t, err)
	require.Equal(t, int64(7), c.JobID, "a begun message keeps its claim")
}

// TestPendingUserMessage: a grouped job waiting and unclaimed is found, one
// that claimed or is outside the bounds is not.
func TestPendingUserMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	at := time.Now().Add(time.Minute).UTC()
	var job int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO river_job (kind, queue, state, args, scheduled_at)
		VALUES ('reauth_notify', 'notify', 'scheduled', $1, $2) RETURNING id`,
		`{"org_id": "`+opsOrg+`", "user_id": "`+opsUser+`", "step": 1, "batch": 5}`, at).Scan(&job))
	found := func(step int, from, to time.Time) bool {
		ok, err := store.PendingUserMessage(ctx, pool, opsOrg, opsUser, step, from, to)
		require.NoError(t, err)
		return ok
	}
	require.True(t, found(1, time.Time{}, at.Add(time.Second)))
	require.True(t, found(1, at.Add(-time.Second), at.Add(time.Second)))
	require.False(t, found(0, time.Time{}, at.Add(time.Second)), "another step")
	require.False(t, found(1, at.Add(time.Second), at.Add(time.Hour)), "too early")
	require.False(t, found(1, time.Time{}, at.Add(-time.Second)), "too late")
	s := opsSession(t, pool, reauth.Inverter, "a2314723-06cc-4c2e-8819-118905579c7a")
	_, err := store.ClaimSession(ctx, pool, s, 1, job)
	require.NoError(t, err)
	require.False(t, found(1, time.Time{}, at.Add(time.Second)), "it claimed already")
}
