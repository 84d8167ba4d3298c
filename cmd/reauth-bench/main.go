// Command reauth-bench measures the service against the limits of the same
// machine, in one run, on the local Postgres: the commit ceiling, the River
// ceiling, the pipeline (bin/reauth serve working requests through
// bin/podero-sim and emailing a mail catcher, each a separate process), the
// bare floor (the same work with no queue), HTTP enqueue, the latency at 80%
// of the pipeline's maximum, the sweep of a million devices, a
// backlog of 200,000 waiting jobs, and a fleet of 100,000 users at Podero's
// rate limit (a sync pass, then a sweep backlog with interactive requests).
// It prints a table, then one line of JSON, and writes the JSON to
// bench/results.json. Run it with `make bench` (BENCH_QUICK=1 for the small,
// one-minute run CI does).
//
// `reauth-bench mailcatch` is the mail catcher process it starts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/reauth/reauth/internal/worker"
)

// sizes is how much work each measurement does.
type sizes struct {
	CommitWindow time.Duration // how long the commit ceiling is measured
	RiverJobs    int           // no-op jobs through River
	Pipeline     int           // reauthentication requests, empty queue
	LatencyFor   time.Duration // how long each of the latency phase's loads is offered
	HTTPFor      time.Duration // how long POST /v1/reauth is driven
	HTTPDevices  int           // devices set aside for HTTP enqueue (at most half) and EnqueueMany
	SweepDevices int           // devices the sweep walks, 5% lapsed
	Backlog      int           // jobs waiting in the backlog measurement

	FleetUsers       int           // the fleet's users, 0 to 3 devices each
	FleetRate        float64       // PODERO_RATE_LIMIT of the fleet's sync pass
	FleetBacklogRate float64       // PODERO_RATE_LIMIT of the fleet's backlog, below the machine's own limit
	FleetPassLimit   time.Duration // the longest a sync pass may take
	FleetWindow      time.Duration // how long the backlog is measured
	FleetInteractive int           // requests posted over HTTP during the window
}

var (
	full = sizes{CommitWindow: 5 * time.Second, RiverJobs: 20_000, Pipeline: 20_000, LatencyFor: 10 * time.Second, HTTPFor: 10 * time.Second, HTTPDevices: 100_000, SweepDevices: 1_000_000, Backlog: 200_000,
		FleetUsers: 100_000, FleetRate: 500, FleetBacklogRate: 100, FleetPassLimit: 20 * time.Minute, FleetWindow: 60 * time.Second, FleetInteractive: 60}
	quick = sizes{CommitWindow: time.Second, RiverJobs: 2_000, Pipeline: 1_000, LatencyFor: 2 * time.Second, HTTPFor: 2 * time.Second, HTTPDevices: 20_000, SweepDevices: 50_000, Backlog: 10_000,
		FleetUsers: 5_000, FleetRate: 500, FleetBacklogRate: 50, FleetPassLimit: 3 * time.Minute, FleetWindow: 10 * time.Second, FleetInteractive: 20}
)

