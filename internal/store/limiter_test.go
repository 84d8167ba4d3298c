package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

func TestReservePoderoCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("BurstThenSpaced", func(t *testing.T) {
		t.Parallel()
		pool := testdb.New(t)
		// A long interval, so the time the calls themselves take is negligible.
		interval := 10 * time.Second
		var waits []time.Duration
		for range 6 {
			w, ok, err := store.ReservePoderoCall(ctx, pool, store.Reservation{Interval: interval, Burst: 3, MaxWait: time.Hour})
			require.NoError(t, err)
			require.True(t, ok)
			waits = append(waits, w)
		}
		// The first three go at once; each later one an interval after the one before.
		for i := 0; i < 3; i++ {
			require.Zero(t, waits[i], "call %d", i)
		}
		for i := 3; i < 6; i++ {
			want := time.Duration(i-2) * interval
			require.InDelta(t, want.Seconds(), waits[i].Seconds(), 1, "call %d", i)
		}
	})

	t.Run("TooLongAWaitReservesNothing", func(t *testing.T) {
		t.Parallel()
		pool := testdb.New(t)
		for range 2 {
			_, ok, err := store.ReservePoderoCall(ctx, pool, store.Reservation{Interval: 10 * time.Second, Burst: 1, MaxWait: 15 * time.Second})
			require.NoError(t, err)
			require.True(t, ok)
		}
		w, ok, err := store.ReservePoderoCall(ctx, pool, store.Reservation{Interval: 10 * time.Second, Burst: 1, MaxWait: 15 * time.Second})
		require.NoError(t, err)
		require.False(t, ok)
		require.InDelta(t, 20.0, w.Seconds(), 1)
		// Declining did not move the timeline: the same answer again.
		w2, ok, err := store.ReservePoderoCall(ctx, pool, store.Reservation{Interval: 10 * time.Second, Burst: 1, MaxWait: 15 * time.Second})
		require.NoError(t, err)
		require.False(t, ok)
		require.InDelta(t, w.Seconds(), w2.Seconds(), 1)
	})

	t.Run("HoldDelaysEveryone", func(t *testing.T) {
		t.Parallel()
		pool := testdb.New(t)
		until, err := store.PoderoHold(ctx, pool)
		require.NoError(t, err)
		require.True(t, until.IsZero())

		require.NoError(t, store.HoldPoderoCalls(ctx, pool, 30*time.Second))
		require.NoError(t, store.HoldPoderoCalls(ctx, pool, time.Second)) // a shorter hold does not shorten it
		until, err = store.PoderoHold(ctx, pool)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now().Add(30*time.Second), until, 2*time.Second)

		w, ok, err := store.ReservePoderoCall(ctx, pool, store.Reservation{Interval: 10 * time.Millisecond, Burst: 5, MaxWait: time.Minute})
		require.NoError(t, err)
		require.True(t, ok)
		require.InDelta(t, 30.0, w.Seconds(), 2)
	})
}

// TestPoderoHoldLeft: with no limit only a hold counts: none at first (the
// row starts at -infinity), then what HoldPoderoCalls set.
func TestPoderoHoldLeft(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	left, err := store.PoderoHoldLeft(ctx, pool)
	require.NoError(t, err)
	require.Zero(t, left)
	require.NoError(t, store.HoldPoderoCalls(ctx, pool, 30*time.Second))
	left, err = store.PoderoHoldLeft(ctx, pool)
	require.NoError(t, err)
	require.InDelta(t, 30, left.Seconds(), 1)
}

