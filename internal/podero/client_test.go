package podero

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/reauth/reauth"
)

const (
	testClientID = "partner-client"
	testSecret   = "sEcReT-client-secret-42"
	testOrg      = "6f1c2a52-52a4-4c1e-9a55-0f3e1b0e2d11"
	testUser     = "0b8f7a3e-9c1d-4e55-8a2b-3c4d5e6f7a81"
	testDevice   = "c2d7e0f1-3a4b-4c5d-9e8f-a0b1c2d3e4f5"
	testSession  = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	// Access tokens the fake issues are tokenPrefix + the fetch number.
	tokenPrefix = "access-token-"
)

// recorded is a request the fake server received.
type recorded struct {
	Method string
	Path   string
	Header http.Header
	Body   string
}

// fakeOpts configure a fake Podero. They are fixed before the server starts.
type fakeOpts struct {
	expiresIn  int           // expires_in of issued tokens; 0 omits it
	tokenDelay time.Duration // how long the token endpoint takes
	// tokenStatus, when set, is the token endpoint's status with tokenBody.
	tokenStatus int
	tokenBody   string
}

// fake is a Podero Partner API: a token endpoint at TokenPath, and api for
// everything else (after the fake checked the bearer token).
type fake struct {
	opts      fakeOpts
	api       http.HandlerFunc
	srv       *httptest.Server
	tokenHits atomic.Int32
	apiHits   atomic.Int32

	mu        sync.Mutex
	tokenReqs []recorded
	apiReqs   []recorded
}

func newFake(t *testing.T, opts fakeOpts, api http.HandlerFunc) *fake {
	t.Helper()
	f := &fake{opts: opts, api: api}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := recorded{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body)}

	if r.URL.Path == TokenPath {
		f.mu.Lock()
		f.tokenReqs = append(f.tokenReqs, rec)
		f.mu.Unlock()
		n := f.tokenHits.Add(1)
		time.Sleep(f.opts.tokenDelay)
		w.Header().Set("Content-Type", "application/json")
		if f.opts.tokenStatus != 0 {
			w.WriteHeader(f.opts.tokenStatus)
			_, _ = io.WriteString(w, f.opts.tokenBody)
			return
		}
		id, secret, _ := r.BasicAuth()
		if id != testClientID || secret != testSecret {
			w.WriteHeader(http.StatusUnauthorized)
			// Echo the secret to prove the client redacts it.
			_, _ = fmt.Fprintf(w, `{"error":"invalid_client","error_description":"bad secret %s"}`, secret)
			return
		}
		tok := map[string]any{"access_token": fmt.Sprintf("%s%d", tokenPrefix, n), "token_type": "Bearer"}
		if f.opts.expiresIn != 0 {
			tok["expires_in"] = f.opts.expiresIn
		}
		_ = json.NewEncoder(w).Encode(tok)
		return
	}

	f.mu.Lock()
	f.apiReqs = append(f.apiReqs, rec)
	f.mu.Unlock()
	f.apiHits.Add(1)
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "+tokenPrefix) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f.api(w, r)
}

func (f *fake) lastAPI(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.apiReqs)
	return f.apiReqs[len(f.apiReqs)-1]
}

func (f *fake) firstToken(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.tokenReqs)
	return f.tokenReqs[0]
}

// client returns a Client for f with cfg's non-zero fields applied.
func (f *fake) client(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.BaseURL = f.srv.URL
	if cfg.ClientID == "" {
		cfg.ClientID = testClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = testSecret
	}
	c, err := New(cfg)
	require.NoError(t, err)
	return c
}

// respond answers with status, headers and body.
func respond(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// sessionJSON is an AuthSessionOutput with link as authentication_url
// ("{base}" is replaced by the server's own URL).
func sessionJSON(link, deviceID, sessionID string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		link := strings.ReplaceAll(link, "{base}", "http://"+r.Host)
		b, _ := json.Marshal(map[string]any{"authentication_url": link, "device_id": deviceID, "session_id": sessionID})
		respond(http.StatusOK, string(b))(w, r)
	}
}

func requireKind(t *testing.T, err error, kind ErrorKind, op string, status int) *Error {
	t.Helper()
	require.Error(t, err)
	e, ok := AsError(err)
	require.True(t, ok, "error %v is not a *podero.Error", err)
	require.Equal(t, kind, e.Kind, "error: %v", err)
	require.Equal(t, op, e.Op)
	require.Equal(t, status, e.Status)
	return e
}

