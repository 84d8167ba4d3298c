package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/testdb"
)

// TestRateBudget: two processes at PODERO_RATE_LIMIT=5 with more than a
// thousand sweep requests waiting. Requests posted over HTTP meanwhile are
// emailed within 5 s (p99 of 20), the waiting backlog is not rewritten
// (river_job row writes per Podero call), and no 3 s window sees more than
// 3 × rate + burst calls. make chaos measures over 60 s
// (BUDGET_CHECK_SECONDS), make test over 20.
func TestRateBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seconds := envInt("BUDGET_CHECK_SECONDS", 20)
	const rate, burst, interactive = 5, 1, 20
	dbURL := testdb.NewURL(t)
	c := newCluster(t, 2, dbURL, []string{
		"PODERO_RATE_LIMIT=" + strconv.Itoa(rate), "PODERO_RATE_BURST=" + strconv.Itoa(burst),
		"SYNC_SCHEDULE=off", "SWEEP_SCHEDULE=off",
	}, "-users", "400") // 1,200 devices
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })

	// The sync saw 1,100 devices lapsed; the sweep asks for all of them.
	st := c.state(t)
	org := st.Orgs[0].ID
	type dev struct{ kind, id, user string }
	var devs []dev
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			devs = append(devs, dev{string(d.Kind), d.ID, u.ID})
		}
	}
	swept, spare := devs[:1100], devs[1100:]
	for _, d := range swept {
		_, err := conn.Exec(ctx, `INSERT INTO device (kind, id, org_id, user_id, is_authenticated, action_needed, synced_at)
			VALUES ($1, $2, $3, $4, false, true, now())`, d.kind, d.id, org, d.user)
		require.NoError(t, err)
	}
	sweep := start(t, c.env[0], "reauth", "sweep", "--now")
	require.Equal(t, 0, sweep.wait(t, 30*time.Second), sweep.output.String())
	waitFor(t, 60*time.Second, "the sweep's requests", func() bool {
		return count(t, conn, `SELECT count(*) FROM river_job WHERE kind = 'reauth_device' AND priority = 2`) >= 1000
	})
	// The backlog flows; and the counts of a backend idle since it
	// inserted the sweep's requests are flushed: a backend flushes its
	// statistics at most every second while busy, and what it has left
	// 10 s after it goes idle (PGSTAT_IDLE_INTERVAL), so a read sooner
	// would count those 1,100 inserts in the window (seen: 13.5 writes a
	// call instead of 3.4, when the pool left that connection idle).
	time.Sleep(11 * time.Second)

	// Emails arrive: note when each interactive one does.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	c.mails.OnMessage(func(m mailcatch.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, to := range m.To {
			if _, seen := arrived[to]; !seen {
				arrived[to] = time.Now()
			}
		}
	})
	writes0, calls0 := jobWrites(t, conn), poderoCalls(t, c.simURL)
	posted := map[string]time.Time{}
	began := time.Now()
	for i := range interactive {
		d := spare[i]
		to := fmt.Sprintf("interactive%d@example.test", i)
		body := fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":%q,"device_id":%q,"email":%q}`, org, d.user, d.kind, d.id, to)
		posted[to] = time.Now()
		require.Equal(t, http.StatusAccepted, api(t, http.MethodPost, c.bases[i%2]+"/v1/reauth", apiToken, body, nil))
		time.Sleep(time.Until(began.Add(time.Duration(i+1) * time.Duration(seconds) * time.Second / interactive)))
	}
	window := time.Since(began)
	writes1, calls1 := jobWrites(t, conn), poderoCalls(t, c.simURL)
	waiting := count(t, conn, `SELECT count(*) FROM river_job WHERE kind = 'reauth_device' AND state IN ('available', 'scheduled', 'retryable', 'running')`)
	waitFor(t, 30*time.Second, "every interactive email", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for to := range posted {
			if _, ok := arrived[to]; ok {
				n++
			}
		}
		return n == interactive
	})
	stats := simStats(t, c.simURL)
	c.stopAll(t)

	var took []time.Duration
	mu.Lock()
	for to, at := range posted {
		took = append(took, arrived[to].Sub(at))
	}
	mu.Unlock()
	slices.Sort(took)
	p99 := took[len(took)-1] // the 99th percentile of 20 is the largest
	perCall := float64(writes1-writes0) / float64(calls1-calls0)
	// The busiest 3 s window of the whole run.
	perSecond := map[int64]int{}
	for _, s := range stats.PerSecond {
		perSecond[s.Second] = s.Requests
	}
	busiest := 0
	for sec := range perSecond {
		busiest = max(busiest, perSecond[sec]+perSecond[sec+1]+perSecond[sec+2])
	}
	t.Logf("budget: over %.0f s with %d requests still waiting at the end: %d river_job writes for %d Podero calls (%.2f a call); "+
		"interactive enqueue-to-email p50 %s p99 %s; busiest 3 s window %d calls (limit %d)",
		window.Seconds(), waiting, writes1-writes0, calls1-calls0, perCall, took[len(took)/2].Round(time.Millisecond), p99.Round(time.Millisecond),
		busiest, 3*rate+burst)
	require.Greater(t, waiting, 500, "the backlog lasted the whole window")
	require.LessOrEqual(t, p99, 5*time.Second, "interactive requests go first")
	require.LessOrEqual(t, perCall, 5.0, "the waiting backlog is not rewritten")
	require.LessOrEqual(t, busiest, 3*rate+burst)
}

