package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/hostlist"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/session"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

const (
	apiToken = "httpapi-test-token-0123456789"
	// linksToken has the links scope too: it sees authentication_urls whole.
	linksToken = "httpapi-test-links-token-0123456789"
	orgID      = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	userID     = "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	deviceID   = "a2314723-06cc-4c2e-8819-118905579c7a"
)

type testBundle struct {
	pool    *pgxpool.Pool
	river   *river.Client[pgx.Tx] // insert-only
	handler http.Handler
	srv     *httptest.Server
	signer  *link.Signer
	browser *http.Client // does not follow redirects
}

func setup(t *testing.T, cfg httpapi.Config) *testBundle {
	t.Helper()
	b := &testBundle{pool: testdb.New(t)}
	var err error
	b.signer, err = link.NewSigner(bytes.Repeat([]byte("s"), 32))
	require.NoError(t, err)
	rc, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	require.NoError(t, err)
	cfg.Pool, cfg.River = b.pool, rc
	if cfg.Links == nil {
		cfg.Links = b.signer // the opt-out tokens of /u
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Tokens = []httpapi.APIToken{
		{Name: "t", Scopes: []string{httpapi.ScopeEnqueue, httpapi.ScopeRead}, Hash: sha256.Sum256([]byte(apiToken))},
		{Name: "l", Scopes: []string{httpapi.ScopeRead, httpapi.ScopeLinks}, Hash: sha256.Sum256([]byte(linksToken))},
	}
	b.river = rc
	b.handler = httpapi.New(cfg)
	b.srv = httptest.NewServer(b.handler)
	t.Cleanup(b.srv.Close)
	b.browser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return b
}

// session stores an open session for the device and returns its link token.
func (b *testBundle) session(t *testing.T, authURL, successURL, cancelURL string) (int64, string) {
	t.Helper()
	ctx := context.Background()
	nonce := link.NewNonce()
	token := b.signer.Token(nonce)
	var id int64
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if err := store.UpsertDevice(ctx, tx, reauth.Inverter, deviceID, orgID, userID); err != nil {
			return err
		}
		var err error
		id, err = session.Sessions{}.Create(ctx, nil, tx, session.New{NewSession: store.NewSession{
			DeviceKind: reauth.Inverter, DeviceID: deviceID, PoderoSessionID: "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
			AuthenticationURL: authURL, LinkNonce: nonce, LinkHash: link.Hash(token), Locale: "en",
			SuccessURL: successURL, CancelURL: cancelURL, ExpiresAt: time.Now().Add(time.Hour),
		}})
		return err
	})
	require.NoError(t, err)
	return id, token
}

