package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reauth/reauth"
	"github.com/stretchr/testify/require"
)

// fakeClock is a Config.Now that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// faultEnv is an env with a token taken before faults f are set, and the
// paths of its first inverter.
type faultEnv struct {
	*env
	tok         string
	deviceID    string
	usersPath   string // list_users
	devicesPath string // list_devices
	sessionPath string // auth_session
}

func newFaultEnv(t *testing.T, cfg Config, f Faults) *faultEnv {
	t.Helper()
	e := newEnv(t, cfg)
	fe := &faultEnv{env: e, tok: e.token()}
	orgID, userID, id := e.firstDevice(reauth.Inverter)
	fe.deviceID = id
	fe.usersPath = api + "/org/" + orgID + "/users"
	fe.devicesPath = fmt.Sprintf("%s/org/%s/users/%s/inverters", api, orgID, userID)
	fe.sessionPath = devicePath(orgID, userID, "inverters", id) + "/auth_session"
	e.sim.SetFaults(f)
	return fe
}

// onlyFault is Stats.Faults with n faults of kind and none of the others.
func onlyFault(kind string, n int) map[string]int {
	m := map[string]int{}
	for _, k := range (Faults{}).kinds() {
		m[k.name] = 0
	}
	if kind != "" {
		m[kind] = n
	}
	return m
}

// rawToken posts a client_credentials token request with client.
func rawToken(e *env, client *http.Client) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth2/token/",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(e.sim.cfg.ClientID, e.sim.cfg.ClientSecret)
	return client.Do(req)
}