func TestAuthSession(t *testing.T) {
	t.Parallel()

	authPath := "/api/partners/v2.0/org/" + testOrg + "/users/" + testUser + "/electric-vehicles/" + testDevice + "/auth_session"
	tooLarge := `{"authentication_url":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	detail422 := `{"detail": [{"type": "missing", "loc": ["body", "payload"], "msg": "Field required"}]}`

	tests := []struct {
		name      string
		api       http.HandlerFunc
		cfg       Config
		wantLink  string // on success; "{base}" is the server URL
		wantKind  ErrorKind
		status    int
		retry     time.Duration // expected RetryAfter (±2s for dates)
		detail    string        // expected Detail, when set
		temporary bool
		// refetched: the client retried with a second token.
		refetched bool
	}{
		{
			name:     "OK",
			api:      sessionJSON("{base}/connect/abc?x=1", testDevice, testSession),
			wantLink: "{base}/connect/abc?x=1",
		},
		{
			name:     "OKUppercaseDeviceID",
			api:      sessionJSON("{base}/connect/abc", strings.ToUpper(testDevice), testSession),
			wantLink: "{base}/connect/abc",
		},
		{
			name:     "OKNullDeviceID",
			api:      respond(200, `{"authentication_url":"https://app.podero.com/connect/1","device_id":null,"session_id":"`+testSession+`"}`),
			wantLink: "https://app.podero.com/connect/1",
		},
		{
			name:     "HTTPSLinkOnAllowedHost",
			api:      sessionJSON("https://connect.podero.test/s/1", testDevice, testSession),
			cfg:      Config{LinkHosts: []string{"*.podero.test"}},
			wantLink: "https://connect.podero.test/s/1",
		},
		{
			// Podero's Connect UI, as its onboarding docs show its links:
			// no path, the query right after the host.
			name:     "ConnectUILinkOnDefaultHosts",
			api:      sessionJSON("https://connect.podero.com?onboarding_session_id=0f0e0d0c-1b2a-4c3d-8e9f-a1b2c3d4e5f6", testDevice, testSession),
			wantLink: "https://connect.podero.com?onboarding_session_id=0f0e0d0c-1b2a-4c3d-8e9f-a1b2c3d4e5f6",
		},
		{
			name:     "HTTPSLinkOnDefaultHost",
			api:      sessionJSON("https://sandbox-app.podero.com/connect/1", testDevice, testSession),
			wantLink: "https://sandbox-app.podero.com/connect/1",
		},
		{
			name:      "NullAuthenticationURL",
			api:       respond(200, `{"authentication_url":null,"device_id":"`+testDevice+`","session_id":"`+testSession+`"}`),
			wantKind:  KindMalformed,
			status:    200,
			temporary: true,
		},
		{
			name:      "NullSessionID",
			api:       respond(200, `{"authentication_url":"https://app.podero.com/c","device_id":"`+testDevice+`","session_id":null}`),
			wantKind:  KindMalformed,
			status:    200,
			temporary: true,
		},
		{
			name:      "SessionIDNotUUID",
			api:       sessionJSON("https://app.podero.com/c", testDevice, "abc"),
			wantKind:  KindMalformed,
			status:    200,
			temporary: true,
		},
		{
			name:      "NullBody",
			api:       respond(200, `null`),
			wantKind:  KindMalformed,
			status:    200,
			temporary: true,
		},
		{
			name:      "NonJSON",
			api:       respond(200, `<html>maintenance</html>`, "Content-Type", "text/html"),
			wantKind:  KindMalformed,
			status:    200,
			temporary: true,
		},
		{
			name:      "WrongShape",
			api:       respond(200, `[1,2,3]`),
			wantKind:  KindMalformed,
			status:    200,
			temporary: true,
		},
		{
			name:      "TooLarge",
			api:       respond(200, tooLarge),
			wantKind:  KindMalformed,
			status:    200,
			temporary: true,
		},
		{
			name:      "WrongDeviceID",
			api:       sessionJSON("{base}/connect/abc", "11111111-2222-4333-8444-555555555555", testSession),
			wantKind:  KindMalformed,
			status:    200,
			temporary: true,
		},
		{
			name:      "HTTPLinkOnForeignHost",
			api:       sessionJSON("http://evil.example/connect", testDevice, testSession),
			wantKind:  KindMalformed,
			status:    200,
			detail:    `authentication_url scheme "http" is not https, and host "http://evil.example" is not on PODERO_LINK_HOSTS`,
			temporary: true,
		},
		{
			name:      "HTTPLinkOnAllowedHost",
			api:       sessionJSON("http://connect.podero.com/s/1", testDevice, testSession),
			wantKind:  KindMalformed,
			status:    200,
			detail:    `authentication_url scheme "http" is not https`,
			temporary: true,
		},
		{
			name:      "HTTPSLinkOnForeignHost",
			api:       sessionJSON("https://evil.example/connect", testDevice, testSession),
			wantKind:  KindMalformed,
			status:    200,
			detail:    `authentication_url host "evil.example" is not allowed (not on PODERO_LINK_HOSTS)`,
			temporary: true,
		},
		{
			name:      "RelativeLink",
			api:       sessionJSON("/connect/abc", testDevice, testSession),
			wantKind:  KindMalformed,
			status:    200,
			temporary: true,
		},
		{
			name:      "Unauthorized",
			api:       respond(401, `{"detail":"Unauthorized"}`),
			wantKind:  KindUnauthorized,
			status:    401,
			temporary: true,
			refetched: true,
		},
		{
			name:      "Forbidden",
			api:       respond(403, ``),
			wantKind:  KindUnauthorized,
			status:    403,
			temporary: true,
		},
		{
			name:     "NotFound",
			api:      respond(404, `{"detail":"Not Found"}`),
			wantKind: KindNotFound,
			status:   404,
		},
		{
			name:     "UnprocessableKeepsDetail",
			api:      respond(422, "  "+detail422+"\n"),
			wantKind: KindInvalid,
			status:   422,
			detail:   detail422,
		},
		{
			// A maintenance redirect says nothing about the request: retried.
			name:      "Redirect",
			api:       respond(302, ``, "Location", "https://elsewhere.example/?secret=1"),
			wantKind:  KindUnexpected,
			status:    302,
			detail:    "unexpected redirect to elsewhere.example",
			temporary: true,
		},
		{
			name:      "UndocumentedClientError",
			api:       respond(409, `busy`),
			wantKind:  KindUnexpected,
			status:    409,
			detail:    "busy",
			temporary: true,
		},
		{
			name:      "TooManyRequestsRetryAfterSeconds",
			api:       respond(429, `slow down`, "Retry-After", "7"),
			wantKind:  KindRateLimited,
			status:    429,
			retry:     7 * time.Second,
			temporary: true,
		},
		{
			name: "UnavailableRetryAfterDate",
			api: func(w http.ResponseWriter, r *http.Request) {
				date := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
				respond(503, ``, "Retry-After", date)(w, r)
			},
			wantKind:  KindRateLimited,
			status:    503,
			retry:     30 * time.Second,
			temporary: true,
		},
		{
			name:      "UnavailableWithoutRetryAfter",
			api:       respond(503, ``),
			wantKind:  KindRetryable,
			status:    503,
			temporary: true,
		},
		{
			name:      "InternalServerError",
			api:       respond(500, `boom`),
			wantKind:  KindRetryable,
			status:    500,
			detail:    "boom",
			temporary: true,
		},
		{
			name: "HangingServer",
			api: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			},
			cfg:       Config{RequestTimeout: 200 * time.Millisecond},
			wantKind:  KindRetryable,
			detail:    "timeout",
			temporary: true,
		},
		{
			name: "ClosedConnection",
			api: func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.Close()
				}
			},
			wantKind:  KindRetryable,
			temporary: true,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			f := newFake(t, fakeOpts{expiresIn: 3600}, tt.api)
			c := f.client(t, tt.cfg)
			in := AuthSessionInput{SuccessURL: "https://partner.example/ok"}
			start := time.Now()
			got, err := c.AuthSession(context.Background(), testOrg, testUser, reauth.ElectricVehicle, testDevice, in)

			// The request, whatever the answer.
			req := f.lastAPI(t)
			require.Equal(t, http.MethodPost, req.Method)
			require.Equal(t, authPath, req.Path)
			wantTokens := int32(1)
			if tt.refetched {
				wantTokens = 2
			}
			require.Equal(t, wantTokens, f.tokenHits.Load())
			require.Equal(t, wantTokens, f.apiHits.Load())
			require.Equal(t, fmt.Sprintf("Bearer %s%d", tokenPrefix, wantTokens), req.Header.Get("Authorization"))
			require.Equal(t, "application/json", req.Header.Get("Accept"))
			require.Equal(t, "application/json", req.Header.Get("Content-Type"))
			require.Equal(t, "reauth", req.Header.Get("User-Agent"))
			require.JSONEq(t, `{"success_url":"https://partner.example/ok","cancel_url":null}`, req.Body)

			// The token request: client credentials with HTTP Basic.
			tokReq := f.firstToken(t)
			require.Equal(t, http.MethodPost, tokReq.Method)
			id, secret, ok := (&http.Request{Header: tokReq.Header}).BasicAuth()
			require.True(t, ok)
			require.Equal(t, testClientID, id)
			require.Equal(t, testSecret, secret)
			require.Equal(t, "application/x-www-form-urlencoded", tokReq.Header.Get("Content-Type"))
			form, err2 := url.ParseQuery(tokReq.Body)
			require.NoError(t, err2)
			require.Equal(t, url.Values{"grant_type": {"client_credentials"}}, form)

			if tt.wantKind == "" {
				require.NoError(t, err)
				require.Equal(t, AuthSession{
					AuthenticationURL: strings.ReplaceAll(tt.wantLink, "{base}", f.srv.URL),
					DeviceID:          testDevice,
					SessionID:         testSession,
				}, got)
				return
			}
			e := requireKind(t, err, tt.wantKind, OpAuthSession, tt.status)
			require.Equal(t, AuthSession{}, got)
			require.Equal(t, tt.temporary, e.Temporary())
			if tt.detail != "" {
				require.Equal(t, tt.detail, e.Detail)
			}
			if tt.retry > 0 {
				require.InDelta(t, tt.retry.Seconds(), e.RetryAfter.Seconds(), 2)
			} else {
				require.Zero(t, e.RetryAfter)
			}
			if tt.name == "HangingServer" {
				require.Less(t, time.Since(start), 5*time.Second)
			}
		})
	}
}

func TestAuthSessionPaths(t *testing.T) {
	t.Parallel()

	for _, kind := range reauth.DeviceKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()

			f := newFake(t, fakeOpts{}, sessionJSON("{base}/c", testDevice, testSession))
			c := f.client(t, Config{})
			_, err := c.AuthSession(context.Background(), testOrg, testUser, kind, testDevice, AuthSessionInput{})
			require.NoError(t, err)
			req := f.lastAPI(t)
			require.Equal(t, "/api/partners/v2.0/org/"+testOrg+"/users/"+testUser+"/"+CollectionPath(kind)+"/"+testDevice+"/auth_session", req.Path)
			require.JSONEq(t, `{"success_url":null,"cancel_url":null}`, req.Body)
		})
	}
}

func TestAuthSessionInvalidArgs(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name              string
		org, user, device string
		kind              reauth.DeviceKind
	}{
		{"OrgNotUUID", "org", testUser, testDevice, reauth.Inverter},
		{"UserNotUUID", testOrg, "../../x", testDevice, reauth.Inverter},
		{"DeviceNotUUID", testOrg, testUser, "", reauth.Inverter},
		{"UnknownKind", testOrg, testUser, testDevice, "heat_pump"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			f := newFake(t, fakeOpts{}, respond(200, `{}`))
			c := f.client(t, Config{})
			_, err := c.AuthSession(context.Background(), tt.org, tt.user, tt.kind, tt.device, AuthSessionInput{})
			e := requireKind(t, err, KindInvalid, OpAuthSession, 0)
			require.False(t, e.Temporary())
			require.Zero(t, f.tokenHits.Load()+f.apiHits.Load(), "no request for invalid arguments")
		})
	}
}

func TestListUsers(t *testing.T) {
	t.Parallel()

	t.Run("Decodes", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(200, `[
			{"id":"`+testUser+`","email":"a@example.com","external_user_id":"ext-1","role":"user","deleted_at":null,"extra":1},
			{"id":"11111111-2222-4333-8444-555555555555","email":"b@example.com","external_user_id":null,"role":"user","deleted_at":"2024-05-01T10:00:00.123456+02:00"}
		]`))
		c := f.client(t, Config{})
		users, err := c.ListUsers(context.Background(), testOrg)
		require.NoError(t, err)

		req := f.lastAPI(t)
		require.Equal(t, http.MethodGet, req.Method)
		require.Equal(t, "/api/partners/v2.0/org/"+testOrg+"/users", req.Path)
		require.Equal(t, "application/json", req.Header.Get("Accept"))
		require.Equal(t, "reauth", req.Header.Get("User-Agent"))
		require.Equal(t, "Bearer "+tokenPrefix+"1", req.Header.Get("Authorization"))
		require.Empty(t, req.Body)

		deleted := time.Date(2024, 5, 1, 8, 0, 0, 123456000, time.UTC)
		require.Len(t, users, 2)
		require.Equal(t, User{ID: testUser, Email: "a@example.com", ExternalUserID: "ext-1", Role: "user"}, users[0])
		require.Equal(t, "b@example.com", users[1].Email)
		require.NotNil(t, users[1].DeletedAt)
		require.True(t, deleted.Equal(*users[1].DeletedAt))
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(200, `[]`))
		users, err := f.client(t, Config{}).ListUsers(context.Background(), testOrg)
		require.NoError(t, err)
		require.Empty(t, users)
	})

	t.Run("NotAnArray", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(200, `{"items":[]}`))
		_, err := f.client(t, Config{}).ListUsers(context.Background(), testOrg)
		requireKind(t, err, KindMalformed, OpListUsers, 200)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(404, `{"detail":"Not Found"}`))
		_, err := f.client(t, Config{}).ListUsers(context.Background(), testOrg)
		requireKind(t, err, KindNotFound, OpListUsers, 404)
	})
}

func TestListDevices(t *testing.T) {
	t.Parallel()

	t.Run("Decodes", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(200, `[
			{"id":"`+testDevice+`","is_authenticated":false,"action_needed":true,
			 "actions":[{"code":"reauthenticate","resolution_link":"https://app.podero.com/fix"}],
			 "connection_status":"error","lifecycle_state":"active","deleted_at":null,"model":"X"},
			{"id":"11111111-2222-4333-8444-555555555555","is_authenticated":null,"connection_status":"ok"}
		]`))
		c := f.client(t, Config{})
		devices, err := c.ListDevices(context.Background(), testOrg, testUser, reauth.Wallbox)
		require.NoError(t, err)

		req := f.lastAPI(t)
		require.Equal(t, http.MethodGet, req.Method)
		require.Equal(t, "/api/partners/v2.0/org/"+testOrg+"/users/"+testUser+"/wallboxes", req.Path)

		f0, t1 := false, true
		require.Equal(t, []Device{
			{
				ID:               testDevice,
				IsAuthenticated:  &f0,
				ActionNeeded:     &t1,
				Actions:          []Action{{Code: "reauthenticate", ResolutionLink: "https://app.podero.com/fix"}},
				ConnectionStatus: "error",
				LifecycleState:   "active",
			},
			{ID: "11111111-2222-4333-8444-555555555555", ConnectionStatus: "ok"},
		}, devices)
	})

	t.Run("NullBody", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(200, `null`))
		_, err := f.client(t, Config{}).ListDevices(context.Background(), testOrg, testUser, reauth.Inverter)
		requireKind(t, err, KindMalformed, OpListDevices, 200)
	})

	t.Run("WrongShape", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(200, `[{"id":1}]`))
		_, err := f.client(t, Config{}).ListDevices(context.Background(), testOrg, testUser, reauth.Inverter)
		requireKind(t, err, KindMalformed, OpListDevices, 200)
	})

	t.Run("UnknownKind", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, respond(200, `[]`))
		_, err := f.client(t, Config{}).ListDevices(context.Background(), testOrg, testUser, "heat_pump")
		requireKind(t, err, KindInvalid, OpListDevices, 0)
		require.Zero(t, f.apiHits.Load())
	})
}

func TestCollectionPath(t *testing.T) {
	t.Parallel()

	require.Equal(t, "inverters", CollectionPath(reauth.Inverter))
	require.Equal(t, "electric-vehicles", CollectionPath(reauth.ElectricVehicle))
	require.Equal(t, "wallboxes", CollectionPath(reauth.Wallbox))
	require.Empty(t, CollectionPath("heat_pump"))
}

// okSession is an API that always hands out a valid session.
var okSession = sessionJSON("{base}/c", testDevice, testSession)

func callOK(t *testing.T, c *Client) {
	t.Helper()
	_, err := c.AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
	require.NoError(t, err)
}

func TestToken(t *testing.T) {
	t.Parallel()

	t.Run("CachedAcrossConcurrentCalls", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{expiresIn: 3600, tokenDelay: 100 * time.Millisecond}, okSession)
		c := f.client(t, Config{})

		const n = 50
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = c.AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int32(1), f.tokenHits.Load())
		require.Equal(t, int32(n), f.apiHits.Load())

		callOK(t, c)
		require.Equal(t, int32(1), f.tokenHits.Load())
	})

	t.Run("WithoutExpiryReused", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, okSession)
		c := f.client(t, Config{})
		for range 5 {
			callOK(t, c)
		}
		require.Equal(t, int32(1), f.tokenHits.Load())
	})

	t.Run("RefreshedWhenExpired", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{expiresIn: 1}, okSession)
		c := f.client(t, Config{TokenRefreshEarly: time.Millisecond})
		callOK(t, c)
		callOK(t, c)
		require.Equal(t, int32(1), f.tokenHits.Load())

		time.Sleep(1100 * time.Millisecond)
		callOK(t, c)
		require.Equal(t, int32(2), f.tokenHits.Load())
		require.Equal(t, "Bearer "+tokenPrefix+"2", f.lastAPI(t).Header.Get("Authorization"))
	})

	t.Run("ShortLivedTokenStillReused", func(t *testing.T) {
		t.Parallel()

		// expires_in 30 is less than TokenRefreshEarlyDefault: the early
		// refresh is capped at half the lifetime, so the token is reused.
		f := newFake(t, fakeOpts{expiresIn: 30}, okSession)
		c := f.client(t, Config{})
		callOK(t, c)
		callOK(t, c)
		require.Equal(t, int32(1), f.tokenHits.Load())
	})

	t.Run("InvalidateForcesFetch", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{expiresIn: 3600}, okSession)
		c := f.client(t, Config{})
		callOK(t, c)
		c.InvalidateToken()
		callOK(t, c)
		require.Equal(t, int32(2), f.tokenHits.Load())
		require.Equal(t, "Bearer "+tokenPrefix+"2", f.lastAPI(t).Header.Get("Authorization"))
	})

	t.Run("PasswordGrant", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{expiresIn: 3600}, okSession)
		c := f.client(t, Config{Username: "ops@partner.example", Password: "pw-123456"})
		callOK(t, c)

		tokReq := f.firstToken(t)
		id, secret, ok := (&http.Request{Header: tokReq.Header}).BasicAuth()
		require.True(t, ok)
		require.Equal(t, testClientID, id)
		require.Equal(t, testSecret, secret)
		form, err := url.ParseQuery(tokReq.Body)
		require.NoError(t, err)
		require.Equal(t, url.Values{
			"grant_type": {"password"},
			"username":   {"ops@partner.example"},
			"password":   {"pw-123456"},
		}, form)
	})

	t.Run("CustomTokenURL", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, okSession)
		// The API server has no token endpoint at this path.
		other := newFake(t, fakeOpts{}, nil)
		c := f.client(t, Config{TokenURL: other.srv.URL + TokenPath})
		callOK(t, c)
		require.Zero(t, f.tokenHits.Load())
		require.Equal(t, int32(1), other.tokenHits.Load())
	})

	t.Run("WrongCredentials", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{}, okSession)
		c := f.client(t, Config{ClientSecret: "wrong-secret-value"})
		_, err := c.AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
		e := requireKind(t, err, KindUnauthorized, OpToken, 401)
		require.False(t, e.Temporary(), "rejected credentials do not get better by retrying")
		require.NotContains(t, err.Error(), "wrong-secret-value")
		require.Zero(t, f.apiHits.Load())

		var re *oauth2.RetrieveError
		require.ErrorAs(t, err, &re, "the oauth2 error stays reachable")
	})

	t.Run("InvalidClientWith400", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{tokenStatus: 400, tokenBody: `{"error":"invalid_client"}`}, okSession)
		_, err := f.client(t, Config{}).AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
		e := requireKind(t, err, KindUnauthorized, OpToken, 400)
		require.Equal(t, "invalid_client", e.Detail)
	})

	t.Run("TokenEndpointDown", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{tokenStatus: 502, tokenBody: `bad gateway`}, okSession)
		_, err := f.client(t, Config{}).AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
		e := requireKind(t, err, KindRetryable, OpToken, 502)
		require.True(t, e.Temporary())
	})

	t.Run("TokenEndpointRateLimited", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{tokenStatus: 429, tokenBody: `{}`}, okSession)
		_, err := f.client(t, Config{}).AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
		requireKind(t, err, KindRateLimited, OpToken, 429)
	})

	t.Run("TokenEndpointUnreachable", func(t *testing.T) {
		t.Parallel()

		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		f := newFake(t, fakeOpts{}, okSession)
		c := f.client(t, Config{TokenURL: dead.URL + TokenPath})
		_, err := c.AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
		e := requireKind(t, err, KindRetryable, OpToken, 0)
		require.NotContains(t, e.Error(), dead.URL, "no URL in the message")
	})

	t.Run("CallerCancelDoesNotFailSharedFetch", func(t *testing.T) {
		t.Parallel()

		f := newFake(t, fakeOpts{tokenDelay: 300 * time.Millisecond}, okSession)
		c := f.client(t, Config{})

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.AuthSession(ctx, testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
		e := requireKind(t, err, KindRetryable, OpToken, 0)
		require.ErrorIs(t, e, context.DeadlineExceeded)

		// The fetch the cancelled caller started completes and is used.
		callOK(t, c)
		require.Equal(t, int32(1), f.tokenHits.Load())
	})
}

func TestNoSecretsInErrors(t *testing.T) {
	t.Parallel()

	// An API that echoes everything it got, including the bearer token and
	// the client secret, into its error body.
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, "auth=%q secret=%s", r.Header.Get("Authorization"), testSecret)
		}
	}
	tests := []struct {
		name string
		api  http.HandlerFunc
		cfg  Config
	}{
		{"Unprocessable", echo(422), Config{}},
		{"ServerError", echo(500), Config{}},
		{"Unauthorized", echo(401), Config{}},
		{"PasswordGrantRejected", okSession, Config{Username: "u", Password: "pw-SECRET-999", ClientSecret: "other-secret-123"}},
		{"WrongSecret", okSession, Config{ClientSecret: "other-secret-123"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			f := newFake(t, fakeOpts{}, tt.api)
			c := f.client(t, tt.cfg)
			_, err := c.AuthSession(context.Background(), testOrg, testUser, reauth.Inverter, testDevice, AuthSessionInput{})
			require.Error(t, err)
			msg := err.Error()
			for _, secret := range []string{testSecret, "other-secret-123", "pw-SECRET-999", tokenPrefix} {
				require.NotContains(t, msg, secret)
			}
		})
	}

	t.Run("NewErrors", func(t *testing.T) {
		t.Parallel()

		for _, base := range []string{"https://u:" + testSecret + "@app.podero.com", "::" + testSecret, "ftp://" + testSecret} {
			_, err := New(Config{BaseURL: base, ClientID: testClientID, ClientSecret: testSecret})
			require.Error(t, err)
			require.NotContains(t, err.Error(), testSecret)
		}
	})
}

func TestNew(t *testing.T) {
	t.Parallel()

	valid := Config{BaseURL: "https://app.podero.com/", ClientID: "id", ClientSecret: "secret"}

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()

		c, err := New(valid)
		require.NoError(t, err)
		require.Equal(t, "https://app.podero.com", c.cfg.BaseURL)
		require.Equal(t, "https://app.podero.com/api/partners/v2.0/auth/token", c.cfg.TokenURL)
		require.Equal(t, RequestTimeoutDefault, c.cfg.RequestTimeout)
		require.Equal(t, TokenRefreshEarlyDefault, c.cfg.TokenRefreshEarly)
		require.Equal(t, LinkHostsDefault, c.cfg.LinkHosts)
		require.Equal(t, RequestTimeoutDefault, c.cfg.HTTPClient.Timeout)
		tr, ok := c.cfg.HTTPClient.Transport.(*http.Transport)
		require.True(t, ok)
		require.Equal(t, MaxIdleConnsPerHostDefault, tr.MaxIdleConnsPerHost)
		require.False(t, tr.DisableKeepAlives)
		require.NotNil(t, c.cc)
		require.Nil(t, c.pw)
		require.Nil(t, c.cfg.Limiter)
		require.Equal(t, BreakerFailuresDefault, c.cfg.BreakerFailures)
		require.Equal(t, BreakerCoolOffDefault, c.cfg.BreakerCoolOff)
		require.NotNil(t, c.cfg.Logger)
		require.NotNil(t, c.cfg.Now)
		require.Equal(t, BreakerStatus{State: BreakerClosed}, c.Breaker())
	})

	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{"MissingBaseURL", func(c *Config) { c.BaseURL = "" }},
		{"RelativeBaseURL", func(c *Config) { c.BaseURL = "/api" }},
		{"FTPBaseURL", func(c *Config) { c.BaseURL = "ftp://app.podero.com" }},
		{"BaseURLWithQuery", func(c *Config) { c.BaseURL = "https://app.podero.com?x=1" }},
		{"BadTokenURL", func(c *Config) { c.TokenURL = "token" }},
		{"MissingClientID", func(c *Config) { c.ClientID = "" }},
		{"MissingClientSecret", func(c *Config) { c.ClientSecret = "" }},
		{"UsernameWithoutPassword", func(c *Config) { c.Username = "u" }},
		{"NegativeTimeout", func(c *Config) { c.RequestTimeout = -time.Second }},
		{"NegativeBreakerFailures", func(c *Config) { c.BreakerFailures = -1 }},
		{"NegativeBreakerCoolOff", func(c *Config) { c.BreakerCoolOff = -time.Second }},
		{"BadLinkHost", func(c *Config) { c.LinkHosts = []string{"https://app.podero.com/"} }},
		{"BadWildcard", func(c *Config) { c.LinkHosts = []string{"app.*.com"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			cfg := valid
			tt.modify(&cfg)
			_, err := New(cfg)
			require.Error(t, err)
		})
	}
}

func TestCheckLink(t *testing.T) {
	t.Parallel()

	c, err := New(Config{
		BaseURL:      "http://localhost:8080",
		ClientID:     "id",
		ClientSecret: "secret",
		LinkHosts:    []string{"app.podero.com", "*.podero.test", "connect.example:8443", "http://sim.local:8090"},
	})
	require.NoError(t, err)

	tests := []struct {
		link string
		ok   bool
	}{
		{"http://localhost:8080/connect/1", true}, // BaseURL host with its scheme
		{"https://localhost:8080/connect/1", false},
		{"http://localhost:9090/connect/1", false},
		{"https://app.podero.com/connect", true},
		{"https://APP.podero.com:443/connect", true},
		{"https://app.podero.com:8443/connect", false},
		{"http://app.podero.com/connect", false},
		{"https://a.podero.test/x", true},
		{"https://a.b.podero.test/x", true},
		{"https://podero.test/x", false},
		{"https://evilpodero.test/x", false},
		{"https://connect.example:8443/x", true},
		{"https://connect.example/x", false},
		{"http://sim.local:8090/connect/1", true}, // explicitly allowed http
		{"https://sim.local:8090/connect/1", false},
		{"http://sim.local/connect/1", false},
		{"http://connect.example:8443/x", false},
		{"https://app.podero.com@evil.example/x", false},
		{"https://user@app.podero.com/x", false},
		{"javascript:alert(1)", false},
		{"//app.podero.com/x", false},
		{"", false},
		// Bounded: a link goes out as a Location header, which proxies cut.
		{"https://app.podero.com/connect?s=" + strings.Repeat("a", MaxLinkBytes-len("https://app.podero.com/connect?s=")), true},
		{"https://app.podero.com/connect?s=" + strings.Repeat("a", MaxLinkBytes+1-len("https://app.podero.com/connect?s=")), false},
		{"https://app.podero.com/connect?s=" + strings.Repeat("a", 200<<10), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.80s/%d", tt.link, len(tt.link)), func(t *testing.T) {
			t.Parallel()

			err := c.checkLink(tt.link)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()

	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		v    string
		want time.Duration
		ok   bool
	}{
		{"Empty", "", 0, false},
		{"Zero", "0", 0, true},
		{"Seconds", "120", 2 * time.Minute, true},
		{"Spaces", " 5 ", 5 * time.Second, true},
		{"Negative", "-1", 0, false},
		{"Garbage", "soon", 0, false},
		{"HTTPDate", "Sat, 01 Mar 2025 12:00:30 GMT", 30 * time.Second, true},
		{"RFC850Date", "Saturday, 01-Mar-25 12:01:00 GMT", time.Minute, true},
		{"ANSICDate", "Sat Mar  1 12:00:10 2025", 10 * time.Second, true},
		{"PastDate", "Sat, 01 Mar 2025 11:00:00 GMT", 0, true},
		{"Huge", "99999999999999999", time.Duration(1<<63 - 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, ok := ParseRetryAfter(tt.v, now)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestError(t *testing.T) {
	t.Parallel()

	t.Run("Message", func(t *testing.T) {
		t.Parallel()

		require.Equal(t, "podero auth_session: not_found (404)",
			(&Error{Kind: KindNotFound, Op: OpAuthSession, Status: 404}).Error())
		require.Equal(t, "podero list_users: invalid (422): bad email",
			(&Error{Kind: KindInvalid, Op: OpListUsers, Status: 422, Detail: "bad email"}).Error())
		require.Equal(t, "podero token: retryable: timeout",
			(&Error{Kind: KindRetryable, Op: OpToken, Detail: "timeout", Err: errors.New("https://x/?secret")}).Error())
	})

	t.Run("Temporary", func(t *testing.T) {
		t.Parallel()

		tests := []struct {
			kind ErrorKind
			op   string
			want bool
		}{
			{KindRetryable, OpAuthSession, true},
			{KindRateLimited, OpAuthSession, true},
			{KindMalformed, OpAuthSession, true},
			{KindCircuitOpen, OpAuthSession, true},
			{KindCircuitOpen, OpToken, true},
			{KindUnauthorized, OpAuthSession, true},
			{KindUnauthorized, OpToken, false},
			{KindNotFound, OpAuthSession, false},
			{KindInvalid, OpAuthSession, false},
		}
		for _, tt := range tests {
			require.Equal(t, tt.want, (&Error{Kind: tt.kind, Op: tt.op}).Temporary(), "%s %s", tt.kind, tt.op)
		}
	})

	t.Run("AsErrorAndUnwrap", func(t *testing.T) {
		t.Parallel()

		cause := errors.New("cause")
		wrapped := fmt.Errorf("job: %w", &Error{Kind: KindRetryable, Op: OpToken, Err: cause})
		e, ok := AsError(wrapped)
		require.True(t, ok)
		require.Equal(t, KindRetryable, e.Kind)
		require.ErrorIs(t, wrapped, cause)

		_, ok = AsError(errors.New("plain"))
		require.False(t, ok)
	})

	t.Run("DetailTrimmed", func(t *testing.T) {
		t.Parallel()

		body := "  " + strings.Repeat("x", MaxDetailBytes-1) + "é tail"
		d := trimDetail([]byte(body))
		require.Len(t, d, MaxDetailBytes-1, "the 2-byte é does not fit")
		require.Equal(t, "ok", trimDetail([]byte("\n ok \n")))
	})
}
