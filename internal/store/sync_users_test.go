package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/testdb"
)

const listOrg = "0a000000-0000-4000-8000-0000000000aa"

func listedUserID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func count(n int) *int { return &n }

// list records one complete listing of users on its own connection.
func list(t *testing.T, pool *pgxpool.Pool, users []ListedUser) ListingResult {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	l, err := BeginUserListing(ctx, conn, listOrg)
	require.NoError(t, err)
	defer l.Close(ctx)
	for start := 0; start < len(users); start += 1000 {
		require.NoError(t, l.Add(ctx, users[start:min(start+1000, len(users))]))
	}
	res, err := l.Finish(ctx)
	require.NoError(t, err)
	return res
}

func TestUserListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	users := []ListedUser{
		{UserID: listedUserID(1), Email: "a@example.com", NumInverters: count(1), NumElectricVehicles: count(0), NumWallboxes: count(0)},
		{UserID: listedUserID(2), Email: "b@example.com", ExternalUserID: "crm-2"}, // counts unknown
		{UserID: listedUserID(3), NumInverters: count(0), NumElectricVehicles: count(0), NumWallboxes: count(0)},
		{UserID: listedUserID(1), Email: "a@example.com", NumInverters: count(1), NumElectricVehicles: count(0), NumWallboxes: count(0)}, // listed twice
	}
	res := list(t, pool, users)
	require.Equal(t, int64(3), res.Changed)
	require.Zero(t, res.UsersGone)

	var kinds []int
	rows, err := pool.Query(ctx, `SELECT sync_kinds FROM sync_user ORDER BY user_id`)
	require.NoError(t, err)
	for rows.Next() {
		var k int
		require.NoError(t, rows.Scan(&k))
		kinds = append(kinds, k)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int{1, 3, 0}, kinds, "one kind, unknown counts list every kind, none")

	// The same list again writes nothing.
	var xmin string
	require.NoError(t, pool.QueryRow(ctx, `SELECT string_agg(xmin::text, ',' ORDER BY user_id) FROM sync_user`).Scan(&xmin))
	res = list(t, pool, users)
	require.Zero(t, res.Changed)
	var xmin2 string
	require.NoError(t, pool.QueryRow(ctx, `SELECT string_agg(xmin::text, ',' ORDER BY user_id) FROM sync_user`).Scan(&xmin2))
	require.Equal(t, xmin, xmin2, "no row rewritten")

	// User 2's devices, one of each kind, and user 1's inverter.
	for i, k := range reauth.DeviceKinds {
		_, err := RecordSyncedDevice(ctx, pool, SyncedDevice{Kind: k, ID: fmt.Sprintf("d0000000-0000-4000-8000-%012d", i), OrgID: listOrg, UserID: listedUserID(2)})
		require.NoError(t, err)
	}
	_, err = RecordSyncedDevice(ctx, pool, SyncedDevice{Kind: reauth.Inverter, ID: "d1000000-0000-4000-8000-000000000001", OrgID: listOrg, UserID: listedUserID(1)})
	require.NoError(t, err)
	require.NoError(t, MarkUserSynced(ctx, pool, listOrg, listedUserID(2)))

	// User 2 now has no wallbox (count 0), user 1 left; user 4 joined.
	users = []ListedUser{
		{UserID: listedUserID(2), Email: "b@example.com", ExternalUserID: "crm-2", NumWallboxes: count(0)},
		users[2],
		{UserID: listedUserID(4), NumWallboxes: count(2)},
	}
	res = list(t, pool, users)
	require.Equal(t, int64(2), res.Changed, "user 2 changed, user 4 new")
	require.Equal(t, int64(1), res.UsersGone)
	require.Equal(t, int64(2), res.DevicesGone, "user 2's wallbox, user 1's inverter")
	var gone []string
	rows, err = pool.Query(ctx, `SELECT kind || '/' || right(user_id::text, 1) FROM device WHERE gone_at IS NOT NULL ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var g string
		require.NoError(t, rows.Scan(&g))
		gone = append(gone, g)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"inverter/1", "wallbox/2"}, gone)
	var synced *time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT synced_at FROM sync_user WHERE user_id = $1`, listedUserID(2)).Scan(&synced))
	require.NotNil(t, synced, "a changed user keeps its last sync")

	// User 1 is back.
	res = list(t, pool, append(users, ListedUser{UserID: listedUserID(1)}))
	require.Equal(t, int64(1), res.Changed)
	require.Equal(t, 0, countRows(t, pool, `SELECT count(*) FROM sync_user WHERE gone_at IS NOT NULL`))

	// An empty list is not taken to mean everyone left.
	res = list(t, pool, nil)
	require.True(t, res.EmptyIgnored)
	require.Equal(t, 0, countRows(t, pool, `SELECT count(*) FROM sync_user WHERE gone_at IS NOT NULL`))

	st, err := GetSyncStatus(ctx, pool, []string{listOrg}, time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(4), st.Users)
	require.Equal(t, int64(3), st.UsersWithDevices)
	require.Equal(t, int64(2+3+3), st.PassCalls, "user 2: two kinds (no wallbox); 4 and 1: every kind (unknown counts)")
	require.Equal(t, int64(2), st.Due, "1 and 4, never synced")
	require.False(t, st.ListedAt.IsZero())
}

