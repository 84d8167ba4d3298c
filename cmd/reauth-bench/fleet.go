package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reauth/reauth/internal/podero/sim"
)

// The fleet phase's simulator: one organization whose users have 0 to 3
// devices (30% none, 40% one, 20% two, 10% three; kinds drawn from the
// seed), a quarter of the devices lapsed, as after a manufacturer revoked
// some of its tokens, so that the sweep's backlog outlasts the measurement
// window.
const (
	fleetDatabase = benchDatabase + "_fleet"
	fleetSeed     = "fleet"
	fleetMix      = "0.3,0.4,0.2,0.1"
	fleetHealthy  = 0.75
	fleetServes   = 2 // reauth serve processes sharing the rate limit
	apiToken      = "bench-api-token-0123456789"
)

// fleetPeer is the fleet phase's database, simulator and services.
type fleetPeer struct {
	pool   *pgxpool.Pool
	dbURL  string
	simURL string
	org    string
	users  int
	// devices are the simulator's devices; minCalls is the fewest device
	// listings a pass can make (the kinds each user has, summed).
	devices  []simDevice
	healthy  []simDevice
	lapsed   int
	minCalls int
}

// fleet measures the service against Podero's rate limit with a fleet of
// sz.FleetUsers users, in its own database against its own simulator, with
// fleetServes `reauth serve` processes:
//
//  1. at PODERO_RATE_LIMIT=sz.FleetRate, one full sync pass (`reauth sync
//     --now`, until every device the simulator has is recorded as synced
//     since, and the sync's calls stop): Podero calls per user, at the
//     simulator;
//  2. at PODERO_RATE_LIMIT=sz.FleetBacklogRate, a rate the machine can
//     sustain (at sz.FleetRate the backlog would wait on the CPU, the
//     pipeline's limit, rather than on the rate limit), a sweep backlog
//     (`reauth sweep --now` on the lapsed devices) waiting for
//     sz.FleetWindow while interactive requests are posted over HTTP at
//     even intervals: river_job row writes per Podero call over the window,
//     the interactive requests' enqueue-to-email times;
//
// and in each the busiest 3 s at the simulator and the serve processes'
// peak RSS.
func (b *bench) fleet(ctx context.Context, sz sizes, r *results) error {
	began := time.Now()
	f, err := b.startFleet(ctx, sz)
	if err != nil {
		return err
	}
	defer f.pool.Close()
	r.FleetUsers, r.FleetDevices, r.FleetServes = f.users, len(f.devices), fleetServes
	r.FleetRateLimit, r.FleetBacklogRateLimit = sz.FleetRate, sz.FleetBacklogRate
	r.FleetSyncBusiestLimit, r.FleetBacklogBusiestLimit = busiestLimit(sz.FleetRate), busiestLimit(sz.FleetBacklogRate)
	env := b.fleetEnv(f, sz.FleetRate)
	stage := time.Now()

	b.logf("fleet: sync pass over %d users, %d devices, %d serve processes at %.0f calls/s", f.users, len(f.devices), fleetServes, sz.FleetRate)
	serves, err := b.serveN(ctx, fleetServes, env)
	if err != nil {
		return err
	}
	if err := b.syncPass(ctx, f, env, sz, r); err != nil {
		stopAll(serves)
		return fmt.Errorf("sync pass: %w", err)
	}
	r.FleetSyncRSSMB = peakRSS(serves)
	if r.FleetSyncBusiest3s, err = busiest3s(ctx, f.simURL, stage); err != nil {
		return err
	}
	stopAll(serves)

	// Fresh processes for the backlog, at its rate: their RSS is the backlog's.
	b.logf("fleet: sweep backlog of %d lapsed devices at %.0f calls/s, %d interactive requests over %s", f.lapsed, sz.FleetBacklogRate, sz.FleetInteractive, sz.FleetWindow)
	env = b.fleetEnv(f, sz.FleetBacklogRate)
	stage = time.Now()
	serves, err = b.serveN(ctx, fleetServes, env)
	if err != nil {
		return err
	}
	defer stopAll(serves)
	if err := b.fleetBacklog(ctx, f, env, serves, sz, r); err != nil {
		return fmt.Errorf("backlog: %w", err)
	}
	r.FleetBacklogRSSMB = peakRSS(serves)
	if r.FleetBacklogBusiest3s, err = busiest3s(ctx, f.simURL, stage); err != nil {
		return err
	}
	if err := f.noFailures(ctx); err != nil {
		return err
	}
	r.FleetS = round(time.Since(began).Seconds(), 1)
	return nil
}

