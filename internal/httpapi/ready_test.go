package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
)

// TestReadinessShowsConfigurationProblems: a link host not allowed and a
// failing token fetch are shown in /readyz's body, and the service stays
// ready (a restart fixes neither).
func TestReadinessShowsConfigurationProblems(t *testing.T) {
	t.Parallel()

	type body struct {
		Status string `json:"status"`
		Podero struct {
			Breaker          string         `json:"breaker"`
			LinkHostRejected map[string]any `json:"link_host_rejected"`
			TokenError       map[string]any `json:"token_error"`
		} `json:"podero"`
	}
	ready := func(t *testing.T, cfg httpapi.Config) body {
		t.Helper()
		b := setup(t, cfg)
		resp := b.get(t, "/readyz")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var out body
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		require.Equal(t, "ready", out.Status)
		return out
	}

	t.Run("Shown", func(t *testing.T) {
		t.Parallel()
		at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		out := ready(t, httpapi.Config{
			Breaker: func() podero.BreakerStatus { return podero.BreakerStatus{State: podero.BreakerClosed} },
			Problems: func() podero.Problems {
				return podero.Problems{
					LinkRejected: &podero.LinkRejection{Host: "connect.elsewhere.example", At: at, Count: 14, Hint: "add it to PODERO_LINK_HOSTS"},
					Token: &podero.TokenProblem{Error: "podero token: unauthorized (401): invalid_client", At: at.Add(time.Second),
						Credentials: true, Hint: "check " + podero.SettingsToken},
				}
			},
		})
		require.Equal(t, "closed", out.Podero.Breaker)
		require.Equal(t, map[string]any{"host": "connect.elsewhere.example", "at": "2025-03-01T12:00:00Z", "count": 14.0,
			"hint": "add it to PODERO_LINK_HOSTS"}, out.Podero.LinkHostRejected)
		require.Equal(t, map[string]any{"error": "podero token: unauthorized (401): invalid_client", "at": "2025-03-01T12:00:01Z",
			"credentials": true, "hint": "check PODERO_CLIENT_ID, PODERO_CLIENT_SECRET, PODERO_TOKEN_URL, PODERO_TOKEN_BODY"}, out.Podero.TokenError)
	})

	t.Run("TransientTokenErrorHasNoHint", func(t *testing.T) {
		t.Parallel()
		out := ready(t, httpapi.Config{Problems: func() podero.Problems {
			return podero.Problems{Token: &podero.TokenProblem{Error: "podero token: retryable (502): bad gateway", At: time.Now()}}
		}})
		require.Nil(t, out.Podero.LinkHostRejected)
		require.Equal(t, "podero token: retryable (502): bad gateway", out.Podero.TokenError["error"])
		require.Equal(t, false, out.Podero.TokenError["credentials"])
		require.NotContains(t, out.Podero.TokenError, "hint")
	})

	t.Run("NoneWhenAllIsWell", func(t *testing.T) {
		t.Parallel()
		for _, cfg := range []httpapi.Config{{}, {Problems: func() podero.Problems { return podero.Problems{} }}} {
			out := ready(t, cfg)
			require.Nil(t, out.Podero.LinkHostRejected)
			require.Nil(t, out.Podero.TokenError)
		}
	})
}

// TestReadinessShowsBrokenEmailAndUnexpectedAnswers: a broken email
// channel and answers Podero does not document are shown in /readyz's
// body; the service stays ready.
func TestReadinessShowsBrokenEmailAndUnexpectedAnswers(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	health := notify.EmailHealth{}
	b := setup(t, httpapi.Config{
		EmailHealth: func() notify.EmailHealth { return health },
		Problems: func() podero.Problems {
			return podero.Problems{Unexpected: &podero.UnexpectedAnswer{Error: "podero auth_session: unexpected (302): unexpected redirect to status.example",
				Op: podero.OpAuthSession, Status: 302, At: at, Count: 4, Hint: "check PODERO_BASE_URL"}}
		},
	})
	read := func() map[string]any {
		resp := b.get(t, "/readyz")
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return out
	}
	out := read()
	require.NotContains(t, out, "email", "a working channel is not shown")
	require.Equal(t, map[string]any{"error": "podero auth_session: unexpected (302): unexpected redirect to status.example",
		"op": "auth_session", "status": 302.0, "at": "2025-03-01T12:00:00Z", "count": 4.0, "hint": "check PODERO_BASE_URL"},
		out["podero"].(map[string]any)["unexpected_answer"])

	health = notify.EmailHealth{Broken: true, Since: at, Window: 10 * time.Minute, Addresses: 12, Refused: 30, Accepted: 1,
		LastReason: "554 5.7.1 Relay access denied", LastAt: at.Add(time.Minute)}
	out = read()
	require.Equal(t, "ready", out["status"])
	e := out["email"].(map[string]any)
	require.Equal(t, true, e["broken"])
	require.Equal(t, "2025-03-01T12:00:00Z", e["since"])
	require.Equal(t, 12.0, e["addresses_refused"])
	require.Equal(t, "10m0s", e["window"])
	require.Equal(t, "554 5.7.1 Relay access denied", e["last_refusal"])
	require.Contains(t, e["hint"], "SMTP_URL")
}