func TestFaults(t *testing.T) {
	t.Parallel()

	t.Run("error_5xx", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{Error5xx: 1})
		for _, want := range []int{500, 502, 503} {
			resp, body := e.do(http.MethodGet, e.usersPath, e.tok, nil)
			require.Equal(t, want, resp.StatusCode)
			require.JSONEq(t, `{"detail":"`+http.StatusText(want)+`"}`, string(body))
			require.Empty(t, resp.Header.Get("Retry-After"))
		}
		resp, err := rawToken(e.env, e.client)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode, "the token endpoint too")
		require.Equal(t, onlyFault(FaultError5xx, 4), e.sim.Stats().Faults)
	})
	t.Run("rate_limited alternates Retry-After forms", func(t *testing.T) {
		t.Parallel()
		clock := newClock(time.Date(2030, 1, 2, 3, 4, 5, 200e6, time.UTC))
		e := newFaultEnv(t, Config{Now: clock.Now}, Faults{RateLimited: 1, RetryAfter: 2500 * time.Millisecond})
		var got []string
		for range 4 {
			resp, body := e.do(http.MethodPost, e.sessionPath, e.tok, map[string]any{})
			require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
			require.JSONEq(t, `{"detail":"Too Many Requests"}`, string(body))
			got = append(got, resp.Header.Get("Retry-After"))
		}
		date := "Wed, 02 Jan 2030 03:04:08 GMT" // 03:04:07.7 rounded up
		require.Equal(t, []string{"3", date, "3", date}, got)
		when, err := http.ParseTime(date)
		require.NoError(t, err)
		require.GreaterOrEqual(t, when.Sub(clock.Now()), 2500*time.Millisecond)
		require.Equal(t, onlyFault(FaultRateLimited, 4), e.sim.Stats().Faults)

		e.sim.SetFaults(Faults{RateLimited: 1})
		resp, _ := e.do(http.MethodGet, e.usersPath, e.tok, nil)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "1", resp.Header.Get("Retry-After"), "default 1s, and the count goes on: 5th is seconds")
	})
	t.Run("hang answers late", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{Hang: 1, HangFor: 200 * time.Millisecond})
		start := time.Now()
		resp, _ := e.do(http.MethodGet, e.usersPath, e.tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "answered normally")
		require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

		_, err := (&http.Client{Timeout: 50 * time.Millisecond}).Get(e.srv.URL + e.usersPath)
		var ue *url.Error
		require.ErrorAs(t, err, &ue)
		require.True(t, ue.Timeout(), "%v", err)
		require.Equal(t, onlyFault(FaultHang, 2), e.sim.Stats().Faults)
	})
	t.Run("hang stops when the client goes away", func(t *testing.T) {
		t.Parallel()
		s := New(Config{Faults: Faults{Hang: 1}}) // 30s
		done := make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.ServeHTTP(w, r)
			done <- struct{}{}
		}))
		t.Cleanup(srv.Close)
		_, err := (&http.Client{Timeout: 100 * time.Millisecond}).Get(srv.URL + api + "/org/" + randomUUID() + "/users")
		require.Error(t, err)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the handler still sleeps after its client left")
		}
	})
	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{Reset: 1})
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+e.usersPath, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+e.tok)
		_, err = client.Do(req)
		require.ErrorIs(t, err, syscall.ECONNRESET)
		_, err = rawToken(e.env, client)
		require.ErrorIs(t, err, syscall.ECONNRESET)
		require.Equal(t, onlyFault(FaultReset, 2), e.sim.Stats().Faults)
	})
	t.Run("malformed_json", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{MalformedJSON: 1})
		check := func(t *testing.T, resp *http.Response, body []byte) {
			t.Helper()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			require.NotEmpty(t, body)
			require.False(t, json.Valid(body), string(body))
		}
		resp, body := e.do(http.MethodPost, "/oauth2/token/", "", "grant_type=client_credentials",
			"Content-Type", "application/x-www-form-urlencoded", "Authorization", "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0")
		check(t, resp, body)
		resp, body = e.do(http.MethodGet, e.usersPath, e.tok, nil)
		check(t, resp, body)
		resp, body = e.do(http.MethodGet, e.devicesPath, e.tok, nil)
		check(t, resp, body)
		resp, body = e.do(http.MethodPost, e.sessionPath, e.tok, map[string]any{})
		check(t, resp, body)
		st := e.sim.Stats()
		require.Equal(t, onlyFault(FaultMalformedJSON, 4), st.Faults)
		require.Zero(t, st.SessionsCreated)
	})
	t.Run("null_fields", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{NullFields: 1})
		resp, _ := e.do(http.MethodGet, e.usersPath, e.tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "not on list_users")

		var got []map[string]any
		for range 3 {
			resp, body := e.do(http.MethodPost, e.sessionPath, e.tok, map[string]any{})
			require.Equal(t, http.StatusOK, resp.StatusCode)
			out := decode[map[string]any](t, body)
			require.Equal(t, e.deviceID, out["device_id"])
			require.Contains(t, out, "authentication_url")
			require.Contains(t, out, "session_id")
			got = append(got, out)
		}
		require.Nil(t, got[0]["authentication_url"])
		require.NotNil(t, got[0]["session_id"])
		require.NotNil(t, got[1]["authentication_url"])
		require.Nil(t, got[1]["session_id"])
		require.Nil(t, got[2]["authentication_url"])
		require.Nil(t, got[2]["session_id"])

		// The URL given leads nowhere.
		resp, _ = e.do(http.MethodGet, strings.TrimPrefix(got[1]["authentication_url"].(string), DefaultConnectURL(e.srv.URL)), "", nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		st := e.sim.Stats()
		require.Equal(t, onlyFault(FaultNullFields, 3), st.Faults)
		require.Zero(t, st.SessionsCreated)
		require.Zero(t, findDevice(t, e.sim.State(), e.deviceID).Sessions)
	})
	t.Run("foreign_host", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{ForeignHost: 1})
		resp, body := e.do(http.MethodPost, e.sessionPath, e.tok, map[string]any{"success_url": "https://partner.example/ok"})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		out := decode[sessionOut](t, body)
		require.NotNil(t, out.AuthenticationURL)
		require.True(t, strings.HasPrefix(*out.AuthenticationURL, "https://evil.example/"), *out.AuthenticationURL)
		require.Equal(t, e.deviceID, *out.DeviceID)
		require.True(t, reauth.IsUUID(*out.SessionID))
		resp, _ = e.do(http.MethodGet, "/connect/"+*out.SessionID, "", nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "no session stored")

		resp, _ = e.do(http.MethodGet, e.devicesPath, e.tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "not on list_devices")
		st := e.sim.Stats()
		require.Equal(t, onlyFault(FaultForeignHost, 1), st.Faults)
		require.Zero(t, st.SessionsCreated)
	})
	t.Run("revoke_tokens", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{RevokeTokens: 1})
		resp, body := e.do(http.MethodGet, e.usersPath, e.tok, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "revoked before handling")
		require.JSONEq(t, `{"detail":"Unauthorized"}`, string(body))

		e.sim.SetFaults(Faults{})
		resp, _ = e.do(http.MethodGet, e.usersPath, e.tok, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "stays revoked")
		fresh := e.token()
		resp, _ = e.do(http.MethodGet, e.usersPath, fresh, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "a new token works")
		require.Equal(t, onlyFault(FaultRevokeTokens, 1), e.sim.Stats().Faults)
	})
	t.Run("scripted responses win", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{Error5xx: 1})
		e.sim.Script(e.deviceID, Response{Status: http.StatusConflict}, Response{Null: []string{"device_id"}})
		resp, _ := e.do(http.MethodPost, e.sessionPath, e.tok, map[string]any{})
		require.Equal(t, http.StatusConflict, resp.StatusCode)
		resp, body := e.do(http.MethodPost, e.sessionPath, e.tok, map[string]any{})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Nil(t, decode[sessionOut](t, body).DeviceID)
		resp, _ = e.do(http.MethodPost, e.sessionPath, e.tok, map[string]any{})
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode, "script used up")
		require.Equal(t, onlyFault(FaultError5xx, 1), e.sim.Stats().Faults)
	})
	t.Run("zero faults change nothing", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{})
		for range 50 {
			resp, _ := e.do(http.MethodGet, e.usersPath, e.tok, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		resp, body := e.do(http.MethodPost, e.sessionPath, e.tok, map[string]any{})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, DefaultConnectURL(e.srv.URL)+"/connect/"+*decode[sessionOut](t, body).SessionID, *decode[sessionOut](t, body).AuthenticationURL)
		st := e.sim.Stats()
		require.Equal(t, onlyFault("", 0), st.Faults)
		require.Zero(t, st.Violations)
		require.Equal(t, 1, st.SessionsCreated)
		require.Equal(t, 1, st.Counts[EndpointToken])
		require.Equal(t, 50, st.Counts[EndpointListUsers])
		require.Equal(t, Faults{RetryAfter: time.Second, HangFor: 30 * time.Second}, e.sim.Faults())
	})
	t.Run("deterministic from the seed", func(t *testing.T) {
		t.Parallel()
		f := Faults{Error5xx: 0.3, RateLimited: 0.3, MalformedJSON: 0.2}
		run := func(seed uint64) []int {
			e := newFaultEnv(t, Config{FaultSeed: seed}, f)
			var codes []int
			for range 40 {
				resp, body := e.do(http.MethodGet, e.usersPath, e.tok, nil)
				if resp.StatusCode == http.StatusOK && !json.Valid(body) {
					codes = append(codes, -1) // malformed
					continue
				}
				codes = append(codes, resp.StatusCode)
			}
			return codes
		}
		a := run(7)
		require.Equal(t, a, run(7))
		require.NotEqual(t, a, run(8))
		seen := map[int]bool{}
		for _, c := range a {
			seen[c] = true
		}
		require.Len(t, seen, 6, "200, 500, 502, 503, 429 and malformed: %v", a)
	})
	t.Run("not on connect pages nor the admin API", func(t *testing.T) {
		t.Parallel()
		e := newFaultEnv(t, Config{}, Faults{Error5xx: 1, RateLimit: 1, RateBurst: 1})
		for _, path := range []string{"/connect/device/" + e.deviceID, "/_sim/state", "/_sim/stats", "/_sim/faults", "/_sim/counts"} {
			resp, _ := e.do(http.MethodGet, path, "", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, path)
		}
		st := e.sim.Stats()
		require.Equal(t, onlyFault("", 0), st.Faults)
		require.Zero(t, st.Violations)
		require.Equal(t, 1, st.Counts[EndpointConnect])
	})
}

