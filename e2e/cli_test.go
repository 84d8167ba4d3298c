package e2e_test

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
)

func TestDemo(t *testing.T) {
	t.Parallel()

	t.Run("OnDatabaseURL", func(t *testing.T) {
		t.Parallel()
		p := start(t, append(os.Environ(), "DATABASE_URL="+testdb.EmptyURL(t)), "reauth", "demo")
		require.Equal(t, 0, p.wait(t, 90*time.Second), p.output.String())
		out := p.output.String()
		require.Contains(t, out, "duplicate=true")
		// Three users with an inverter and an EV each: one email per user.
		require.Contains(t, out, "✓ 6 sessions created, 3 emails sent, 1 link followed to completion")
		// One row per device: the followed link's session completed, the rest open.
		require.Len(t, regexp.MustCompile(`(?m)^(inverter|electric_vehicle) .* sent  completed$`).FindAllString(out, -1), 1)
		require.Len(t, regexp.MustCompile(`(?m)^(inverter|electric_vehicle) .* sent  open$`).FindAllString(out, -1), 5)
	})

	t.Run("ThrowawayPostgres", func(t *testing.T) {
		t.Parallel()
		p := start(t, os.Environ(), "reauth", "demo", "-throwaway-postgres")
		require.Equal(t, 0, p.wait(t, 90*time.Second), p.output.String())
		require.Contains(t, p.output.String(), "started a throwaway Postgres cluster")
		require.Contains(t, p.output.String(), "1 link followed to completion")
	})

	// With -keep the stack stays up after the summary: /ops and River UI
	// answer the printed ops token, the caught emails are pages, and
	// SIGINT stops it all cleanly.
	t.Run("Keep", func(t *testing.T) {
		t.Parallel()
		p := start(t, append(os.Environ(), "DATABASE_URL="+testdb.EmptyURL(t)), "reauth", "demo", "-keep")
		printed := regexp.MustCompile(`(?m)^  caught emails:  (\S+)$`)
		waitFor(t, 90*time.Second, "the printed URLs", func() bool { return printed.MatchString(p.output.String()) })
		out := p.output.String()
		require.Contains(t, out, "1 link followed to completion")
		line := func(name string) string {
			m := regexp.MustCompile(`(?m)^  ` + name + `:\s+(\S+)$`).FindStringSubmatch(out)
			require.NotNil(t, m, "a %s line in:\n%s", name, out)
			return m[1]
		}
		token := regexp.MustCompile(`the ops token (\S+) as the password`).FindStringSubmatch(out)
		require.NotNil(t, token, out)
		get := func(u, password string) (int, string) {
			t.Helper()
			req, err := http.NewRequest(http.MethodGet, u, nil)
			require.NoError(t, err)
			if password != "" {
				req.SetBasicAuth("ops", password)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			return resp.StatusCode, readAll(t, resp)
		}
		for _, u := range []string{line("ops page"), line("River UI"), line("River UI") + "api/jobs?state=completed"} {
			status, _ := get(u, "")
			require.Equal(t, http.StatusUnauthorized, status, u)
			status, body := get(u, token[1])
			require.Equal(t, http.StatusOK, status, u)
			require.NotEmpty(t, body)
		}
		status, body := get(line("caught emails"), "")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, 3, strings.Count(body, `<tr id="msg-`), "every email listed (one per user, for their inverter and EV)")
		status, body = get(line("caught emails")+"1", "")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, `src="/1/html"`, "the email rendered")

		p.signal(t, syscall.SIGINT)
		require.Equal(t, 0, p.wait(t, 30*time.Second), p.output.String())
		require.Contains(t, p.output.String(), "stopping")
	})
}

func TestEnqueueCommand(t *testing.T) {
	t.Parallel()
	env := append(os.Environ(), "DATABASE_URL="+testdb.NewURL(t))
	args := []string{"enqueue", "-org", "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "-user", "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
		"-kind", "inverter", "-device", "a2314723-06cc-4c2e-8819-118905579c7a", "-locale", "de"}

	p := start(t, env, "reauth", args...)
	require.Equal(t, 0, p.wait(t, 30*time.Second), p.output.String())
	m := regexp.MustCompile(`^enqueued: job (\d+)\n$`).FindStringSubmatch(p.output.String())
	require.NotNil(t, m, p.output.String())

	p = start(t, env, "reauth", append(args, "-json")...)
	require.Equal(t, 0, p.wait(t, 30*time.Second), p.output.String())
	require.JSONEq(t, `{"job_id":`+m[1]+`,"duplicate":true}`, p.output.String())

	bad := start(t, env, "reauth", "enqueue", "-org", "x", "-kind", "toaster")
	require.Equal(t, 2, bad.wait(t, 30*time.Second))
	for _, want := range []string{"org_id must be a UUID", "user_id is required", "device_kind must be one of", "device_id is required"} {
		require.Contains(t, bad.output.String(), want)
	}

	noDB := start(t, []string{"PATH=" + os.Getenv("PATH")}, "reauth", args...)
	require.Equal(t, 1, noDB.wait(t, 30*time.Second))
	require.Contains(t, noDB.output.String(), "missing required environment variables: DATABASE_URL")

	unknown := start(t, env, "reauth", "frobnicate")
	require.Equal(t, 2, unknown.wait(t, 30*time.Second))
	require.Contains(t, unknown.output.String(), `unknown command "frobnicate"`)

	help := start(t, env, "reauth", "serve", "-h")
	require.Equal(t, 0, help.wait(t, 30*time.Second))
	require.Contains(t, help.output.String(), "Usage: reauth serve")
}
