package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/config"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/worker"
)

const benchDatabase = "reauth_bench"

// bench holds what the measurements share: the benchmark's database, the
// binaries, and the simulator and mail catcher processes once started.
type bench struct {
	logf     func(string, ...any)
	bin      string
	adminURL string // the server, to create databases from
	dbURL    string
	pool     *pgxpool.Pool
	conns    int
	insert   *river.Client[pgx.Tx] // on pool, for queue pauses and the sweep job
	devices  []simDevice           // the simulator's devices, in order
	next     int                   // devices[next:] have not been requested yet
	simURL   string
	smtpURL  string
	mailURL  string // the catcher's HTTP side
	procs    []*proc
	tmp      string
}

type simDevice struct {
	Org, User, Email, ID string
	Kind                 reauth.DeviceKind
}

// newBench (re)creates the benchmark's database and migrates it with
// `reauth migrate`.
func newBench(ctx context.Context, adminURL, binDir string, logf func(string, ...any)) (*bench, error) {
	bin, err := filepath.Abs(binDir)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"reauth", "podero-sim"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("%s/%s not found: run `make build` first (make bench does)", binDir, name)
		}
	}
	tmp, err := os.MkdirTemp("", "reauth-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{logf: logf, bin: bin, adminURL: adminURL, conns: config.PoolConns(), tmp: tmp}
	if b.dbURL, err = b.freshDatabase(ctx, benchDatabase); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(b.dbURL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = int32(b.conns)
	if b.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, err
	}
	if b.insert, err = river.NewClient(riverpgxv5.New(b.pool), &river.Config{}); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bench) close() {
	for _, p := range slices.Backward(b.procs) {
		p.stop()
	}
	if b.pool != nil {
		b.pool.Close()
	}
	os.RemoveAll(b.tmp)
}

