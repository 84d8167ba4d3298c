package worker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// TestSweepScale: a sweep over a million devices (SWEEP_SCALE_DEVICES), 5%
// lapsed, requests every lapsed one with a bounded heap, and its query walks
// the partial index rather than scanning devices.
func TestSweepScale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("SWEEP_SCALE_DEVICES")); err == nil && v > 0 {
		n = v
	}
	pool := testdb.New(t)
	start := time.Now()
	_, err := pool.Exec(ctx, `
		INSERT INTO device (kind, id, org_id, user_id, is_authenticated, synced_at)
		SELECT (ARRAY['inverter', 'electric_vehicle', 'wallbox'])[1 + i % 3], gen_random_uuid(),
		       '6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f', gen_random_uuid(), i % 20 <> 0, now()
		FROM generate_series(1, $1) AS i`, n)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "ANALYZE device")
	require.NoError(t, err)
	var lapsed int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM device WHERE needs_reauth").Scan(&lapsed))
	require.Equal(t, n/20, lapsed)
	t.Logf("generated %d devices (%d lapsed) in %s", n, lapsed, time.Since(start).Round(time.Millisecond))

	// The page query walks device_needs_reauth, wherever the page starts.
	var plan strings.Builder
	rows, err := pool.Query(ctx, "EXPLAIN "+store.SweepPageSQL, "electric_vehicle", "80000000-0000-0000-0000-000000000000", 3600.0, 3, 1000)
	require.NoError(t, err)
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan.WriteString(line + "\n")
	}
	require.NoError(t, rows.Err())
	require.Contains(t, plan.String(), "device_needs_reauth", plan.String())
	require.NotContains(t, plan.String(), "Seq Scan on device", plan.String())

	// Sweep, sampling the heap throughout.
	w := &SweepWorker{cfg: Config{Pool: pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	tw := rivertest.NewWorker(t, riverpgxv5.New(pool), &river.Config{}, w)
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	start = time.Now()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tw.Work(ctx, t, tx, reauth.SweepArgs{}, nil)
	took := time.Since(start)
	close(done)
	<-sampled
	require.NoError(t, err)

	var requested int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(DISTINCT args ->> 'device_id') FROM river_job WHERE kind = 'reauth_device'").Scan(&requested))
	require.Equal(t, lapsed, requested, "every lapsed device requested once")
	t.Logf("swept %d devices (%d requested) in %s, peak heap %.1f MB", n, requested, took.Round(time.Millisecond), float64(peak.Load())/(1<<20))
	require.Less(t, peak.Load(), uint64(150<<20), "peak heap")
}
