package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/config"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/pgtemp"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/sendwindow"
	"github.com/reauth/reauth/internal/store"
)

// demoLocalURL is the Postgres the demo tries when DATABASE_URL is not set.
const demoLocalURL = "postgres://127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3"

// demoDatabase is the database the demo (re)creates on that server.
const demoDatabase = "reauth_demo"

func demoCmd(ctx context.Context, args []string, cfg config.Config, log *slog.Logger, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	throwaway := fs.Bool("throwaway-postgres", false, "always start a throwaway Postgres cluster, even if one is running")
	verbose := fs.Bool("v", false, "show the service's own logs")
	keep := fs.Bool("keep", false, "keep everything running after the summary, until Ctrl-C, and print where to look: /ops, River UI, the caught emails")
	if err := parseFlags(fs, args, stderr, `Runs the real pipeline end to end: a built-in Podero simulator, an in-process
mail catcher and the service's HTTP API and workers, on DATABASE_URL, or else
the local Postgres on 127.0.0.1:5432 (database reauth_demo, recreated), or else
a throwaway cluster started from the installed Postgres binaries. With -keep
it stays up after the summary, until Ctrl-C.`); err != nil {
		return ignoreHelp(err)
	}
	if !*verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	untilStopped := ctx // what -keep waits on, and the service runs until
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	start := time.Now()

	// 1. Postgres.
	dbURL, cleanup, err := demoPostgres(ctx, cfg.DatabaseURL.Reveal(), *throwaway, out)
	if err != nil {
		return err
	}
	defer cleanup()
	cfg.DatabaseURL = config.Secret(dbURL)
	pool, err := migratePool(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	out("✓ schema migrated")

	// 2. The Podero simulator and the mail catcher.
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	simURL := "http://" + simLn.Addr().String()
	simulator := sim.New(sim.Config{Seed: "demo", Orgs: 1, UsersPerOrg: 3, DevicesPerKind: 1, BaseURL: simURL})
	simSrv := &http.Server{Handler: simulator, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	defer simSrv.Close()
	mails, err := mailcatch.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer mails.Close()
	out("✓ Podero simulator on %s, mail catcher on %s", simURL, mails.Addr())

	// 3. The service itself, as `reauth serve` runs it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	apiToken, opsToken := randomHex(16), randomHex(16)
	cfg.PoderoBaseURL, cfg.PoderoTokenURL = simURL, simURL+"/api/partners/v2.0/auth/token"
	cfg.PoderoClientID, cfg.PoderoClientSecret = "sim-client", "sim-secret"
	cfg.PoderoUsername, cfg.PoderoPassword = "", ""
	// The simulator's links are on a connect host of its own, as Podero's
	// are on connect.podero.com: allowed like any link host.
	cfg.PoderoLinkHosts = []string{sim.DefaultConnectURL(simURL)}
	cfg.SMTPURL, cfg.MailFrom = config.Secret(mails.URL()), "Reauth Demo <reauth@example.test>"
	cfg.PublicBaseURL = base
	cfg.APITokens = []httpapi.APIToken{
		{Name: "demo", Scopes: []string{httpapi.ScopeEnqueue, httpapi.ScopeRead}, Hash: sha256Sum(apiToken)},
		{Name: "demo-ops", Scopes: []string{httpapi.ScopeOps}, Hash: sha256Sum(opsToken)},
	}
	cfg.LinkSecret = config.Secret(randomHex(32))
	cfg.SuccessURL, cfg.CancelURL = "", ""
	// The demo shows its emails whatever the hour: no quiet hours.
	cfg.SendWindow = sendwindow.Always
	// One message per user for their inverter and EV (BATCH_WINDOW), in
	// a window short enough to watch.
	cfg.BatchWindow = 2 * time.Second
	if cfg.Brand == (notify.Brand{Color: notify.BrandColorDefault}) {
		// The demo's emails and pages in a partner's brand, as a partner's
		// would be (BRAND_* and SUPPORT_* set replace it).
		cfg.Brand = notify.Brand{Name: "Example Energy", Color: "#0b6e4f", SupportURL: "https://example.com/help", SupportEmail: "help@example.com"}
	}
	srvCtx, stopSrv := context.WithCancel(untilStopped)
	srvDone := make(chan error, 1)
	go func() { srvDone <- serve(srvCtx, cfg, log, ln) }()
	defer func() { stopSrv(); <-srvDone }()
	out("✓ reauth serving on %s", base)

	// 4. Enqueue reauthentications for every inverter and electric vehicle.
	var state sim.State
	if err := getJSON(ctx, simURL+"/_sim/state", "", &state); err != nil {
		return err
	}
	type target struct {
		org, user, email string
		dev              sim.Device
	}
	var targets []target
	for _, o := range state.Orgs {
		for _, u := range o.Users {
			for _, d := range u.Devices {
				if d.Kind != reauth.Wallbox {
					targets = append(targets, target{o.ID, u.ID, u.Email, d})
				}
			}
		}
	}
	for i, t := range targets {
		locale := []string{"en", "de"}[i%2]
		res, err := postReauth(ctx, base, apiToken, map[string]string{
			"org_id": t.org, "user_id": t.user, "device_kind": string(t.dev.Kind), "device_id": t.dev.ID, "locale": locale,
		})
		if err != nil {
			return err
		}
		out("  POST /v1/reauth %-16s %s → job %d", t.dev.Kind, t.dev.ID, res.JobID)
	}
	dup, err := postReauth(ctx, base, apiToken, map[string]string{
		"org_id": targets[0].org, "user_id": targets[0].user, "device_kind": string(targets[0].dev.Kind), "device_id": targets[0].dev.ID,
	})
	if err != nil {
		return err
	}
	out("  POST /v1/reauth again for the first device → job %d, duplicate=%t", dup.JobID, dup.Duplicate)

	// 5. Wait for every email: one per user, listing their devices.
	users := map[string]bool{}
	for _, t := range targets {
		users[t.user] = true
	}
	msgs, err := mails.Wait(ctx, len(users))
	if err != nil {
		return fmt.Errorf("waiting for %d emails: %w", len(users), err)
	}
	out("✓ %d emails delivered to the mail catcher", len(msgs))

	// 6. Follow the first email's link as the user would.
	first := msgs[0]
	clickURL := mailcatch.FindLink(first.Text, link.URL(base, ""))
	if clickURL == "" {
		return errors.New("the first email holds no link")
	}
	// The link ends on the simulator's connect.localhost host, which a
	// browser resolves to loopback and Go's resolver may not.
	browser := sim.LocalhostClient()
	resp, err := browser.Get(clickURL)
	if err != nil {
		return err
	}
	resp.Body.Close()
	connect := resp.Request.URL
	out("  %s clicks the link in %q → %s", first.To[0], first.Subject, connect)
	q := connect.Query()
	q.Set("result", "success")
	connect.RawQuery = q.Encode()
	resp, err = browser.Get(connect.String())
	if err != nil {
		return err
	}
	resp.Body.Close()
	out("  logs in at the manufacturer → back at %s (%d)", redactToken(resp.Request.URL), resp.StatusCode)

	// 7. The summary, from the service's own API.
	out("\nSummary")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tDEVICE\tPODERO SESSION\tLINK\tEMAIL TO\tSENT\tSESSION STATE")
	completed := 0
	for _, t := range targets {
		var v store.DeviceView
		if err := getJSON(ctx, fmt.Sprintf("%s/v1/devices/%s/%s", base, t.dev.Kind, t.dev.ID), apiToken, &v); err != nil {
			return err
		}
		if len(v.Sessions) == 0 || len(v.Notifications) == 0 {
			return fmt.Errorf("device %s has no session or no notification", t.dev.ID)
		}
		s, n := v.Sessions[0], v.Notifications[0]
		if s.State == store.SessionCompleted {
			completed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.dev.Kind, short(t.dev.ID), short(s.PoderoSessionID),
			s.AuthenticationURL, n.Recipient, n.State, s.State)
	}
	tw.Flush()
	if completed != 1 {
		return fmt.Errorf("expected exactly one completed session, found %d", completed)
	}
	out("\n✓ %d sessions created, %d emails sent, 1 link followed to completion, in %s",
		len(targets), len(msgs), time.Since(start).Round(100*time.Millisecond))
	if !*keep {
		return nil
	}
	return demoKeep(untilStopped, out, base, apiToken, opsToken, mails)
}

// demoKeep serves the caught emails as web pages, prints where to look, and
// waits for ctx (Ctrl-C); the caller's deferred stops then take the stack
// down in order.
func demoKeep(ctx context.Context, out func(string, ...any), base, apiToken, opsToken string, mails *mailcatch.Server) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	web := &http.Server{Handler: mails.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = web.Serve(ln) }()
	defer web.Close()
	// Not in the URLs' user info: River UI's page cannot call its API from
	// a URL holding credentials.
	out("\nThe demo keeps running until Ctrl-C. Sign in with any user name and the ops token %s as the password:", opsToken)
	out("  ops page:       %s/ops", base)
	out("  River UI:       %s%s/", base, httpapi.RiverUIPath)
	out("  caught emails:  http://%s/", ln.Addr())
	out("  with curl:      curl -u ops:%s %s/ops", opsToken, base)
	out("  the API:        curl -H 'Authorization: Bearer %s' %s/v1/devices/KIND/ID", apiToken, base)
	<-ctx.Done()
	out("stopping")
	return nil
}

// demoPostgres picks the demo's database: DATABASE_URL when set, else a
// fresh reauth_demo database on the local server, else a throwaway cluster.
func demoPostgres(ctx context.Context, envURL string, throwaway bool, out func(string, ...any)) (string, func(), error) {
	if envURL != "" && !throwaway {
		// The demo's workers talk to a simulator and a mail catcher: on a
		// database with real requests they would work those too.
		if err := requireUnused(ctx, envURL); err != nil {
			return "", nil, err
		}
		out("✓ using DATABASE_URL")
		return envURL, func() {}, nil
	}
	if !throwaway {
		if u, err := recreateDatabase(ctx, demoLocalURL, demoDatabase); err == nil {
			out("✓ using the local Postgres on 127.0.0.1:5432, database %s", demoDatabase)
			return u, func() {}, nil
		}
	}
	c, err := pgtemp.Start(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("no Postgres on 127.0.0.1:5432 and no throwaway cluster: %w", err)
	}
	out("✓ started a throwaway Postgres cluster (removed at the end)")
	u, err := recreateDatabase(ctx, c.URL, demoDatabase)
	if err != nil {
		c.Stop()
		return "", nil, err
	}
	return u, c.Stop, nil
}

// requireUnused refuses a database that already holds jobs or devices.
func requireUnused(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	var used bool
	for _, table := range []string{"river_job", "device"} {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
			return fmt.Errorf("inspect DATABASE_URL: %w", err)
		}
		if exists {
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+table+")").Scan(&used); err != nil {
				return fmt.Errorf("inspect DATABASE_URL: %w", err)
			}
		}
		if used {
			break
		}
	}
	if used {
		return errors.New("DATABASE_URL holds jobs or devices already; the demo runs only on an empty database (unset DATABASE_URL to use a fresh reauth_demo database)")
	}
	return nil
}

// recreateDatabase drops and creates db on the server of adminURL and
// returns its URL.
func recreateDatabase(ctx context.Context, adminURL, db string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return "", err
	}
	u, _ := url.Parse(adminURL)
	u.Path = "/" + db
	return u.String(), nil
}

func postReauth(ctx context.Context, base, token string, body map[string]string) (reauth.Result, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/reauth", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reauth.Result{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return reauth.Result{}, fmt.Errorf("POST /v1/reauth: %s: %s", resp.Status, msg)
	}
	var res reauth.Result
	return res, json.NewDecoder(resp.Body).Decode(&res)
}

func getJSON(ctx context.Context, u, token string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

// redactToken hides the link token in a /r/{token}/... URL before printing.
func redactToken(u *url.URL) string {
	parts := strings.Split(u.Path, "/")
	if len(parts) > 2 && parts[1] == "r" {
		parts[2] = "{token}"
	}
	s := u.Scheme + "://" + u.Host + strings.Join(parts, "/")
	if u.RawQuery != "" {
		s += "?" + u.RawQuery
	}
	return s
}
