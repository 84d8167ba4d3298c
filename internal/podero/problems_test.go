package podero

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// bodyServer is a Podero whose token endpoint (at TokenPath) reads only one
// request body, the one in accepts: "form", like an RFC 6749 server, which
// finds no grant_type in a JSON body (400 unsupported_grant_type), or
// "json", like a Django Ninja endpoint, which fails to validate a form body
// (422 {"detail": [...]}); "none" reads neither (422 either way). The API
// behind it hands out sessions.
type bodyServer struct {
	srv     *httptest.Server
	accepts atomic.Value // string
	secret  atomic.Value // string: the client secret accepted

	mu   sync.Mutex
	reqs []recorded // token requests
}

func newBodyServer(t *testing.T, accepts string) *bodyServer {
	t.Helper()
	b := &bodyServer{}
	b.accepts.Store(accepts)
	b.secret.Store(testSecret)
	b.srv = httptest.NewServer(b)
	t.Cleanup(b.srv.Close)
	return b
}

func (b *bodyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != TokenPath {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "+tokenPrefix) {
			respond(http.StatusUnauthorized, `{"detail":"Unauthorized"}`)(w, r)
			return
		}
		okSession(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.reqs = append(b.reqs, recorded{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body)})
	n := len(b.reqs)
	b.mu.Unlock()

	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	fields := url.Values{}
	switch accepts := b.accepts.Load().(string); {
	case accepts == "form" && mt == "application/x-www-form-urlencoded":
		fields, _ = url.ParseQuery(string(body))
	case accepts == "json" && mt == "application/json":
		var obj map[string]string
		if json.Unmarshal(body, &obj) != nil {
			respond(http.StatusBadRequest, `{"detail":"Invalid JSON"}`)(w, r)
			return
		}
		for k, v := range obj {
			fields.Set(k, v)
		}
	case accepts == "form":
		respond(http.StatusBadRequest, `{"error":"unsupported_grant_type"}`)(w, r)
		return
	default:
		respond(http.StatusUnprocessableEntity, `{"detail":[{"type":"missing","loc":["body","payload"],"msg":"Field required"}]}`)(w, r)
		return
	}
	id, secret, _ := r.BasicAuth()
	if id != testClientID || secret != b.secret.Load().(string) {
		respond(http.StatusUnauthorized, `{"error":"invalid_client","error_description":"Client authentication failed."}`)(w, r)
		return
	}
	switch fields.Get("grant_type") {
	case "client_credentials":
	case "password":
		if fields.Get("username") != "api-user" || fields.Get("password") != "pw-SECRET-99" {
			respond(http.StatusBadRequest, `{"error":"invalid_grant"}`)(w, r)
			return
		}
	default:
		respond(http.StatusBadRequest, `{"error":"unsupported_grant_type"}`)(w, r)
		return
	}
	respond(http.StatusOK, fmt.Sprintf(`{"access_token":"%s%d","expires_in":36000,"token_type":"Bearer","scope":"read write"}`, tokenPrefix, n))(w, r)
}

// requests returns the token requests so far.
func (b *bodyServer) requests() []recorded {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]recorded(nil), b.reqs...)
}

func (b *bodyServer) client(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.BaseURL = b.srv.URL
	cfg.ClientID = testClientID
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = testSecret
	}
	c, err := New(cfg)
	require.NoError(t, err)
	return c
}

// bodyOf says which body a recorded token request carried: "form" or
// "json", by its Content-Type, after checking that the body matches it.
func bodyOf(t *testing.T, r recorded) string {
	t.Helper()
	require.Equal(t, http.MethodPost, r.Method)
	id, secret, ok := (&http.Request{Header: r.Header}).BasicAuth()
	require.True(t, ok, "client credentials in the Basic header")
	require.Equal(t, testClientID, id)
	require.NotEmpty(t, secret)
	switch r.Header.Get("Content-Type") {
	case "application/x-www-form-urlencoded":
		_, err := url.ParseQuery(r.Body)
		require.NoError(t, err)
		return TokenBodyForm
	case "application/json":
		require.True(t, json.Valid([]byte(r.Body)), r.Body)
		return TokenBodyJSON
	}
	t.Fatalf("token request with Content-Type %q", r.Header.Get("Content-Type"))
	return ""
}

