package worker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// realisticMix is the share of users with 0, 1, 2 and 3 devices the sync
// tests assume: many users never connect a device, most have one, some a
// solar inverter and an EV, few all three.
var realisticMix = sim.DeviceMix{0.2, 0.55, 0.2, 0.05}

// syncBundle is the sync against the simulator, run step by step: the
// listing, one dispatcher tick, then the queued reauth_sync_user jobs.
type syncBundle struct {
	pool  *pgxpool.Pool
	sim   *sim.Server
	org   string
	users []sim.User
	cfg   Config
	logs  *bytes.Buffer

	mu    sync.Mutex
	lists map[string][]string // user ID → collections listed, in order
}

func newSyncBundle(t *testing.T, users int, mix sim.DeviceMix, cfg Config) *syncBundle {
	t.Helper()
	b := &syncBundle{pool: testdb.New(t), lists: map[string][]string{}, logs: &bytes.Buffer{}}
	srv := httptest.NewUnstartedServer(nil)
	url := "http://" + srv.Listener.Addr().String()
	b.sim = sim.New(sim.Config{Seed: t.Name(), UsersPerOrg: users, DeviceMix: mix, BaseURL: url})
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /api/partners/v2.0/org/{org}/users/{user}/{collection}
		if p := strings.Split(r.URL.Path, "/"); len(p) == 9 && p[6] == "users" {
			b.mu.Lock()
			b.lists[p[7]] = append(b.lists[p[7]], p[8])
			b.mu.Unlock()
		}
		b.sim.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	st := b.sim.State()
	b.org, b.users = st.Orgs[0].ID, st.Orgs[0].Users
	pc, err := podero.New(podero.Config{BaseURL: url, ClientID: "sim-client", ClientSecret: "sim-secret"})
	require.NoError(t, err)
	cfg.Pool, cfg.Podero, cfg.OrgIDs = b.pool, pc, []string{b.org}
	cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: b.logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cfg.SyncSchedule == nil {
		cfg.SyncSchedule = river.PeriodicInterval(time.Hour) // scheduled: the listing inserts no dispatcher
	}
	cfg.JobTimeout = time.Minute
	b.cfg = cfg
	return b
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// list runs one reauth_sync job (the users list).
func (b *syncBundle) list(t *testing.T) {
	t.Helper()
	work(t, b.pool, &SyncWorker{cfg: b.cfg}, reauth.SyncArgs{})
}

// tick runs the dispatcher once and returns how many jobs it inserted.
func (b *syncBundle) tick(t *testing.T) int {
	t.Helper()
	before := b.jobs(t)
	work(t, b.pool, &SyncDispatchWorker{cfg: b.cfg}, reauth.SyncDispatchArgs{})
	return b.jobs(t) - before
}

// tickNow runs the dispatcher once as `reauth sync --now` with no schedule
// runs it (it snoozes while users are due) and returns how many jobs it
// inserted.
func (b *syncBundle) tickNow(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	cfg := b.cfg
	cfg.SyncSchedule = nil
	before := b.jobs(t)
	tw := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{}, &SyncDispatchWorker{cfg: cfg})
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	res, err := tw.Work(ctx, t, tx, reauth.SyncDispatchArgs{}, nil)
	if res == nil || res.EventKind != river.EventKindJobSnoozed {
		require.NoError(t, err)
	}
	require.Contains(t, []river.EventKind{river.EventKindJobCompleted, river.EventKindJobSnoozed}, res.EventKind)
	require.NoError(t, tx.Commit(ctx))
	return b.jobs(t) - before
}

