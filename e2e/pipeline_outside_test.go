package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/worker"
)

// Tests of issue 13: a temporary or misconfigured outside world (the SMTP
// relay, Podero's token endpoint, a redirect, throttling without a hint, a
// stale user list) must not turn into a permanent "no".

// syncLog is a concurrency-safe log buffer.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// errorLines returns the messages of the log's ERROR lines.
func (l *syncLog) errorLines() []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "ERROR" {
			out = append(out, fmt.Sprint(m["msg"]))
		}
	}
	return out
}

// waitFor polls ok until it holds or 30 s pass.
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (b *testBundle) jobState(t *testing.T, id int64) string {
	t.Helper()
	var state string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT state FROM river_job WHERE id = $1", id).Scan(&state))
	return state
}

// dumpOnFailure logs every job when t fails.
func (b *testBundle) dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		rows, err := b.pool.Query(context.Background(), `SELECT id, kind, state, attempt, scheduled_at,
			coalesce(errors[array_upper(errors, 1)] ->> 'error', '') FROM river_job ORDER BY id`)
		if err != nil {
			return
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id          int64
				kind, state string
				attempt     int
				at          time.Time
				lastErr     string
			)
			_ = rows.Scan(&id, &kind, &state, &attempt, &at, &lastErr)
			t.Logf("job %d %s %s attempt %d at %s: %s", id, kind, state, attempt, at.Format(time.RFC3339Nano), lastErr)
		}
	})
}

func (b *testBundle) suppressions(t *testing.T) int {
	return b.count(t, "SELECT count(*) FROM email_suppression")
}

// requestFor posts a request for the i-th device of the simulator's first
// organization with the given email and returns its job.
func (b *testBundle) requestFor(t *testing.T, i int, email string) int64 {
	t.Helper()
	st := b.sim.State()
	n := 0
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			if n == i {
				body := map[string]any{"org_id": b.org, "user_id": u.ID, "device_kind": d.Kind, "device_id": d.ID}
				if email != "" {
					body["email"] = email
				}
				status, out := b.post(t, pipelineToken, body)
				require.Equal(t, http.StatusAccepted, status, out)
				return jobID(t, out)
			}
			n++
		}
	}
	t.Fatalf("no device %d", i)
	return 0
}

