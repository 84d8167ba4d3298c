package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/ops"
)

// TestOpsStatsSync: `reauth stats` shows the device sync's users, the
// device calls a pass takes, its lag and how long a pass takes at the
// sync's share of the rate.
func TestOpsStatsSync(t *testing.T) {
	t.Parallel()
	f := newOpsFixture(t)
	// Synced two hours ago, two kinds; never synced, counts unknown (three
	// kinds); no devices.
	_, err := f.pool.Exec(context.Background(), `
		INSERT INTO sync_user (org_id, user_id, num_inverters, num_electric_vehicles, num_wallboxes, created_at, synced_at) VALUES
			($1, '0c000000-0000-4000-8000-000000000001', 1, 2, 0, now() - interval '3 hours', now() - interval '2 hours'),
			($1, '0c000000-0000-4000-8000-000000000002', NULL, NULL, NULL, now() - interval '30 minutes', NULL),
			($1, '0c000000-0000-4000-8000-000000000003', 0, 0, 0, now() - interval '3 hours', NULL)`, opsOrgA)
	require.NoError(t, err)

	var s ops.Stats
	opsJSON(t, f.url, &s, "stats")
	require.EqualValues(t, 3, s.Sync.Users)
	require.EqualValues(t, 2, s.Sync.UsersWithDevices)
	require.EqualValues(t, 5, s.Sync.PassCalls)
	require.EqualValues(t, 1, s.Sync.Due)
	require.InDelta(t, 7200, s.Sync.LagSeconds, 60, "the oldest sync, two hours ago")
	require.NotNil(t, s.Sync.PassSeconds)
	require.InDelta(t, 1, *s.Sync.PassSeconds, 0.01, "5 calls at 0.5 × 10 calls/s")
	require.Nil(t, s.Sync.CurrentPassSeconds, "no sync calls in the last 10 minutes")
	require.Equal(t, "6h0m0s", s.Sync.Interval)

	out, _, err := opsRun(t, f.url, "stats")
	require.NoError(t, err)
	require.Contains(t, out, "device sync (SYNC_INTERVAL 6h0m0s):\n  users listed: 3 (2 with devices), 5 device calls a pass; 1 due, 0 queued\n")
	require.Regexp(t, `(?m)^  lag: 2h0m\d+s \(oldest sync .+\)$`, out)
	require.Contains(t, out, "  a full pass: 1s at SYNC_RATE_SHARE of PODERO_RATE_LIMIT; no sync calls in the last 10 minutes\n")
}
