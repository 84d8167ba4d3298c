package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"

	"github.com/reauth/reauth/internal/config"
	"github.com/reauth/reauth/internal/hostlist"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/notify/push"
	"github.com/reauth/reauth/internal/notify/webhook"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/sendwindow"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/worker"
	"github.com/reauth/reauth/migrations"
)

func serveCmd(ctx context.Context, args []string, cfg config.Config, log *slog.Logger, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if err := parseFlags(fs, args, stderr, "Runs the HTTP API and the workers in one process until SIGINT or SIGTERM."); err != nil {
		return ignoreHelp(err)
	}
	if err := cfg.Require(config.ServeVars...); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR: %w", err)
	}
	return serve(ctx, cfg, log, ln)
}

func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// openPool connects to DATABASE_URL, which every command needs. The pool is
// sized for the workers unless the URL sets pool_max_conns.
func openPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	if err := cfg.Require("DATABASE_URL"); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL.Reveal())
	if err != nil {
		return nil, errors.New("DATABASE_URL is not a valid Postgres URL")
	}
	if !strings.Contains(cfg.DatabaseURL.Reveal(), "pool_max_conns") { // ParseConfig drops it from RuntimeParams
		pc.MaxConns = int32(config.PoolConns())
	}
	pc.ConnConfig.Tracer = &metrics.DBStatements
	if _, set := pc.ConnConfig.RuntimeParams["jit"]; !set {
		// The service's statements are short; Postgres JIT-compiles any
		// whose estimate passes jit_above_cost, which statistics that lag
		// a growing table make it do on every call (measured: 49 ms
		// compiling for a 0.2 ms sweep page, 14 s instead of 2 s for a
		// sweep of a million devices). A SET, not a startup parameter,
		// so that a pooler that refuses unknown ones (PgBouncer) passes
		// it; ?jit=on in DATABASE_URL keeps the server's.
		pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "SET jit = off")
			return err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to Postgres at %s: %w", pc.ConnConfig.Host, err)
	}
	return pool, nil
}

