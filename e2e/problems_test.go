package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/testdb"
)

// TestConfigurationProblems: what an operator sees when the service is
// configured wrong for its Podero, and restarting would not help: an ERROR
// line naming the setting, a metric, and /readyz's body (still 200).
func TestConfigurationProblems(t *testing.T) {
	t.Parallel()

	// readyz returns /readyz's "podero" object.
	readyz := func(t *testing.T, s *service) map[string]any {
		t.Helper()
		var out struct {
			Status string         `json:"status"`
			Podero map[string]any `json:"podero"`
		}
		getJSON(t, s.base+"/readyz", &out) // 200
		require.Equal(t, "ready", out.Status)
		return out.Podero
	}
	// errorLine waits for the JSON log line at ERROR whose message has msg.
	errorLine := func(t *testing.T, p *proc, msg string) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			for _, line := range strings.Split(p.output.String(), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "ERROR" && strings.Contains(m["msg"].(string), msg) {
					return m
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ERROR line with %q in:\n%s", msg, tail(p.output.String(), 4000))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// firstRequest enqueues a request for the first user's first device.
	firstRequest := func(t *testing.T, s *service) int64 {
		t.Helper()
		st := s.state(t)
		u := st.Orgs[0].Users[0]
		return s.enqueue(t, st.Orgs[0].ID, u, u.Devices[0], `,"email":"someone@example.test"`)
	}

	t.Run("LinkHostNotAllowed", func(t *testing.T) {
		t.Parallel()
		dbURL := testdb.NewURL(t)
		s := newService(t, dbURL)
		connect := sim.DefaultConnectURL(s.simURL) // http://connect.localhost:PORT
		// Podero's own hosts only: the simulator's connect host is not on it.
		p := s.serve(t, "PODERO_LINK_HOSTS=connect.podero.com,app.podero.com")
		job := firstRequest(t, s)

		line := errorLine(t, p, "PODERO_LINK_HOSTS")
		require.Equal(t, connect, line["host"])
		require.Equal(t, "PODERO_LINK_HOSTS", line["setting"])

		resp, err := http.Get(s.base + "/metrics")
		require.NoError(t, err)
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Regexp(t, `reauth_podero_link_rejected_total\{host="`+connect+`"\} [1-9]`, string(metrics))

		rejected, ok := readyz(t, s)["link_host_rejected"].(map[string]any)
		require.True(t, ok, "readyz shows the rejected host")
		require.Equal(t, connect, rejected["host"])
		require.Equal(t, "add it to PODERO_LINK_HOSTS", rejected["hint"])
		require.NotEmpty(t, rejected["at"])

		// The job is retried, not given up: fixing the setting and
		// restarting lets it through.
		conn, err := pgx.Connect(context.Background(), dbURL)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		var state, lastErr string
		for deadline := time.Now().Add(30 * time.Second); lastErr == ""; time.Sleep(50 * time.Millisecond) {
			require.NoError(t, conn.QueryRow(context.Background(),
				`SELECT state, coalesce(errors[array_length(errors, 1)] ->> 'error', '') FROM river_job WHERE id = $1`, job).Scan(&state, &lastErr))
			require.False(t, time.Now().After(deadline), "the job recorded no error")
		}
		require.Contains(t, []string{"retryable", "available", "running", "scheduled"}, state)
		require.Contains(t, lastErr, "not on PODERO_LINK_HOSTS")
		require.NotContains(t, p.output.String(), clientSecret)
	})

	t.Run("CredentialsRejected", func(t *testing.T) {
		t.Parallel()
		const wrong = "SECRET-wrong-client-9d9d"
		s := newService(t, testdb.NewURL(t))
		p := s.serve(t, "PODERO_CLIENT_SECRET="+wrong, "PODERO_TOKEN_BODY=json")
		firstRequest(t, s)

		line := errorLine(t, p, "rejected the credentials")
		for _, name := range []string{"PODERO_CLIENT_ID", "PODERO_CLIENT_SECRET", "PODERO_TOKEN_URL", "PODERO_TOKEN_BODY", "PODERO_USERNAME", "PODERO_PASSWORD"} {
			require.Contains(t, line["check"], name)
		}
		require.Contains(t, line["error"], "invalid_client")
		require.Equal(t, "json", line["token_body"])

		tokenErr, ok := readyz(t, s)["token_error"].(map[string]any)
		require.True(t, ok, "readyz shows the token error")
		require.Contains(t, tokenErr["error"], "invalid_client")
		require.Equal(t, true, tokenErr["credentials"])
		require.Contains(t, tokenErr["hint"], "PODERO_CLIENT_SECRET")
		require.NotContains(t, p.output.String(), wrong, "the secret's value is never logged")
	})
}