// jobs counts every reauth_sync_user row River has.
func (b *syncBundle) jobs(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'reauth_sync_user'`).Scan(&n))
	return n
}

// queued lists the pending reauth_sync_user jobs, oldest first, at most n.
func (b *syncBundle) queued(t *testing.T, n int) []*rivertype.JobRow {
	t.Helper()
	rc, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	require.NoError(t, err)
	res, err := rc.JobList(context.Background(), river.NewJobListParams().Kinds(reauth.SyncUserArgs{}.Kind()).
		States(rivertype.JobStateAvailable).OrderBy(river.JobListOrderByID, river.SortOrderAsc).First(n))
	require.NoError(t, err)
	return res.Jobs
}

// runQueued works every pending reauth_sync_user job through River's test
// worker, as River would, and returns how many.
func (b *syncBundle) runQueued(t *testing.T) int {
	t.Helper()
	ctx := podero.WithClass(context.Background(), podero.ClassSync)
	jobs := b.queued(t, 10000)
	tw := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{}, &SyncUserWorker{cfg: b.cfg})
	for _, job := range jobs {
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		res, err := tw.WorkJob(ctx, t, tx, job)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.NoError(t, tx.Commit(ctx))
	}
	return len(jobs)
}

// finish completes the n oldest pending reauth_sync_user jobs as their
// worker would, without calling Podero: the user synced, the job completed.
func (b *syncBundle) finish(t *testing.T, n int) {
	t.Helper()
	for _, job := range b.queued(t, n) {
		var a reauth.SyncUserArgs
		require.NoError(t, a.UnmarshalJSON(job.EncodedArgs))
		testdb.SetJobState(t, b.pool, job.ID, rivertype.JobStateCompleted)
		require.NoError(t, store.MarkUserSynced(context.Background(), b.pool, a.OrgID, a.UserID))
	}
}

// kinds is the device kinds user u has at the simulator, as collections.
func kinds(u sim.User) map[string]bool {
	out := map[string]bool{}
	for _, d := range u.Devices {
		out[podero.CollectionPath(d.Kind)] = true
	}
	return out
}

// work runs one job of w's kind through River's test worker.
func work[T river.JobArgs](t *testing.T, pool *pgxpool.Pool, w river.Worker[T], args T) {
	t.Helper()
	ctx := context.Background()
	tw := rivertest.NewWorker(t, riverpgxv5.New(pool), &river.Config{}, w)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	res, err := tw.Work(ctx, t, tx, args, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind, "%s", args.Kind())
	require.NoError(t, tx.Commit(ctx))
}

// TestSyncListsOnlyKindsUsersHave: with a realistic mix of 0 to 3
// devices, a user's sync lists exactly the kinds the users list counts for
// it, once each; a user without devices costs no call and no job; one full
// pass makes about one device-list call per user.
func TestSyncListsOnlyKindsUsersHave(t *testing.T) {
	t.Parallel()
	b := newSyncBundle(t, 400, realisticMix, Config{PoderoRate: 0})
	b.list(t)
	require.Equal(t, 1, b.sim.Counts()[sim.EndpointListUsers])
	require.Zero(t, b.sim.Counts()[sim.EndpointListDevices], "the listing lists no devices")
	for b.tick(t) > 0 {
		b.runQueued(t)
	}

	withDevices, deviceKinds := 0, 0
	for _, u := range b.users {
		want := kinds(u)
		got := b.lists[strings.ToLower(u.ID)]
		require.Len(t, got, len(want), "user %s with %d devices", u.ID, len(u.Devices))
		for _, c := range got {
			require.True(t, want[c], "user %s listed %s, has none", u.ID, c)
		}
		if len(u.Devices) > 0 {
			withDevices++
		}
		deviceKinds += len(want)
	}
	require.Equal(t, withDevices, b.jobs(t), "one job per user with devices, none for the others")
	require.Less(t, withDevices, len(b.users), "the mix has users without devices")
	calls := b.sim.Counts()[sim.EndpointListDevices]
	require.Equal(t, deviceKinds, calls)
	var devices, synced int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE synced_at IS NOT NULL) FROM device`).Scan(&devices, &synced))
	simDevices := 0
	for _, u := range b.users {
		simDevices += len(u.Devices)
	}
	require.Equal(t, simDevices, devices)
	require.Equal(t, devices, synced)
	t.Logf("%d users (%d with devices, %d devices): %d device-list calls a pass, %.2f a user (before: 3 a user); 1 users-list call",
		len(b.users), withDevices, simDevices, calls, float64(calls)/float64(len(b.users)))
}