// openMigratedPool is openPool for every command but migrate and demo: it
// also refuses a database whose schema is missing or behind this binary,
// saying to run `reauth migrate`, instead of failing later on a missing
// table.
func openMigratedPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := migrations.Check(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// serve runs the API on ln and the workers until ctx is done, then stops in
// order: no new requests or jobs, running ones get SHUTDOWN_GRACE, then the
// rest is cancelled and returns to the queue without a recorded failure.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, ln net.Listener) error {
	log.InfoContext(ctx, "starting", slog.Any("config", cfg))
	pool, err := openMigratedPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	tr, err := startTracing(ctx, log)
	if err != nil {
		return err
	}
	defer stopTracing(log, tr)

	// The metrics report the client's breaker and the client reports its
	// requests to the metrics: the observer reads m when called.
	var m *metrics.Metrics
	limiter := &worker.Limiter{DB: pool, Rate: cfg.PoderoRateLimit, Burst: cfg.PoderoRateBurst, MaxWait: cfg.PoderoRateMaxWait,
		SyncShare: cfg.SyncRateShare}
	pc, err := podero.New(podero.Config{
		BaseURL:      cfg.PoderoBaseURL,
		TokenURL:     cfg.PoderoTokenURL,
		ClientID:     cfg.PoderoClientID,
		ClientSecret: cfg.PoderoClientSecret.Reveal(),
		Username:     cfg.PoderoUsername,
		Password:     cfg.PoderoPassword.Reveal(),
		TokenBody:    cfg.PoderoTokenBody,
		LinkHosts:    cfg.PoderoLinkHosts,
		// Every process shares one rate limit and one Retry-After hold, in Postgres.
		Limiter:         limiter,
		Observe:         func(op string, status int, took time.Duration) { m.PoderoRequest(op, status, took) },
		LinkRejected:    func(host string) { m.PoderoLinkRejected(host) },
		RequestTimeout:  cfg.PoderoTimeout,
		BreakerFailures: cfg.BreakerFailures,
		BreakerCoolOff:  cfg.BreakerCoolOff,
		Logger:          log,
		TracerProvider:  tr.Provider,
	})
	if err != nil {
		return err
	}
	m = metrics.New(pool, func() bool { return pc.Breaker().State != podero.BreakerClosed })
	limiter.Metrics = m
	m.WatchBudget(func(ctx context.Context) (metrics.BudgetReading, error) {
		b, err := store.GetBudget(ctx, pool)
		if err != nil {
			return metrics.BudgetReading{}, err
		}
		s, err := store.GetSyncStatus(ctx, pool, nil, cfg.SyncInterval)
		r := metrics.BudgetReading{Rates: b.Rates, Waiting: b.Waiting, DrainSeconds: math.Inf(1),
			SyncLagSeconds: s.Lag.Seconds(), SyncPassSeconds: math.Inf(1)}
		if d, ok := b.DrainTime(); ok {
			r.DrainSeconds = d.Seconds()
		}
		if d, ok := s.PassTime(s.CallsPerSecond()); ok {
			r.SyncPassSeconds = d.Seconds()
		}
		return r, err
	})
	renderer, err := notify.NewBrandedRenderer(cfg.TemplatesDir, cfg.Brand)
	if err != nil {
		return err
	}
	email, err := notify.NewEmail(notify.EmailConfig{URL: cfg.SMTPURL.Reveal(), From: cfg.MailFrom, Conns: cfg.SMTPConns}, renderer)
	if err != nil {
		return err
	}
	defer email.Close()
	m.WatchEmail(func() bool { return email.Health().Broken })
	channels, postEvent, err := optionalChannels(cfg, renderer)
	if err != nil {
		return err
	}
	signer, err := link.NewSigner([]byte(cfg.LinkSecret.Reveal()))
	if err != nil {
		return err
	}
	redirectHosts, err := hostlist.Parse(cfg.RedirectHosts)
	if err != nil {
		return fmt.Errorf("REDIRECT_HOSTS: %w", err)
	}
	syncSchedule, _ := config.Schedule(cfg.SyncSchedule) // validated by config.Load
	sweepSchedule, _ := config.Schedule(cfg.SweepSchedule)
	pruneSchedule, err := config.Schedule(worker.PruneScheduleDefault)
	if err != nil {
		return err
	}

	// One cache of Podero's users for the workers and the API: a user the
	// API found by external_user_id costs the worker no second call.
	users := &worker.UserCache{}
	findUser := func(ctx context.Context, orgID, externalID string) (podero.User, error) {
		return users.ByExternalID(ctx, pc, orgID, externalID)
	}
	rc, err := worker.NewClient(worker.Config{
		Pool:              pool,
		Podero:            pc,
		Users:             users,
		Email:             email,
		Push:              channels.push,
		Webhook:           channels.webhook,
		PostEvent:         postEvent,
		EventsGiveUpAfter: cfg.EventsGiveUpAfter,
		ReminderOffsets:   cfg.ReminderOffsets,
		Links:             signer,
		PublicBaseURL:     cfg.PublicBaseURL,
		RedirectHosts:     redirectHosts,
		LinkTTL:           cfg.LinkTTL,
		RenewWait:         cfg.LinkRenewWait,
		BatchWindow:       cfg.BatchWindow,
		SendWindow:        cfg.SendWindow,
		DefaultZone:       cfg.DefaultTimezone,
		PoderoWorkers:     cfg.PoderoWorkers,
		NotifyWorkers:     cfg.NotifyWorkers,
		JobTimeout:        cfg.JobTimeout,
		RescueAfter:       cfg.RescueAfter,
		RetryCap:          cfg.RetryCap,
		MaxAttempts:       cfg.MaxAttempts,
		OrgIDs:            cfg.OrgIDs,
		SyncSchedule:      periodicSchedule(syncSchedule),
		SyncInterval:      cfg.SyncInterval,
		PoderoRate:        cfg.PoderoRateLimit,
		SyncShare:         cfg.SyncRateShare,
		SweepSchedule:     periodicSchedule(sweepSchedule),
		PruneSchedule:     periodicSchedule(pruneSchedule),
		ReauthCooldown:    cfg.ReauthCooldown,
		RepeatCooldown:    cfg.RepeatCooldown,
		VerifyAfter:       cfg.VerifyAfter,
		VerifyTimeout:     cfg.VerifyTimeout,
		MaxPerWeek:        cfg.ReauthMaxPerWeek,
		SweepBatch:        cfg.SweepBatch,
		Metrics:           m,
		Logger:            log,
		TracerProvider:    tr.Provider,

		InteractiveRespectsWindow: cfg.SendWindowInteractive == sendwindow.InteractiveRespect,
	})
	if err != nil {
		return err
	}
	// Count every job attempt's outcome.
	events, stopEvents := rc.Subscribe(river.EventKindJobCompleted, river.EventKindJobCancelled,
		river.EventKindJobFailed, river.EventKindJobSnoozed)
	eventsDone := make(chan struct{})
	go func() {
		defer close(eventsDone)
		for ev := range events {
			state := string(ev.Job.State)
			if ev.Kind == river.EventKindJobSnoozed {
				state = "snoozed"
			}
			kind := ev.Job.Kind
			switch kind { // a bounded label: only the service's own kinds
			case "reauth_device", "reauth_notify", "reauth_sync", "reauth_sync_user", "reauth_sync_dispatch", "reauth_sweep", "reauth_event", "reauth_verify", "reauth_prune":
			default:
				kind = "other"
			}
			m.JobFinished(kind, state)
		}
	}()
	defer func() { stopEvents(); <-eventsDone }()

	// Jobs run on their own context: on shutdown they get the grace period
	// instead of being cancelled with ctx.
	if err := rc.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}

	srv := &http.Server{
		Handler: httpapi.New(httpapi.Config{
			Pool: pool, River: rc, Tokens: cfg.APITokens,
			SuccessURL: cfg.SuccessURL, CancelURL: cfg.CancelURL, RedirectHosts: redirectHosts, Brand: cfg.Brand,
			Breaker: pc.Breaker, Problems: pc.Problems, Metrics: m, Logger: log,
			RenewWait: cfg.LinkRenewWait, Events: postEvent != nil,
			RepeatCooldown: cfg.RepeatCooldown, VerifyAfter: cfg.VerifyAfter, FindUser: findUser, MaxAttempts: cfg.MaxAttempts,
			RateLimit: cfg.PoderoRateLimit, SyncInterval: cfg.SyncInterval, SyncShare: cfg.SyncRateShare, EmailHealth: email.Health,
			TracerProvider: tr.Provider, Links: signer,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	if cfg.PprofAddr != "" {
		// Go's profiler, on its own (normally loopback) address, never on HTTP_ADDR.
		pprofSrv := &http.Server{Addr: cfg.PprofAddr, Handler: pprofMux(), ReadHeaderTimeout: 5 * time.Second}
		go func() { log.WarnContext(ctx, "pprof server stopped", slog.Any("error", pprofSrv.ListenAndServe())) }()
		defer pprofSrv.Close()
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	log.InfoContext(ctx, "listening", slog.String("addr", ln.Addr().String()))

	select {
	case <-ctx.Done():
		log.InfoContext(ctx, "shutting down")
	case err = <-srvErr:
		log.ErrorContext(ctx, "http server failed", slog.Any("error", err))
	}

	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if shutErr := srv.Shutdown(stopCtx); shutErr != nil {
		log.WarnContext(stopCtx, "http shutdown", slog.Any("error", shutErr))
	}
	if stopErr := rc.Stop(stopCtx); stopErr != nil {
		log.WarnContext(stopCtx, "grace period over, cancelling running jobs", slog.Any("error", stopErr))
		hardCtx, hardCancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hardCancel()
		_ = rc.StopAndCancel(hardCtx)
	}
	log.InfoContext(context.Background(), "stopped")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// channels are the optional channels; nil when not configured.
type channels struct {
	push    worker.Sender
	webhook worker.Sender
}

// optionalChannels builds push (FCM_PROJECT_ID), the partner's push webhook
// (PUSH_WEBHOOK_URL) and the events poster (EVENTS_WEBHOOK_URL), each only
// when configured.
func optionalChannels(cfg config.Config, r *notify.Renderer) (channels, func(context.Context, string, any) error, error) {
	var ch channels
	if cfg.FCMProjectID != "" {
		p, err := push.NewPush(push.Config{ProjectID: cfg.FCMProjectID, CredentialsFile: cfg.FCMCredentials, Endpoint: cfg.FCMEndpoint}, r)
		if err != nil {
			return ch, nil, fmt.Errorf("push (FCM_*): %w", err)
		}
		ch.push = p
	}
	if cfg.PushWebhookURL != "" {
		s, err := webhook.NewSender(webhook.SenderConfig{Secret: cfg.PushWebhookSecret.Reveal()})
		if err != nil {
			return ch, nil, fmt.Errorf("PUSH_WEBHOOK_SECRET: %w", err)
		}
		c, err := webhook.NewChannel(cfg.PushWebhookURL, s, r)
		if err != nil {
			return ch, nil, fmt.Errorf("PUSH_WEBHOOK_URL: %w", err)
		}
		ch.webhook = c
	}
	if cfg.EventsWebhookURL == "" {
		return ch, nil, nil
	}
	if _, err := webhook.CheckURL(cfg.EventsWebhookURL); err != nil {
		return ch, nil, fmt.Errorf("EVENTS_WEBHOOK_URL: %w", err)
	}
	s, err := webhook.NewSender(webhook.SenderConfig{Secret: cfg.EventsSecret.Reveal()})
	if err != nil {
		return ch, nil, fmt.Errorf("EVENTS_WEBHOOK_SECRET: %w", err)
	}
	return ch, func(ctx context.Context, id string, payload any) error {
		return s.Post(ctx, cfg.EventsWebhookURL, id, payload)
	}, nil
}

// pprofMux serves net/http/pprof's handlers under /debug/pprof/.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	return mux
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// periodicSchedule turns an optional cron schedule into River's; nil stays
// nil (the periodic job is off).
func periodicSchedule(s cron.Schedule) river.PeriodicSchedule {
	if s == nil {
		return nil
	}
	return s
}