func (b *testBundle) get(t *testing.T, path string) *http.Response {
	t.Helper()
	resp, err := b.browser.Get(b.srv.URL + path)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (b *testBundle) state(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT state FROM auth_session WHERE id = $1", id).Scan(&s))
	return s
}

func TestLinks(t *testing.T) {
	t.Parallel()

	t.Run("OpenRedirectsAndRecordsTheClick", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		id, token := b.session(t, "https://app.podero.com/connect/1", "", "")
		resp := b.get(t, "/r/"+token)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://app.podero.com/connect/1", resp.Header.Get("Location"))
		var opened *time.Time
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT opened_at FROM auth_session WHERE id = $1", id).Scan(&opened))
		require.NotNil(t, opened)
	})

	t.Run("UnknownAndMalformedTokensLookTheSame", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		_, token := b.session(t, "https://app.podero.com/connect/1", "", "")
		other := b.signer.Token(link.NewNonce())
		var bodies []string
		for _, path := range []string{"/r/" + other, "/r/short", "/r/" + strings.Repeat("x", 43), "/r/" + other + "/done?result=success"} {
			resp := b.get(t, path)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
			require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			body, _ := io.ReadAll(resp.Body)
			bodies = append(bodies, string(body))
			require.NotContains(t, string(body), token)
		}
		for _, body := range bodies[1:] {
			require.Equal(t, bodies[0], body)
		}
	})

	t.Run("DoneSuccessCompletesAndRedirectsToPartner", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{SuccessURL: "https://partner.example/ok", CancelURL: "https://partner.example/no"})
		id, token := b.session(t, "https://app.podero.com/connect/1", "", "")
		resp := b.get(t, "/r/"+token+"/done?result=success")
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://partner.example/ok", resp.Header.Get("Location"))
		require.Equal(t, store.SessionCompleted, b.state(t, id))

		// A completed session's link says so instead of redirecting.
		resp = b.get(t, "/r/"+token)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		body, _ := io.ReadAll(resp.Body)
		require.Contains(t, string(body), "Already connected")
	})

	t.Run("DoneCancelUsesTheRequestsCancelURL", func(t *testing.T) {
		t.Parallel()
		hosts, err := hostlist.Parse([]string{"crm.example"})
		require.NoError(t, err)
		b := setup(t, httpapi.Config{CancelURL: "https://partner.example/no", RedirectHosts: hosts})
		id, token := b.session(t, "https://app.podero.com/connect/1", "", "https://crm.example/cancelled")
		resp := b.get(t, "/r/"+token+"/done?result=cancel")
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://crm.example/cancelled", resp.Header.Get("Location"))
		require.Equal(t, store.SessionCancelled, b.state(t, id))

		// The user may still use the link after cancelling, and complete.
		resp = b.get(t, "/r/"+token)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		resp = b.get(t, "/r/"+token+"/done?result=success")
		require.Equal(t, http.StatusOK, resp.StatusCode, "built-in page: no success URL configured")
		require.Equal(t, store.SessionCompleted, b.state(t, id))
		s, err := store.GetSession(context.Background(), b.pool, id)
		require.NoError(t, err)
		require.NotNil(t, s.CancelledAt, "the cancel is kept with its time")
		require.NotNil(t, s.FinishedAt)
		require.False(t, s.FinishedAt.Before(*s.CancelledAt))
		require.Equal(t, 1, s.Clicks)
		require.NotNil(t, s.LastOpenedAt)
	})

	t.Run("DoneNeverRedirectsOffTheList", func(t *testing.T) {
		t.Parallel()
		hosts, err := hostlist.Parse([]string{"partner.example"})
		require.NoError(t, err)
		// Sessions stored with URLs whose host is not (or no longer) allowed.
		b := setup(t, httpapi.Config{SuccessURL: "https://partner.example/ok", RedirectHosts: hosts})
		_, token := b.session(t, "https://app.podero.com/connect/1", "https://evil.example/phish", "//evil.example/x")
		resp := b.get(t, "/r/"+token+"/done?result=success")
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://partner.example/ok", resp.Header.Get("Location"), "the configured page instead")

		b2 := setup(t, httpapi.Config{RedirectHosts: hosts})
		_, token2 := b2.session(t, "https://app.podero.com/connect/1", "", "https://evil.example/phish")
		resp = b2.get(t, "/r/"+token2+"/done?result=cancel")
		require.Equal(t, http.StatusOK, resp.StatusCode, "the built-in page, no redirect")
		require.Empty(t, resp.Header.Get("Location"))
	})

	t.Run("DoneRejectsAnUnknownResult", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		id, token := b.session(t, "https://app.podero.com/connect/1", "", "")
		for _, q := range []string{"", "?result=maybe", "?result=SUCCESS"} {
			resp := b.get(t, "/r/"+token+"/done"+q)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
		}
		require.Equal(t, store.SessionOpen, b.state(t, id))
	})

	t.Run("SupersededLinkFollowsToTheCurrentSession", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		oldID, oldToken := b.session(t, "https://app.podero.com/connect/old", "", "")
		_, _ = b.session(t, "https://app.podero.com/connect/new", "", "")
		require.Equal(t, store.SessionSuperseded, b.state(t, oldID))
		resp := b.get(t, "/r/"+oldToken)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://app.podero.com/connect/new", resp.Header.Get("Location"))
	})
}

