package e2e_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/testdb"
	"github.com/reauth/reauth/internal/worker"
)

// waitJobs polls until no job of kind is unfinished and at least min exist.
func waitJobs(t *testing.T, pool *pgxpool.Pool, kind string, min int) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var all, open int
		require.NoError(t, pool.QueryRow(context.Background(),
			`SELECT count(*), count(*) FILTER (WHERE finalized_at IS NULL) FROM river_job WHERE kind = $1`, kind).Scan(&all, &open))
		if all >= min && open == 0 {
			return all
		}
		require.True(t, time.Now().Before(deadline), "%s: %d jobs, %d unfinished", kind, all, open)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSyncAndSweep: against 5,000 users with 15,000 devices of which about
// 10% lapsed, one sync and one sweep request exactly the lapsed devices,
// once; a second sweep requests nothing; a device fixed at Podero is closed
// by the next sync of its user, once SYNC_INTERVAL has passed.
func TestSyncAndSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	simSrv := httptest.NewUnstartedServer(nil)
	simURL := "http://" + simSrv.Listener.Addr().String()
	simulator := sim.New(sim.Config{Seed: t.Name(), UsersPerOrg: 5000, DevicesPerKind: 1, Healthy: 0.9, BaseURL: simURL})
	simSrv.Config.Handler = simulator
	simSrv.Start()
	t.Cleanup(simSrv.Close)
	st := simulator.State()
	org := st.Orgs[0].ID
	lapsed := map[string]bool{}
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			if !d.IsAuthenticated {
				lapsed[d.ID] = true
			}
		}
	}
	require.InDelta(t, 1500, len(lapsed), 150, "about 10% of 15,000 lapsed")

	mails, err := mailcatch.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { mails.Close() })
	pc, err := podero.New(podero.Config{BaseURL: simURL, ClientID: "sim-client", ClientSecret: "sim-secret",
		LinkHosts: []string{sim.DefaultConnectURL(simURL)}})
	require.NoError(t, err)
	renderer, err := notify.NewRenderer("")
	require.NoError(t, err)
	email, err := notify.NewEmail(notify.EmailConfig{URL: mails.URL(), From: "reauth@example.test"}, renderer)
	require.NoError(t, err)
	signer, err := link.NewSigner(bytes.Repeat([]byte("k"), 32))
	require.NoError(t, err)
	rc, err := worker.NewClient(worker.Config{
		Pool: pool, Podero: pc, Email: email, Links: signer, PublicBaseURL: "http://reauth.test",
		LinkTTL: time.Hour, PoderoWorkers: 20, NotifyWorkers: 20, JobTimeout: time.Minute, RescueAfter: 5 * time.Minute,
		OrgIDs: []string{org}, MaintenanceWorkers: 30, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SyncTick: 100 * time.Millisecond, // no schedule: `reauth sync --now`'s dispatcher, ticking fast
	})
	require.NoError(t, err)
	require.NoError(t, rc.Start(ctx))
	t.Cleanup(func() { _ = rc.Stop(context.Background()) })

	// One sync, then one sweep.
	_, err = rc.Insert(ctx, reauth.SyncArgs{}, nil)
	require.NoError(t, err)
	waitJobs(t, pool, "reauth_sync", 1)
	require.Equal(t, 5000, waitJobs(t, pool, "reauth_sync_user", 5000))
	var devices, needing int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE needs_reauth) FROM device`).Scan(&devices, &needing))
	require.Equal(t, 15000, devices)
	require.Equal(t, len(lapsed), needing)

	_, err = rc.Insert(ctx, reauth.SweepArgs{}, nil)
	require.NoError(t, err)
	waitJobs(t, pool, "reauth_sweep", 1)
	rows, err := pool.Query(ctx, `SELECT args ->> 'device_id' FROM river_job WHERE kind = 'reauth_device'`)
	require.NoError(t, err)
	requested := map[string]int{}
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		requested[id]++
	}
	require.NoError(t, rows.Err())
	require.Len(t, requested, len(lapsed), "exactly the lapsed devices")
	for id, n := range requested {
		require.True(t, lapsed[id], "requested a healthy device %s", id)
		require.Equal(t, 1, n, "requested %s once", id)
	}

	// A second sweep right after enqueues nothing.
	res, err := rc.Insert(ctx, reauth.SweepArgs{}, nil)
	require.NoError(t, err)
	require.False(t, res.UniqueSkippedAsDuplicate)
	waitJobs(t, pool, "reauth_sweep", 2)
	var total int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reauth_device'`).Scan(&total))
	require.Equal(t, len(lapsed), total)

	// The user fixes one device at Podero (without our link); the next sync
	// closes its session as completed elsewhere.
	waitJobs(t, pool, "reauth_device", len(lapsed))
	var sessionID int64
	var authURL, deviceID string
	require.NoError(t, pool.QueryRow(ctx, `SELECT id, authentication_url, device_id FROM auth_session WHERE state = 'open' LIMIT 1`).Scan(&sessionID, &authURL, &deviceID))
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	u.RawQuery = "result=success"
	noFollow := sim.LocalhostClient() // the link is on the simulator's connect.localhost host
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(u.String())
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)

	// Its user's last sync is older than SYNC_INTERVAL now (as is
	// everyone's), so the next sync lists its devices again.
	_, err = pool.Exec(ctx, `UPDATE sync_user SET synced_at = synced_at - interval '1 day'`)
	require.NoError(t, err)
	_, err = rc.Insert(ctx, reauth.SyncArgs{}, nil)
	require.NoError(t, err)
	waitJobs(t, pool, "reauth_sync", 2)
	require.Equal(t, 10000, waitJobs(t, pool, "reauth_sync_user", 10000))
	var state string
	deadline := time.Now().Add(time.Minute)
	for {
		require.NoError(t, pool.QueryRow(ctx, `SELECT state FROM auth_session WHERE id = $1`, sessionID).Scan(&state))
		if state == "completed_elsewhere" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, "completed_elsewhere", state)
	var needs bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT needs_reauth FROM device WHERE id = $1`, deviceID).Scan(&needs))
	require.False(t, needs)
}