func TestRateLimit(t *testing.T) {
	t.Parallel()

	t.Run("bucket", func(t *testing.T) {
		t.Parallel()
		start := time.Unix(1_900_000_000, 0)
		clock := newClock(start)
		e := newEnv(t, Config{Now: clock.Now, Faults: Faults{RateLimit: 10, RateBurst: 2}})
		usersPath := api + "/org/" + e.sim.State().Orgs[0].ID + "/users"
		// Unauthorized calls: 401 when the bucket lets them through.
		burst := func(t *testing.T, n int) (passed int) {
			t.Helper()
			for range n {
				resp, body := e.do(http.MethodGet, usersPath, "", nil)
				switch resp.StatusCode {
				case http.StatusUnauthorized:
					passed++
				case http.StatusTooManyRequests:
					require.Equal(t, "1", resp.Header.Get("Retry-After"))
					require.JSONEq(t, `{"detail":"Too Many Requests"}`, string(body))
				default:
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			return passed
		}
		sec := start.Unix()

		require.Equal(t, 2, burst(t, 20), "the burst")
		st := e.sim.Stats()
		require.Equal(t, 18, st.Violations)
		require.Equal(t, onlyFault("", 0), st.Faults, "the rate limit is no fault")
		require.Equal(t, []SecondCount{{sec, 20}}, st.PerSecond)
		require.Equal(t, 20, st.MaxPerSecond)
		require.Equal(t, 20, st.Counts[EndpointListUsers])

		clock.Add(150 * time.Millisecond) // 1.5 tokens
		require.Equal(t, 1, burst(t, 2))
		clock.Add(time.Second) // 10.5, capped at 2
		require.Equal(t, 2, burst(t, 3))
		resp, err := rawToken(e, e.client)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the token endpoint shares the bucket")

		st = e.sim.Stats()
		require.Equal(t, 18+1+1+1, st.Violations)
		require.Equal(t, []SecondCount{{sec, 22}, {sec + 1, 4}}, st.PerSecond)
		require.Equal(t, 22, st.MaxPerSecond)

		clock.Add(700 * time.Second)
		require.Equal(t, 1, burst(t, 1))
		st = e.sim.Stats()
		require.Equal(t, []SecondCount{{sec + 701, 1}}, st.PerSecond, "only the last 600 seconds")
		require.Equal(t, 22, st.MaxPerSecond, "since the start")
	})
	t.Run("off by default", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Config{})
		usersPath := api + "/org/" + e.sim.State().Orgs[0].ID + "/users"
		for range 50 {
			resp, _ := e.do(http.MethodGet, usersPath, "", nil)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		}
		st := e.sim.Stats()
		require.Zero(t, st.Violations)
		require.Equal(t, 50, totalRequests(st.PerSecond))
	})
	t.Run("default burst", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, 3, New(Config{Faults: Faults{RateLimit: 2.5}}).Faults().RateBurst)
		require.Equal(t, 1, New(Config{Faults: Faults{RateLimit: 0.2}}).Faults().RateBurst)
		require.Equal(t, 4, New(Config{Faults: Faults{RateLimit: 2.5, RateBurst: 4}}).Faults().RateBurst)
		require.Zero(t, New(Config{}).Faults().RateBurst)
	})
}

