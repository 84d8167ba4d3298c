package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/testdb"
)

// envInt reads a size knob for the heavy tests; make chaos sets them large.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// cluster is several `reauth serve` processes on one database, simulator
// and mail catcher.
type cluster struct {
	*service
	procs []*proc
	env   [][]string
	bases []string
}

func newCluster(t *testing.T, n int, dbURL string, serveEnv []string, simArgs ...string) *cluster {
	t.Helper()
	c := &cluster{service: newService(t, dbURL, simArgs...)}
	for i := range n {
		addr := freeAddr(t)
		env := append(append([]string{}, c.service.env...), serveEnv...)
		// Every process serves the same public address, as behind a load
		// balancer: the service's own (newService's) PUBLIC_BASE_URL.
		env = append(env, "HTTP_ADDR="+addr, "LOG_LEVEL=warn")
		c.env = append(c.env, env)
		c.bases = append(c.bases, "http://"+addr)
		c.procs = append(c.procs, nil)
		c.start(t, i)
	}
	return c
}

func (c *cluster) start(t *testing.T, i int) {
	t.Helper()
	c.procs[i] = start(t, c.env[i], "reauth", "serve")
	waitReady(t, c.bases[i])
}

// stopAll sends SIGTERM to every process and requires a clean exit.
func (c *cluster) stopAll(t *testing.T) {
	t.Helper()
	for _, p := range c.procs {
		p.signal(t, syscall.SIGTERM)
	}
	for i, p := range c.procs {
		require.Equal(t, 0, p.wait(t, 60*time.Second), "process %d exit code; output:\n%s", i, tail(p.output.String(), 3000))
	}
}

// requireAlive fails if a process exited on its own.
func (c *cluster) requireAlive(t *testing.T) {
	t.Helper()
	for i, p := range c.procs {
		select {
		case <-p.done:
			t.Fatalf("process %d exited unexpectedly (%v):\n%s", i, p.err, tail(p.output.String(), 3000))
		default:
		}
	}
}

