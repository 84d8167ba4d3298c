package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
)

// TestSentLogCommitsTogether: records that arrive while one is being
// committed wait, and then commit together in one transaction; each
// worker returns once its own record committed, and every session gets
// its next reminder.
func TestSentLogCommitsTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newUnitBundle(t, func(c *Config) { c.ReminderOffsets = []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour} })
	const n = 8
	recs := make([]sentRecord, n)
	ids := make([]int64, n)
	for i := range n {
		a := unitArgs()
		a.DeviceID = fmt.Sprintf("d1000000-0000-4000-8000-%012d", i)
		tx := b.tx(t)
		res, err := b.deviceTestWorker(t).Work(ctx, t, tx, a, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.NoError(t, tx.Commit(ctx))
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM auth_session WHERE job_id = $1`, res.Job.ID).Scan(&ids[i]))
		v, err := store.GetNotifyView(ctx, b.pool, ids[i], 1)
		require.NoError(t, err)
		// Its first reminder (step 1) went out: the record schedules step 2.
		recs[i] = sentRecord{ctx: ctx, d: delivery{session: ids[i], step: 1}, key: store.MessageKey([]int64{ids[i]}, 1),
			views: []store.NotifyView{v}, zone: time.UTC}
	}
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	require.NoError(t, err)

	// The first record's commit waits for this lock on its session (its
	// FOR SHARE), so the others arrive while it is in flight.
	hold, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = hold.Exec(ctx, `SELECT FROM auth_session WHERE id = $1 FOR UPDATE`, ids[0])
	require.NoError(t, err)
	l := &sentLog{}
	state := func() (bool, int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.leading, len(l.pending)
	}
	done := make(chan error, n)
	go func() { done <- l.record(b.cfg, client, recs[0]) }()
	require.Eventually(t, func() bool { leading, pending := state(); return leading && pending == 0 }, 10*time.Second, time.Millisecond)
	for i := 1; i < n; i++ {
		go func() { done <- l.record(b.cfg, client, recs[i]) }()
	}
	require.Eventually(t, func() bool { _, pending := state(); return pending == n-1 }, 10*time.Second, time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("a record returned before the first committed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, hold.Rollback(ctx))
	for range n {
		require.NoError(t, <-done)
	}
	leading, pending := state()
	require.False(t, leading, "nobody leads once all are recorded")
	require.Zero(t, pending)

	// Every session's step 2 is scheduled, by two transactions: the first
	// record's, and the one of the seven that waited.
	var reminders, txs int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT xmin::text) FROM river_job
		WHERE kind = $1 AND args ->> 'step' = '2' AND (args ->> 'session_id')::bigint = ANY ($2)`,
		reauth.NotifyArgs{}.Kind(), ids).Scan(&reminders, &txs))
	require.Equal(t, n, reminders)
	require.Equal(t, 2, txs)
}
