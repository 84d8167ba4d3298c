// Package e2e_test runs the built binaries as a user would: podero-sim and
// reauth as separate processes, a real SMTP server, real Postgres.
package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/testdb"
)

// Distinctive secret values: none may appear in logs, job rows or answers.
const (
	clientSecret = "SECRET-client-7f3a9c"
	smtpPassword = "SECRET-smtp-41bd2e"
	apiToken     = "SECRET-apitoken-c0ffee1234"
	linkSecret   = "SECRET-link-key-0123456789abcdef0123456789"
	poderoPass   = "SECRET-podero-password-5a5a"
)

type service struct {
	env    []string
	base   string
	simURL string
	mails  *mailcatch.Server
	dbURL  string
}

func newService(t *testing.T, dbURL string, simArgs ...string) *service {
	t.Helper()
	s := &service{dbURL: dbURL}
	s.simURL = startSim(t, append([]string{"-seed", t.Name(), "-client-secret", clientSecret,
		"-username", "reauth-api", "-password", poderoPass}, simArgs...)...)
	var err error
	s.mails, err = mailcatch.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { s.mails.Close() })
	addr := freeAddr(t)
	s.base = "http://" + addr
	s.env = append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"PODERO_BASE_URL="+s.simURL,
		"PODERO_CLIENT_ID=sim-client",
		"PODERO_CLIENT_SECRET="+clientSecret,
		"PODERO_USERNAME=reauth-api", // the password grant
		"PODERO_PASSWORD="+poderoPass,
		// The simulator's links are on its connect host, as Podero's are
		// on connect.podero.com: allowed like any link host.
		"PODERO_LINK_HOSTS="+sim.DefaultConnectURL(s.simURL),
		"SMTP_URL=smtp://mailer:"+smtpPassword+"@"+s.mails.Addr(),
		"MAIL_FROM=Reauth <reauth@example.test>",
		"PUBLIC_BASE_URL="+s.base,
		"HTTP_ADDR="+addr,
		"API_TOKENS=e2e:"+apiToken,
		"LINK_SECRET="+linkSecret,
		// The tests run at any hour; quiet hours have a test of their own.
		"SEND_WINDOW=off",
		// Each request's message on its own, at once, as these tests
		// expect; batching (BATCH_WINDOW) has tests of its own
		// (pipeline_batch_test.go, TestCrashBatched).
		"BATCH_WINDOW=0",
		"LOG_FORMAT=json",
		"LOG_LEVEL=debug",
	)
	return s
}

func (s *service) serve(t *testing.T, extraEnv ...string) *proc {
	t.Helper()
	p := start(t, append(s.env, extraEnv...), "reauth", "serve")
	waitReady(t, s.base)
	return p
}

func (s *service) state(t *testing.T) sim.State {
	t.Helper()
	var st sim.State
	getJSON(t, s.simURL+"/_sim/state", &st)
	return st
}