// TestSyncOncePerInterval: once synced, a user is not synced again within
// SYNC_INTERVAL, whatever the dispatcher and the listing do; after it, it
// is, once.
func TestSyncOncePerInterval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newSyncBundle(t, 50, realisticMix, Config{SyncInterval: time.Hour})
	b.list(t)
	for b.tick(t) > 0 {
		b.runQueued(t)
	}
	calls, jobs := b.sim.Counts()[sim.EndpointListDevices], b.jobs(t)
	require.Positive(t, calls)

	// The scheduler twice more, and a fresh listing between: nothing.
	require.Zero(t, b.tick(t))
	b.list(t)
	require.Zero(t, b.tick(t))
	require.Zero(t, b.runQueued(t))
	require.Equal(t, calls, b.sim.Counts()[sim.EndpointListDevices], "no user synced twice within SYNC_INTERVAL")
	require.Equal(t, jobs, b.jobs(t))

	// An interval later: every user with devices once more.
	_, err := b.pool.Exec(ctx, `UPDATE sync_user SET synced_at = synced_at - interval '1 hour'`)
	require.NoError(t, err)
	for b.tick(t) > 0 {
		b.runQueued(t)
	}
	require.Equal(t, 2*calls, b.sim.Counts()[sim.EndpointListDevices])
	require.Equal(t, 2*jobs, b.jobs(t))
}

// TestSyncDispatchBudget: a tick queues the users due oldest sync first,
// as many as SYNC_RATE_SHARE × PODERO_RATE_LIMIT × the tick serves; a tick
// while they are pending inserts nothing (no duplicate insert, not even one
// River skips), and only what their jobs left of the budget once some ran.
func TestSyncDispatchBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Every user has exactly one device: one call each.
	b := newSyncBundle(t, 300, sim.DeviceMix{0, 1}, Config{
		PoderoRate: 10, SyncShare: 0.5, SyncTick: 15 * time.Second, SyncInterval: time.Hour,
	})
	b.list(t)
	// Every user synced over two hours ago, each a minute before the next.
	_, err := b.pool.Exec(ctx, `UPDATE sync_user SET synced_at = now() - interval '2 hours' - make_interval(mins => n::int)
		FROM (SELECT user_id, row_number() OVER (ORDER BY user_id) AS n FROM sync_user) o WHERE o.user_id = sync_user.user_id`)
	require.NoError(t, err)
	oldest := func(n int) []string {
		rows, err := b.pool.Query(ctx, `SELECT user_id::text FROM sync_user ORDER BY synced_at LIMIT $1`, n)
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return ids
	}
	want := oldest(75)

	// A request waits: 0.5 × 10 calls/s × 15 s = 75 calls, 75 users, the
	// oldest.
	request := testdb.InsertJob(t, b.pool, reauth.DeviceArgs{OrgID: b.org, UserID: b.users[0].ID, DeviceKind: reauth.Inverter,
		DeviceID: "a2314723-06cc-4c2e-8819-118905579c7a"}, nil, testdb.Job{}).ID
	require.Equal(t, 75, b.tick(t))
	rows, err := b.pool.Query(ctx, `SELECT args ->> 'user_id' FROM river_job WHERE kind = 'reauth_sync_user' ORDER BY args ->> 'user_id'`)
	require.NoError(t, err)
	queued, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.ElementsMatch(t, want, queued, "the 75 oldest")

	// Pending: the next tick has no budget left and inserts nothing; River
	// sees no insert at all (a unique conflict would still be one).
	var before, seqBefore int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*), (SELECT last_value FROM river_job_id_seq) FROM river_job`).Scan(&before, &seqBefore))
	require.Zero(t, b.tick(t))
	var after, seqAfter int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*), (SELECT last_value FROM river_job_id_seq) FROM river_job`).Scan(&after, &seqAfter))
	require.Equal(t, before+1, after, "only the dispatcher's own job")
	require.Equal(t, seqBefore+1, seqAfter, "only the dispatcher's own job was inserted")

	// 25 of them done: 25 more queued.
	b.finish(t, 25)
	require.Equal(t, 25, b.tick(t))

	// A share of 0.2: 30 calls a tick.
	b.cfg.SyncShare = 0.2
	b.finish(t, 1000)
	require.Equal(t, 30, b.tick(t))

	// No request waits: the whole rate, 150 calls a tick, of the 170 users
	// left.
	b.finish(t, 1000)
	testdb.SetJobState(t, b.pool, request, rivertype.JobStateCompleted)
	require.Equal(t, 150, b.tick(t))
	b.finish(t, 1000)
	require.Equal(t, 20, b.tick(t))
	b.finish(t, 1000)
	require.Zero(t, b.tick(t), "all 300 synced once")
	require.Equal(t, 300, b.jobs(t))
}

