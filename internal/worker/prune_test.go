package worker

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
)

// TestPruneFCMTokens: a reauth_prune job removes the FCM tokens registered
// more than 270 days before the worker's clock and keeps the younger ones;
// the service schedules it when PruneSchedule is set.
func TestPruneFCMTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now().Add(10 * 24 * time.Hour) // the worker's clock, not the database's
	b := newUnitBundle(t, func(c *Config) { c.Now = func() time.Time { return now } })
	const (
		staleUser = "0c000000-0000-4000-8000-000000000001"
		freshUser = "0c000000-0000-4000-8000-000000000002"
	)
	day := 24 * time.Hour
	for user, at := range map[string]time.Time{staleUser: now.Add(-store.FCMTokenMaxAge - day), freshUser: now.Add(-store.FCMTokenMaxAge + day)} {
		tokens := []string{"tok-" + user[len(user)-1:]}
		_, err := store.UpsertContact(ctx, b.pool, unitOrg, user, store.ContactUpdate{FCMTokens: &tokens, FCMRegisteredAt: at})
		require.NoError(t, err)
	}

	tw := rivertest.NewWorker(t, riverpgxv5.New(b.pool), b.riverConfig(), &PruneWorker{cfg: b.cfg})
	res, err := b.committed(t, func(tx pgx.Tx) (*rivertest.WorkResult, error) {
		return tw.Work(ctx, t, tx, reauth.PruneArgs{}, nil)
	})
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	for user, want := range map[string][]string{staleUser: {}, freshUser: {"tok-2"}} {
		c, err := store.GetContact(ctx, b.pool, unitOrg, user)
		require.NoError(t, err)
		require.Equal(t, want, c.FCMTokens, user)
	}
	require.Contains(t, b.logs.String(), "stale FCM tokens pruned")

	without := len(ClientConfig(b.cfg).PeriodicJobs)
	b.cfg.PruneSchedule = river.PeriodicInterval(day)
	require.Len(t, ClientConfig(b.cfg).PeriodicJobs, without+1, "scheduled")
}