func (s *service) enqueue(t *testing.T, org string, u sim.User, d sim.Device, extra string) int64 {
	t.Helper()
	var out struct {
		JobID     int64 `json:"job_id"`
		Duplicate bool  `json:"duplicate"`
	}
	body := fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":%q,"device_id":%q%s}`, org, u.ID, d.Kind, d.ID, extra)
	require.Equal(t, http.StatusAccepted, api(t, http.MethodPost, s.base+"/v1/reauth", apiToken, body, &out))
	require.False(t, out.Duplicate)
	return out.JobID
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, testdb.EmptyURL(t))

	// serve refuses an unmigrated database and says what to do.
	refused := start(t, s.env, "reauth", "serve")
	require.Equal(t, 1, refused.wait(t, 30*time.Second))
	require.Contains(t, refused.output.String(), "run `reauth migrate`")

	migrate := start(t, s.env, "reauth", "migrate")
	require.Equal(t, 0, migrate.wait(t, 60*time.Second), migrate.output.String())

	// A partner page the user lands on after a successful login; its host
	// must be on REDIRECT_HOSTS.
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "partner page")
	}))
	defer partner.Close()
	srv := s.serve(t, "REDIRECT_HOSTS=http://"+partner.Listener.Addr().String())

	// A success_url elsewhere is refused before anything is enqueued.
	st0 := s.state(t)
	u0 := st0.Orgs[0].Users[0]
	var refusal map[string]string
	require.Equal(t, http.StatusBadRequest, api(t, http.MethodPost, s.base+"/v1/reauth", apiToken,
		fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":"inverter","device_id":%q,"success_url":"https://evil.example/"}`,
			st0.Orgs[0].ID, u0.ID, u0.Devices[0].ID), &refusal))
	require.Contains(t, refusal["error"], "REDIRECT_HOSTS")

	st := s.state(t)
	org, user := st.Orgs[0].ID, st.Orgs[0].Users[0]
	var inverter, ev sim.Device
	for _, d := range user.Devices {
		switch d.Kind {
		case "inverter":
			inverter = d
		case "electric_vehicle":
			ev = d
		}
	}
	s.enqueue(t, org, user, inverter, `,"locale":"de","success_url":"`+partner.URL+`/done"`)
	s.enqueue(t, org, user, ev, "")

	// Hostile callers are turned away and enqueue nothing.
	require.Equal(t, http.StatusUnauthorized, api(t, http.MethodPost, s.base+"/v1/reauth", "wrong-token-123456789", `{}`, nil))
	require.Equal(t, http.StatusBadRequest, api(t, http.MethodPost, s.base+"/v1/reauth", apiToken, `{"org_id":`, nil))

	ctxWait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	msgs, err := s.mails.Wait(ctxWait, 2)
	require.NoError(t, err)
	require.Len(t, msgs, 2)

	var tokens []string
	for _, m := range msgs {
		require.Equal(t, []string{user.Email}, m.To)
		link := mailcatch.FindLink(m.Text, s.base+"/r/")
		require.NotEmpty(t, link, "no link in %q", m.Text)
		require.Contains(t, m.HTML, link)
		tokens = append(tokens, strings.TrimPrefix(link, s.base+"/r/"))

		// The link leads to the manufacturer's (simulator's) connect page...
		// (on the simulator's connect.localhost host, as a browser resolves it).
		browser := sim.LocalhostClient()
		resp, err := browser.Get(link)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		connect := resp.Request.URL
		require.True(t, strings.HasPrefix(connect.String(), sim.DefaultConnectURL(s.simURL)+"/connect/"), connect.String())

		// ...and logging in there comes back through /done to the partner's page.
		q := connect.Query()
		q.Set("result", "success")
		connect.RawQuery = q.Encode()
		resp, err = browser.Get(connect.String())
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		if strings.Contains(m.Subject, "Wechselrichter") {
			require.Equal(t, partner.URL+"/done", resp.Request.URL.String())
		} else {
			require.Equal(t, s.base+"/r/"+tokens[len(tokens)-1]+"/done?result=success", resp.Request.URL.String())
		}
	}
	require.Contains(t, msgs[0].Subject+msgs[1].Subject, "Wechselrichter", "the inverter's message is in German")

	for _, d := range []sim.Device{inverter, ev} {
		var view struct {
			Sessions []struct {
				SessionID         string `json:"session_id"`
				AuthenticationURL string `json:"authentication_url"`
				State             string `json:"state"`
				ExpiresAt         string `json:"expires_at"`
			} `json:"sessions"`
			Notifications []struct {
				Channel string  `json:"channel"`
				State   string  `json:"state"`
				SentAt  *string `json:"sent_at"`
			} `json:"notifications"`
		}
		require.Equal(t, http.StatusOK, api(t, http.MethodGet, s.base+"/v1/devices/"+string(d.Kind)+"/"+d.ID, apiToken, "", &view))
		require.Len(t, view.Sessions, 1)
		require.Equal(t, "completed", view.Sessions[0].State)
		require.Len(t, view.Notifications, 1)
		require.Equal(t, "email", view.Notifications[0].Channel)
		require.Equal(t, "sent", view.Notifications[0].State)
		require.NotNil(t, view.Notifications[0].SentAt)
	}
	// The simulator saw both devices reconnected.
	for _, d := range s.state(t).Orgs[0].Users[0].Devices {
		if d.ID == inverter.ID || d.ID == ev.ID {
			require.True(t, d.IsAuthenticated, d.ID)
		}
	}

	// Every answer the service gave: the API, health, metrics.
	var answers strings.Builder
	for _, path := range []string{"/v1/devices/inverter/" + inverter.ID, "/v1/devices/electric_vehicle/" + ev.ID, "/readyz", "/healthz", "/metrics"} {
		req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		answers.WriteString(readAll(t, resp))
	}
	for _, tok := range tokens {
		resp, err := http.Get(s.base + "/r/" + tok) // the "already connected" page
		require.NoError(t, err)
		answers.WriteString(readAll(t, resp))
	}
	require.Contains(t, answers.String(), "authentication_url", "answers were captured")

	// The metrics saw both reauthentications through every step. Job
	// outcomes arrive through River's events, after its completer's batch:
	// give them a few seconds.
	var metrics string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(s.base + "/metrics")
		require.NoError(t, err)
		metrics = readAll(t, resp)
		if strings.Contains(metrics, `reauth_jobs_finished_total{kind="reauth_device",state="completed"} 2`) || time.Now().After(deadline) {
			break
		}
	}
	for _, line := range []string{
		`reauth_funnel_total{step="requested"} 2`, `reauth_funnel_total{step="link_created"} 2`,
		`reauth_funnel_total{step="sent"} 2`, `reauth_funnel_total{step="opened"} 2`, `reauth_funnel_total{step="completed"} 2`,
		`reauth_notifications_total{channel="email",result="sent"} 2`,
		`reauth_jobs_finished_total{kind="reauth_device",state="completed"} 2`,
		`reauth_podero_request_seconds_count{class="2xx",op="auth_session"} 2`,
		`reauth_podero_breaker_open 0`,
	} {
		require.Contains(t, metrics, line)
	}

	srv.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, srv.wait(t, 30*time.Second))

	// No secret reached the logs, the job rows, the notification rows, the
	// sessions or the metrics.
	logs := srv.output.String() + refused.output.String() + migrate.output.String()
	require.Contains(t, logs, `"msg":"session stored"`, "logs were captured")
	require.Contains(t, logs, `"msg":"message sent"`, "logs were captured")
	rows := dumpRows(t, s.dbURL)
	for _, secret := range append([]string{clientSecret, smtpPassword, apiToken, linkSecret, poderoPass}, tokens...) {
		require.NotContains(t, logs, secret)
		require.NotContains(t, rows, secret)
		require.NotContains(t, answers.String(), secret)
	}
}