// startFleet creates the fleet's database and starts its simulator.
func (b *bench) startFleet(ctx context.Context, sz sizes) (*fleetPeer, error) {
	dbURL, err := b.freshDatabase(ctx, fleetDatabase)
	if err != nil {
		return nil, err
	}
	f := &fleetPeer{dbURL: dbURL}
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = 4
	if f.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, err
	}
	p, line, err := b.start(ctx, "podero-sim-fleet", nil, filepath.Join(b.bin, "podero-sim"), "-addr", "127.0.0.1:0", "-quiet",
		"-seed", fleetSeed, "-orgs", "1", "-users", strconv.Itoa(sz.FleetUsers), "-device-mix", fleetMix,
		"-healthy", strconv.FormatFloat(fleetHealthy, 'g', -1, 64), "-latency", "2ms")
	if err != nil {
		f.pool.Close()
		return nil, err
	}
	b.procs = append(b.procs, p)
	f.simURL = strings.TrimPrefix(line, "podero-sim listening on ")
	var st sim.State
	if err := getJSON(ctx, f.simURL+"/_sim/state", &st); err != nil {
		f.pool.Close()
		return nil, fmt.Errorf("fleet simulator state: %w", err)
	}
	o := st.Orgs[0]
	f.org, f.users = o.ID, len(o.Users)
	for _, u := range o.Users {
		kinds := map[string]bool{}
		for _, d := range u.Devices {
			sd := simDevice{Org: o.ID, User: u.ID, Email: u.Email, ID: d.ID, Kind: d.Kind}
			f.devices = append(f.devices, sd)
			if d.IsAuthenticated {
				f.healthy = append(f.healthy, sd)
			} else {
				f.lapsed++
			}
			kinds[string(d.Kind)] = true
		}
		f.minCalls += len(kinds)
	}
	return f, nil
}

// freshDatabase drops and creates the database name, migrates it with
// `reauth migrate` and returns its URL.
func (b *bench) freshDatabase(ctx context.Context, name string) (string, error) {
	if err := recreate(ctx, b.adminURL, name); err != nil {
		return "", err
	}
	dbURL, err := withDatabase(b.adminURL, name)
	if err != nil {
		return "", err
	}
	migrate := exec.CommandContext(ctx, filepath.Join(b.bin, "reauth"), "migrate")
	migrate.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	if out, err := migrate.CombinedOutput(); err != nil {
		return "", fmt.Errorf("reauth migrate: %w\n%s", err, out)
	}
	return dbURL, nil
}

// fleetEnv is serveEnv against the fleet's database and simulator, at rate
// calls a second, with the sync listing the fleet's organization when asked
// (`reauth sync --now`) and nothing scheduled.
func (b *bench) fleetEnv(f *fleetPeer, rate float64) []string {
	// Later entries override serveEnv's: os/exec keeps the last of a name.
	return []string{
		"DATABASE_URL=" + f.dbURL,
		"PODERO_BASE_URL=" + f.simURL,
		"PODERO_LINK_HOSTS=" + sim.DefaultConnectURL(f.simURL),
		"PODERO_RATE_LIMIT=" + strconv.FormatFloat(rate, 'g', -1, 64),
		"PODERO_ORG_IDS=" + f.org,
		"SYNC_SCHEDULE=off",
		"SWEEP_SCHEDULE=off",
		"LOG_LEVEL=warn",
	}
}

// serveN starts n `reauth serve` processes with extra in their environment.
func (b *bench) serveN(ctx context.Context, n int, extra []string) ([]*served, error) {
	var out []*served
	for range n {
		p, base, err := b.serve(ctx, extra...)
		if err != nil {
			stopAll(out)
			return nil, err
		}
		out = append(out, &served{p, base})
	}
	return out, nil
}