func (b *testBundle) readyz(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get(b.api.URL + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// TestRelayRefusingEveryoneSuppressesNobody: a relay answering "554 5.7.1
// Relay access denied" to every recipient (its allow-list is wrong) is no
// fact about the users: nothing is suppressed, the messages are retried and
// logged at ERROR, and once the relay is fixed they go out; a new request
// for the same user is not cancelled.
func TestRelayRefusingEveryoneSuppressesNobody(t *testing.T) {
	t.Parallel()
	logs := &syncLog{}
	b := setup(t, func(wc *worker.Config, _ *httpapi.Config) {
		wc.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	b.mails.RejectWith("*", 554, "5.7.1", "Relay access denied")
	b.start(t)

	var jobs []int64
	for i := range 3 {
		jobs = append(jobs, b.requestFor(t, i, fmt.Sprintf("user%d@example.test", i)))
	}
	for _, id := range jobs {
		waitUntil(t, "the job to be retried", func() bool { return b.jobState(t, id) == "retryable" })
	}
	require.Zero(t, b.suppressions(t), "a relay's policy answer suppresses nobody")
	require.Zero(t, b.count(t, "SELECT count(*) FROM notification WHERE state = 'failed'"), "the messages are retried, not failed")
	require.Contains(t, strings.Join(logs.errorLines(), "\n"), "not the address's", "loud: logged at ERROR")

	// The relay is fixed: the retried jobs deliver, and a new request for
	// the first user is not refused before Podero is asked.
	b.mails.RejectWith("*", 0, "", "")
	for _, id := range jobs {
		_, err := b.river.JobRetry(context.Background(), id)
		require.NoError(t, err)
		b.waitJob(t, id, "completed")
	}
	require.Len(t, b.mails.Messages(), 3)
	next := b.requestFor(t, 3, "user0@example.test")
	b.waitJob(t, next, "completed")
	require.Len(t, b.mails.Messages(), 4, "a new request to an address the relay refused is sent")
	require.Zero(t, b.suppressions(t))
}

// TestEmailChannelBroken: when many distinct addresses are refused within
// minutes (here 3, the channel's BrokenAfter), even with mailbox codes, the
// channel counts as broken: logged at ERROR, shown in /readyz, and the
// addresses suppressed before it showed are taken off the list again.
// An operator's retry of the steps that gave up then tries their failed
// email rows again.
func TestEmailChannelBroken(t *testing.T) {
	t.Parallel()
	logs := &syncLog{}
	mails, err := mailcatch.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { mails.Close() })
	b := setup(t, func(wc *worker.Config, hc *httpapi.Config) {
		wc.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		r, err := notify.NewRenderer("")
		require.NoError(t, err)
		email, err := notify.NewEmail(notify.EmailConfig{URL: mails.URL(), From: "reauth@example.test", BrokenAfter: 3}, r)
		require.NoError(t, err)
		t.Cleanup(func() { email.Close() })
		wc.Email, hc.EmailHealth = email, email.Health
	})
	b.mails = mails
	b.mails.RejectWith("*", 550, "5.1.1", "User unknown")
	b.start(t)

	// One after the other, so the first two are suppressed before the
	// third shows the channel broken.
	var jobs []int64
	for i := range 2 {
		id := b.requestFor(t, i, fmt.Sprintf("gone%d@example.test", i))
		b.waitJob(t, id, "cancelled") // its only channel failed for good
		jobs = append(jobs, id)
	}
	require.Equal(t, 2, b.suppressions(t))
	third := b.requestFor(t, 2, "gone2@example.test")
	waitUntil(t, "the third to be retried", func() bool { return b.jobState(t, third) == "retryable" })
	require.Zero(t, b.suppressions(t), "nothing is suppressed while the channel is broken; the earlier two are lifted")
	require.Contains(t, strings.Join(logs.errorLines(), "\n"), "email channel broken")

	ready := b.readyz(t)
	e, ok := ready["email"].(map[string]any)
	require.True(t, ok, "readyz shows the broken channel: %v", ready)
	require.Equal(t, true, e["broken"])
	require.EqualValues(t, 3, e["addresses_refused"])
	require.Equal(t, "550 5.1.1 User unknown", e["last_refusal"])
	require.Contains(t, e["hint"], "SMTP_URL")

	// The relay is fixed; the operator retries the cancelled ones: their
	// failed email rows are tried again, as is the retrying one.
	b.mails.RejectWith("*", 0, "", "")
	for _, id := range append(jobs, third) {
		_, err := b.river.JobRetry(context.Background(), id)
		require.NoError(t, err)
	}
	for _, id := range append(jobs, third) {
		b.waitJob(t, id, "completed")
	}
	require.Len(t, b.mails.Messages(), 3)
	require.Zero(t, b.count(t, "SELECT count(*) FROM notification WHERE state <> 'sent'"))
}

// TestOperatorRetryRetriesFailedChannels: a step whose only channel (the
// partner's webhook) failed for good gives up; after the endpoint is fixed,
// an operator's retry of the job tries the failed channel again, for the
// request's first message (reauth_device) and for a reminder
// (reauth_notify) alike. A normal retry does not.
func TestOperatorRetryRetriesFailedChannels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var status atomic.Int32
	status.Store(http.StatusGone)
	var posts atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(hook.Close)
	b := setup(t, func(wc *worker.Config, _ *httpapi.Config) {
		wc.Webhook = webhookChannel(t, hook.URL)
		wc.ReminderOffsets = []time.Duration{2 * time.Second}
	})
	b.start(t)
	strs := func(v ...string) *[]string { return &v }
	_, err := store.UpsertContact(ctx, b.pool, b.org, b.user.ID, store.ContactUpdate{Channels: strs("webhook")})
	require.NoError(t, err)

	first := b.requestFor(t, 0, "")
	b.waitJob(t, first, "cancelled")
	require.EqualValues(t, 1, posts.Load())
	var session int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM auth_session WHERE job_id = $1", first).Scan(&session))
	require.Equal(t, "failed", b.notificationState(t, session, "webhook"))

	status.Store(http.StatusOK)
	_, err = b.river.JobRetry(ctx, first)
	require.NoError(t, err)
	b.waitJob(t, first, "completed")
	require.Equal(t, "sent", b.notificationState(t, session, "webhook"))
	require.EqualValues(t, 2, posts.Load())

	// The reminder (step 1) meets the endpoint refusing again.
	status.Store(http.StatusGone)
	b.dumpOnFailure(t)
	var reminder int64
	waitUntil(t, "the reminder to give up", func() bool {
		err := b.pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'reauth_notify' AND state = 'cancelled'
			AND args ->> 'session_id' = $1::bigint::text`, session).Scan(&reminder)
		return err == nil
	})
	status.Store(http.StatusOK)
	_, err = b.river.JobRetry(ctx, reminder)
	require.NoError(t, err)
	b.waitJob(t, reminder, "completed")
	var state string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT state FROM notification WHERE session_id = $1 AND step = 1", session).Scan(&state))
	require.Equal(t, "sent", state)
}

// standIn is a Podero in front of the simulator: it counts the
// auth_session calls that reach it, and answers what answer says it
// answers itself; the rest goes to the simulator.
type standIn struct {
	srv      *httptest.Server
	sim      atomic.Pointer[sim.Server]
	sessions atomic.Int32
	answer   atomic.Value // func(http.ResponseWriter, *http.Request) bool: true when it answered
}

func (s *standIn) set(f func(http.ResponseWriter, *http.Request) bool) { s.answer.Store(f) }

// standInSetup is setup with a Podero client (pcfg, with the simulator's
// credentials) that goes through a stand-in; limited gives it the shared
// rate limit the service runs with (10 calls a second, burst 2).
func standInSetup(t *testing.T, pcfg podero.Config, limited bool, opts ...func(*worker.Config, *httpapi.Config)) (*testBundle, *standIn, *podero.Client) {
	t.Helper()
	s := &standIn{}
	s.set(func(http.ResponseWriter, *http.Request) bool { return false })
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/auth_session") {
			s.sessions.Add(1)
		}
		if s.answer.Load().(func(http.ResponseWriter, *http.Request) bool)(w, r) {
			return
		}
		s.sim.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	// The client is made once the simulator's connect host (its links) is
	// known, before any job runs.
	lazy := &lazyPodero{}
	b := setup(t, append([]func(*worker.Config, *httpapi.Config){func(wc *worker.Config, hc *httpapi.Config) {
		if limited {
			pcfg.Limiter = &worker.Limiter{DB: wc.Pool, Rate: 10, Burst: 2, MaxWait: 20 * time.Second}
		}
		wc.Podero = lazy
		hc.FindUser = func(ctx context.Context, org, ext string) (podero.User, error) {
			return lazy.UserByExternalID(ctx, org, ext)
		}
		hc.Breaker = func() podero.BreakerStatus { return lazy.Load().Breaker() }
		hc.Problems = func() podero.Problems { return lazy.Load().Problems() }
	}}, opts...)...)
	s.sim.Store(b.sim)
	pcfg.BaseURL, pcfg.ClientID, pcfg.ClientSecret = s.srv.URL, "sim-client", "sim-secret"
	pcfg.LinkHosts = []string{sim.DefaultConnectURL(b.simURL)}
	pc, err := podero.New(pcfg)
	require.NoError(t, err)
	lazy.Store(pc)
	return b, s, pc
}

// lazyPodero is a Podero client set after the workers were configured.
// The embedded interface is nil: only the methods below are used.
type lazyPodero struct {
	worker.Podero
	atomic.Pointer[podero.Client]
}

func (l *lazyPodero) AuthSession(ctx context.Context, org, user string, kind reauth.DeviceKind, dev string, in podero.AuthSessionInput) (podero.AuthSession, error) {
	return l.Load().AuthSession(ctx, org, user, kind, dev, in)
}

func (l *lazyPodero) ForEachUser(ctx context.Context, org string, fn func(podero.User) error) error {
	return l.Load().ForEachUser(ctx, org, fn)
}

func (l *lazyPodero) UserByExternalID(ctx context.Context, org, ext string) (podero.User, error) {
	return l.Load().UserByExternalID(ctx, org, ext)
}

func (l *lazyPodero) ListDevices(ctx context.Context, org, user string, kind reauth.DeviceKind) ([]podero.Device, error) {
	return l.Load().ListDevices(ctx, org, user, kind)
}

// TestThrottlingWithoutHintWaits: 50 jobs facing "503 Retry-After: 0" do
// not hammer Podero. The answer is no hint: every process holds off for
// RetryAfterDefault, and it counts toward the circuit breaker, which opens.
// No job is cancelled.
func TestThrottlingWithoutHintWaits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const breakerFailures = 3
	b, front, pc := standInSetup(t, podero.Config{BreakerFailures: breakerFailures}, true, func(wc *worker.Config, _ *httpapi.Config) {
		wc.PoderoWorkers = 20
	})
	front.set(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/auth_session") {
			return false
		}
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	var params []river.InsertManyParams
	for i := range 50 {
		params = append(params, river.InsertManyParams{Args: reauth.DeviceArgs{OrgID: b.org, UserID: b.user.ID,
			DeviceKind: reauth.Inverter, DeviceID: randomUUID(), Email: fmt.Sprintf("t%d@example.test", i)}})
	}
	_, err := b.river.InsertMany(ctx, params)
	require.NoError(t, err)
	start := time.Now()
	b.start(t)

	b.dumpOnFailure(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%d auth_session calls, breaker %+v", front.sessions.Load(), pc.Breaker())
		}
	})
	waitUntil(t, "the breaker to open", func() bool { return pc.Breaker().State == podero.BreakerOpen })
	opened, calls := time.Since(start), front.sessions.Load()
	time.Sleep(3 * time.Second)
	after := front.sessions.Load()
	t.Logf("breaker open after %s and %d auth_session calls; %d calls in the 3 s after", opened.Round(time.Millisecond), calls, after-calls)
	// Unbounded, 50 jobs snoozing a second each make about 10 calls a
	// second at the rate limit; held RetryAfterDefault after each answer,
	// about one goes every RetryAfterDefault until the breaker opens
	// (breakerFailures in a row), then none.
	require.LessOrEqual(t, calls, int32(2*breakerFailures))
	require.GreaterOrEqual(t, opened, time.Duration(breakerFailures-1)*podero.RetryAfterDefault, "each answer held every call")
	require.Equal(t, calls, after, "nothing while the breaker is open")
	require.Zero(t, b.count(t, "SELECT count(*) FROM river_job WHERE kind = 'reauth_device' AND state IN ('cancelled', 'discarded')"))
}

// TestNotAboutTheDevice: a token endpoint answering 404, or 400 without an
// OAuth error code, and a redirect from auth_session are no answers about
// the device: the request is retried (and the client logs it at ERROR),
// not cancelled; it completes once Podero answers properly.
func TestNotAboutTheDevice(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]func(http.ResponseWriter, *http.Request) bool{
		"TokenNotFound": func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != podero.TokenPath {
				return false
			}
			http.NotFound(w, r)
			return true
		},
		"TokenBadRequest": func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != podero.TokenPath {
				return false
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"detail":"bad"}`)
			return true
		},
		"MaintenanceRedirect": func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, "/auth_session") {
				return false
			}
			http.Redirect(w, r, "https://status.example/maintenance", http.StatusFound)
			return true
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			logs := &syncLog{}
			b, front, _ := standInSetup(t, podero.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil)), TokenBody: podero.TokenBodyForm},
				false, func(wc *worker.Config, _ *httpapi.Config) {
					wc.RetryBase, wc.RetryCap = 100*time.Millisecond, 200*time.Millisecond
				})
			front.set(answer)
			b.dumpOnFailure(t)
			b.start(t)
			dev := b.device(reauth.Inverter)
			status, out := b.post(t, pipelineToken, map[string]any{"org_id": b.org, "user_id": b.user.ID,
				"device_kind": dev.Kind, "device_id": dev.ID, "email": "ann@example.test"})
			require.Equal(t, http.StatusAccepted, status, out)
			id := jobID(t, out)
			waitUntil(t, "a retry", func() bool {
				var attempt int
				require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT attempt FROM river_job WHERE id = $1", id).Scan(&attempt))
				return attempt >= 2
			})
			require.NotEqual(t, "cancelled", b.jobState(t, id))
			require.NotEmpty(t, logs.errorLines(), "loud")
			front.set(func(http.ResponseWriter, *http.Request) bool { return false })
			b.waitJob(t, id, "completed")
		})
	}
}