func countRows(t *testing.T, pool *pgxpool.Pool, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), q, args...).Scan(&n))
	return n
}

// TestPickDueSyncUsers: the users due are picked oldest sync first (never
// synced first of all), as many as the calls serve less the pending ones,
// never a pending one again, never one without devices; a finished job's
// user is free again.
func TestPickDueSyncUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	var users []ListedUser
	for i := 1; i <= 10; i++ {
		u := ListedUser{UserID: listedUserID(i), NumInverters: count(1), NumElectricVehicles: count(i % 2), NumWallboxes: count(0)}
		if i == 10 {
			u.NumInverters = count(0) // no devices
		}
		users = append(users, u)
	}
	list(t, pool, users)
	// Users 1 to 3 were synced, 3 longest ago; 4 just now.
	for i, ago := range map[int]string{1: "2 hours", 2: "3 hours", 3: "4 hours", 4: "1 minute"} {
		_, err := pool.Exec(ctx, `UPDATE sync_user SET synced_at = now() - $2::interval WHERE user_id = $1`, listedUserID(i), ago)
		require.NoError(t, err)
	}
	orgs := []string{listOrg}
	pick := func(calls int) ([]string, int) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		due, pending, err := PickDueSyncUsers(ctx, tx, orgs, time.Hour, calls)
		require.NoError(t, err)
		var ids []string
		jobs := make([]int64, len(due))
		for i, u := range due {
			ids = append(ids, u.UserID[len(u.UserID)-2:])
			require.NotEmpty(t, u.Kinds)
			// A stand-in for the user's reauth_sync_user job.
			require.NoError(t, tx.QueryRow(ctx, `INSERT INTO river_job (args, kind, queue) VALUES ('{}', 'reauth_sync_user', 'maintenance')
				RETURNING id`).Scan(&jobs[i]))
		}
		require.NoError(t, MarkSyncQueued(ctx, tx, due, jobs))
		require.NoError(t, tx.Commit(ctx))
		return ids, pending
	}
	// Never synced first (5 to 9, by id), then 3, 2, 1 (oldest sync
	// first); odd users cost two calls, even ones one, user 10 none (never
	// picked), and 4 was synced within the interval. 8 calls: 5 to 9.
	ids, pending := pick(8)
	require.Equal(t, []string{"05", "06", "07", "08", "09"}, ids)
	require.Zero(t, pending)
	// Their jobs are pending: nothing more fits, and nobody is picked twice.
	ids, pending = pick(8)
	require.Empty(t, ids)
	require.Equal(t, 8, pending)
	// 5 and 6 are synced; 7's job was cancelled without a sync: 7 is due
	// again, first; 8 and 9 still pending (3 calls).
	require.NoError(t, MarkUserSynced(ctx, pool, listOrg, listedUserID(5)))
	require.NoError(t, MarkUserSynced(ctx, pool, listOrg, listedUserID(6)))
	var queued int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT queued_job FROM sync_user WHERE user_id = $1`, listedUserID(7)).Scan(&queued))
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	_, err = rc.JobCancel(ctx, queued)
	require.NoError(t, err)
	ids, pending = pick(7)
	require.Equal(t, 3, pending)
	require.Equal(t, []string{"07", "03"}, ids, "7 (never synced), then 3 (4 h ago) fit the 4 calls left")
	ids, _ = pick(100)
	require.Equal(t, []string{"02", "01"}, ids)
	due, err := SyncUsersDue(ctx, pool, orgs, time.Hour)
	require.NoError(t, err)
	require.False(t, due)
}

// TestUserListingScale: listing SYNC_SCALE_USERS (100,000) users the first
// time, and again unchanged, at the database.
func TestUserListingScale(t *testing.T) {
	t.Parallel()
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("SYNC_SCALE_USERS")); err == nil && v > 0 {
		n = v
	}
	if testing.Short() {
		n = 10_000
	}
	pool := testdb.New(t)
	users := make([]ListedUser, n)
	for i := range users {
		users[i] = ListedUser{UserID: listedUserID(i), Email: fmt.Sprintf("user%d@example.test", i),
			NumInverters: count(i % 2), NumElectricVehicles: count(i % 3 / 2), NumWallboxes: count(0)}
	}
	start := time.Now()
	res := list(t, pool, users)
	first := time.Since(start)
	require.Equal(t, int64(n), res.Changed)
	start = time.Now()
	res = list(t, pool, users)
	again := time.Since(start)
	require.Zero(t, res.Changed)
	t.Logf("%d users: first listing recorded in %s, unchanged again in %s", n, first.Round(time.Millisecond), again.Round(time.Millisecond))
}