// TestDeviceGoneClosesSession: whichever path marks a device gone, its
// open session closes as device_gone.
func TestDeviceGoneClosesSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	const dev, org, user = "a2314723-06cc-4c2e-8819-118905579c7a", "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	require.NoError(t, store.UpsertDevice(ctx, pool, reauth.Inverter, dev, org, user))
	id, err := store.CreateSession(ctx, pool, store.NewSession{DeviceKind: reauth.Inverter, DeviceID: dev,
		PoderoSessionID: "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", AuthenticationURL: "https://app.podero.com/x",
		LinkNonce: []byte("n"), LinkHash: []byte("h"), Locale: "en", ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.NoError(t, store.MarkDeviceGone(ctx, pool, reauth.Inverter, dev, org, user))
	s, err := store.GetSession(ctx, pool, id)
	require.NoError(t, err)
	require.Equal(t, store.SessionDeviceGone, s.State)
	require.NotNil(t, s.FinishedAt)
}

// TestReserveSyncShare: while requests wait, sync calls keep to their share
// of the rate; with no request waiting they may use all of it.
func TestReserveSyncShare(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	syncCall := store.Reservation{Interval: 10 * time.Millisecond, Burst: 1, MaxWait: time.Hour, Sync: true, SyncInterval: time.Second}
	// Idle: sync calls go at the full rate.
	var last time.Duration
	for range 5 {
		w, ok, err := store.ReservePoderoCall(ctx, pool, syncCall)
		require.NoError(t, err)
		require.True(t, ok)
		last = w
	}
	require.Less(t, last, 100*time.Millisecond, "no request waits: the whole rate")

	// A request that had to wait marks the limiter busy.
	w, ok, err := store.ReservePoderoCall(ctx, pool, store.Reservation{Interval: 10 * time.Millisecond, Burst: 1, MaxWait: time.Hour})
	require.NoError(t, err)
	require.True(t, ok)
	require.Positive(t, w)
	// The sync's last call was just now: its share is due a second later.
	due, ok, err := store.ReservePoderoCall(ctx, pool, syncCall)
	require.NoError(t, err)
	require.False(t, ok, "busy: the share is not due yet")
	require.InDelta(t, 1.0, due.Seconds(), 0.1)
	time.Sleep(due)
	_, ok, err = store.ReservePoderoCall(ctx, pool, store.Reservation{Interval: time.Second, Burst: 1, MaxWait: time.Hour})
	require.NoError(t, err)
	require.True(t, ok, "a request waits again: still busy")
	_, ok, err = store.ReservePoderoCall(ctx, pool, syncCall)
	require.NoError(t, err)
	require.True(t, ok, "the share is due")
	next, ok, err := store.ReservePoderoCall(ctx, pool, syncCall)
	require.NoError(t, err)
	require.False(t, ok, "one sync call per SyncInterval while busy")
	require.GreaterOrEqual(t, next.Seconds(), 0.9, "the share keeps its interval after the global slot")
}

// TestBudget: reserved calls count toward their purpose's rate; the
// waiting requests drain at the rate the request purposes get.
func TestBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	b, err := store.GetBudget(ctx, pool)
	require.NoError(t, err)
	require.Empty(t, b.Rates)
	d, ok := b.DrainTime()
	require.True(t, ok)
	require.Zero(t, d)

	for _, p := range []string{"sweep", "sweep", "sweep", "sync", "auth_session"} {
		_, ok, err := store.ReservePoderoCall(ctx, pool, store.Reservation{Interval: time.Millisecond, Burst: 10, MaxWait: time.Hour, Purpose: p})
		require.NoError(t, err)
		require.True(t, ok)
	}
	for i := range 30 {
		_, err := pool.Exec(ctx, `INSERT INTO river_job (kind, queue, args, state, max_attempts, priority)
			VALUES ('reauth_device', 'podero', jsonb_build_object('n', $1::int), 'available', 100, 2)`, i)
		require.NoError(t, err)
	}
	b, err = store.GetBudget(ctx, pool)
	require.NoError(t, err)
	window := store.RateWindow.Seconds()
	require.InDelta(t, 3/window, b.Rates["sweep"], 0.001)
	require.InDelta(t, 1/window, b.Rates["sync"], 0.001)
	require.InDelta(t, 4/window, b.RequestRate(), 0.001)
	require.EqualValues(t, 30, b.Waiting)
	d, ok = b.DrainTime()
	require.True(t, ok)
	require.InDelta(t, 30/(4/window), d.Seconds(), 5)
}