// TestSyncDispatchFullRateWhenIdle: with no request waiting, a tick takes
// the whole rate for users overdue (not spread: they catch up), and so
// does `reauth sync --now`'s dispatcher for every user due.
func TestSyncDispatchFullRateWhenIdle(t *testing.T) {
	t.Parallel()
	b := newSyncBundle(t, 200, sim.DeviceMix{0, 1}, Config{PoderoRate: 10, SyncShare: 0.5, SyncTick: 15 * time.Second})
	b.list(t)
	// Synced over two intervals (6 h) ago: overdue.
	_, err := b.pool.Exec(context.Background(), `UPDATE sync_user SET synced_at = now() - interval '13 hours'`)
	require.NoError(t, err)
	require.Equal(t, 150, b.tick(t), "10 calls/s × 15 s")

	// `reauth sync --now` (no schedule): the first pass at the whole rate,
	// not spread.
	now := newSyncBundle(t, 200, sim.DeviceMix{0, 1}, Config{PoderoRate: 10, SyncShare: 0.5, SyncTick: 15 * time.Second})
	now.list(t)
	require.Equal(t, 150, now.tickNow(t), "10 calls/s × 15 s")
	require.Zero(t, now.tickNow(t), "pending")
	now.finish(t, 1000)
	require.Equal(t, 50, now.tickNow(t), "the rest")
}

// TestSyncTickQuota: a tick's share of a full pass is ceil(pass calls ×
// tick / interval).
func TestSyncTickQuota(t *testing.T) {
	t.Parallel()
	// 100,000 users of 0.944 kinds each (the realistic mix's figure at the
	// benchmark) at the defaults, SYNC_INTERVAL 6 h and a 15 s tick: 94,400
	// calls a pass, 66 a tick (4.4 calls/s), where the rate's cap at
	// PODERO_RATE_LIMIT 10 is 150 a tick (75 while requests wait); before,
	// a pass took all 150 a tick, 2.6 h at 10 calls/s, then idled.
	require.Equal(t, 66, store.SyncTickQuota(94_400, SyncTickDefault, SyncIntervalDefault))
	require.Equal(t, 150, Config{PoderoRate: 10}.syncCallsPerTick(false))
	require.Equal(t, 75, Config{PoderoRate: 10}.syncCallsPerTick(true))
	require.Equal(t, 12, store.SyncTickQuota(700, time.Minute, time.Hour), "11.67, up")
	require.Equal(t, 1, store.SyncTickQuota(1, time.Second, time.Hour))
	require.Zero(t, store.SyncTickQuota(0, time.Minute, time.Hour))
}