func bodiesOf(t *testing.T, reqs []recorded) []string {
	t.Helper()
	var out []string
	for _, r := range reqs {
		out = append(out, bodyOf(t, r))
	}
	return out
}

// logLines decodes a JSON log.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

// errorLines returns the ERROR lines of a JSON log.
func errorLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range logLines(t, logs) {
		if m["level"] == "ERROR" {
			out = append(out, m)
		}
	}
	return out
}

func TestTokenBody(t *testing.T) {
	t.Parallel()

	// Every server (what its token endpoint reads) with every setting.
	for _, server := range []string{"form", "json"} {
		for _, setting := range []string{TokenBodyForm, TokenBodyJSON, TokenBodyAuto, ""} {
			name := server + "Only/" + setting
			if setting == "" {
				name = server + "Only/default"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := newBodyServer(t, server)
				c := b.client(t, Config{TokenBody: setting})
				_, err := c.AuthSession(context.Background(), testOrg, testUser, "inverter", testDevice, AuthSessionInput{})

				auto := setting == TokenBodyAuto || setting == ""
				switch {
				case setting == server:
					require.NoError(t, err)
					require.Equal(t, []string{server}, bodiesOf(t, b.requests()))
				case auto && server == "form":
					require.NoError(t, err)
					require.Equal(t, []string{"form"}, bodiesOf(t, b.requests()), "the form goes first")
				case auto && server == "json":
					require.NoError(t, err)
					require.Equal(t, []string{"form", "json"}, bodiesOf(t, b.requests()), "the form turned away, then JSON once")
				default: // the other body: turned away, not retried
					wantStatus := map[string]int{"form": 400, "json": 422}[server]
					// Unauthorized: no call can be made until it is fixed,
					// and it is no fault of the request's.
					e := requireKind(t, err, KindUnauthorized, OpToken, wantStatus)
					require.False(t, e.Temporary())
					require.Equal(t, []string{setting}, bodiesOf(t, b.requests()))
					p := c.Problems().Token
					require.NotNil(t, p)
					require.False(t, p.Credentials, "not the credentials' fault")
					require.Equal(t, "check "+SettingsToken, p.Hint)
					return
				}

				// A later fetch sends the body that worked, first and only.
				c.InvalidateToken()
				callOK(t, c)
				reqs := b.requests()
				require.Equal(t, server, bodyOf(t, reqs[len(reqs)-1]))
				if auto && server == "json" {
					require.Len(t, reqs, 3, "JSON is remembered")
				}
			})
		}
	}

	t.Run("Bodies", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{TokenBodyForm, TokenBodyJSON} {
			b := newBodyServer(t, body)
			callOK(t, b.client(t, Config{TokenBody: body}))
			r := b.requests()[0]
			require.Equal(t, TokenPath, r.Path)
			id, secret, _ := (&http.Request{Header: r.Header}).BasicAuth()
			require.Equal(t, testClientID, id)
			require.Equal(t, testSecret, secret)
			if body == TokenBodyJSON {
				require.JSONEq(t, `{"grant_type":"client_credentials"}`, r.Body)
				require.Equal(t, "application/json", r.Header.Get("Accept"))
			} else {
				require.Equal(t, "grant_type=client_credentials", r.Body)
			}
		}
	})

	t.Run("PasswordGrantJSON", func(t *testing.T) {
		t.Parallel()
		b := newBodyServer(t, "json")
		c := b.client(t, Config{Username: "api-user", Password: "pw-SECRET-99"})
		callOK(t, c)
		reqs := b.requests()
		require.Len(t, reqs, 2)
		require.JSONEq(t, `{"grant_type":"password","username":"api-user","password":"pw-SECRET-99"}`, reqs[1].Body)

		c = b.client(t, Config{Username: "api-user", Password: "wrong-SECRET-pw", TokenBody: TokenBodyJSON})
		e := requireKind(t, call(c), KindUnauthorized, OpToken, 400)
		require.NotContains(t, e.Error(), "wrong-SECRET-pw")
		require.Equal(t, "invalid_grant", e.Detail)
	})

	t.Run("AutoSwitchesBack", func(t *testing.T) {
		t.Parallel()
		var logs syncBuffer
		b := newBodyServer(t, "json")
		c := b.client(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		callOK(t, c)
		require.Contains(t, logs.String(), "took the json body")

		// The endpoint changes to one that reads forms only.
		b.accepts.Store("form")
		c.InvalidateToken()
		callOK(t, c)
		c.InvalidateToken()
		callOK(t, c)
		require.Equal(t, []string{"form", "json", "json", "form", "form"}, bodiesOf(t, b.requests()))
		require.Contains(t, logs.String(), "took the form body")
	})

	t.Run("AutoLogsTheBodyThatWorksOnce", func(t *testing.T) {
		t.Parallel()
		var logs syncBuffer
		b := newBodyServer(t, "form")
		c := b.client(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		callOK(t, c)
		c.InvalidateToken()
		callOK(t, c)
		require.Equal(t, 1, strings.Count(logs.String(), "the token endpoint takes the form body"), logs.String())
	})

	t.Run("EveryAttemptPassesTheGuard", func(t *testing.T) {
		t.Parallel()
		b := newBodyServer(t, "json")
		l := &fakeLimiter{at: func() string { return fmt.Sprint(len(b.requests())) }}
		callOK(t, b.client(t, Config{Limiter: l}))
		require.Equal(t, []string{"0", "1", "2"}, l.Waits(), "a wait before each token request and the API call")
	})

	t.Run("NeitherBody", func(t *testing.T) {
		t.Parallel()
		b := newBodyServer(t, "none")
		e := requireKind(t, call(b.client(t, Config{})), KindUnauthorized, OpToken, 422)
		require.Contains(t, e.Detail, "json body: ")
		require.Contains(t, e.Detail, "; form body: ")
		require.Len(t, b.requests(), 2)
	})

	t.Run("CredentialsErrorsAreNotRetriedWithTheOtherBody", func(t *testing.T) {
		t.Parallel()
		b := newBodyServer(t, "form")
		requireKind(t, call(b.client(t, Config{ClientSecret: "wrong-secret-value"})), KindUnauthorized, OpToken, 401)
		require.Len(t, b.requests(), 1)
	})

	// Whatever the body, the same answer is the same error.
	t.Run("BothBodiesClassifyAlike", func(t *testing.T) {
		t.Parallel()
		answers := []struct {
			name   string
			status int
			body   string
			header []string
		}{
			{"InvalidClient401", 401, `{"error":"invalid_client","error_description":"bad ` + testSecret + `"}`, nil},
			{"InvalidClient400", 400, `{"error":"invalid_client"}`, nil},
			{"Forbidden", 403, `{"detail":"Forbidden"}`, nil},
			{"NotFound", 404, `<html>not found</html>`, []string{"Content-Type", "text/html"}},
			{"Unprocessable", 422, `{"detail":[{"msg":"Field required"}]}`, nil},
			{"BadGateway", 502, `bad gateway`, []string{"Content-Type", "text/plain"}},
			{"Throttled", 429, `{}`, []string{"Retry-After", "9"}},
			{"Redirect", 302, ``, []string{"Location", "https://elsewhere.example/"}},
			{"NoAccessToken", 200, `{"token_type":"Bearer"}`, nil},
			{"NotJSON", 200, `<html>`, []string{"Content-Type", "text/html"}},
			{"ErrorIn200", 200, `{"error":"invalid_grant"}`, nil},
			{"FormEncodedToken", 200, `access_token=` + tokenPrefix + `1&token_type=bearer&expires_in=3600`, []string{"Content-Type", "application/x-www-form-urlencoded"}},
			{"StringExpiresIn", 200, `{"access_token":"` + tokenPrefix + `1","expires_in":"3600"}`, nil},
		}
		for _, a := range answers {
			t.Run(a.name, func(t *testing.T) {
				t.Parallel()
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == TokenPath {
						respond(a.status, a.body, a.header...)(w, r)
						return
					}
					okSession(w, r)
				}))
				t.Cleanup(srv.Close)
				errs := map[string]*Error{}
				for _, body := range []string{TokenBodyForm, TokenBodyJSON} {
					c, err := New(Config{BaseURL: srv.URL, ClientID: testClientID, ClientSecret: testSecret, TokenBody: body})
					require.NoError(t, err)
					if err := call(c); err != nil {
						e, ok := AsError(err)
						require.True(t, ok)
						require.NotContains(t, e.Error(), testSecret)
						errs[body] = e
					}
				}
				if a.status == 200 && strings.Contains(a.body, "access_token") {
					require.Empty(t, errs)
					return
				}
				f, j := errs[TokenBodyForm], errs[TokenBodyJSON]
				require.NotNil(t, f)
				require.NotNil(t, j)
				require.Equal(t, f.Kind, j.Kind)
				require.Equal(t, f.Status, j.Status)
				require.Equal(t, f.Detail, j.Detail)
				require.Equal(t, f.RetryAfter, j.RetryAfter)
				require.Equal(t, f.Temporary(), j.Temporary())
			})
		}
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		_, err := New(Config{BaseURL: "https://app.podero.com", ClientID: "id", ClientSecret: "s", TokenBody: "xml"})
		require.EqualError(t, err, "podero: TokenBody must be form, json or auto")
	})
}