// TestRetryAfterHoldsEveryProcess: after a 429 with Retry-After: 3, no
// process sends Podero anything until it has passed, slots reserved before
// it included. A counting proxy in front of the simulator answers one
// auth_session with the 429 and notes when every call arrives; a call may
// arrive within 100 ms of the 429 (it was on its way).
func TestRetryAfterHoldsEveryProcess(t *testing.T) {
	t.Parallel()
	const rate, hold, grace = 5, 3 * time.Second, 100 * time.Millisecond
	dbURL := testdb.NewURL(t)
	svc := newService(t, dbURL, "-users", "40")
	target, err := url.Parse(svc.simURL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var (
		mu       sync.Mutex
		arrivals []time.Time
		heldAt   time.Time // when the 429 was answered
		arm      = make(chan struct{})
	)
	front := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/oauth2/") {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			fire := false
			select {
			case <-arm:
				fire = heldAt.IsZero() && strings.HasSuffix(r.URL.Path, "/auth_session")
			default:
			}
			if fire {
				w.Header().Set("Retry-After", strconv.Itoa(int(hold/time.Second)))
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(`{"detail":"Too Many Requests"}`))
				heldAt = time.Now()
				mu.Unlock()
				return
			}
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	var bases []string
	for range 2 {
		addr := freeAddr(t)
		start(t, append(append([]string{}, svc.env...), "PODERO_BASE_URL="+front, "HTTP_ADDR="+addr, "PUBLIC_BASE_URL=http://"+addr,
			"PODERO_RATE_LIMIT="+strconv.Itoa(rate), "LOG_LEVEL=warn", "SYNC_SCHEDULE=off", "SWEEP_SCHEDULE=off"), "reauth", "serve")
		waitReady(t, "http://"+addr)
		bases = append(bases, "http://"+addr)
	}
	st := svc.state(t)
	n := 0
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			body := fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":%q,"device_id":%q,"email":"h%d@example.test"}`, st.Orgs[0].ID, u.ID, d.Kind, d.ID, n)
			require.Equal(t, http.StatusAccepted, api(t, http.MethodPost, bases[n%2]+"/v1/reauth", apiToken, body, nil))
			n++
		}
	}
	time.Sleep(2 * time.Second) // both processes are sending
	close(arm)
	waitFor(t, 10*time.Second, "the 429", func() bool { mu.Lock(); defer mu.Unlock(); return !heldAt.IsZero() })
	time.Sleep(hold + 2*time.Second)

	mu.Lock()
	defer mu.Unlock()
	var onTheirWay, inside, after int
	for _, at := range arrivals {
		switch d := at.Sub(heldAt); {
		case d > 0 && d <= grace:
			onTheirWay++
		case d > grace && d < hold:
			inside++
		case d >= hold && d < hold+2*time.Second:
			after++
		}
	}
	t.Logf("hold: %d calls arrived within %s of the 429, %d inside the rest of the %s hold, %d in the 2 s after it", onTheirWay, grace, inside, hold, after)
	require.Zero(t, inside, "no process sends while the hold lasts")
	require.Positive(t, after, "calls resume after the hold")
}

// jobWrites is the rows river_job has had written (inserted, updated,
// deleted), as the statistics say after flushing this backend's.
func jobWrites(t *testing.T, conn *pgx.Conn) int64 {
	t.Helper()
	time.Sleep(1100 * time.Millisecond) // other backends flush their counts at least every second while busy
	var n int64
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = 'river_job'`).Scan(&n))
	return n
}

// poderoCalls is the calls the simulator's partner API (token included) has had.
func poderoCalls(t *testing.T, simURL string) int {
	t.Helper()
	n := 0
	for name, c := range simStats(t, simURL).Counts {
		if name != "connect" {
			n += c
		}
	}
	return n
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Addr: freeAddr(t), Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ListenAndServe() }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + srv.Addr
	waitFor(t, 5*time.Second, "the proxy", func() bool {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return base
}