// TestSyncDispatchSpread: a scheduled dispatcher spreads the users due over
// SYNC_INTERVAL: a tick queues ceil(pass calls × tick / interval) calls'
// worth, oldest first, the first pass (nobody synced yet) too, less what is
// pending, within the rate's cap; users overdue (last synced more than two
// intervals ago) go first, at the whole cap.
func TestSyncDispatchSpread(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// 700 users with one device each: 700 calls a pass. A 1 min tick of a
	// 1 h interval: ceil(700 × 60 / 3600) = 12 a tick; the rate's cap is
	// 600 (10 calls/s × 60 s, nothing waiting).
	b := newSyncBundle(t, 700, sim.DeviceMix{0, 1}, Config{
		PoderoRate: 10, SyncShare: 0.5, SyncTick: time.Minute, SyncInterval: time.Hour,
	})
	b.list(t)
	oldest := func(n int) []string {
		rows, err := b.pool.Query(ctx, `SELECT user_id::text FROM sync_user WHERE queued_job IS NULL
			ORDER BY synced_at NULLS FIRST, created_at, user_id LIMIT $1`, n)
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return ids
	}
	queued := func() []string {
		var ids []string
		for _, j := range b.queued(t, 10000) {
			var a reauth.SyncUserArgs
			require.NoError(t, a.UnmarshalJSON(j.EncodedArgs))
			ids = append(ids, a.UserID)
		}
		return ids
	}

	// The first pass is spread: 12 a tick, not 600.
	want := oldest(12)
	require.Equal(t, 12, b.tick(t))
	require.ElementsMatch(t, want, queued(), "the first 12 listed")
	require.Zero(t, b.tick(t), "pending: the tick's quota is taken")
	b.finish(t, 6)
	require.Equal(t, 6, b.tick(t), "what the pending jobs leave of it")
	b.finish(t, 1000)
	require.Equal(t, 12, b.tick(t))
	b.finish(t, 1000)

	// Steady state: everyone synced between one and two intervals ago
	// (due, not overdue), 5 s apart: still 12 a tick, the oldest.
	_, err := b.pool.Exec(ctx, `UPDATE sync_user SET synced_at = now() - interval '1 hour' - make_interval(secs => 5 * n::int)
		FROM (SELECT user_id, row_number() OVER (ORDER BY user_id) AS n FROM sync_user) o WHERE o.user_id = sync_user.user_id`)
	require.NoError(t, err)
	want = oldest(12)
	require.Equal(t, 12, b.tick(t))
	require.ElementsMatch(t, want, queued(), "oldest sync first")
	b.finish(t, 1000)

	// The quota follows the pass's calls, not the users: with half the
	// users left without devices, 350 calls a pass, 6 a tick; a longer
	// tick, proportionally more.
	_, err = b.pool.Exec(ctx, `UPDATE sync_user SET num_inverters = 0, num_electric_vehicles = 0, num_wallboxes = 0 WHERE user_id IN
		(SELECT user_id FROM sync_user ORDER BY user_id DESC LIMIT 350)`)
	require.NoError(t, err)
	require.Equal(t, 6, b.tick(t))
	b.finish(t, 1000)
	b.cfg.SyncTick = 2 * time.Minute
	require.Equal(t, 12, b.tick(t), "ceil(350 × 120 / 3600)")
	b.finish(t, 1000)
	b.cfg.SyncTick = time.Minute

	// Overdue users (last synced 3 h ago, more than two intervals) catch up
	// at the cap, first: all 100 in one tick, which leaves the spread
	// nothing more.
	_, err = b.pool.Exec(ctx, `UPDATE sync_user SET synced_at = now() - interval '3 hours' - make_interval(secs => n::int)
		FROM (SELECT user_id, row_number() OVER (ORDER BY user_id) AS n FROM sync_user WHERE sync_kinds > 0 LIMIT 100) o
		WHERE o.user_id = sync_user.user_id`)
	require.NoError(t, err)
	var overdue []string
	rows, err := b.pool.Query(ctx, `SELECT user_id::text FROM sync_user WHERE synced_at < now() - interval '2 hours'`)
	require.NoError(t, err)
	overdue, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, overdue, 100)
	require.Equal(t, 100, b.tick(t))
	require.ElementsMatch(t, overdue, queued())
	b.finish(t, 1000)
	// Once they are done, the spread again.
	require.Equal(t, 6, b.tick(t))
	b.finish(t, 1000)

	// All 350 with devices overdue, at a 2 min tick (cap 1,200 calls, the
	// spread 12): all in one tick. While a request waits, the cap is
	// SYNC_RATE_SHARE of the rate: 0.5 × 10 × 60 s = 300; a share of 0.2,
	// 120.
	_, err = b.pool.Exec(ctx, `UPDATE sync_user SET synced_at = now() - interval '5 hours'`)
	require.NoError(t, err)
	b.cfg.SyncTick = 2 * time.Minute
	require.Equal(t, 350, b.tick(t))
	b.finish(t, 1000)
	b.cfg.SyncTick = time.Minute
	_, err = b.pool.Exec(ctx, `UPDATE sync_user SET synced_at = now() - interval '5 hours'`)
	require.NoError(t, err)
	testdb.InsertJob(t, b.pool, reauth.DeviceArgs{OrgID: b.org, UserID: b.users[0].ID, DeviceKind: reauth.Inverter,
		DeviceID: "a2314723-06cc-4c2e-8819-118905579c7a"}, nil, testdb.Job{})
	require.Equal(t, 300, b.tick(t))
	b.finish(t, 1000)
	b.cfg.SyncShare = 0.2
	require.Equal(t, 50, b.tick(t), "the 50 left of 350, within 120")
	b.finish(t, 1000)
	require.Zero(t, b.tick(t), "nobody due")
}