func TestProblems(t *testing.T) {
	t.Parallel()

	type bundle struct {
		c        *Client
		logs     *syncBuffer
		clock    *fakeClock
		mu       sync.Mutex
		rejected []string // what Config.LinkRejected was told
	}
	setup := func(t *testing.T, api http.HandlerFunc, cfg Config) *bundle {
		t.Helper()
		b := &bundle{logs: &syncBuffer{}, clock: newFakeClock()}
		cfg.Logger = slog.New(slog.NewJSONHandler(b.logs, nil))
		cfg.Now = b.clock.Now
		cfg.LinkRejected = func(host string) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.rejected = append(b.rejected, host)
		}
		b.c = newFake(t, fakeOpts{expiresIn: 3600}, api).client(t, cfg)
		return b
	}

	t.Run("LinkHostRejected", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sessionJSON("https://Connect.Elsewhere.example/s?onboarding_session_id=SESSION-SECRET", testDevice, testSession), Config{})
		require.Nil(t, b.c.Problems().LinkRejected)
		for range 3 {
			e := requireKind(t, call(b.c), KindMalformed, OpAuthSession, 200)
			require.True(t, e.Temporary(), "the job is retried, not cancelled")
			require.Equal(t, `authentication_url host "connect.elsewhere.example" is not allowed (not on PODERO_LINK_HOSTS)`, e.Detail)
		}
		require.Equal(t, []string{"connect.elsewhere.example", "connect.elsewhere.example", "connect.elsewhere.example"}, b.rejected)

		lines := errorLines(t, b.logs.String())
		require.Len(t, lines, 1, "once per host per interval, not per job")
		require.Contains(t, lines[0]["msg"], "PODERO_LINK_HOSTS")
		require.Equal(t, "connect.elsewhere.example", lines[0]["host"])
		require.Equal(t, "PODERO_LINK_HOSTS", lines[0]["setting"])
		require.NotContains(t, b.logs.String(), "SESSION-SECRET", "the link itself is not logged")

		p := b.c.Problems().LinkRejected
		require.NotNil(t, p)
		require.Equal(t, LinkRejection{Host: "connect.elsewhere.example", At: b.clock.Now(), Count: 3, Hint: "add it to PODERO_LINK_HOSTS"}, *p)

		b.clock.Advance(ProblemLogEvery)
		requireKind(t, call(b.c), KindMalformed, OpAuthSession, 200)
		require.Len(t, errorLines(t, b.logs.String()), 2, "logged again after the interval")
		require.Equal(t, 4, b.c.Problems().LinkRejected.Count)
	})

	t.Run("PlainHTTPLinkNamesTheHTTPEntry", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sessionJSON("http://connect.localhost:8090/connect/1", testDevice, testSession), Config{})
		requireKind(t, call(b.c), KindMalformed, OpAuthSession, 200)
		require.Equal(t, []string{"http://connect.localhost:8090"}, b.rejected)
		require.Equal(t, "http://connect.localhost:8090", b.c.Problems().LinkRejected.Host)
		require.Equal(t, "http://connect.localhost:8090", errorLines(t, b.logs.String())[0]["host"])
	})

	t.Run("PlainHTTPOnAnAllowedHostIsPoderos", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sessionJSON("http://connect.podero.com?onboarding_session_id=1", testDevice, testSession), Config{})
		requireKind(t, call(b.c), KindMalformed, OpAuthSession, 200)
		require.Empty(t, b.rejected)
		require.Nil(t, b.c.Problems().LinkRejected)
		require.Empty(t, errorLines(t, b.logs.String()))
	})

	t.Run("ConnectLinksAreAcceptedByDefault", func(t *testing.T) {
		t.Parallel()
		link := "https://connect.podero.com?onboarding_session_id=0f0e0d0c-1b2a-4c3d-8e9f-a1b2c3d4e5f6"
		b := setup(t, sessionJSON(link, testDevice, testSession), Config{})
		s, err := b.c.AuthSession(context.Background(), testOrg, testUser, "inverter", testDevice, AuthSessionInput{})
		require.NoError(t, err)
		require.Equal(t, link, s.AuthenticationURL)
		require.Equal(t, Problems{}, b.c.Problems())
	})

	t.Run("CredentialsRejected", func(t *testing.T) {
		t.Parallel()
		var logs syncBuffer
		srv := newBodyServer(t, "form")
		srv.secret.Store("the-right-one")
		clock := newFakeClock()
		c := srv.client(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: clock.Now})

		for range 2 {
			e := requireKind(t, call(c), KindUnauthorized, OpToken, 401)
			require.False(t, e.Temporary())
		}
		lines := errorLines(t, logs.String())
		require.Len(t, lines, 1, "the same error is logged once per interval")
		for _, name := range []string{"PODERO_CLIENT_ID", "PODERO_CLIENT_SECRET", "PODERO_TOKEN_URL", "PODERO_TOKEN_BODY"} {
			require.Contains(t, lines[0]["msg"], name)
			require.Contains(t, lines[0]["check"], name)
		}
		require.Contains(t, lines[0]["error"], "invalid_client")
		require.Equal(t, srv.srv.URL+TokenPath, lines[0]["token_url"])
		require.Equal(t, "form", lines[0]["token_body"])
		require.NotContains(t, logs.String(), testSecret)

		p := c.Problems().Token
		require.NotNil(t, p)
		require.True(t, p.Credentials)
		require.Equal(t, clock.Now(), p.At)
		require.Equal(t, "podero token: unauthorized (401): invalid_client: Client authentication failed.", p.Error)
		require.Equal(t, "check "+SettingsToken, p.Hint)

		// Fixed: the next successful fetch clears it.
		srv.secret.Store(testSecret)
		callOK(t, c)
		require.Nil(t, c.Problems().Token)
	})

	t.Run("PasswordGrantNamesItsSettings", func(t *testing.T) {
		t.Parallel()
		var logs syncBuffer
		srv := newBodyServer(t, "json")
		c := srv.client(t, Config{Username: "api-user", Password: "pw-wrong-SECRET", TokenBody: TokenBodyJSON,
			Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		requireKind(t, call(c), KindUnauthorized, OpToken, 400)
		lines := errorLines(t, logs.String())
		require.Len(t, lines, 1)
		require.Contains(t, lines[0]["check"], "PODERO_USERNAME, PODERO_PASSWORD")
		require.NotContains(t, logs.String(), "pw-wrong-SECRET")
		require.NotContains(t, c.Problems().Token.Error, "pw-wrong-SECRET")
	})

	t.Run("WrongTokenURL", func(t *testing.T) {
		t.Parallel()
		var logs syncBuffer
		f := newFake(t, fakeOpts{tokenStatus: 404, tokenBody: `<h1>Not Found</h1>`}, okSession)
		c := f.client(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		// Not KindNotFound: that would say the org, user or device is gone.
		e := requireKind(t, call(c), KindUnauthorized, OpToken, 404)
		require.False(t, e.Temporary())
		lines := errorLines(t, logs.String())
		require.Len(t, lines, 1)
		require.Contains(t, lines[0]["msg"], "token request failed; check PODERO_CLIENT_ID, PODERO_CLIENT_SECRET, PODERO_TOKEN_URL, PODERO_TOKEN_BODY")
		p := c.Problems().Token
		require.False(t, p.Credentials)
		require.Equal(t, "check "+SettingsToken, p.Hint)
	})

	t.Run("TransientTokenErrorIsShownNotLogged", func(t *testing.T) {
		t.Parallel()
		var logs syncBuffer
		f := newFake(t, fakeOpts{tokenStatus: 502, tokenBody: `bad gateway`}, okSession)
		c := f.client(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		requireKind(t, call(c), KindRetryable, OpToken, 502)
		p := c.Problems().Token
		require.NotNil(t, p)
		require.False(t, p.Credentials)
		require.Empty(t, p.Hint)
		require.Empty(t, errorLines(t, logs.String()))
	})

	// A redirect or an undocumented 4xx is retried, not cancelled, so it is
	// loud: an ERROR line (once per operation and status a minute) and
	// Problems.Unexpected for /readyz.
	t.Run("UnexpectedAnswer", func(t *testing.T) {
		t.Parallel()
		b := setup(t, respond(http.StatusFound, ``, "Location", "https://maintenance.example/down?token=x"), Config{BreakerFailures: 100})
		require.Nil(t, b.c.Problems().Unexpected)
		for range 3 {
			e := requireKind(t, call(b.c), KindUnexpected, OpAuthSession, http.StatusFound)
			require.True(t, e.Temporary())
		}
		lines := errorLines(t, b.logs.String())
		require.Len(t, lines, 1, "once per op and status per interval, not per job")
		require.Contains(t, lines[0]["msg"], "retried with backoff")
		require.Contains(t, lines[0]["msg"], "PODERO_BASE_URL")
		require.Equal(t, OpAuthSession, lines[0]["op"])
		require.EqualValues(t, http.StatusFound, lines[0]["status"])
		require.NotContains(t, b.logs.String(), "token=x", "a redirect is named by its host")
		p := b.c.Problems().Unexpected
		require.NotNil(t, p)
		require.Equal(t, UnexpectedAnswer{Error: "podero auth_session: unexpected (302): unexpected redirect to maintenance.example",
			Op: OpAuthSession, Status: http.StatusFound, At: b.clock.Now(), Count: 3, Hint: unexpectedHint}, *p)
		b.clock.Advance(ProblemLogEvery)
		requireKind(t, call(b.c), KindUnexpected, OpAuthSession, http.StatusFound)
		require.Len(t, errorLines(t, b.logs.String()), 2, "logged again after the interval")
	})

	t.Run("RefusedFetchesAreNoTokenProblem", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, fakeOpts{expiresIn: 3600}, okSession)
		c := f.client(t, Config{Limiter: &fakeLimiter{deferFor: time.Second}})
		requireKind(t, call(c), KindRateLimited, OpToken, 0)
		require.Nil(t, c.Problems().Token)
	})
}