// hidingPodero hides one user from the organization's user list until
// shown: a user added at Podero after the list was cached.
type hidingPodero struct {
	worker.Podero
	hidden atomic.Value // string: the hidden user's ID; "" none
}

func (h *hidingPodero) ForEachUser(ctx context.Context, org string, fn func(podero.User) error) error {
	return h.Podero.ForEachUser(ctx, org, func(u podero.User) error {
		if u.ID == h.hidden.Load().(string) {
			return nil
		}
		return fn(u)
	})
}

// TestNewUserGetsEmail: a request for a user added at Podero after the
// organization's user list was cached gets the user's email (the list is
// fetched again, at most once per UserRefetchAfter), instead of being
// cancelled for having no way to reach the user.
func TestNewUserGetsEmail(t *testing.T) {
	t.Parallel()
	hp := &hidingPodero{}
	b := setup(t, func(wc *worker.Config, _ *httpapi.Config) {
		hp.Podero = wc.Podero
		wc.Podero = hp
		wc.UserRefetchAfter = time.Second
	})
	st := b.sim.State()
	ann, bob := st.Orgs[0].Users[0], st.Orgs[0].Users[1]
	hp.hidden.Store(bob.ID)
	b.start(t)

	post := func(u sim.User) int64 {
		status, out := b.post(t, pipelineToken, map[string]any{"org_id": b.org, "user_id": u.ID,
			"device_kind": u.Devices[0].Kind, "device_id": u.Devices[0].ID})
		require.Equal(t, http.StatusAccepted, status, out)
		return jobID(t, out)
	}
	b.waitJob(t, post(ann), "completed") // the list is cached, without Bob
	hp.hidden.Store("")                  // Bob is added at Podero
	b.waitJob(t, post(bob), "completed")
	var to []string
	for _, m := range b.mails.Messages() {
		to = append(to, m.To...)
	}
	require.ElementsMatch(t, []string{ann.Email, bob.Email}, to)
}