// results is every figure; the JSON keys are what bench/results.json holds.
type results struct {
	Quick       bool   `json:"quick"`
	CPUs        int    `json:"cpus"`
	GoVersion   string `json:"go_version"`
	Connections int    `json:"connections"`
	// VacuumStandIn: the server had autovacuum off, and the harness
	// vacuumed the benchmark's database instead (standInForAutovacuum)
	// during the machine's measurements.
	VacuumStandIn bool `json:"vacuum_stand_in"`

	CommitCeilingTPS float64 `json:"commit_ceiling_tps"`
	RiverCeilingJPS  float64 `json:"river_ceiling_jps"`
	PipelineRequests int     `json:"pipeline_requests"`
	PipelineRPS      float64 `json:"pipeline_rps"`
	PipelineVsCommit float64 `json:"pipeline_vs_commit"`
	PipelineVsRiver  float64 `json:"pipeline_vs_river"`
	PipelineRSSMB    float64 `json:"pipeline_rss_mb"`
	// PipelineCommitsPerReq is database transactions committed per request
	// (autocommit statements count one each).
	PipelineCommitsPerReq float64 `json:"pipeline_commits_per_request"`
	// PipelineStatementsPerReq is the serve process's statements to
	// Postgres (reauth_db_statements_total, BEGIN and COMMIT included) per
	// request.
	PipelineStatementsPerReq float64 `json:"pipeline_statements_per_request"`
	// WAL per request: records (pg_stat_wal, the whole server's) and bytes
	// (pg_current_wal_lsn) over the pipeline; every row version and index
	// entry written is a record.
	PipelineWALRecordsPerReq float64 `json:"pipeline_wal_records_per_request"`
	PipelineWALBytesPerReq   float64 `json:"pipeline_wal_bytes_per_request"`
	// CPU time per request, in ms, of each process over the pipeline
	// (Postgres: every postgres process, exited backends included).
	PipelineCPUServe    float64 `json:"pipeline_cpu_ms_serve"`
	PipelineCPUPostgres float64 `json:"pipeline_cpu_ms_postgres"`
	PipelineCPUSim      float64 `json:"pipeline_cpu_ms_sim"`
	PipelineCPUMail     float64 `json:"pipeline_cpu_ms_mail"`
	PipelineCPUBench    float64 `json:"pipeline_cpu_ms_bench"`

	// The bare floor (bare.go): the same requests' work with no queue.
	BareRequests int     `json:"bare_requests"`
	BareRPS      float64 `json:"bare_rps"`
	// PipelineVsBare is pipeline_rps / bare_rps.
	PipelineVsBare float64 `json:"pipeline_vs_bare"`
	// BareStatementsPerReq is 1 by construction (the INSERT), counted.
	BareStatementsPerReq float64 `json:"bare_statements_per_request"`
	// BareWALBytesPerReq is the WAL bytes per request over the bare floor.
	BareWALBytesPerReq float64 `json:"bare_wal_bytes_per_request"`
	BareCPUPostgres    float64 `json:"bare_cpu_ms_postgres"`
	BareCPUSim         float64 `json:"bare_cpu_ms_sim"`
	BareCPUMail        float64 `json:"bare_cpu_ms_mail"`
	BareCPUBench       float64 `json:"bare_cpu_ms_bench"`

	// HTTP enqueue (httpload.go): POST /v1/reauth from 50 connections,
	// then reauth.EnqueueMany over as many devices.
	HTTPEnqueueRequests int     `json:"http_enqueue_requests"`
	HTTPEnqueueRPS      float64 `json:"http_enqueue_rps"`
	HTTPEnqueueP50MS    float64 `json:"http_enqueue_p50_ms"`
	HTTPEnqueueP99MS    float64 `json:"http_enqueue_p99_ms"`
	EnqueueManyRPS      float64 `json:"enqueue_many_rps"`
	HTTPVsEnqueueMany   float64 `json:"http_vs_enqueue_many"`

	OfferedRPS  float64 `json:"offered_rps"`
	LatencyReqs int     `json:"latency_requests"`
	P50StoredMS float64 `json:"p50_stored_ms"`
	P95StoredMS float64 `json:"p95_stored_ms"`
	P99StoredMS float64 `json:"p99_stored_ms"`
	P50EmailMS  float64 `json:"p50_email_ms"`
	P95EmailMS  float64 `json:"p95_email_ms"`
	P99EmailMS  float64 `json:"p99_email_ms"`
	// CPU time per request, in ms, of each process over the latency phase
	// (its warm-up included): each request its own enqueue transaction.
	LatencyCPUServe    float64 `json:"latency_cpu_ms_serve"`
	LatencyCPUPostgres float64 `json:"latency_cpu_ms_postgres"`
	LatencyCPUSim      float64 `json:"latency_cpu_ms_sim"`
	LatencyCPUMail     float64 `json:"latency_cpu_ms_mail"`
	LatencyCPUBench    float64 `json:"latency_cpu_ms_bench"`
	// LatencyCPUAsked is, at 80%, the CPU the load asked of the machine:
	// the offered rate times every process's CPU per request, over the
	// cores (above 1, more than the machine has).
	LatencyCPUAsked float64 `json:"latency_cpu_asked"`
	// LatencySteps are the loads offered, from 80% of the pipeline's rate
	// down to the first whose p99 enqueue → email met the target
	// (latencyLoads); LatencyMetAt is that load, 0 if none did.
	LatencySteps []latencyStep `json:"latency_steps"`
	LatencyMetAt float64       `json:"latency_target_met_at"`

	SweepDevices int     `json:"sweep_devices"`
	SweepLapsed  int     `json:"sweep_requested"`
	Sweep1MS     float64 `json:"sweep_1m_s"`
	Sweep1MRSSMB float64 `json:"sweep_1m_rss_mb"`

	BacklogJobs    int     `json:"backlog_jobs"`
	BacklogRPS     float64 `json:"backlog_rps"`
	BacklogVsEmpty float64 `json:"backlog_vs_empty"`
	BacklogRSSMB   float64 `json:"backlog_rss_mb"`

	// The fleet phase (fleet.go): calls are partner API calls at the
	// simulator, token included.
	FleetUsers                  int     `json:"fleet_users"`
	FleetDevices                int     `json:"fleet_devices"`
	FleetRateLimit              float64 `json:"fleet_rate_limit"`
	FleetServes                 int     `json:"fleet_serve_processes"`
	FleetSyncPassS              float64 `json:"fleet_sync_pass_s"`
	FleetSyncCalls              int     `json:"fleet_sync_calls"`
	FleetSyncListUsers          int     `json:"fleet_sync_list_users"`
	FleetSyncListDevices        int     `json:"fleet_sync_list_devices"`
	FleetSyncCallsPerUser       float64 `json:"fleet_sync_calls_per_user"`
	FleetSyncDeviceCallsPerUser float64 `json:"fleet_sync_device_calls_per_user"`
	// FleetSyncMinDeviceCallsPerUser is the fewest device listings a pass
	// can make: the kinds each user has. FleetSyncBeforeCallsPerUser is
	// what the sync listing every kind of every user made: 3 a user and
	// the users list.
	FleetSyncMinDeviceCallsPerUser float64 `json:"fleet_sync_min_device_calls_per_user"`
	FleetSyncBeforeCallsPerUser    float64 `json:"fleet_sync_before_calls_per_user"`
	FleetSyncCallsPerS             float64 `json:"fleet_sync_calls_per_s"`
	FleetSyncRateUsed              float64 `json:"fleet_sync_rate_used"`
	FleetSyncRSSMB                 float64 `json:"fleet_sync_rss_mb"`
	FleetBacklogRateLimit          float64 `json:"fleet_backlog_rate_limit"`
	FleetBacklogRequests           int     `json:"fleet_backlog_requests"`
	FleetBacklogWaitingAtEnd       int     `json:"fleet_backlog_waiting_at_end"`
	FleetBacklogWindowS            float64 `json:"fleet_backlog_window_s"`
	FleetBacklogCalls              int     `json:"fleet_backlog_calls"`
	FleetBacklogJobWrites          int64   `json:"fleet_backlog_job_writes"`
	FleetBacklogWritesPerCall      float64 `json:"fleet_backlog_writes_per_call"`
	FleetBacklogCallsPerS          float64 `json:"fleet_backlog_calls_per_s"`
	FleetBacklogRateUsed           float64 `json:"fleet_backlog_rate_used"`
	FleetInteractive               int     `json:"fleet_interactive_requests"`
	FleetInteractiveP50MS          float64 `json:"fleet_interactive_p50_email_ms"`
	FleetInteractiveP99MS          float64 `json:"fleet_interactive_p99_email_ms"`
	FleetSyncBusiest3s             int     `json:"fleet_sync_busiest_3s_calls"`
	FleetSyncBusiestLimit          int     `json:"fleet_sync_busiest_3s_limit"`
	FleetBacklogBusiest3s          int     `json:"fleet_backlog_busiest_3s_calls"`
	FleetBacklogBusiestLimit       int     `json:"fleet_backlog_busiest_3s_limit"`
	FleetBacklogRSSMB              float64 `json:"fleet_backlog_rss_mb"`
	FleetS                         float64 `json:"fleet_s"`

	TotalS float64 `json:"total_s"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "mailcatch" {
		os.Exit(mailcatchMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "reauth-bench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reauth-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	isQuick := fs.Bool("quick", os.Getenv("BENCH_QUICK") != "" && os.Getenv("BENCH_QUICK") != "0", "the small run (default from BENCH_QUICK)")
	binDir := fs.String("bin", "bin", "`directory` holding the reauth and podero-sim binaries")
	adminURL := fs.String("db", envOr("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"),
		"Postgres `URL` to create the benchmark's database from (BENCH_DATABASE_URL)")
	out := fs.String("out", "bench/results.json", "where to write the results `file`")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the service process during the pipeline to `file`")
	fleetOnly := fs.Bool("fleet-only", false, "run only the fleet phase (while working on it; the other figures stay 0)")
	pipelineOnly := fs.Bool("pipeline-only", false, "run only the pipeline, the bare floor and the latency phase (while working on them; the other figures stay 0)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: reauth-bench [flags]\n\nMeasures the service against the machine's own limits; see docs/PERFORMANCE.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	sz := full
	if *isQuick {
		sz = quick
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	started := time.Now()
	b, err := newBench(ctx, *adminURL, *binDir, logf)
	if err != nil {
		return err
	}
	defer b.close()
	r := results{Quick: *isQuick, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Connections: b.conns}
	switch {
	case *fleetOnly && *pipelineOnly:
		return errors.New("-fleet-only and -pipeline-only exclude each other")
	case *pipelineOnly:
		if err := b.pipelineOnly(ctx, sz, &r, *profile); err != nil {
			return err
		}
	case *fleetOnly:
		if err := b.startMailcatch(ctx); err != nil {
			return err
		}
	default:
		if err := b.machine(ctx, sz, &r, *profile); err != nil {
			return err
		}
	}
	if !*pipelineOnly {
		if err := b.fleet(ctx, sz, &r); err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
	}
	r.TotalS = round(time.Since(started).Seconds(), 1)
	return report(r, stdout, *out)
}

// machine runs the measurements against the machine's limits, with no rate
// limit: the ceilings, the pipeline, the bare floor, HTTP enqueue, latency,
// the sweep and the backlog.
func (b *bench) machine(ctx context.Context, sz sizes, r *results, profile string) error {
	logf := b.logf
	stopVacuum, standIn, err := b.standInForAutovacuum(ctx)
	if err != nil {
		return err
	}
	defer stopVacuum()
	r.VacuumStandIn = standIn
	if standIn {
		logf("autovacuum is off on this server: the harness vacuums the tables with over 1,000 dead rows every 2 s")
	}
	logf("commit ceiling: %d connections, %s", b.conns, sz.CommitWindow)
	if r.CommitCeilingTPS, err = b.commitCeiling(ctx, sz.CommitWindow); err != nil {
		return fmt.Errorf("commit ceiling: %w", err)
	}
	logf("river ceiling: %d no-op jobs", sz.RiverJobs)
	if r.RiverCeilingJPS, err = b.riverCeiling(ctx, sz.RiverJobs); err != nil {
		return fmt.Errorf("river ceiling: %w", err)
	}
	if err := b.startPeers(ctx, sz); err != nil {
		return err
	}
	logf("pipeline: %d requests", sz.Pipeline)
	if err := b.pipeline(ctx, sz, r, profile); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	logf("bare floor: %d requests, %d goroutines, no queue", sz.Pipeline, worker.PoderoWorkersDefault)
	if err := b.bare(ctx, sz, r, b.peerProcs()); err != nil {
		return fmt.Errorf("bare floor: %w", err)
	}
	if err := b.enqueueAndLatency(ctx, sz, r); err != nil {
		return err
	}
	logf("sweep: %d devices", sz.SweepDevices)
	if err := b.sweep(ctx, sz.SweepDevices, r); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	logf("backlog: %d jobs waiting", sz.Backlog)
	if err := b.backlog(ctx, sz, r); err != nil {
		return fmt.Errorf("backlog: %w", err)
	}
	return nil
}

// pipelineOnly runs the pipeline, the bare floor and, on a fresh serve
// process, the latency phase (from 80% of the pipeline's rate): the figures of
// issue 17, in a few minutes.
func (b *bench) pipelineOnly(ctx context.Context, sz sizes, r *results, profile string) error {
	stopVacuum, standIn, err := b.standInForAutovacuum(ctx)
	if err != nil {
		return err
	}
	defer stopVacuum()
	r.VacuumStandIn = standIn
	if err := b.startPeers(ctx, sz); err != nil {
		return err
	}
	b.logf("pipeline: %d requests", sz.Pipeline)
	if err := b.pipeline(ctx, sz, r, profile); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	b.logf("bare floor: %d requests, %d goroutines, no queue", sz.Pipeline, worker.PoderoWorkersDefault)
	if err := b.bare(ctx, sz, r, b.peerProcs()); err != nil {
		return fmt.Errorf("bare floor: %w", err)
	}
	p, _, err := b.serve(ctx)
	if err != nil {
		return err
	}
	defer p.stop()
	if err := b.latency(ctx, sz, r, p); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	return nil
}

// report prints the table and the JSON line and writes the JSON to path.
func report(r results, stdout io.Writer, path string) error {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(what, value, note string) { fmt.Fprintf(tw, "%s\t%s\t  %s\t\n", what, value, note) }
	mode := "full"
	if r.Quick {
		mode = "quick (BENCH_QUICK)"
	}
	fmt.Fprintf(stdout, "\nreauth-bench, %s run, %d CPUs, %s, %d connections\n\n", mode, r.CPUs, r.GoVersion, r.Connections)
	row("commit ceiling", fmt.Sprintf("%.0f tx/s", r.CommitCeilingTPS), "one-row durable INSERT transactions")
	row("River ceiling", fmt.Sprintf("%.0f jobs/s", r.RiverCeilingJPS), "no-op jobs, the service's client configuration")
	row("pipeline", fmt.Sprintf("%.0f req/s", r.PipelineRPS), fmt.Sprintf("%d requests, enqueue to email accepted", r.PipelineRequests))
	row("  vs commit ceiling", fmt.Sprintf("%.0f%%", 100*r.PipelineVsCommit), "target >= 35%")
	row("  vs River ceiling", fmt.Sprintf("%.0f%%", 100*r.PipelineVsRiver), "")
	row("  commits per request", fmt.Sprintf("%.1f", r.PipelineCommitsPerReq), "database transactions, all processes")
	row("  statements per request", fmt.Sprintf("%.2f", r.PipelineStatementsPerReq), "the service's, BEGIN and COMMIT included")
	row("  WAL per request", fmt.Sprintf("%.1f records, %.0f bytes", r.PipelineWALRecordsPerReq, r.PipelineWALBytesPerReq), "the server's, every process")
	row("  CPU per request", fmt.Sprintf("serve %.2f / postgres %.2f / sim %.2f / mail %.2f / bench %.2f ms", r.PipelineCPUServe, r.PipelineCPUPostgres, r.PipelineCPUSim, r.PipelineCPUMail, r.PipelineCPUBench), "user + system")
	row("  service RSS", fmt.Sprintf("%.0f MB", r.PipelineRSSMB), "peak")
	row("bare floor", fmt.Sprintf("%.0f req/s", r.BareRPS), fmt.Sprintf("%d requests: Podero call, one INSERT, the email; no queue", r.BareRequests))
	row("  pipeline vs bare", fmt.Sprintf("%.0f%%", 100*r.PipelineVsBare), "target >= 50%")
	row("  statements per request", fmt.Sprintf("%.2f", r.BareStatementsPerReq), "the INSERT, autocommit")
	row("  WAL per request", fmt.Sprintf("%.0f bytes", r.BareWALBytesPerReq), "the server's, every process")
	row("  CPU per request", fmt.Sprintf("serve - / postgres %.2f / sim %.2f / mail %.2f / bench %.2f ms", r.BareCPUPostgres, r.BareCPUSim, r.BareCPUMail, r.BareCPUBench), "user + system")
	row("HTTP enqueue", fmt.Sprintf("%.0f req/s", r.HTTPEnqueueRPS), fmt.Sprintf("%d POST /v1/reauth from %d connections, podero queue paused", r.HTTPEnqueueRequests, httpConns))
	row("  latency", fmt.Sprintf("%.1f / %.1f ms", r.HTTPEnqueueP50MS, r.HTTPEnqueueP99MS), "p50 / p99")
	row("  vs EnqueueMany", fmt.Sprintf("%.0f%%", 100*r.HTTPVsEnqueueMany), fmt.Sprintf("EnqueueMany %.0f req/s, transactions of 500", r.EnqueueManyRPS))
	row("latency at 80% load", fmt.Sprintf("%.0f req/s", r.OfferedRPS), fmt.Sprintf("%d requests", r.LatencyReqs))
	row("  enqueue -> stored", fmt.Sprintf("%.0f / %.0f / %.0f ms", r.P50StoredMS, r.P95StoredMS, r.P99StoredMS), "p50 / p95 / p99, target p99 <= 100 ms")
	row("  enqueue -> email", fmt.Sprintf("%.0f / %.0f / %.0f ms", r.P50EmailMS, r.P95EmailMS, r.P99EmailMS), "p50 / p95 / p99, target p99 <= 100 ms")
	row("  CPU per request", fmt.Sprintf("serve %.2f / postgres %.2f / sim %.2f / mail %.2f / bench %.2f ms", r.LatencyCPUServe, r.LatencyCPUPostgres, r.LatencyCPUSim, r.LatencyCPUMail, r.LatencyCPUBench), "user + system, one enqueue transaction a request")
	if len(r.LatencySteps) > 0 {
		latencyRows(r, row)
	}
	row("sweep", fmt.Sprintf("%.1f s", r.Sweep1MS), fmt.Sprintf("%d devices, %d requested; target <= 15 s for 1M", r.SweepDevices, r.SweepLapsed))
	row("  service RSS", fmt.Sprintf("%.0f MB", r.Sweep1MRSSMB), "peak, target <= 150 MB")
	row("backlog", fmt.Sprintf("%.0f req/s", r.BacklogRPS), fmt.Sprintf("%d jobs waiting", r.BacklogJobs))
	row("  vs empty queue", fmt.Sprintf("%.0f%%", 100*r.BacklogVsEmpty), "target >= 80%")
	row("  service RSS", fmt.Sprintf("%.0f MB", r.BacklogRSSMB), "peak, target <= 200 MB")
	row("fleet", fmt.Sprintf("%d users", r.FleetUsers), fmt.Sprintf("%d devices, %d serve processes", r.FleetDevices, r.FleetServes))
	row("  sync pass", fmt.Sprintf("%.1f s", r.FleetSyncPassS), fmt.Sprintf("%d calls, %.0f/s, %.0f%% of PODERO_RATE_LIMIT=%.0f", r.FleetSyncCalls, r.FleetSyncCallsPerS, 100*r.FleetSyncRateUsed, r.FleetRateLimit))
	row("  calls per user", fmt.Sprintf("%.3f", r.FleetSyncCallsPerUser), fmt.Sprintf("device listings %.3f (fewest possible %.3f); every kind: %.3f", r.FleetSyncDeviceCallsPerUser, r.FleetSyncMinDeviceCallsPerUser, r.FleetSyncBeforeCallsPerUser))
	row("  busiest 3 s", fmt.Sprintf("%d calls", r.FleetSyncBusiest3s), fmt.Sprintf("limit 3 x rate + burst = %d", r.FleetSyncBusiestLimit))
	row("  service RSS", fmt.Sprintf("%.0f MB", r.FleetSyncRSSMB), "peak of the processes, sync pass")
	row("  backlog writes", fmt.Sprintf("%.2f a call", r.FleetBacklogWritesPerCall), fmt.Sprintf("river_job rows, %d calls in %.0f s, %d of %d still waiting; target <= 5", r.FleetBacklogCalls, r.FleetBacklogWindowS, r.FleetBacklogWaitingAtEnd, r.FleetBacklogRequests))
	row("  backlog rate", fmt.Sprintf("%.0f calls/s", r.FleetBacklogCallsPerS), fmt.Sprintf("%.0f%% of PODERO_RATE_LIMIT=%.0f", 100*r.FleetBacklogRateUsed, r.FleetBacklogRateLimit))
	row("  interactive -> email", fmt.Sprintf("%.0f / %.0f ms", r.FleetInteractiveP50MS, r.FleetInteractiveP99MS), fmt.Sprintf("p50 / p99 of %d over HTTP behind the backlog; target p99 <= 5 s", r.FleetInteractive))
	row("  busiest 3 s", fmt.Sprintf("%d calls", r.FleetBacklogBusiest3s), fmt.Sprintf("limit 3 x rate + burst = %d", r.FleetBacklogBusiestLimit))
	row("  service RSS", fmt.Sprintf("%.0f MB", r.FleetBacklogRSSMB), "peak of the processes, backlog")
	row("total", fmt.Sprintf("%.0f s", r.TotalS), fmt.Sprintf("fleet phase %.0f s", r.FleetS))
	if err := tw.Flush(); err != nil {
		return err
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s\n", line)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(line, '\n'), 0o644)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// latencyRows prints the latency phase's CPU asked and its loads below the
// first (r.LatencySteps is not empty).
func latencyRows(r results, row func(what, value, note string)) {
	row("  CPU asked", fmt.Sprintf("%.2f of the machine", r.LatencyCPUAsked), "the offered rate x CPU per request, over the cores")
	lowest := r.LatencySteps[0].Load
	for _, st := range r.LatencySteps[1:] {
		lowest = min(lowest, st.Load)
		how := producer(time.Duration(st.BatchMS) * time.Millisecond)
		row(fmt.Sprintf("  at %.0f%% load", 100*st.Load), fmt.Sprintf("%.0f / %.0f ms", st.P50EmailMS, st.P99EmailMS),
			fmt.Sprintf("enqueue -> email p50 / p99, %s, %.0f req/s, %.2f of the machine asked", how, st.OfferedRPS, st.CPUAsked))
	}
	met := fmt.Sprintf("none down to %.0f%%", 100*lowest)
	if r.LatencyMetAt > 0 {
		met = fmt.Sprintf("%.0f%% of the pipeline rate", 100*r.LatencyMetAt)
	}
	row("  target met at", met, "the highest load with p99 enqueue -> email <= 100 ms, one transaction a request")
}