// TestKillNineLosesNothing kills serve with jobs in flight and checks that a
// restarted serve finishes every one of them.
func TestKillNineLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, testdb.NewURL(t), "-users", "10", "-latency", "150ms")
	// Short timeouts so abandoned jobs are rescued within seconds.
	env := []string{"JOB_TIMEOUT=3s", "JOB_RESCUE_AFTER=4s", "PODERO_WORKERS=3", "NOTIFY_WORKERS=3", "LOG_LEVEL=info"}
	first := s.serve(t, env...)

	st := s.state(t)
	var n int
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			s.enqueue(t, st.Orgs[0].ID, u, d, "")
			n++
		}
	}
	require.Equal(t, 30, n)

	conn, err := pgx.Connect(ctx, s.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	count := func(q string) int {
		var c int
		require.NoError(t, conn.QueryRow(ctx, q).Scan(&c))
		return c
	}
	// Kill it once work is under way.
	deadline := time.Now().Add(20 * time.Second)
	for count(`SELECT count(*) FROM river_job WHERE state = 'completed'`) < 3 {
		require.True(t, time.Now().Before(deadline), "no job completed")
		time.Sleep(10 * time.Millisecond)
	}
	first.signal(t, syscall.SIGKILL)
	first.wait(t, 10*time.Second)
	unfinished := count(`SELECT count(*) FROM river_job WHERE state <> 'completed'`)
	require.Greater(t, unfinished, 0, "jobs were in flight when the process died")
	t.Logf("killed with %d unfinished jobs (%d running)", unfinished, count(`SELECT count(*) FROM river_job WHERE state = 'running'`))

	second := s.serve(t, env...)
	deadline = time.Now().Add(3 * time.Minute)
	for {
		done := count(`SELECT count(*) FROM river_job WHERE state = 'completed'`)
		if done == n { // each request's job, which sends its first message too
			break
		}
		require.True(t, time.Now().Before(deadline), "only %d of %d jobs completed", done, n)
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, n, count(`SELECT count(*) FROM river_job WHERE state <> 'scheduled'`))
	require.Equal(t, n, count(`SELECT count(*) FROM river_job WHERE kind = 'reauth_notify' AND state = 'scheduled' AND args ->> 'step' = '1'`),
		"each session's first reminder waits, once")
	require.Equal(t, n, count(`SELECT count(*) FROM auth_session WHERE state = 'open'`))
	require.Equal(t, n, count(`SELECT count(*) FROM notification WHERE state = 'sent'`))

	// Every device's message arrived; a resend after the crash carries the same key.
	keys := map[string]bool{}
	for _, m := range s.mails.Messages() {
		keys[m.MessageID] = true
	}
	require.Len(t, keys, n)

	second.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, second.wait(t, 30*time.Second))
}

// dumpRows returns every row of the service's tables and River's job table as text.
func dumpRows(t *testing.T, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var b strings.Builder
	for _, table := range []string{"river_job", "auth_session", "notification", "device"} {
		rows, err := conn.Query(ctx, "SELECT row_to_json(x)::text FROM "+pgx.Identifier{table}.Sanitize()+" x")
		require.NoError(t, err)
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			b.WriteString(s + "\n")
		}
		require.NoError(t, rows.Err())
	}
	return b.String()
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	_, err := io.Copy(&b, resp.Body)
	require.NoError(t, err)
	return b.String()
}