func totalRequests(ps []SecondCount) int {
	total := 0
	for _, c := range ps {
		total += c.Requests
	}
	return total
}

func TestFaultsAdmin(t *testing.T) {
	t.Parallel()

	t.Run("get and put", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Config{})
		resp, body := e.do(http.MethodGet, "/_sim/faults", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.JSONEq(t, `{"error_5xx":0,"rate_limited":0,"hang":0,"reset":0,"malformed_json":0,
			"null_fields":0,"foreign_host":0,"revoke_tokens":0,
			"retry_after":"1s","hang_for":"30s","rate_limit":0,"rate_burst":0}`, string(body))

		resp, body = e.do(http.MethodPut, "/_sim/faults", "", `{"error_5xx":0.25,"null_fields":0.75,"retry_after":"2s","hang_for":1.5,"rate_limit":5}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		want := Faults{Error5xx: 0.25, NullFields: 0.75, RetryAfter: 2 * time.Second, HangFor: 1500 * time.Millisecond, RateLimit: 5, RateBurst: 5}
		require.Equal(t, want, decode[Faults](t, body))
		require.Equal(t, want, e.sim.Faults())
		require.Equal(t, want, e.sim.Config().Faults)
		resp, body = e.do(http.MethodGet, "/_sim/faults", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(body), `"hang_for":"1.5s"`)
	})
	t.Run("invalid put is 400", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Config{Faults: Faults{Hang: 0.5}})
		before := e.sim.Faults()
		for _, c := range []struct{ body, msg string }{
			{`{"error_5xx":1.5}`, "error_5xx"},
			{`{"hang":-0.1}`, "hang"},
			{`{"error_5xx":0.6,"reset":0.5}`, "sum"},
			{`{"retry_after":"-1s"}`, "retry_after"},
			{`{"hang_for":-2}`, "hang_for"},
			{`{"rate_limit":-1}`, "rate_limit"},
			{`{"rate_burst":-1}`, "rate_burst"},
			{`{"retry_after":"soon"}`, "duration"},
			{`{"errror_5xx":0.1}`, "unknown field"},
			{`not json`, "invalid"},
			{``, "invalid"},
		} {
			resp, body := e.do(http.MethodPut, "/_sim/faults", "", c.body)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, c.body)
			require.Contains(t, decode[detail](t, body).Detail, c.msg, c.body)
		}
		require.Equal(t, before, e.sim.Faults())
	})
	t.Run("Go API panics on invalid faults", func(t *testing.T) {
		t.Parallel()
		require.Panics(t, func() { New(Config{Faults: Faults{Reset: 2}}) })
		require.Panics(t, func() { New(Config{}).SetFaults(Faults{RateLimit: -1}) })
	})
	t.Run("json round trip", func(t *testing.T) {
		t.Parallel()
		f := Faults{Error5xx: 0.1, RateLimited: 0.1, Hang: 0.1, Reset: 0.1, MalformedJSON: 0.1, NullFields: 0.1,
			ForeignHost: 0.1, RevokeTokens: 0.1, RetryAfter: 1500 * time.Millisecond, HangFor: time.Minute, RateLimit: 3, RateBurst: 6}
		require.NoError(t, f.Validate())
		b, err := json.Marshal(f)
		require.NoError(t, err)
		var g Faults
		require.NoError(t, json.Unmarshal(b, &g))
		require.Equal(t, f, g)

		var c Config
		require.NoError(t, json.Unmarshal([]byte(`{"fault_seed":9,"faults":{"reset":0.5,"hang_for":"2s"}}`), &c))
		require.Equal(t, uint64(9), c.FaultSeed)
		require.Equal(t, Faults{Reset: 0.5, HangFor: 2 * time.Second}, c.Faults)
		require.Error(t, json.Unmarshal([]byte(`{"faults":{"nope":1}}`), &c))
	})
	t.Run("stats endpoint", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Config{})
		tok := e.token()
		orgID, userID, id := e.firstDevice(reauth.Wallbox)
		resp, _ := e.do(http.MethodPost, devicePath(orgID, userID, "wallboxes", id)+"/auth_session", tok, map[string]any{})
		require.Equal(t, http.StatusOK, resp.StatusCode)

		resp, body := e.do(http.MethodGet, "/_sim/stats", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		raw := decode[map[string]any](t, body)
		for _, k := range []string{"counts", "faults", "violations", "per_second", "max_per_second", "sessions_created"} {
			require.Contains(t, raw, k)
		}
		st := decode[Stats](t, body)
		require.Equal(t, e.sim.Counts(), st.Counts)
		require.Equal(t, onlyFault("", 0), st.Faults)
		require.Equal(t, 1, st.SessionsCreated)
		require.Equal(t, 2, totalRequests(st.PerSecond), "token and auth_session")
		require.GreaterOrEqual(t, st.MaxPerSecond, 1)
		require.Equal(t, st, e.sim.Stats())
	})
}
