package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

const (
	opsToken     = "ops-test-operator-token-0123456789"
	opsReadToken = "ops-test-reader-token-0123456789"
	opsOrgID     = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	opsUserID    = "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	opsDeviceID  = "c0ffee00-06cc-4c2e-8819-118905579c7a"
)

// opsTestArgs is a job kind only the ops tests use. A worker for it (see
// the browser test) fails the first attempt and succeeds after.
type opsTestArgs struct {
	Note string `json:"note"`
}

func (opsTestArgs) Kind() string { return "ops_test_flaky" }

func opsTokens() []httpapi.APIToken {
	return []httpapi.APIToken{
		{Name: "reader", Scopes: []string{httpapi.ScopeEnqueue, httpapi.ScopeRead}, Hash: sha256.Sum256([]byte(opsReadToken))},
		{Name: "operator", Scopes: []string{httpapi.ScopeOps}, Hash: sha256.Sum256([]byte(opsToken))},
	}
}

type opsBundle struct {
	pool   *pgxpool.Pool
	river  *river.Client[pgx.Tx]
	srv    *httptest.Server
	client *http.Client // does not follow redirects
}

// opsSetup serves the API with tokens on pool, with a River client made from
// riverCfg (an insert-only one when nil).
func opsSetup(t *testing.T, pool *pgxpool.Pool, riverCfg *river.Config, tokens []httpapi.APIToken) *opsBundle {
	t.Helper()
	if riverCfg == nil {
		riverCfg = &river.Config{}
	}
	rc, err := river.NewClient(riverpgxv5.New(pool), riverCfg)
	require.NoError(t, err)
	b := &opsBundle{pool: pool, river: rc}
	b.srv = httptest.NewServer(httpapi.New(httpapi.Config{
		Pool: pool, River: rc, Tokens: tokens,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(b.srv.Close)
	b.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return b
}

// do sends a request with password as the Basic auth password (none when
// empty) and returns the response and its body.
func (b *opsBundle) do(t *testing.T, method, path, password string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.srv.URL+path, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if password != "" {
		req.SetBasicAuth("whoever", password)
	}
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(out)
}

func (b *opsBundle) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	return b.do(t, http.MethodGet, path, opsToken, nil, nil)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// post sends a page's form: the form token taken from the page at from, the
// back field, and the Origin a browser would send.
func (b *opsBundle) post(t *testing.T, from, action string) (*http.Response, string) {
	t.Helper()
	_, page := b.get(t, from)
	m := csrfRE.FindStringSubmatch(page)
	require.NotNil(t, m, "the page at %s has a form token", from)
	return b.do(t, http.MethodPost, action, opsToken, url.Values{"csrf": {m[1]}, "back": {from}},
		http.Header{"Origin": {b.srv.URL}})
}

// insert enqueues a test job and returns its id.
func (b *opsBundle) insert(t *testing.T, args river.JobArgs, opts *river.InsertOpts) int64 {
	t.Helper()
	res, err := b.river.Insert(context.Background(), args, opts)
	require.NoError(t, err)
	return res.Job.ID
}

// discarded creates a job as River leaves it when its last attempt (of
// River's default max attempts) failed with msg, and returns its id.
func (b *opsBundle) discarded(t *testing.T, args river.JobArgs, opts *river.InsertOpts, msg string) int64 {
	t.Helper()
	return testdb.InsertJob(t, b.pool, args, opts, testdb.Job{
		State: rivertype.JobStateDiscarded, Attempt: river.MaxAttemptsDefault,
		Errors: []rivertype.AttemptError{{At: time.Now(), Attempt: river.MaxAttemptsDefault, Error: msg}},
	}).ID
}

func (b *opsBundle) jobState(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT state FROM river_job WHERE id = $1`, id).Scan(&s))
	return s
}

func deviceArgs() reauth.DeviceArgs {
	return reauth.DeviceArgs{OrgID: opsOrgID, UserID: opsUserID, DeviceKind: reauth.Inverter, DeviceID: opsDeviceID, Reason: "test"}
}

func TestOpsPage(t *testing.T) {
	t.Parallel()

	t.Run("OffWithoutAnOpsToken", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens()[:1])
		for _, path := range []string{"/ops", "/ops/jobs", "/ops/devices/inverter/" + opsDeviceID} {
			resp, _ := b.do(t, http.MethodGet, path, opsToken, nil, nil)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		}
		resp, _ := b.do(t, http.MethodPost, "/ops/jobs/1/retry", opsToken, url.Values{}, nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	t.Run("SignIn", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		for _, tc := range []struct {
			name, password string
			bearer         bool
			want           int
			says           string
		}{
			{name: "NoCredentials", want: http.StatusUnauthorized, says: "ops scope"},
			{name: "WrongPassword", password: "not-a-token-at-all", want: http.StatusUnauthorized, says: "not a valid API token"},
			{name: "TokenWithoutOpsScope", password: opsReadToken, want: http.StatusUnauthorized, says: "lacks the ops scope"},
			{name: "OpsTokenAsBearer", password: opsToken, bearer: true, want: http.StatusUnauthorized, says: "ops scope"},
			{name: "OpsToken", password: opsToken, want: http.StatusOK, says: "Queues"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				header := http.Header{}
				password := tc.password
				if tc.bearer {
					header.Set("Authorization", "Bearer "+password)
					password = ""
				}
				resp, body := b.do(t, http.MethodGet, "/ops", password, nil, header)
				require.Equal(t, tc.want, resp.StatusCode)
				require.Contains(t, body, tc.says)
				require.NotContains(t, body, opsToken)
				if tc.want == http.StatusUnauthorized {
					require.Equal(t, `Basic realm="reauth ops", charset="UTF-8"`, resp.Header.Get("WWW-Authenticate"))
					require.NotContains(t, body, `name="csrf"`)
				}
				// Every answer, even a refusal, is a page with the same headers.
				require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
				require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
				require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
				require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
				require.Equal(t, "same-origin", resp.Header.Get("Referrer-Policy"))
				csp := resp.Header.Get("Content-Security-Policy")
				require.Contains(t, csp, "default-src 'none'")
				require.Contains(t, csp, "form-action 'self'")
				require.Contains(t, csp, "frame-ancestors 'none'")
				require.NotContains(t, csp, "script-src")
			})
		}
	})

	t.Run("FailedSignInsAreLimitedWithTheAPIs", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		// Asking without credentials is how every browser starts: not a failure.
		for range httpapi.FailedAuthBurst + 5 {
			resp, _ := b.do(t, http.MethodGet, "/ops", "", nil, nil)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		}
		resp, _ := b.get(t, "/ops")
		require.Equal(t, http.StatusOK, resp.StatusCode)

		for range httpapi.FailedAuthBurst {
			resp, _ := b.do(t, http.MethodGet, "/ops", "wrong-token-wrong-token", nil, nil)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		}
		// Over the limit, a wrong password is turned away with 429...
		resp, body := b.do(t, http.MethodGet, "/ops", "wrong-token-wrong-token", nil, nil)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "60", resp.Header.Get("Retry-After"))
		require.Contains(t, body, "Too many failed")
		// ...and so is a wrong bearer token on /v1: the same per-address limit.
		req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/v1/devices/inverter/"+opsDeviceID, nil)
		req.Header.Set("Authorization", "Bearer wrong-token-wrong-token")
		apiResp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		apiResp.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, apiResp.StatusCode)
		// A valid token is never locked out by others' failures from the same
		// address (behind a proxy, every client shares one).
		resp, _ = b.get(t, "/ops")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		req.Header.Set("Authorization", "Bearer "+opsReadToken)
		apiResp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		apiResp.Body.Close()
		require.Equal(t, http.StatusNotFound, apiResp.StatusCode, "admitted: the handler answered (no such device here)")
	})

	t.Run("Overview", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		ctx := context.Background()
		_, err := b.pool.Exec(ctx, `INSERT INTO river_queue (name, paused_at) VALUES ('podero', NULL), ('maintenance', now())`)
		require.NoError(t, err)
		b.insert(t, deviceArgs(), nil)
		b.discarded(t, opsTestArgs{}, &river.InsertOpts{Queue: "podero"}, "boom")
		require.NoError(t, store.UpsertDevice(ctx, b.pool, reauth.Inverter, opsDeviceID, opsOrgID, opsUserID))
		_, err = store.CreateSession(ctx, b.pool, store.NewSession{
			DeviceKind: reauth.Inverter, DeviceID: opsDeviceID, PoderoSessionID: "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
			AuthenticationURL: "https://app.podero.com/connect/1", LinkNonce: []byte("n"), LinkHash: []byte("h"),
			Locale: "en", ExpiresAt: time.Now().Add(time.Hour),
		})
		require.NoError(t, err)

		resp, body := b.get(t, "/ops")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		flat := strings.Join(strings.Fields(body), " ")
		// maintenance: paused, no jobs; podero: one available, one discarded.
		require.Regexp(t, `>maintenance</a></td> <td><span class="state s-failed">paused</span> since \d{4}-`, flat)
		require.Regexp(t, `>podero</a></td> <td>no</td>( <td class="n"><a [^>]+>\d+</a></td>){6}`, flat)
		require.Contains(t, flat, `queue=podero&amp;state=available">1</a>`)
		require.Contains(t, flat, `queue=podero&amp;state=discarded">1</a>`)
		// The funnel: one request and one session for inverters, nothing else.
		require.Contains(t, flat, `<td>inverter</td><td class="n">1</td><td class="n">1</td><td class="n">0</td>`)
		require.Contains(t, flat, `<td>wallbox</td><td class="n">0</td><td class="n">0</td>`)
		require.Contains(t, flat, `<td>electric_vehicle</td>`)
		require.Contains(t, flat, `action="/ops/devices"`)
		// The budget: nothing reserved yet, one request waiting that gets no calls.
		require.Contains(t, flat, `<h2>Podero budget</h2>`)
		require.Contains(t, flat, `Requests waiting: 1, drained in never at this rate`)
		for range 3 {
			_, _, err := store.ReservePoderoCall(ctx, b.pool, store.Reservation{Interval: time.Millisecond, Burst: 10, MaxWait: time.Hour, Purpose: "sweep"})
			require.NoError(t, err)
		}
		_, body = b.get(t, "/ops")
		flat = strings.Join(strings.Fields(body), " ")
		require.Contains(t, flat, `<tr><td>sweep</td><td class="n">0.05</td></tr>`)
		require.Regexp(t, `Requests waiting: 1, drained in about \d+s at 0\.05 calls/s`, flat)
		require.Contains(t, flat, `<h3>Device sync</h3> <p>Users listed: 0 (0 with devices), 0 device calls a pass; 0 due, 0 queued. Sync lag: -.`)
	})

	t.Run("JobsAndJobDetail", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		failed := b.discarded(t, deviceArgs(), nil, `podero: 500 <script>alert(1)</script>`)
		waiting := b.insert(t, opsTestArgs{Note: "x"}, nil)

		resp, body := b.get(t, "/ops/jobs")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, `id="job-`+strconv.FormatInt(failed, 10)+`"`)
		require.Contains(t, body, `id="job-`+strconv.FormatInt(waiting, 10)+`"`)
		require.Less(t, strings.Index(body, "job-"+strconv.FormatInt(waiting, 10)), strings.Index(body, "job-"+strconv.FormatInt(failed, 10)), "newest first")
		require.Contains(t, body, `href="/ops/devices/inverter/`+opsDeviceID+`"`)
		require.Contains(t, body, `podero: 500 &lt;script&gt;alert(1)&lt;/script&gt;`, "errors are escaped")
		require.NotContains(t, body, "<script>")
		require.Contains(t, body, `action="/ops/jobs/`+strconv.FormatInt(failed, 10)+`/retry"`)
		require.NotContains(t, body, `action="/ops/jobs/`+strconv.FormatInt(failed, 10)+`/cancel"`, "a discarded job cannot be cancelled")
		require.Contains(t, body, `action="/ops/jobs/`+strconv.FormatInt(waiting, 10)+`/cancel"`)
		require.NotContains(t, body, `action="/ops/jobs/`+strconv.FormatInt(waiting, 10)+`/retry"`, "an available job has nothing to retry")
		require.Contains(t, body, "0/25") // attempt/max of the waiting job
		require.Contains(t, body, "25/25")

		_, body = b.get(t, "/ops/jobs?state=discarded")
		require.Contains(t, body, "job-"+strconv.FormatInt(failed, 10))
		require.NotContains(t, body, "job-"+strconv.FormatInt(waiting, 10))
		_, body = b.get(t, "/ops/jobs?kind=ops_test_flaky")
		require.NotContains(t, body, "job-"+strconv.FormatInt(failed, 10))
		require.Contains(t, body, "job-"+strconv.FormatInt(waiting, 10))
		_, body = b.get(t, "/ops/jobs?queue=podero&state=available")
		require.Contains(t, body, "No jobs match")
		resp, body = b.get(t, "/ops/jobs?state=sleeping")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, body, "state must be one of")

		resp, body = b.get(t, "/ops/jobs/"+strconv.FormatInt(failed, 10))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, "reauth_device")
		require.Contains(t, body, `&#34;device_id&#34;: &#34;`+opsDeviceID)
		require.Contains(t, body, `&lt;script&gt;`)
		for _, path := range []string{"/ops/jobs/999999", "/ops/jobs/x", "/ops/nothing-here"} {
			resp, _ = b.get(t, path)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		}
	})

	t.Run("RetryAndCancel", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		failed := b.discarded(t, deviceArgs(), nil, "podero: 500")
		waiting := b.insert(t, opsTestArgs{}, nil)
		id := strconv.FormatInt(failed, 10)

		resp, _ := b.post(t, "/ops/jobs?state=discarded", "/ops/jobs/"+id+"/retry")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, "/ops/jobs", loc.Path)
		require.Equal(t, "discarded", loc.Query().Get("state"), "back to the list the button was on")
		require.Equal(t, "available", b.jobState(t, failed))
		var maxAttempts int
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT max_attempts FROM river_job WHERE id = $1`, failed).Scan(&maxAttempts))
		require.Equal(t, 26, maxAttempts, "River grants one more attempt")
		_, body := b.get(t, loc.String())
		require.Contains(t, body, "Job "+id+" retried")

		resp, _ = b.post(t, "/ops/jobs/"+strconv.FormatInt(waiting, 10), "/ops/jobs/"+strconv.FormatInt(waiting, 10)+"/cancel")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/ops/jobs/"+strconv.FormatInt(waiting, 10)+"?"))
		require.Equal(t, "cancelled", b.jobState(t, waiting))
		_, body = b.get(t, resp.Header.Get("Location"))
		require.Contains(t, body, "Job "+strconv.FormatInt(waiting, 10)+" is cancelled.")

		// Cancelling a finished job changes nothing and says so.
		done := testdb.InsertJob(t, b.pool, opsTestArgs{}, nil, testdb.Job{State: rivertype.JobStateCompleted}).ID
		resp, _ = b.post(t, "/ops/jobs", "/ops/jobs/"+strconv.FormatInt(done, 10)+"/cancel")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "completed", b.jobState(t, done))
		_, body = b.get(t, resp.Header.Get("Location"))
		require.Contains(t, body, "was left as it is: it is already completed")

		resp, _ = b.post(t, "/ops/jobs", "/ops/jobs/999999/retry")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	t.Run("RetryOfADuplicateIsRefused", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		failed := b.discarded(t, deviceArgs(), nil, "podero: 500")
		pending := b.insert(t, deviceArgs(), nil) // the device's new request
		require.NotEqual(t, failed, pending)
		resp, body := b.post(t, "/ops/jobs", "/ops/jobs/"+strconv.FormatInt(failed, 10)+"/retry")
		require.Equal(t, http.StatusConflict, resp.StatusCode)
		require.Contains(t, body, "same device")
		require.Equal(t, "discarded", b.jobState(t, failed))
	})

	t.Run("FormsRefuseCrossSiteRequests", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		job := b.insert(t, opsTestArgs{}, nil)
		action := "/ops/jobs/" + strconv.FormatInt(job, 10) + "/cancel"
		_, page := b.get(t, "/ops/jobs")
		csrf := csrfRE.FindStringSubmatch(page)[1]
		for _, tc := range []struct {
			name   string
			csrf   string
			header http.Header
		}{
			{"NoOriginOrReferer", csrf, nil},
			{"OtherOrigin", csrf, http.Header{"Origin": {"https://evil.example"}}},
			{"NullOrigin", csrf, http.Header{"Origin": {"null"}}},
			{"OtherReferer", csrf, http.Header{"Referer": {"https://evil.example/ops/jobs"}}},
			{"CrossSiteFetch", csrf, http.Header{"Origin": {b.srv.URL}, "Sec-Fetch-Site": {"cross-site"}}},
			{"NoFormToken", "", http.Header{"Origin": {b.srv.URL}}},
			{"WrongFormToken", "x" + csrf[1:], http.Header{"Origin": {b.srv.URL}}},
		} {
			resp, _ := b.do(t, http.MethodPost, action, opsToken, url.Values{"csrf": {tc.csrf}}, tc.header)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, tc.name)
			require.Equal(t, "available", b.jobState(t, job), tc.name)
		}
		// Without the ops token, nothing happens either.
		resp, _ := b.do(t, http.MethodPost, action, opsReadToken, url.Values{"csrf": {csrf}}, http.Header{"Origin": {b.srv.URL}})
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		// A same-origin Referer does instead of Origin; a back field that
		// leaves the ops page is ignored.
		resp, _ = b.do(t, http.MethodPost, action, opsToken, url.Values{"csrf": {csrf}, "back": {"https://evil.example/ops"}},
			http.Header{"Referer": {b.srv.URL + "/ops/jobs?state=available"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/ops/jobs?"), resp.Header.Get("Location"))
		require.Equal(t, "cancelled", b.jobState(t, job))
	})

	t.Run("Device", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		ctx := context.Background()
		job := b.insert(t, deviceArgs(), nil)
		require.NoError(t, store.UpsertDevice(ctx, b.pool, reauth.Inverter, opsDeviceID, opsOrgID, opsUserID))
		sess, err := store.CreateSession(ctx, b.pool, store.NewSession{
			DeviceKind: reauth.Inverter, DeviceID: opsDeviceID, PoderoSessionID: "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
			AuthenticationURL: "https://app.podero.com/connect/1", LinkNonce: []byte("n"), LinkHash: []byte("h"),
			Locale: "de", JobID: job, ExpiresAt: time.Now().Add(time.Hour),
		})
		require.NoError(t, err)
		n, err := store.BeginNotification(ctx, b.pool, sess, 0, "email", "user@example.com", "key-0")
		require.NoError(t, err)
		require.NoError(t, store.FinishNotification(ctx, b.pool, n.ID, store.NotificationFailed, "550 mailbox unavailable"))

		resp, body := b.get(t, "/ops/devices/inverter/"+strings.ToUpper(opsDeviceID))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		for _, want := range []string{opsOrgID, "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "user@example.com", "550 mailbox unavailable",
			`href="/ops/jobs/` + strconv.FormatInt(job, 10) + `"`, `action="/ops/jobs/` + strconv.FormatInt(job, 10) + `/cancel"`} {
			require.Contains(t, body, want)
		}
		require.NotContains(t, body, "https://app.podero.com/connect/1", "the login link is not shown")

		// What the sync recorded of the device.
		no := false
		_, err = store.RecordSyncedDevice(ctx, b.pool, store.SyncedDevice{
			Kind: reauth.Inverter, ID: opsDeviceID, OrgID: opsOrgID, UserID: opsUserID, IsAuthenticated: &no,
			Manufacturer: "SMA", Model: "Sunny Boy 5.0", LifecycleState: "error",
			LifecycleError: json.RawMessage(`{"code":"reauthentication_required"}`), ExternalDeviceID: "3008123456",
			OwnerEmail: "owner@example.com",
		})
		require.NoError(t, err)
		_, body = b.get(t, "/ops/devices/inverter/"+opsDeviceID)
		for _, want := range []string{"SMA Sunny Boy 5.0", "owner@example.com", "3008123456", "error",
			"&#34;code&#34;: &#34;reauthentication_required&#34;"} {
			require.Contains(t, body, want)
		}

		resp, _ = b.get(t, "/ops/devices?kind=inverter&id="+opsDeviceID)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "/ops/devices/inverter/"+opsDeviceID, resp.Header.Get("Location"))
		resp, _ = b.get(t, "/ops/devices/wallbox/"+opsDeviceID)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		for _, path := range []string{"/ops/devices/toaster/" + opsDeviceID, "/ops/devices/inverter/nope", "/ops/devices?kind=inverter&id=nope"} {
			resp, _ = b.get(t, path)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, path)
		}
	})
}

// TestOpsPageOperations: what /ops does beyond listing: pausing and
// resuming queues, a job's log as readable lines, River UI links, the
// sessions list, a device's jobs as a filter, and the funnel chart.
func TestOpsPageOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("PauseAndResumeAQueue", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		_, err := b.pool.Exec(ctx, `INSERT INTO river_queue (name) VALUES ('podero')`)
		require.NoError(t, err)
		pausedAt := func() *time.Time {
			var at *time.Time
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT paused_at FROM river_queue WHERE name = 'podero'`).Scan(&at))
			return at
		}
		_, body := b.get(t, "/ops")
		require.Contains(t, body, `action="/ops/queues/podero/pause"`)

		resp, _ := b.post(t, "/ops", "/ops/queues/podero/pause")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.NotNil(t, pausedAt(), "River's QueuePause")
		loc := resp.Header.Get("Location")
		require.True(t, strings.HasPrefix(loc, "/ops?"), loc)
		_, body = b.get(t, loc)
		require.Contains(t, body, "Queue podero is paused")
		require.Contains(t, body, `action="/ops/queues/podero/resume"`)
		require.NotContains(t, body, `action="/ops/queues/podero/pause"`)

		resp, _ = b.post(t, "/ops", "/ops/queues/podero/resume")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Nil(t, pausedAt())
		_, body = b.get(t, resp.Header.Get("Location"))
		require.Contains(t, body, "Queue podero is resumed")

		// A notice names only a queue that exists, never the query's text.
		_, body = b.get(t, "/ops?queue_did=pause&queue=%3Cb%3Eevil")
		require.NotContains(t, body, `class="notice"`)

		resp, _ = b.post(t, "/ops", "/ops/queues/nosuchqueue/pause")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		// The form's CSRF protection holds here too.
		resp, _ = b.do(t, http.MethodPost, "/ops/queues/podero/pause", opsToken, url.Values{"csrf": {"x"}}, http.Header{"Origin": {b.srv.URL}})
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		resp, _ = b.do(t, http.MethodPost, "/ops/queues/podero/pause", opsToken, url.Values{}, http.Header{"Origin": {"https://evil.example"}})
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Nil(t, pausedAt())
	})

	t.Run("JobLogAndRiverUILinks", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		long := strings.Repeat("x", 400)
		id := testdb.InsertJob(t, b.pool, deviceArgs(), nil, testdb.Job{
			State: rivertype.JobStateDiscarded, Attempt: 1,
			Errors: []rivertype.AttemptError{{At: time.Now(), Attempt: 1, Error: "podero: 500"}},
			Metadata: map[string]any{"note": "kept", "river:log": []map[string]any{{"attempt": 1,
				"log": `{"time":"2026-12-02T06:50:01.123Z","level":"INFO","msg":"calling podero","device":"inverter ` + opsDeviceID + `","body":"` + long + `"}` + "\n" +
					`{"time":"2026-12-02T06:50:02Z","level":"ERROR","msg":"podero said <no>"}` + "\n"}}},
		}).ID
		s := strconv.FormatInt(id, 10)

		_, body := b.get(t, "/ops/jobs/"+s)
		flat := strings.Join(strings.Fields(body), " ")
		require.Contains(t, body, `<table class="log" id="job-log">`)
		require.Contains(t, flat, `<td class="t">06:50:01.123Z</td><td class="l-INFO">INFO</td> <td>calling podero <span class="attrs">device=&#34;inverter `+opsDeviceID)
		require.Contains(t, flat, `<td class="l-ERROR">ERROR</td> <td>podero said &lt;no&gt;</td>`)
		require.NotContains(t, body, `\&#34;`, "no escaped JSON string")
		require.NotContains(t, body, "&#34;river:log&#34;", "the log is shown as lines, not as metadata")
		require.Contains(t, body, `&#34;note&#34;: &#34;kept&#34;`)
		require.Contains(t, body, "white-space:pre-wrap", "long lines wrap")
		require.Contains(t, body, `href="/riverui/jobs/`+s+`"`)

		_, body = b.get(t, "/ops/jobs")
		require.Contains(t, body, `href="/riverui/jobs/`+s+`"`)
		_, body = b.get(t, "/ops/jobs?device="+opsDeviceID)
		require.Contains(t, body, `id="job-`+s+`"`)
		_, body = b.get(t, "/ops/jobs?device=c0ffee00-0000-4000-8000-000000000000")
		require.Contains(t, body, "No jobs match")
		resp, body := b.get(t, "/ops/jobs?device=nope")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, body, "must be a UUID")
	})

	t.Run("SessionsAndChart", func(t *testing.T) {
		t.Parallel()
		b := opsSetup(t, testdb.New(t), nil, opsTokens())
		b.insert(t, deviceArgs(), nil)
		require.NoError(t, store.UpsertDevice(ctx, b.pool, reauth.Inverter, opsDeviceID, opsOrgID, opsUserID))
		sess, err := store.CreateSession(ctx, b.pool, store.NewSession{
			DeviceKind: reauth.Inverter, DeviceID: opsDeviceID, PoderoSessionID: "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
			AuthenticationURL: "https://app.podero.com/connect/1", LinkNonce: []byte("n"), LinkHash: []byte("h"),
			Locale: "en", ExpiresAt: time.Now().Add(time.Hour),
		})
		require.NoError(t, err)

		resp, body := b.get(t, "/ops/sessions")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, `id="session-`+strconv.FormatInt(sess, 10)+`"`)
		require.Contains(t, body, `href="/ops/devices/inverter/`+opsDeviceID+`"`)
		require.NotContains(t, body, "https://app.podero.com/connect/1", "the login link is not shown")
		_, body = b.get(t, "/ops/sessions?state=completed")
		require.Contains(t, body, "No sessions match")
		for _, bad := range []string{"?state=closed", "?after=x", "?after=-1"} {
			resp, _ = b.get(t, "/ops/sessions"+bad)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, bad)
		}

		_, body = b.get(t, "/ops")
		require.Contains(t, body, `<svg class="chart" id="funnel-chart"`)
		today := time.Now().UTC().Format("2006-01-02")
		require.Regexp(t, `<rect class="bar bar-requested" data-count="1" [^>]+><title>`+today+`, requested: 1</title>`, body)
		require.Regexp(t, `<rect class="bar bar-link_created" data-count="1" `, body)
		require.NotContains(t, body, "bar-completed", "no bar for a zero count")
		require.Equal(t, 7, strings.Count(body, `<g class="day"`))
		require.Contains(t, body, `<text x="168" dx="16" y="18">link created</text>`, "the legend")
	})
}