func TestAPI(t *testing.T) {
	t.Parallel()

	t.Run("HealthAndReadiness", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			require.Equal(t, http.StatusOK, b.get(t, path).StatusCode, path)
		}
		// An outdated schema makes the service not ready, and says why.
		_, err := b.pool.Exec(context.Background(), "DELETE FROM reauth_migration")
		require.NoError(t, err)
		resp := b.get(t, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		var out map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		require.Contains(t, out["error"], "reauth migrate")
	})

	t.Run("ReadinessShowsPoderoState", func(t *testing.T) {
		t.Parallel()
		openUntil := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
		b := setup(t, httpapi.Config{Breaker: func() podero.BreakerStatus {
			return podero.BreakerStatus{State: podero.BreakerOpen, Failures: 5, OpenUntil: openUntil}
		}})
		require.NoError(t, store.HoldPoderoCalls(context.Background(), b.pool, 30*time.Second))
		resp := b.get(t, "/readyz")
		require.Equal(t, http.StatusOK, resp.StatusCode, "Podero being down does not make the service unready")
		var out struct {
			Status string `json:"status"`
			Podero struct {
				Breaker          string     `json:"breaker"`
				Failures         int        `json:"consecutive_failures"`
				BreakerOpenUntil time.Time  `json:"breaker_open_until"`
				HeldUntil        *time.Time `json:"calls_held_until"`
			} `json:"podero"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		require.Equal(t, "ready", out.Status)
		require.Equal(t, "open", out.Podero.Breaker)
		require.Equal(t, 5, out.Podero.Failures)
		require.True(t, openUntil.Equal(out.Podero.BreakerOpenUntil))
		require.NotNil(t, out.Podero.HeldUntil)
		require.WithinDuration(t, time.Now().Add(30*time.Second), *out.Podero.HeldUntil, 3*time.Second)
	})

	t.Run("DeviceView", func(t *testing.T) {
		t.Parallel()
		b := setup(t, httpapi.Config{})
		b.session(t, "https://app.podero.com/connect/1", "", "")
		call := func(path, token string) (int, map[string]any) {
			req, _ := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var out map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
			return resp.StatusCode, out
		}
		status, out := call("/v1/devices/inverter/"+deviceID, apiToken)
		require.Equal(t, http.StatusOK, status)
		sessions := out["sessions"].([]any)
		require.Len(t, sessions, 1)
		s := sessions[0].(map[string]any)
		require.Equal(t, "open", s["state"])
		require.Equal(t, "https://app.podero.com/…", s["authentication_url"], "the read scope sees where the link goes, not the link")
		require.NotContains(t, s, "link_nonce")
		status, whole := call("/v1/devices/inverter/"+deviceID, linksToken)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "https://app.podero.com/connect/1", whole["sessions"].([]any)[0].(map[string]any)["authentication_url"], "links shows it whole")
		// Never synced: what Podero says of the device is there, as null.
		for _, f := range []string{"manufacturer", "model", "lifecycle_state", "lifecycle_error", "external_device_id", "owner_email"} {
			require.Contains(t, out, f)
			require.Nil(t, out[f], f)
		}

		status, _ = call("/v1/devices/inverter/"+deviceID, "nope-nope-nope-nope")
		require.Equal(t, http.StatusUnauthorized, status)
		status, out = call("/v1/devices/toaster/"+deviceID, apiToken)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, out["error"], "device_kind")
		status, out = call("/v1/devices/inverter/not-a-uuid", apiToken)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, out["error"], "UUID")
		status, _ = call("/v1/devices/wallbox/"+deviceID, apiToken)
		require.Equal(t, http.StatusNotFound, status)
	})
}