// recreate drops the database name, if it exists, and creates it.
func recreate(ctx context.Context, adminURL, name string) error {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to Postgres (BENCH_DATABASE_URL): %w", err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{"DROP DATABASE IF EXISTS " + name + " WITH (FORCE)", "CREATE DATABASE " + name} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// withDatabase is the server URL u naming database name.
func withDatabase(u, name string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	parsed.Path = "/" + name
	return parsed.String(), nil
}

// commitCeiling runs one-row INSERT transactions (durable: synchronous
// commit, as the service's own) from b.conns connections for d.
func (b *bench) commitCeiling(ctx context.Context, d time.Duration) (float64, error) {
	if _, err := b.pool.Exec(ctx, "CREATE TABLE bench_commit (id bigserial PRIMARY KEY, v bigint NOT NULL, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return 0, err
	}
	defer b.pool.Exec(context.WithoutCancel(ctx), "DROP TABLE bench_commit") //nolint:errcheck
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, b.conns)
	start := time.Now()
	deadline := start.Add(d)
	for i := range b.conns {
		wg.Go(func() {
			for n := int64(0); time.Now().Before(deadline); n++ {
				if _, err := b.pool.Exec(ctx, "INSERT INTO bench_commit (v) VALUES ($1)", int64(i)<<32|n); err != nil {
					errs <- err
					return
				}
				total.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return round(float64(total.Load())/time.Since(start).Seconds(), 0), nil
}

// noopArgs is a job that does nothing, on the podero queue.
type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string                 { return "bench_noop" }
func (noopArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: reauth.QueuePodero} }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// riverCeiling works n no-op jobs, inserted in batches while the client
// runs, through a River client configured as the service's (its queues,
// worker counts, timeouts, middleware, pool size): jobs per second from the
// first insert to the last completion.
func (b *bench) riverCeiling(ctx context.Context, n int) (float64, error) {
	cfg, err := config.Load(func(string) string { return "" }) // the defaults serve runs with
	if err != nil {
		return 0, err
	}
	rc := worker.ClientConfig(worker.Config{
		PoderoWorkers: cfg.PoderoWorkers, NotifyWorkers: cfg.NotifyWorkers,
		JobTimeout: cfg.JobTimeout, RescueAfter: cfg.RescueAfter, RetryCap: cfg.RetryCap, MaxAttempts: cfg.MaxAttempts,
		Logger: slog.New(slog.DiscardHandler),
	})
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{})
	rc.Workers = workers
	client, err := river.NewClient(riverpgxv5.New(b.pool), rc)
	if err != nil {
		return 0, err
	}
	// Room for every event: a full subscription channel drops them.
	completed, cancel := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: n, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	defer cancel()
	if err := client.Start(ctx); err != nil {
		return 0, err
	}
	defer client.Stop(context.WithoutCancel(ctx)) //nolint:errcheck
	start := time.Now()
	insertErr := make(chan error, 1)
	go func() {
		for i := 0; i < n; i += 500 {
			params := make([]river.InsertManyParams, 0, 500)
			for j := i; j < min(i+500, n); j++ {
				params = append(params, river.InsertManyParams{Args: noopArgs{N: j}})
			}
			if _, err := client.InsertMany(ctx, params); err != nil {
				insertErr <- err
				return
			}
		}
		insertErr <- nil
	}()
	timeout := time.After(5 * time.Minute)
	for done := 0; done < n; {
		select {
		case <-completed:
			done++
		case err := <-insertErr:
			if err != nil {
				return 0, err
			}
		case <-timeout:
			return 0, fmt.Errorf("%d of %d jobs completed after 5 minutes", done, n)
		}
	}
	took := time.Since(start)
	if err := b.deleteJobs(ctx, river.NewJobDeleteManyParams().Kinds(noopArgs{}.Kind())); err != nil {
		return 0, err
	}
	return round(float64(n)/took.Seconds(), 0), nil
}

// deleteJobs deletes the jobs params selects, through River (its batches of
// at most 10,000), until none is left.
func (b *bench) deleteJobs(ctx context.Context, params *river.JobDeleteManyParams) error {
	for {
		res, err := b.insert.JobDeleteMany(ctx, params.First(10_000))
		if err != nil {
			return err
		}
		if len(res.Jobs) < 10_000 {
			return nil
		}
	}
}

// startPeers starts the simulator (no rate limit, 2 ms latency, enough
// devices for every measurement but the fleet's) and the mail catcher.
func (b *bench) startPeers(ctx context.Context, sz sizes) error {
	// The pipeline and the bare floor take sz.Pipeline each, the HTTP and
	// EnqueueMany phase sz.HTTPDevices, the latency phase latencyDevices.
	need := 2*sz.Pipeline + sz.HTTPDevices + sz.Backlog + latencyDevices
	users := need/3/4 + 1 // 4 organizations, one device of each kind per user
	p, line, err := b.start(ctx, "podero-sim", nil, filepath.Join(b.bin, "podero-sim"), "-addr", "127.0.0.1:0", "-quiet",
		"-orgs", "4", "-users", strconv.Itoa(users), "-devices", "1", "-latency", "2ms")
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)
	b.simURL = strings.TrimPrefix(line, "podero-sim listening on ")
	var st sim.State
	if err := getJSON(ctx, b.simURL+"/_sim/state", &st); err != nil {
		return fmt.Errorf("simulator state: %w", err)
	}
	for _, o := range st.Orgs {
		for _, u := range o.Users {
			for _, d := range u.Devices {
				b.devices = append(b.devices, simDevice{Org: o.ID, User: u.ID, Email: u.Email, ID: d.ID, Kind: d.Kind})
			}
		}
	}
	// Interleave the organizations, so each batch mixes them as it mixes kinds.
	slices.SortStableFunc(b.devices, func(x, y simDevice) int { return strings.Compare(x.ID, y.ID) })
	return b.startMailcatch(ctx)
}

// startMailcatch starts the mail catcher every phase's service mails.
func (b *bench) startMailcatch(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	p, line, err := b.start(ctx, "mailcatch", nil, self, "mailcatch")
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)
	f := strings.Fields(line)
	if len(f) != 3 {
		return fmt.Errorf("mailcatch printed %q", line)
	}
	b.smtpURL, b.mailURL = f[1], f[2]
	return nil
}

// take returns the next n devices nobody requested yet.
func (b *bench) take(n int) ([]simDevice, error) {
	if b.next+n > len(b.devices) {
		return nil, fmt.Errorf("the simulator has %d devices, %d more needed", len(b.devices), b.next+n-len(b.devices))
	}
	d := b.devices[b.next : b.next+n]
	b.next += n
	return d, nil
}