// served is a running `reauth serve` and its HTTP base URL.
type served struct {
	p    *proc
	base string
}

func stopAll(s []*served) {
	for _, x := range s {
		x.p.stop()
	}
}

// peakRSS is the largest VmHWM of the processes, in MB.
func peakRSS(s []*served) float64 {
	peak := 0.0
	for _, x := range s {
		peak = max(peak, x.p.peakRSSMB())
	}
	return peak
}

// runCLI runs `reauth args...` with env and returns its output.
func (b *bench) runCLI(ctx context.Context, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(b.bin, "reauth"), args...)
	cmd.Env = append(append(os.Environ(), b.serveEnv()...), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("reauth %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// syncPass runs one full sync pass and counts its Podero calls at the
// simulator. The pass is complete when every device the simulator has is
// recorded as synced since it began (a user without devices needs no
// device call) and the sync's listings have stopped for 2 s, however the
// sync schedules its work.
func (b *bench) syncPass(ctx context.Context, f *fleetPeer, env []string, sz sizes, r *results) error {
	before, err := simCounts(ctx, f.simURL)
	if err != nil {
		return err
	}
	var t0 time.Time
	if err := f.pool.QueryRow(ctx, "SELECT now()").Scan(&t0); err != nil {
		return err
	}
	start := time.Now()
	if _, err := b.runCLI(ctx, env, "sync", "--now"); err != nil {
		return err
	}
	deadline := start.Add(sz.FleetPassLimit)
	checked := time.Now()
	for {
		var synced int
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM device WHERE org_id = $1 AND synced_at >= $2`, f.org, t0).Scan(&synced); err != nil {
			return err
		}
		if synced >= len(f.devices) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d devices synced after %s", synced, len(f.devices), sz.FleetPassLimit)
		}
		if time.Since(checked) > 5*time.Second {
			if err := f.noFailures(ctx); err != nil {
				return err
			}
			checked = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	covered := time.Since(start)
	// The last users' listings may still be on their way (a user whose
	// devices were recorded may have more kinds to list, or none): wait
	// until the sync's calls stop, at most 30 s.
	after, err := simCounts(ctx, f.simURL)
	if err != nil {
		return err
	}
	for changed, limit := time.Now(), time.Now().Add(30*time.Second); time.Since(changed) < 2*time.Second && time.Now().Before(limit); {
		time.Sleep(250 * time.Millisecond)
		now, err := simCounts(ctx, f.simURL)
		if err != nil {
			return err
		}
		if now.sync() != after.sync() {
			after, changed = now, time.Now()
		}
	}
	d := after.minus(before)
	users := float64(f.users)
	r.FleetSyncPassS = round(covered.Seconds(), 1)
	r.FleetSyncCalls = d.total()
	r.FleetSyncListUsers = d["list_users"]
	r.FleetSyncListDevices = d["list_devices"]
	r.FleetSyncCallsPerUser = round(float64(d.total())/users, 3)
	r.FleetSyncDeviceCallsPerUser = round(float64(d["list_devices"])/users, 3)
	r.FleetSyncMinDeviceCallsPerUser = round(float64(f.minCalls)/users, 3)
	r.FleetSyncBeforeCallsPerUser = round((3*users+1)/users, 3) // every kind of every user, and the users list
	r.FleetSyncCallsPerS = round(float64(d.total())/covered.Seconds(), 0)
	r.FleetSyncRateUsed = round(float64(d.total())/covered.Seconds()/sz.FleetRate, 3)
	b.logf("fleet: sync pass %s, %d calls (%d list_users, %d list_devices), %.3f a user", covered.Round(time.Millisecond),
		d.total(), d["list_users"], d["list_devices"], r.FleetSyncCallsPerUser)
	return nil
}

// fleetBacklog has the sweep request every lapsed device, lets the backlog
// flow, then for sz.FleetWindow posts sz.FleetInteractive requests over HTTP
// at even intervals (to each serve process in turn) and counts river_job row
// writes and Podero calls.
func (b *bench) fleetBacklog(ctx context.Context, f *fleetPeer, env []string, serves []*served, sz sizes, r *results) error {
	if len(f.healthy) < sz.FleetInteractive {
		return fmt.Errorf("%d authenticated devices for %d interactive requests", len(f.healthy), sz.FleetInteractive)
	}
	if _, err := b.runCLI(ctx, env, "sweep", "--now"); err != nil {
		return err
	}
	var swept int
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var state string
		err := f.pool.QueryRow(ctx, `SELECT coalesce((SELECT state::text FROM river_job WHERE kind = 'reauth_sweep' ORDER BY id DESC LIMIT 1), ''),
			(SELECT count(*) FROM river_job WHERE kind = 'reauth_device' AND priority = 2)`).Scan(&state, &swept)
		if err != nil {
			return err
		}
		if state == "completed" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the sweep job is %q after 2 minutes, %d requests enqueued", state, swept)
		}
	}
	if swept != f.lapsed {
		return fmt.Errorf("the sweep requested %d of %d lapsed devices", swept, f.lapsed)
	}
	// The backlog flows; and the counts of a backend idle since it inserted
	// the sweep's requests are flushed (10 s after it went idle,
	// PGSTAT_IDLE_INTERVAL), so that the window does not count them.
	time.Sleep(11 * time.Second)

	// Interactive requests: healthy devices (not in the backlog), from
	// users spread over the fleet.
	step := len(f.healthy) / sz.FleetInteractive
	devs := make([]simDevice, sz.FleetInteractive)
	for i := range devs {
		devs[i] = f.healthy[i*step]
	}
	writes0, err := f.jobWrites(ctx)
	if err != nil {
		return err
	}
	calls0, err := simCounts(ctx, f.simURL)
	if err != nil {
		return err
	}
	callsFrom := time.Now()
	posted := make([]time.Time, len(devs))
	began := time.Now()
	for i, d := range devs {
		time.Sleep(time.Until(began.Add(time.Duration(i) * sz.FleetWindow / time.Duration(len(devs)))))
		body := fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":%q,"device_id":%q,"email":"interactive%d@bench.example"}`,
			d.Org, d.User, d.Kind, d.ID, i)
		posted[i] = time.Now()
		if err := post(ctx, serves[i%len(serves)].base+"/v1/reauth", body); err != nil {
			return err
		}
	}
	time.Sleep(time.Until(began.Add(sz.FleetWindow)))
	window := time.Since(began)
	writes1, err := f.jobWrites(ctx)
	if err != nil {
		return err
	}
	calls1, err := simCounts(ctx, f.simURL)
	if err != nil {
		return err
	}
	callsFor := time.Since(callsFrom)
	var waiting int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reauth_device' AND priority = 2
		AND state IN ('available', 'scheduled', 'retryable', 'running')`).Scan(&waiting); err != nil {
		return err
	}
	if waiting == 0 {
		return fmt.Errorf("the backlog of %d drained within the window: it measured no backlog", swept)
	}
	calls := calls1.minus(calls0).total()
	r.FleetBacklogRequests = swept
	r.FleetBacklogWaitingAtEnd = waiting
	r.FleetBacklogWindowS = round(window.Seconds(), 1)
	r.FleetBacklogCalls = calls
	r.FleetBacklogJobWrites = writes1 - writes0
	r.FleetBacklogWritesPerCall = round(float64(writes1-writes0)/float64(calls), 2)
	r.FleetBacklogCallsPerS = round(float64(calls)/callsFor.Seconds(), 0)
	r.FleetBacklogRateUsed = round(float64(calls)/callsFor.Seconds()/sz.FleetBacklogRate, 3)

	// Enqueue → email of each interactive request: its session's first
	// message, as the catcher accepted it.
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
	}
	session := map[string]int64{}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		rows, err := f.pool.Query(ctx, `SELECT s.device_id, s.id FROM auth_session s
			WHERE s.device_id = ANY($1::uuid[]) AND EXISTS (SELECT FROM notification n WHERE n.session_id = s.id AND n.state = 'sent')`, ids)
		if err != nil {
			return err
		}
		for rows.Next() {
			var dev string
			var id int64
			if err := rows.Scan(&dev, &id); err != nil {
				return err
			}
			session[dev] = id
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(session) == len(devs) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d interactive requests emailed a minute after the window", len(session), len(devs))
		}
	}
	mails, _, err := b.mailTimes(ctx)
	if err != nil {
		return err
	}
	var took []float64
	for i, d := range devs {
		at, ok := mails[fmt.Sprintf("<reauth-%d-0@bench.example>", session[d.ID])]
		if !ok {
			return fmt.Errorf("no email caught for session %d", session[d.ID])
		}
		took = append(took, float64(at.Sub(posted[i]).Microseconds())/1000)
	}
	r.FleetInteractive = len(devs)
	r.FleetInteractiveP50MS, r.FleetInteractiveP99MS = pct(took, 50), pct(took, 99)
	b.logf("fleet: %d river_job writes for %d calls over %s (%.2f a call), %d still waiting; interactive p50 %.0f ms, p99 %.0f ms",
		writes1-writes0, calls, window.Round(time.Millisecond), r.FleetBacklogWritesPerCall, waiting, r.FleetInteractiveP50MS, r.FleetInteractiveP99MS)
	return nil
}

// jobWrites is the rows river_job has had written (inserted, updated,
// deleted), after the other backends have flushed their statistics (at
// least every second while busy), as e2e.TestRateBudget counts them.
func (f *fleetPeer) jobWrites(ctx context.Context) (int64, error) {
	time.Sleep(1100 * time.Millisecond)
	if _, err := f.pool.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return 0, err
	}
	var n int64
	err := f.pool.QueryRow(ctx, `SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = 'river_job'`).Scan(&n)
	return n, err
}

// noFailures fails when a job ended retryable, discarded or cancelled.
func (f *fleetPeer) noFailures(ctx context.Context) error {
	var failing string
	err := f.pool.QueryRow(ctx, `SELECT coalesce(min(kind || ' job ' || id || ' ' || state || ': ' || coalesce(errors[array_upper(errors, 1)] ->> 'error', '')), '')
		FROM river_job WHERE state IN ('retryable', 'discarded', 'cancelled')`).Scan(&failing)
	if err != nil {
		return err
	}
	if failing != "" {
		return fmt.Errorf("a job failed: %s", failing)
	}
	return nil
}

// counts are the simulator's requests by endpoint.
type counts map[string]int

func simCounts(ctx context.Context, simURL string) (counts, error) {
	var st sim.Stats
	if err := getJSON(ctx, simURL+"/_sim/stats", &st); err != nil {
		return nil, err
	}
	return st.Counts, nil
}

// total is the partner API calls (token included, the connect pages not).
func (c counts) total() int {
	n := 0
	for name, v := range c {
		if name != sim.EndpointConnect {
			n += v
		}
	}
	return n
}

// sync is the listings the sync makes.
func (c counts) sync() int { return c[sim.EndpointListUsers] + c[sim.EndpointListDevices] }

func (c counts) minus(o counts) counts {
	out := counts{}
	for name, v := range c {
		out[name] = v - o[name]
	}
	return out
}

// busiest3s is the most partner API calls the simulator saw in 3
// consecutive seconds since since (and in the last 600 s).
func busiest3s(ctx context.Context, simURL string, since time.Time) (int, error) {
	var st sim.Stats
	if err := getJSON(ctx, simURL+"/_sim/stats", &st); err != nil {
		return 0, err
	}
	per := map[int64]int{}
	for _, s := range st.PerSecond {
		if s.Second >= since.Unix() {
			per[s.Second] = s.Requests
		}
	}
	most := 0
	for sec := range per {
		most = max(most, per[sec]+per[sec+1]+per[sec+2])
	}
	return most, nil
}

// busiestLimit is the most calls any 3 s may see at rate: 3 × rate + burst
// (PODERO_RATE_BURST's default, 1 + rate/10).
func busiestLimit(rate float64) int {
	return int(3*rate) + 1 + int(rate/10)
}

// post POSTs a reauthentication request to the service's API.
func post(ctx context.Context, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}
