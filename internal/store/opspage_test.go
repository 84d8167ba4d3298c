package store_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

const (
	opsOrg  = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	opsUser = "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
)

// opsJob inserts a river_job row as River would leave it in state.
func opsJob(t *testing.T, pool *pgxpool.Pool, kind, queue, state string, args string, age time.Duration) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO river_job (kind, queue, state, args, created_at, finalized_at)
		VALUES ($1, $2, $3::river_job_state, $4, now() - $5::interval,
			CASE WHEN $3::river_job_state IN ('completed', 'discarded', 'cancelled') THEN now() END)`,
		kind, queue, state, args, age.String())
	require.NoError(t, err)
}

// opsSession stores a device and an open session for it and returns the
// session's id.
func opsSession(t *testing.T, pool *pgxpool.Pool, kind reauth.DeviceKind, deviceID string) int64 {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, store.UpsertDevice(ctx, pool, kind, deviceID, opsOrg, opsUser))
	hash := make([]byte, 32)
	_, _ = rand.Read(hash)
	id, err := store.CreateSession(ctx, pool, store.NewSession{
		DeviceKind: kind, DeviceID: deviceID, PoderoSessionID: "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
		AuthenticationURL: "https://app.podero.com/connect/1", LinkNonce: []byte("n"), LinkHash: hash,
		Locale: "en", ExpiresAt: time.Now().Add(time.Hour),
	})
	require.NoError(t, err)
	return id
}

func TestOpsPageQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("QueuesCountUnfinishedAndFailedJobsByState", func(t *testing.T) {
		t.Parallel()
		pool := testdb.New(t)
		_, err := pool.Exec(ctx, `INSERT INTO river_queue (name, paused_at) VALUES ('podero', NULL), ('maintenance', now())`)
		require.NoError(t, err)
		dev := `{"device_kind": "inverter", "device_id": "a2314723-06cc-4c2e-8819-118905579c7a"}`
		for _, state := range []string{"available", "available", "discarded", "completed", "completed"} {
			opsJob(t, pool, "reauth_device", "podero", state, dev, 0)
		}
		for _, state := range []string{"retryable", "running", "scheduled", "cancelled", "completed"} {
			opsJob(t, pool, "reauth_notify", "notify", state, `{"session_id": 1, "step": 0}`, 0)
		}

		qs, err := store.OpsQueues(ctx, pool)
		require.NoError(t, err)
		require.Len(t, qs, 3)
		require.Equal(t, "maintenance", qs[0].Name)
		require.NotNil(t, qs[0].PausedAt, "a paused queue without jobs is listed")
		require.Equal(t, store.OpsQueue{Name: "notify", Scheduled: 1, Running: 1, Retryable: 1, Cancelled: 1}, qs[1],
			"a queue no client has worked yet is listed from its jobs")
		require.Equal(t, store.OpsQueue{Name: "podero", Available: 2, Discarded: 1}, qs[2])
	})

	t.Run("FunnelPerDeviceKind", func(t *testing.T) {
		t.Parallel()
		pool := testdb.New(t)
		for _, j := range []struct {
			kind, state string
			age         time.Duration
		}{
			{"inverter", "available", 0}, {"inverter", "discarded", time.Hour}, {"inverter", "completed", 2 * time.Hour},
			{"wallbox", "available", 0},
			{"inverter", "completed", 48 * time.Hour}, // outside the window
		} {
			opsJob(t, pool, "reauth_device", "podero", j.state,
				`{"device_kind": "`+j.kind+`", "device_id": "a2314723-06cc-4c2e-8819-118905579c7a"}`, j.age)
		}
		opsJob(t, pool, "reauth_notify", "notify", "completed", `{"session_id": 1, "step": 0}`, 0) // not a request

		// Inverter A: sent, opened, completed. Inverter B: a message still
		// sending, never opened. Inverter C: created before the window.
		// Wallbox D: completed elsewhere, never opened.
		a := opsSession(t, pool, reauth.Inverter, "00000000-0000-4000-8000-00000000000a")
		n, err := store.BeginNotification(ctx, pool, a, 0, "email", "u@example.com", "k-a-0")
		require.NoError(t, err)
		require.NoError(t, store.FinishNotification(ctx, pool, n.ID, store.NotificationSent, ""))
		n, err = store.BeginNotification(ctx, pool, a, 1, "email", "u@example.com", "k-a-1")
		require.NoError(t, err)
		require.NoError(t, store.FinishNotification(ctx, pool, n.ID, store.NotificationSent, ""))
		_, err = store.MarkOpened(ctx, pool, a)
		require.NoError(t, err)
		_, err = store.FinishSession(ctx, pool, a, store.SessionCompleted, []string{store.SessionOpen})
		require.NoError(t, err)
		verified, err := store.MarkVerified(ctx, pool, a) // Podero showed it authenticated
		require.NoError(t, err)
		require.True(t, verified)
		b := opsSession(t, pool, reauth.Inverter, "00000000-0000-4000-8000-00000000000b")
		_, err = store.BeginNotification(ctx, pool, b, 0, "email", "u@example.com", "k-b-0")
		require.NoError(t, err)
		c := opsSession(t, pool, reauth.Inverter, "00000000-0000-4000-8000-00000000000c")
		_, err = pool.Exec(ctx, `UPDATE auth_session SET created_at = now() - interval '2 days' WHERE id = $1`, c)
		require.NoError(t, err)
		d := opsSession(t, pool, reauth.Wallbox, "00000000-0000-4000-8000-00000000000d")
		_, err = pool.Exec(ctx, `UPDATE auth_session SET state = 'completed_elsewhere', finished_at = now() WHERE id = $1`, d)
		require.NoError(t, err)

		since := time.Now().Add(-24 * time.Hour)
		got, err := store.Funnel(ctx, pool, since, false)
		require.NoError(t, err)
		// The requests name no org; the sessions' devices are opsOrg's.
		require.Equal(t, []store.FunnelRow{
			{OrgID: "", DeviceKind: "inverter", FunnelCounts: store.FunnelCounts{Requested: 3}},
			{OrgID: "", DeviceKind: "wallbox", FunnelCounts: store.FunnelCounts{Requested: 1}},
			{OrgID: opsOrg, DeviceKind: "inverter", FunnelCounts: store.FunnelCounts{LinkCreated: 2, Sent: 1, Opened: 1, Completed: 1, Verified: 1}},
			{OrgID: opsOrg, DeviceKind: "wallbox", FunnelCounts: store.FunnelCounts{LinkCreated: 1, Completed: 1, CompletedElsewhere: 1, Verified: 1}},
		}, got)

		// By day: the same counts, split by UTC day.
		days, err := store.Funnel(ctx, pool, since, true)
		require.NoError(t, err)
		var total, want store.FunnelCounts
		for _, r := range days {
			require.NotNil(t, r.Day)
			require.Equal(t, r.Day.UTC().Truncate(24*time.Hour), r.Day.UTC(), "a UTC day")
			require.False(t, r.Day.Before(since.Add(-24*time.Hour)))
			total.Add(r.FunnelCounts)
		}
		for _, r := range got {
			want.Add(r.FunnelCounts)
		}
		require.Equal(t, want, total)
	})
}
