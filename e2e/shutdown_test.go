package e2e_test

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
)

// TestShutdownReturnsRunningJobs: on SIGTERM, a job still running when the
// grace period ends goes back to the queue without a recorded failure or a
// used attempt, and the process exits 0.
func TestShutdownReturnsRunningJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.NewURL(t)
	// Every Podero call takes 20 s: jobs are sure to be running at SIGTERM.
	s := newService(t, dbURL, "-latency", "20s")
	p := s.serve(t, "SHUTDOWN_GRACE=1s", "PODERO_TIMEOUT=30s", "JOB_TIMEOUT=40s", "JOB_RESCUE_AFTER=50s")

	st := s.state(t)
	u := st.Orgs[0].Users[0]
	id := s.enqueue(t, st.Orgs[0].ID, u, u.Devices[0], `,"email":"someone@example.test"`)

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	jobState := func() (state string, attempt int, errs []json.RawMessage) {
		require.NoError(t, conn.QueryRow(ctx, "SELECT state, attempt, coalesce(errors, '{}') FROM river_job WHERE id = $1", id).Scan(&state, &attempt, &errs))
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for state, _, _ := jobState(); state != "running"; state, _, _ = jobState() {
		require.True(t, time.Now().Before(deadline), "job never started: %s", state)
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, 15*time.Second), "exit code")
	require.Less(t, time.Since(start), 10*time.Second, "the grace period bounds the stop")

	state, attempt, errs := jobState()
	require.Equal(t, "available", state, "back in the queue at once")
	require.Zero(t, attempt, "no attempt used")
	require.Empty(t, errs, "no failure recorded")
}
