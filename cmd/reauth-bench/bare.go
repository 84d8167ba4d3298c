package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/reauth/reauth/internal/config"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/worker"
)

// bareKeyPrefix starts the message key of every bare-phase email: its
// Message-ID is "<bare-ROW-0@domain>", ROW the request's row in bench_bare.
const bareKeyPrefix = "bare-"

// serveConfig is the configuration `reauth serve` loads from serveEnv.
func (b *bench) serveConfig() (config.Config, error) {
	env := map[string]string{}
	for _, kv := range b.serveEnv() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return config.Load(func(k string) string { return env[k] })
}

// bare is the floor: the least any program does for the pipeline's
// requests on the same machine with the same peers, and no queue. Per
// request, from worker.PoderoWorkersDefault goroutines: one Podero
// auth_session call as the service makes it (one cached OAuth2 token), one
// durable autocommit INSERT of the session into a table of its own, and the
// first message the service sends, rendered and sent by the service's own
// notify.Email. Then the exactly-once check on its own rows.
func (b *bench) bare(ctx context.Context, sz sizes, r *results, procs cpuProcs) error {
	cfg, err := b.serveConfig()
	if err != nil {
		return fmt.Errorf("the service's configuration: %w", err)
	}
	devs, err := b.take(sz.Pipeline)
	if err != nil {
		return err
	}

	// The database: the pool's size is the service's, and it counts its
	// statements as the service's does.
	var statements metrics.StatementCounter
	pc, err := pgxpool.ParseConfig(b.dbURL)
	if err != nil {
		return err
	}
	pc.MaxConns = int32(b.conns)
	pc.ConnConfig.Tracer = &statements
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := b.pool.Exec(ctx, `CREATE TABLE bench_bare (
		id bigserial PRIMARY KEY,
		device_id uuid NOT NULL UNIQUE,
		podero_session_id uuid NOT NULL,
		authentication_url text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	defer b.pool.Exec(context.WithoutCancel(ctx), "DROP TABLE bench_bare") //nolint:errcheck
	if err := pool.Ping(ctx); err != nil {
		return err
	}

	// Podero: the service's HTTP client settings, one cached token from the
	// simulator's token endpoint (client credentials, basic auth).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 2 * podero.MaxIdleConnsPerHostDefault
	tr.MaxIdleConnsPerHost = podero.MaxIdleConnsPerHostDefault
	tr.IdleConnTimeout = 90 * time.Second
	defer tr.CloseIdleConnections()
	baseClient := &http.Client{Timeout: podero.RequestTimeoutDefault, Transport: tr}
	cc := &clientcredentials.Config{
		ClientID:     cfg.PoderoClientID,
		ClientSecret: cfg.PoderoClientSecret.Reveal(),
		TokenURL:     strings.TrimRight(cfg.PoderoBaseURL, "/") + podero.TokenPath,
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	hc := cc.Client(context.WithValue(ctx, oauth2.HTTPClient, baseClient))
	hc.Timeout = podero.RequestTimeoutDefault
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	// Email: the service's renderer and sender, as serve builds them.
	renderer, err := notify.NewBrandedRenderer(cfg.TemplatesDir, cfg.Brand)
	if err != nil {
		return err
	}
	email, err := notify.NewEmail(notify.EmailConfig{URL: cfg.SMTPURL.Reveal(), From: cfg.MailFrom, Conns: cfg.SMTPConns}, renderer)
	if err != nil {
		return err
	}
	defer email.Close()
	signer, err := link.NewSigner([]byte(cfg.LinkSecret.Reveal()))
	if err != nil {
		return err
	}

	base, err := b.mailCount(ctx)
	if err != nil {
		return err
	}
	one := func(ctx context.Context, d simDevice) error {
		nonce := link.NewNonce()
		token := signer.Token(nonce)
		body, err := json.Marshal(podero.AuthSessionInput{
			SuccessURL: link.DoneURL(cfg.PublicBaseURL, token, "success"), CancelURL: link.DoneURL(cfg.PublicBaseURL, token, "cancel")})
		if err != nil {
			return err
		}
		path := "/api/partners/v2.0/org/" + url.PathEscape(d.Org) + "/users/" + url.PathEscape(d.User) + "/" +
			podero.CollectionPath(d.Kind) + "/" + url.PathEscape(d.ID) + "/auth_session"
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(cfg.PoderoBaseURL, "/")+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", podero.UserAgent)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, podero.MaxBodyBytes))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("auth_session for device %s: %s", d.ID, resp.Status) // the body may echo the link token
		}
		var sess struct {
			AuthenticationURL string `json:"authentication_url"`
			SessionID         string `json:"session_id"`
		}
		if err := json.Unmarshal(raw, &sess); err != nil || sess.AuthenticationURL == "" || sess.SessionID == "" {
			return fmt.Errorf("auth_session for device %s: an answer without a session", d.ID)
		}
		var id int64
		if err := pool.QueryRow(ctx, `INSERT INTO bench_bare (device_id, podero_session_id, authentication_url)
			VALUES ($1, $2, $3) RETURNING id`, d.ID, sess.SessionID, sess.AuthenticationURL).Scan(&id); err != nil {
			return err
		}
		return email.Send(ctx, notify.Message{
			Key: fmt.Sprintf("%s%d-0", bareKeyPrefix, id), To: d.Email, OrgID: d.Org, UserID: d.User, DeviceID: d.ID,
			DeviceKind: d.Kind, Link: link.URL(cfg.PublicBaseURL, token), Step: 0, ExpiresAt: time.Now().Add(cfg.LinkTTL),
		})
	}

	work := make(chan simDevice)
	var failed atomic.Pointer[error]
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range worker.PoderoWorkersDefault {
		wg.Go(func() {
			for d := range work {
				if err := one(ctx, d); err != nil {
					if failed.CompareAndSwap(nil, &err) {
						cancel()
					}
					return
				}
			}
		})
	}
	s0, err := procs.sample()
	if err != nil {
		return err
	}
	statements0 := statements.Count()
	wal0, err := b.walBytes(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
feed:
	for _, d := range devs {
		select {
		case work <- d:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if e := failed.Load(); e != nil {
		return *e
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := b.waitMail(ctx, base+len(devs), time.Minute); err != nil {
		return err
	}
	s1, err := procs.sample()
	if err != nil {
		return err
	}
	wal1, err := b.walBytes(ctx)
	if err != nil {
		return err
	}
	_, order, err := b.mailTimes(ctx)
	if err != nil {
		return err
	}
	took := order[base+len(devs)-1].Sub(start)
	r.BareRequests = len(devs)
	r.BareRPS = round(float64(len(devs))/took.Seconds(), 0)
	r.PipelineVsBare = round(r.PipelineRPS/r.BareRPS, 3)
	r.BareStatementsPerReq = round(float64(statements.Count()-statements0)/float64(len(devs)), 2)
	r.BareWALBytesPerReq = round(float64(wal1-wal0)/float64(len(devs)), 0)
	cpu := cpuPerRequest(s0, s1, len(devs))
	r.BareCPUPostgres, r.BareCPUSim, r.BareCPUMail, r.BareCPUBench = cpu.Postgres, cpu.Sim, cpu.Mail, cpu.Bench
	return b.checkBare(ctx, devs)
}

// checkBare fails unless the bare phase made one row per request, one per
// device, and the catcher accepted exactly one message for each row.
func (b *bench) checkBare(ctx context.Context, devs []simDevice) error {
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
	}
	rows, err := b.pool.Query(ctx, "SELECT id, device_id::text FROM bench_bare")
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(devs))
	for _, id := range ids {
		want[id] = true
	}
	keys := map[string]int{} // Message-ID → messages accepted
	perDevice := map[string]int{}
	for rows.Next() {
		var id int64
		var dev string
		if err := rows.Scan(&id, &dev); err != nil {
			rows.Close()
			return err
		}
		keys[fmt.Sprintf("<%s%d-0@bench.example>", bareKeyPrefix, id)] = 0
		perDevice[dev]++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(keys) != len(devs) || len(perDevice) != len(devs) {
		return fmt.Errorf("bare: %d requests made %d rows for %d devices", len(devs), len(keys), len(perDevice))
	}
	for dev, n := range perDevice {
		if !want[dev] || n != 1 {
			return fmt.Errorf("bare: device %s has %d rows and was requested: %v", dev, n, want[dev])
		}
	}
	var msgs []caught
	if err := getJSON(ctx, b.mailURL+"/messages", &msgs); err != nil {
		return err
	}
	bare := 0
	for _, m := range msgs {
		if !strings.HasPrefix(m.MessageID, "<"+bareKeyPrefix) {
			continue
		}
		bare++
		n, ok := keys[m.MessageID]
		if !ok {
			return fmt.Errorf("bare: a message %s for no row", m.MessageID)
		}
		keys[m.MessageID] = n + 1
	}
	for k, n := range keys {
		if n != 1 {
			return fmt.Errorf("bare: %d messages %s for one row", n, k)
		}
	}
	if bare != len(devs) {
		return fmt.Errorf("bare: %d messages for %d rows", bare, len(devs))
	}
	return nil
}