func deviceArgs(d simDevice) reauth.DeviceArgs {
	return reauth.DeviceArgs{OrgID: d.Org, UserID: d.User, DeviceKind: d.Kind, DeviceID: d.ID, Email: d.Email, Reason: "bench"}
}

// enqueueBatches requests each device with reauth.EnqueueMany, 500 to a
// transaction, as a partner's Go service would.
func (b *bench) enqueueBatches(ctx context.Context, devs []simDevice) error {
	for i := 0; i < len(devs); i += 500 {
		args := make([]reauth.DeviceArgs, 0, 500)
		for _, d := range devs[i:min(i+500, len(devs))] {
			args = append(args, deviceArgs(d))
		}
		if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			_, err := reauth.EnqueueMany(ctx, tx, args)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// serveEnv is the service's environment against the peers. Everything not
// named here is the default a deployment gets.
func (b *bench) serveEnv(extra ...string) []string {
	return append([]string{
		"DATABASE_URL=" + b.dbURL,
		"PODERO_BASE_URL=" + b.simURL,
		"PODERO_CLIENT_ID=sim-client",
		"PODERO_CLIENT_SECRET=sim-secret",
		// The simulator's links are on its connect host, as Podero's on connect.podero.com.
		"PODERO_LINK_HOSTS=" + sim.DefaultConnectURL(b.simURL),
		"PODERO_RATE_LIMIT=0", // the limit is Podero's business; the benchmark measures the service
		"SMTP_URL=" + b.smtpURL,
		"MAIL_FROM=Reauth <reauth@bench.example>",
		"PUBLIC_BASE_URL=http://127.0.0.1:1",
		"API_TOKENS=bench:" + benchAPIToken,
		"LINK_SECRET=bench-link-secret-0123456789abcdef0123456789",
		"SYNC_SCHEDULE=off",
		"SWEEP_SCHEDULE=off",
		"SEND_WINDOW=off", // the benchmark sends at any hour
		"BATCH_WINDOW=0",  // each request's own message at once: the benchmark times request to inbox
		"LOG_FORMAT=json",
	}, extra...)
}

// serve starts `reauth serve` and waits until /readyz answers 200.
func (b *bench) serve(ctx context.Context, extra ...string) (*proc, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	p, _, err := b.start(ctx, "serve", b.serveEnv(append(extra, "HTTP_ADDR="+addr)...), filepath.Join(b.bin, "reauth"), "serve")
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, base, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, "", fmt.Errorf("reauth serve not ready after 30 s; its log: %s", p.logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dbCounts are the server's counters the pipeline is accounted by.
type dbCounts struct {
	// commits is the database's committed transactions.
	commits int64
	// walRecords is the server's WAL records (pg_stat_wal), every
	// database's: on the benchmark's own server, the phase's.
	walRecords int64
	// walBytes is the WAL position (pg_current_wal_lsn), in bytes.
	walBytes int64
}

// counts reads dbCounts so far (every process's, the harness's own polling
// included), after the other backends have flushed their statistics: a
// busy backend flushes at most every second, and what it has left when it
// goes idle 10 s later (PGSTAT_IDLE_INTERVAL), so the count waits 11 s.
func (b *bench) counts(ctx context.Context) (dbCounts, error) {
	time.Sleep(11 * time.Second)
	if _, err := b.pool.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return dbCounts{}, err
	}
	var c dbCounts
	err := b.pool.QueryRow(ctx, `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
		(SELECT wal_records FROM pg_stat_wal), `+walBytesSQL).Scan(&c.commits, &c.walRecords, &c.walBytes)
	return c, err
}

// walBytesSQL is the WAL position in bytes.
const walBytesSQL = `(pg_current_wal_lsn() - '0/0')::bigint`

// walBytes is the WAL position in bytes, at once (no statistics involved).
func (b *bench) walBytes(ctx context.Context) (int64, error) {
	var n int64
	err := b.pool.QueryRow(ctx, "SELECT "+walBytesSQL).Scan(&n)
	return n, err
}

// mailCount is how many messages the catcher accepted.
func (b *bench) mailCount(ctx context.Context) (int, error) {
	var n int
	err := getJSON(ctx, b.mailURL+"/count", &n)
	return n, err
}

// waitMail waits until the catcher has accepted n messages, and returns when
// it saw that.
func (b *bench) waitMail(ctx context.Context, n int, limit time.Duration) (time.Time, error) {
	deadline, checked := time.Now().Add(limit), time.Now()
	for {
		have, err := b.mailCount(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if have >= n {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d of %d emails accepted after %s", have, n, limit)
		}
		if time.Since(checked) > time.Second {
			// Fail fast: nothing in a benchmark run may fail.
			var failing string
			err := b.pool.QueryRow(ctx, `SELECT coalesce(min(kind || ' job ' || id || ': ' || (errors[array_upper(errors, 1)] ->> 'error')), '')
				FROM river_job WHERE state IN ('retryable', 'discarded', 'cancelled')`).Scan(&failing)
			if err != nil || failing != "" {
				return time.Time{}, errors.Join(err, fmt.Errorf("a job failed: %s", failing))
			}
			checked = time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastMailAt is when the catcher accepted its n-th message (1-based).
func (b *bench) mailTimes(ctx context.Context) (map[string]time.Time, []time.Time, error) {
	var msgs []caught
	if err := getJSON(ctx, b.mailURL+"/messages", &msgs); err != nil {
		return nil, nil, err
	}
	byID := make(map[string]time.Time, len(msgs))
	order := make([]time.Time, len(msgs))
	for i, m := range msgs {
		at := time.Unix(0, m.ReceivedNS)
		byID[m.MessageID] = at
		order[i] = at
	}
	return byID, order, nil
}

// pipeline measures the empty-queue pipeline on one `reauth serve`, with
// the CPU time per request of every process and the service's statements
// per request, then stops it.
func (b *bench) pipeline(ctx context.Context, sz sizes, r *results, profile string) error {
	var extra []string
	if profile != "" {
		extra = append(extra, "PPROF_ADDR=127.0.0.1:6061")
	}
	p, serveURL, err := b.serve(ctx, extra...)
	if err != nil {
		return err
	}
	defer p.stop()
	devs, err := b.take(sz.Pipeline)
	if err != nil {
		return err
	}
	base, err := b.mailCount(ctx)
	if err != nil {
		return err
	}
	b.statementsReset(ctx)
	defer b.statementsReport(ctx, "pipeline", len(devs))
	counts0, err := b.counts(ctx)
	if err != nil {
		return err
	}
	statements0, err := dbStatements(ctx, serveURL)
	if err != nil {
		return err
	}
	procs := b.peerProcs()
	procs.serve = pidOf(p)
	cpu0, err := procs.sample()
	if err != nil {
		return err
	}
	// The profile covers the first 10 s of the work (not the waits before).
	var profiled chan error
	if profile != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- fetchProfile(ctx, "http://127.0.0.1:6061/debug/pprof/profile?seconds=10", profile) }()
	}
	start := time.Now()
	if err := b.enqueueBatches(ctx, devs); err != nil {
		return err
	}
	if _, err := b.waitMail(ctx, base+len(devs), 10*time.Minute); err != nil {
		return err
	}
	cpu1, err := procs.sample()
	if err != nil {
		return err
	}
	statements1, err := dbStatements(ctx, serveURL)
	if err != nil {
		return err
	}
	counts1, err := b.counts(ctx)
	if err != nil {
		return err
	}
	n := float64(len(devs))
	r.PipelineCommitsPerReq = round(float64(counts1.commits-counts0.commits)/n, 1)
	r.PipelineWALRecordsPerReq = round(float64(counts1.walRecords-counts0.walRecords)/n, 1)
	r.PipelineWALBytesPerReq = round(float64(counts1.walBytes-counts0.walBytes)/n, 0)
	r.PipelineStatementsPerReq = round(float64(statements1-statements0)/n, 2)
	cpu := cpuPerRequest(cpu0, cpu1, len(devs))
	r.PipelineCPUServe, r.PipelineCPUPostgres, r.PipelineCPUSim, r.PipelineCPUMail, r.PipelineCPUBench = cpu.Serve, cpu.Postgres, cpu.Sim, cpu.Mail, cpu.Bench
	_, order, err := b.mailTimes(ctx)
	if err != nil {
		return err
	}
	took := order[base+len(devs)-1].Sub(start)
	r.PipelineRequests = len(devs)
	r.PipelineRPS = round(float64(len(devs))/took.Seconds(), 0)
	if r.CommitCeilingTPS > 0 { // -pipeline-only measures no ceilings
		r.PipelineVsCommit = round(r.PipelineRPS/r.CommitCeilingTPS, 3)
		r.PipelineVsRiver = round(r.PipelineRPS/r.RiverCeilingJPS, 3)
	}
	if err := b.checkDelivered(ctx, devs); err != nil {
		return err
	}
	if profiled != nil {
		if err := <-profiled; err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
	}
	r.PipelineRSSMB = p.peakRSSMB()
	return nil
}

// statementsReset resets pg_stat_statements, with BENCH_PGSS set (and the
// extension loaded by the server).
func (b *bench) statementsReset(ctx context.Context) {
	if os.Getenv("BENCH_PGSS") != "" {
		_, _ = b.pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
		_, _ = b.pool.Exec(ctx, "SELECT pg_stat_statements_reset()")
	}
}

// statementsReport logs, with BENCH_PGSS set, the statements that took the
// most of Postgres's time since statementsReset, per request of the phase.
func (b *bench) statementsReport(ctx context.Context, phase string, requests int) {
	if os.Getenv("BENCH_PGSS") == "" || requests == 0 {
		return
	}
	rows, err := b.pool.Query(ctx, `SELECT calls, total_exec_time, total_plan_time, shared_blks_hit + shared_blks_read, left(regexp_replace(query, '\s+', ' ', 'g'), 90)
		FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 20`)
	if err != nil {
		b.logf("pg_stat_statements: %v", err)
		return
	}
	defer rows.Close()
	b.logf("pg_stat_statements, %s (%d requests): calls a request, ms a request, ms a call, planning ms a call, blocks a call, statement (planning is 0 unless pg_stat_statements.track_planning)", phase, requests)
	for rows.Next() {
		var calls, blocks int64
		var total, plan float64
		var query string
		if err := rows.Scan(&calls, &total, &plan, &blocks, &query); err != nil {
			b.logf("pg_stat_statements: %v", err)
			return
		}
		n := float64(requests)
		c := float64(max(calls, 1))
		b.logf("  %6.2f %7.3f %7.3f %7.3f %7.0f  %s", float64(calls)/n, (total+plan)/n, total/c, plan/c, float64(blocks)/c, query)
	}
}

// peerProcs names the simulator and the mail catcher, for CPU accounting.
func (b *bench) peerProcs() cpuProcs {
	var c cpuProcs
	for _, p := range b.procs {
		switch p.name {
		case "podero-sim":
			c.sim = pidOf(p)
		case "mailcatch":
			c.mail = pidOf(p)
		}
	}
	return c
}

// enqueueAndLatency starts a `reauth serve` with the podero queue paused,
// measures HTTP enqueue (and EnqueueMany) against it, resumes the queue and
// measures the latency (from 80% of the pipeline's rate) on the same process.
func (b *bench) enqueueAndLatency(ctx context.Context, sz sizes, r *results) error {
	if err := b.insert.QueuePause(ctx, reauth.QueuePodero, nil); err != nil {
		return fmt.Errorf("pause the podero queue: %w", err)
	}
	p, serveURL, err := b.serve(ctx)
	if err != nil {
		return err
	}
	defer p.stop()
	b.logf("http enqueue: %d connections for %s, podero queue paused", httpConns, sz.HTTPFor)
	if err := b.httpEnqueue(ctx, sz, serveURL, r); err != nil {
		return fmt.Errorf("http enqueue: %w", err)
	}
	if err := b.insert.QueueResume(ctx, reauth.QueuePodero, nil); err != nil {
		return fmt.Errorf("resume the podero queue: %w", err)
	}
	if err := b.latency(ctx, sz, r, p); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	r.PipelineRSSMB = max(r.PipelineRSSMB, p.peakRSSMB())
	return nil
}

// latencyWarmUp is how long the latency phase offers its rate before the
// requests it counts: a serve process's first requests open its pool's
// connections, prepare its statements, fetch the OAuth2 token and dial
// the SMTP connections (measured: a fresh process's first half second ran
// at 119 ms median, the next at 12 ms).
const latencyWarmUp = time.Second

// latencyLoads are the loads the latency phase offers, as fractions of
// the pipeline's rate: 80% (the target's), then lower ones until p99
// enqueue → email meets latencyTargetMS, so that a run that misses the
// target also says the highest load that meets it.
var latencyLoads = []float64{0.8, 0.7, 0.6, 0.5, 0.4, 0.3}

// latencyTargetMS is the target of p99 enqueue → email.
const latencyTargetMS = 100

// latencyBatch is the producer's window in the latency phase's batched
// load: a partner's service that enqueues what arrived every 10 ms in one
// transaction, as EnqueueMany allows.
const latencyBatch = 10 * time.Millisecond

// latencyDevices is how many devices the latency phase may take, all its
// loads together: the whole ladder takes 45 s of the pipeline's rate, so
// this lasts to 2,200 requests a second. Past that the ladder stops at
// the load it cannot offer in full (errOutOfDevices) and reports the
// loads it measured.
const latencyDevices = 100_000

// errOutOfDevices: the latency phase has too few devices left for a load.
var errOutOfDevices = errors.New("too few devices left for the load")

// latencyStep is one load's figures.
type latencyStep struct {
	Load float64 `json:"load"` // of the pipeline's rate
	// BatchMS is the producer's window: 0, one transaction a request;
	// else every window's arrivals in one transaction.
	BatchMS    float64 `json:"batch_ms"`
	OfferedRPS float64 `json:"offered_rps"`
	Requests   int     `json:"requests"` // counted, after the warm-up
	// P99StoredMS counts from the job's created_at: with a window, after
	// the request waited for it (the email figures count from arrival).
	P99StoredMS float64 `json:"p99_stored_ms"`
	P50EmailMS  float64 `json:"p50_email_ms"`
	P99EmailMS  float64 `json:"p99_email_ms"`
	CPUMS       float64 `json:"cpu_ms"` // every process's, per request
	// CPUAsked is the CPU the load asked of the machine: the offered rate
	// times CPUMS, over the cores (above 1, more than it has).
	CPUAsked float64 `json:"cpu_asked"`
}

// latency offers each of latencyLoads in turn, one transaction a request,
// down to the first that meets latencyTargetMS; the first, 80%, fills the
// phase's own figures. After 80% it offers 80% again with the requests
// enqueued every latencyBatch: the service's latency at that load, with
// less of the machine spent on the producer's transactions.
func (b *bench) latency(ctx context.Context, sz sizes, r *results, serve *proc) error {
	left := latencyDevices
	for i, load := range latencyLoads {
		st, lat, cpu, err := b.latencyAt(ctx, sz, load*r.PipelineRPS, 0, serve, &left)
		if i > 0 && errors.Is(err, errOutOfDevices) {
			b.logf("latency: stopped before %.0f%%: %v", 100*load, err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("at %.0f%%: %w", 100*load, err)
		}
		st.Load = load
		r.LatencySteps = append(r.LatencySteps, st)
		if load == latencyLoads[0] {
			r.OfferedRPS, r.LatencyReqs = st.OfferedRPS, st.Requests
			r.P50StoredMS, r.P95StoredMS, r.P99StoredMS = lat.P50StoredMS, lat.P95StoredMS, lat.P99StoredMS
			r.P50EmailMS, r.P95EmailMS, r.P99EmailMS = lat.P50EmailMS, lat.P95EmailMS, lat.P99EmailMS
			r.LatencyCPUServe, r.LatencyCPUPostgres, r.LatencyCPUSim, r.LatencyCPUMail, r.LatencyCPUBench = cpu.Serve, cpu.Postgres, cpu.Sim, cpu.Mail, cpu.Bench
			r.LatencyCPUAsked = st.CPUAsked
			batched, _, _, err := b.latencyAt(ctx, sz, load*r.PipelineRPS, latencyBatch, serve, &left)
			if err != nil {
				return fmt.Errorf("at %.0f%%, every %s: %w", 100*load, latencyBatch, err)
			}
			batched.Load = load
			r.LatencySteps = append(r.LatencySteps, batched)
		}
		if st.P99EmailMS <= latencyTargetMS {
			r.LatencyMetAt = load
			return nil
		}
	}
	return nil
}

// producer names how the latency phase's producer enqueues with window.
func producer(window time.Duration) string {
	if window > 0 {
		return "enqueued every " + window.String()
	}
	return "one transaction a request"
}

// latencyAt offers requests at rate, for latencyWarmUp (not counted), then
// for sz.LatencyFor, taking its devices out of *left: one transaction
// each (window 0), or those that arrived within each window together.
func (b *bench) latencyAt(ctx context.Context, sz sizes, rate float64, window time.Duration, serve *proc, left *int) (latencyStep, latencies, cpuMS, error) {
	rate = round(rate, 0)
	warm := int(rate * latencyWarmUp.Seconds())
	n := int(rate * sz.LatencyFor.Seconds())
	if warm+n > *left {
		return latencyStep{}, latencies{}, cpuMS{}, fmt.Errorf("%w: %d left for %d", errOutOfDevices, *left, warm+n)
	}
	*left -= warm + n
	b.logf("latency: %d requests at %.0f/s after %d to warm up, %s", n, rate, warm, producer(window))
	devs, err := b.take(warm + n)
	if err != nil {
		return latencyStep{}, latencies{}, cpuMS{}, err
	}
	base, err := b.mailCount(ctx)
	if err != nil {
		return latencyStep{}, latencies{}, cpuMS{}, err
	}
	b.statementsReset(ctx)
	procs := b.peerProcs()
	procs.serve = pidOf(serve)
	cpu0, err := procs.sample()
	if err != nil {
		return latencyStep{}, latencies{}, cpuMS{}, err
	}
	// Request i arrives at start + i × interval. With no window each is
	// enqueued on its own as it arrives; with one, the requests that
	// arrived within each window are enqueued together at its end. Either
	// way a request's latency counts from its arrival.
	enqueued := make([]time.Time, len(devs))
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	start := time.Now()
	for i := 0; i < len(devs); {
		j, at := i+1, start.Add(time.Duration(i)*interval)
		if window > 0 {
			end := (time.Duration(i)*interval/window + 1) * window
			j, at = min(len(devs), int((end+interval-1)/interval)), start.Add(end)
		}
		time.Sleep(time.Until(at))
		args := make([]reauth.DeviceArgs, 0, j-i)
		for x := i; x < j; x++ {
			enqueued[x] = start.Add(time.Duration(x) * interval)
			args = append(args, deviceArgs(devs[x]))
		}
		i = j
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
				_, err := reauth.EnqueueMany(ctx, tx, args)
				return err
			}); err != nil {
				failed.Store(&err)
			}
		})
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		return latencyStep{}, latencies{}, cpuMS{}, *e
	}
	if _, err := b.waitMail(ctx, base+len(devs), 2*time.Minute); err != nil {
		return latencyStep{}, latencies{}, cpuMS{}, err
	}
	cpu1, err := procs.sample()
	if err != nil {
		return latencyStep{}, latencies{}, cpuMS{}, err
	}
	cpu := cpuPerRequest(cpu0, cpu1, len(devs))
	b.statementsReport(ctx, fmt.Sprintf("latency at %.0f/s", rate), len(devs))
	lat, err := b.latenciesOf(ctx, devs[warm:], enqueued[warm:])
	if err != nil {
		return latencyStep{}, latencies{}, cpuMS{}, err
	}
	all := cpu.Serve + cpu.Postgres + cpu.Sim + cpu.Mail + cpu.Bench
	st := latencyStep{BatchMS: float64(window.Milliseconds()), OfferedRPS: rate, Requests: n, P99StoredMS: lat.P99StoredMS, P50EmailMS: lat.P50EmailMS, P99EmailMS: lat.P99EmailMS,
		CPUMS: round(all, 3), CPUAsked: round(rate*all/1000/float64(runtime.NumCPU()), 2)}
	b.logf("latency at %.0f/s: p50 / p99 email %.0f / %.0f ms, CPU %.2f ms a request (serve %.2f, postgres %.2f, sim %.2f, mail %.2f, bench %.2f), %.2f of the machine asked",
		rate, st.P50EmailMS, st.P99EmailMS, st.CPUMS, cpu.Serve, cpu.Postgres, cpu.Sim, cpu.Mail, cpu.Bench, st.CPUAsked)
	return st, lat, cpu, nil
}
