package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// TestEnqueueCommandOptions: `reauth enqueue` (one device or a CSV) gives
// every job MAX_ATTEMPTS, takes external_user_id for user_id, and answers a
// repeat within REAUTH_REPEAT_COOLDOWN as a duplicate unless -force.
func TestEnqueueCommandOptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	const org, user = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	enqueue := func(args ...string) (reauth.Result, string, error) {
		var out, errOut bytes.Buffer
		env := map[string]string{"DATABASE_URL": url, "MAX_ATTEMPTS": "9"}
		err := run(ctx, append([]string{"enqueue"}, args...), func(k string) string { return env[k] }, &out, &errOut)
		var res reauth.Result
		if err == nil && bytes.HasPrefix(out.Bytes(), []byte("{")) {
			require.NoError(t, json.Unmarshal(out.Bytes(), &res))
		}
		return res, out.String() + errOut.String(), err
	}
	attempts := func(id int64) (n int, ext, userID string) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT max_attempts, coalesce(args->>'external_user_id', ''), coalesce(args->>'user_id', '')
			FROM river_job WHERE id = $1`, id).Scan(&n, &ext, &userID))
		return n, ext, userID
	}

	t.Run("ExternalUserAndAttempts", func(t *testing.T) {
		res, out, err := enqueue("-org", org, "-external-user", "crm-17", "-kind", "inverter", "-device", "a2314723-06cc-4c2e-8819-118905579c7a", "-json")
		require.NoError(t, err, out)
		n, ext, userID := attempts(res.JobID)
		require.Equal(t, 9, n, "MAX_ATTEMPTS")
		require.Equal(t, "crm-17", ext)
		require.Empty(t, userID)
	})

	t.Run("CSV", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "r.csv")
		require.NoError(t, os.WriteFile(path, []byte("org_id,external_user_id,user_id,device_kind,device_id\n"+
			org+",crm-18,,wallbox,b2314723-06cc-4c2e-8819-118905579c7a\n"+
			org+",,"+user+",wallbox,c2314723-06cc-4c2e-8819-118905579c7a\n"+
			org+",crm-19,"+user+",wallbox,d2314723-06cc-4c2e-8819-118905579c7a\n"), 0o600))
		_, out, err := enqueue("-csv", path)
		require.ErrorIs(t, err, errRejectedRows)
		require.Contains(t, out, "enqueued 2, duplicates 0, rejected 1")
		require.Contains(t, out, "row 4: give user_id or external_user_id, not both")
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT id FROM river_job WHERE args->>'device_id' = 'b2314723-06cc-4c2e-8819-118905579c7a'`).Scan(&id))
		n, ext, _ := attempts(id)
		require.Equal(t, 9, n, "MAX_ATTEMPTS for CSV rows")
		require.Equal(t, "crm-18", ext)
	})

	t.Run("RepeatIsDuplicateUnlessForced", func(t *testing.T) {
		dev := "e2314723-06cc-4c2e-8819-118905579c7a"
		require.NoError(t, store.UpsertDevice(ctx, pool, reauth.Inverter, dev, org, user))
		sid, err := store.CreateSession(ctx, pool, store.NewSession{
			DeviceKind: reauth.Inverter, DeviceID: dev, PoderoSessionID: "5e000000-0000-4000-8000-000000000001",
			AuthenticationURL: "https://connect.podero.com/?s=1", LinkNonce: []byte{1}, LinkHash: []byte{1, 1}, Locale: "en",
			JobID: 4711, ExpiresAt: time.Now().Add(time.Hour),
		})
		require.NoError(t, err)
		_, err = store.FinishSession(ctx, pool, sid, store.SessionCompleted, []string{store.SessionOpen})
		require.NoError(t, err)

		args := []string{"-org", org, "-user", user, "-kind", "inverter", "-device", dev}
		_, out, err := enqueue(args...)
		require.NoError(t, err, out)
		require.Contains(t, out, "duplicate: the device completed session")
		res, out, err := enqueue(append(args, "-json")...)
		require.NoError(t, err, out)
		require.Equal(t, reauth.Result{JobID: 4711, Duplicate: true, SessionID: sid}, res)

		res, out, err = enqueue(append(args, "-force", "-json")...)
		require.NoError(t, err, out)
		require.False(t, res.Duplicate)
		var force bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT (args->>'force')::bool FROM river_job WHERE id = $1`, res.JobID).Scan(&force))
		require.True(t, force)
	})
}