// TestChaos runs three serve processes against a simulator injecting every
// fault, kills one and cuts Postgres connections mid-run, and checks that
// nothing was lost, duplicated or sent broken.
func TestChaos(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	requests := envInt("CHAOS_REQUESTS", 300)
	users := (requests + 2) / 3
	began := time.Now()

	dbURL := testdb.NewURL(t)
	c := newCluster(t, 3, dbURL, []string{
		"PODERO_RATE_LIMIT=60", "PODERO_RATE_BURST=5", "PODERO_TIMEOUT=1s", "PODERO_RATE_MAX_WAIT=2s",
		"PODERO_BREAKER_FAILURES=8", "PODERO_BREAKER_COOLOFF=1s",
		"RETRY_BACKOFF_CAP=3s", "JOB_TIMEOUT=10s", "JOB_RESCUE_AFTER=12s", "SHUTDOWN_GRACE=10s",
	},
		"-users", strconv.Itoa(users), "-latency", "2ms",
		// The simulator's own limit is a little above ours: any excess is our bug.
		"-rate-limit", "70", "-rate-burst", "12",
		"-fault-5xx", "0.05", "-fault-429", "0.02", "-retry-after", "1s",
		"-fault-hang", "0.01", "-fault-hang-for", "3s", "-fault-reset", "0.02",
		"-fault-malformed", "0.02", "-fault-null", "0.02", "-fault-foreign", "0.02", "-fault-revoke", "0.002",
	)

	st := c.state(t)
	type req struct {
		org, user string
		dev       sim.Device
	}
	var reqs []req
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			if len(reqs) < requests {
				reqs = append(reqs, req{st.Orgs[0].ID, u.ID, d})
			}
		}
	}
	require.Len(t, reqs, requests)
	// A few devices Podero does not know: they must end cancelled, not retried forever.
	unknown := max(requests/100, 1)
	for range unknown {
		reqs = append(reqs, req{st.Orgs[0].ID, st.Orgs[0].Users[0].ID, sim.Device{ID: uuid4(), Kind: "wallbox"}})
	}

	// Enqueue through all three processes at once.
	var wg sync.WaitGroup
	work := make(chan int)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := reqs[i]
				body := fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":%q,"device_id":%q}`, r.org, r.user, r.dev.Kind, r.dev.ID)
				var out struct {
					Duplicate bool `json:"duplicate"`
				}
				if status := api(t, http.MethodPost, c.bases[(i+w)%3]+"/v1/reauth", apiToken, body, &out); status != http.StatusAccepted || out.Duplicate {
					t.Errorf("enqueue %d: status %d, duplicate %t", i, status, out.Duplicate)
				}
			}
		}()
	}
	for i := range reqs {
		work <- i
	}
	close(work)
	wg.Wait()
	require.False(t, t.Failed())

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	count := func(q string, args ...any) int {
		var n int
		require.NoError(t, conn.QueryRow(ctx, q, args...).Scan(&n))
		return n
	}
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(10 * time.Minute)
		for !cond() {
			c.requireAlive(t)
			require.True(t, time.Now().Before(deadline), "timed out waiting for %s", what)
			time.Sleep(100 * time.Millisecond)
		}
	}
	sessions := func() int { return count(`SELECT count(*) FROM auth_session`) }

	// Kill one process mid-run and start it again.
	waitFor("a third of the sessions", func() bool { return sessions() >= requests/3 })
	killedAt := time.Now()
	c.procs[1].signal(t, syscall.SIGKILL)
	c.procs[1].wait(t, 10*time.Second)
	c.start(t, 1)

	// Cut every Postgres connection once.
	waitFor("two thirds of the sessions", func() bool { return sessions() >= 2*requests/3 })
	cut := count(`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()) x`)
	require.Greater(t, cut, 3)

	// Every request reaches a final state; only reminders wait, a day out.
	waitFor("every job to finish", func() bool {
		return count(`SELECT count(*) FROM river_job WHERE finalized_at IS NULL
			AND NOT (kind = 'reauth_notify' AND state = 'scheduled' AND args ->> 'step' = '1')`) == 0
	})
	c.requireAlive(t)
	msgs := c.mails.Messages()
	stats := simStats(t, c.simURL)
	c.stopAll(t)

	// Final states by kind.
	rows, err := conn.Query(ctx, `SELECT kind, state, count(*) FROM river_job GROUP BY 1, 2 ORDER BY 1, 2`)
	require.NoError(t, err)
	finals := map[string]int{}
	var summary []string
	for rows.Next() {
		var kind, state string
		var n int
		require.NoError(t, rows.Scan(&kind, &state, &n))
		finals[kind+"/"+state] = n
		summary = append(summary, fmt.Sprintf("%s %s=%d", kind, state, n))
	}
	require.NoError(t, rows.Err())
	require.Equal(t, requests, finals["reauth_device/completed"], "every known device's request completed")
	require.Equal(t, unknown, finals["reauth_device/cancelled"], "every unknown device's request cancelled")
	require.Zero(t, finals["reauth_notify/completed"], "every first message went with its request's job")
	require.Equal(t, requests, finals["reauth_notify/scheduled"], "every session's first reminder waits, once")
	require.Zero(t, finals["reauth_device/discarded"]+finals["reauth_notify/discarded"]+finals["reauth_notify/cancelled"])

	// Exactly one open session per known device, none for the unknown ones.
	require.Zero(t, count(`SELECT count(*) FROM (SELECT device_id FROM auth_session
		WHERE state IN ('open', 'completed') GROUP BY device_id HAVING count(*) <> 1) x`))
	require.Equal(t, requests, count(`SELECT count(DISTINCT device_id) FROM auth_session WHERE state = 'open'`))

	// No link on a foreign host or with a null field was stored or sent.
	require.Zero(t, count(`SELECT count(*) FROM auth_session WHERE authentication_url NOT LIKE $1`, sim.DefaultConnectURL(c.simURL)+"/connect/%"))
	require.Equal(t, requests, count(`SELECT count(*) FROM notification WHERE state = 'sent'`))

	// One message per session. A message is sent again only when a process
	// died between the SMTP server's 250 and the commit that records it (the
	// documented window): then it is the same message, with the same key and
	// body. Any other repeat fails the test.
	type copyOf struct {
		at   time.Time
		body string
	}
	perKey := map[string][]copyOf{}
	for _, m := range msgs {
		perKey[m.MessageID] = append(perKey[m.MessageID], copyOf{m.Received, m.Text})
		require.NotContains(t, m.Text, "evil.example")
	}
	require.Len(t, perKey, requests, "one distinct message per session")
	resends := 0
	for key, copies := range perKey {
		if len(copies) == 1 {
			continue
		}
		resends += len(copies) - 1
		t.Logf("resent %s: first at %s, SIGKILL at %s", key, copies[0].at.Format("15:04:05.000"), killedAt.Format("15:04:05.000"))
		require.Len(t, copies, 2, "%s sent more than twice", key)
		require.Equal(t, copies[0].body, copies[1].body, "%s: a second, different message", key)
		require.WithinRange(t, copies[0].at, killedAt.Add(-2*time.Second), killedAt, "%s resent without a crash to explain it", key)
	}

	// The simulator saw no rate-limit violations.
	require.Zero(t, stats.Violations, "rate-limit violations")

	faults := make([]string, 0, len(stats.Faults))
	for k, v := range stats.Faults {
		faults = append(faults, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(faults)
	calls := 0
	for _, v := range stats.Counts {
		calls += v
	}
	t.Logf("chaos figures:\n  requests: %d (+%d for devices Podero does not know)\n  final states: %s\n  faults injected: %s\n  Podero calls: %d, per successful session: %.2f\n  rate-limit violations: %d (max %d requests in one second)\n  duplicate emails: 0 (%d resent unchanged after the SIGKILL, in the send-to-commit window)\n  Postgres backends cut: %d\n  wall time: %s",
		requests, unknown, strings.Join(summary, ", "), strings.Join(faults, ", "),
		calls, float64(calls)/float64(requests), stats.Violations, stats.MaxPerSecond, resends, cut, time.Since(began).Round(time.Second))
}

// TestSharedRateLimit runs three processes against a backlog with
// PODERO_RATE_LIMIT=20 and checks what the simulator saw: no second above the
// limit plus the burst, and at least 90% of the allowed rate.
func TestSharedRateLimit(t *testing.T) {
	t.Parallel()
	seconds := envInt("RATE_CHECK_SECONDS", 8)
	const rate, burst = 20, 3
	requests := rate*(seconds+3) + 30
	c := newCluster(t, 3, testdb.NewURL(t), []string{
		"PODERO_RATE_LIMIT=" + strconv.Itoa(rate), "PODERO_RATE_BURST=" + strconv.Itoa(burst), "PODERO_RATE_MAX_WAIT=5s",
	}, "-users", strconv.Itoa((requests+2)/3))

	st := c.state(t)
	n := 0
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			if n == requests {
				break
			}
			// With an email given, each request is exactly one Podero call.
			body := fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":%q,"device_id":%q,"email":"u%d@example.test"}`,
				st.Orgs[0].ID, u.ID, d.Kind, d.ID, n)
			require.Equal(t, http.StatusAccepted, api(t, http.MethodPost, c.bases[n%3]+"/v1/reauth", apiToken, body, nil))
			n++
		}
	}
	// Measure over full seconds while the backlog lasts.
	var stats sim.Stats
	deadline := time.Now().Add(time.Duration(seconds+30) * time.Second)
	for stats = simStats(t, c.simURL); len(stats.PerSecond) < seconds+2; stats = simStats(t, c.simURL) {
		require.True(t, time.Now().Before(deadline), "the simulator saw calls in only %d seconds", len(stats.PerSecond))
		time.Sleep(200 * time.Millisecond)
	}
	c.stopAll(t)

	require.Zero(t, stats.Violations)
	require.LessOrEqual(t, stats.MaxPerSecond, rate+burst, "busiest second")
	var perSecond []int
	for _, s := range stats.PerSecond {
		perSecond = append(perSecond, s.Requests)
	}
	require.GreaterOrEqual(t, len(perSecond), seconds+1)
	// Skip the first (partial) second; take the next `seconds` full ones.
	total := 0
	for _, r := range perSecond[1 : seconds+1] {
		total += r
	}
	allowed := rate * seconds
	t.Logf("rate check: %d calls in %d s (allowed %d, %.0f%%), busiest second %d (limit %d + burst %d), per second %v",
		total, seconds, allowed, 100*float64(total)/float64(allowed), stats.MaxPerSecond, rate, burst, perSecond)
	// The 90% figure is measured by make chaos (60 s on a quiet machine); the
	// short run in make test shares two cores with every other test and
	// race-built processes, so it only guards against the limiter stalling.
	share := 0.9
	if seconds < 30 {
		share = 0.5
	}
	require.GreaterOrEqual(t, float64(total), share*float64(allowed))
}

func simStats(t *testing.T, simURL string) sim.Stats {
	t.Helper()
	var s sim.Stats
	getJSON(t, simURL+"/_sim/stats", &s)
	return s
}

func uuid4() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