// TestSyncFitWarning: a fleet that cannot be synced within SYNC_INTERVAL at
// the sync's share of the rate is warned of when a listing starts, with the
// interval or rate that would do.
func TestSyncFitWarning(t *testing.T) {
	t.Parallel()
	st := store.SyncStatus{Users: 100000, PassCalls: 180000}
	require.Equal(t, "sync: 100000 users need 180000 device calls a pass; at 5.0 calls/s (SYNC_RATE_SHARE 0.5 of PODERO_RATE_LIMIT 10) that is 10h; set SYNC_INTERVAL ≥ 10h or PODERO_RATE_LIMIT ≥ 100",
		SyncFitWarning(st, 10, 0.5, time.Hour))
	require.Empty(t, SyncFitWarning(st, 10, 0.5, 10*time.Hour), "fits")
	require.Empty(t, SyncFitWarning(st, 0, 0.5, time.Hour), "no limit")
	require.Contains(t, SyncFitWarning(store.SyncStatus{Users: 10, PassCalls: 4000}, 1, 0.5, time.Hour), "that is 2h14m; set SYNC_INTERVAL ≥ 2h14m or PODERO_RATE_LIMIT ≥ 3")

	// 300 users with one device each at 0.5 × 1 call/s: 10 minutes a pass.
	b := newSyncBundle(t, 300, sim.DeviceMix{0, 1}, Config{PoderoRate: 1, SyncShare: 0.5, SyncInterval: 5 * time.Minute})
	b.list(t) // the first listing warns once the fleet is known
	require.Contains(t, b.logs.String(), "sync: 300 users need 300 device calls a pass; at 0.5 calls/s (SYNC_RATE_SHARE 0.5 of PODERO_RATE_LIMIT 1) that is 10m; set SYNC_INTERVAL ≥ 10m or PODERO_RATE_LIMIT ≥ 2")
	require.Equal(t, 1, strings.Count(b.logs.String(), "level=WARN"))
	b.list(t)
	require.Equal(t, 2, strings.Count(b.logs.String(), "level=WARN"), "and at the start of each listing")
	b.cfg.SyncInterval = 15 * time.Minute
	b.list(t)
	require.Equal(t, 2, strings.Count(b.logs.String(), "level=WARN"), "none when it fits")
}
