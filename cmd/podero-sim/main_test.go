package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBinary builds podero-sim once and runs it as a user would.
func TestBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "podero-sim")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))

	t.Run("serves and stops on SIGTERM", func(t *testing.T) {
		t.Parallel()
		p := start(t, bin, "-addr", "127.0.0.1:0", "-seed", "bin", "-orgs", "2")

		var st struct {
			Orgs []struct {
				ID    string `json:"id"`
				Users []struct {
					ID string `json:"id"`
				} `json:"users"`
			} `json:"orgs"`
		}
		getJSON(t, p.url+"/_sim/state", "", &st)
		require.Len(t, st.Orgs, 2)
		require.Len(t, st.Orgs[0].Users, 3)

		// The default base URL is the listen address.
		tok := token(t, p.url)
		var devs []struct {
			Actions []struct {
				ResolutionLink struct {
					URL string `json:"url"`
				} `json:"resolution_link"`
			} `json:"actions"`
		}
		getJSON(t, p.url+"/api/partners/v2.0/org/"+st.Orgs[0].ID+"/users/"+st.Orgs[0].Users[0].ID+"/inverters", tok, &devs)
		require.Len(t, devs, 1)
		require.True(t, strings.HasPrefix(devs[0].Actions[0].ResolutionLink.URL, p.url+"/connect/device/"), devs[0].Actions[0].ResolutionLink.URL)

		stderr := p.stop(t)
		require.Contains(t, stderr, "path=/_sim/state")
		require.Contains(t, stderr, "status=200")
		require.NotContains(t, stderr, tok)
	})
	t.Run("config file and flag overrides", func(t *testing.T) {
		t.Parallel()
		cfg := filepath.Join(t.TempDir(), "sim.json")
		require.NoError(t, os.WriteFile(cfg, []byte(`{
			"seed": "file", "orgs": 2, "users_per_org": 4, "devices_per_kind": 2,
			"client_secret": "file-secret", "token_ttl": "1m", "base_url": "https://sim.example"
		}`), 0o600))
		p := start(t, bin, "-addr", "127.0.0.1:0", "-config", cfg, "-users", "1", "-client-secret", "flag-secret")

		var st struct {
			Orgs []struct {
				ID    string `json:"id"`
				Users []struct {
					ID      string `json:"id"`
					Devices []any  `json:"devices"`
				} `json:"users"`
			} `json:"orgs"`
		}
		getJSON(t, p.url+"/_sim/state", "", &st)
		require.Len(t, st.Orgs, 2)
		require.Len(t, st.Orgs[0].Users, 1)
		require.Len(t, st.Orgs[0].Users[0].Devices, 6)

		tok := tokenWith(t, p.url, "flag-secret", 60)
		var devs []struct {
			Actions []struct {
				ResolutionLink struct {
					URL string `json:"url"`
				} `json:"resolution_link"`
			} `json:"actions"`
		}
		getJSON(t, p.url+"/api/partners/v2.0/org/"+st.Orgs[0].ID+"/users/"+st.Orgs[0].Users[0].ID+"/wallboxes", tok, &devs)
		require.Len(t, devs, 2)
		require.True(t, strings.HasPrefix(devs[0].Actions[0].ResolutionLink.URL, "https://sim.example/connect/device/"))
		p.stop(t)
	})
	t.Run("device mix", func(t *testing.T) {
		t.Parallel()
		p := start(t, bin, "-addr", "127.0.0.1:0", "-quiet", "-users", "200", "-device-mix", "0.5,0,0.5")
		var st struct {
			Orgs []struct {
				Users []struct {
					Devices []any `json:"devices"`
				} `json:"users"`
			} `json:"orgs"`
		}
		getJSON(t, p.url+"/_sim/state", "", &st)
		require.Len(t, st.Orgs[0].Users, 200)
		none := 0
		for _, u := range st.Orgs[0].Users {
			require.Contains(t, []int{0, 2}, len(u.Devices))
			if len(u.Devices) == 0 {
				none++
			}
		}
		require.InDelta(t, 100, none, 30, "about half the users have no device")
		p.stop(t)
	})
	t.Run("faults from flags, stats", func(t *testing.T) {
		t.Parallel()
		p := start(t, bin, "-addr", "127.0.0.1:0", "-fault-5xx", "1", "-fault-seed", "3")

		resp, err := postToken(p.url, http.DefaultClient)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)

		// Switch to resets while running: the client sees its connection reset.
		req, err := http.NewRequest(http.MethodPut, p.url+"/_sim/faults", strings.NewReader(`{"reset":1}`))
		require.NoError(t, err)
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, err = postToken(p.url, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}})
		require.ErrorIs(t, err, syscall.ECONNRESET)

		var st struct {
			Counts          map[string]int           `json:"counts"`
			Faults          map[string]int           `json:"faults"`
			Violations      int                      `json:"violations"`
			PerSecond       []struct{ Requests int } `json:"per_second"`
			MaxPerSecond    int                      `json:"max_per_second"`
			SessionsCreated int                      `json:"sessions_created"`
		}
		getJSON(t, p.url+"/_sim/stats", "", &st)
		require.Equal(t, 2, st.Counts["token"])
		require.Equal(t, 1, st.Faults["error_5xx"])
		require.Equal(t, 1, st.Faults["reset"])
		require.Zero(t, st.Faults["hang"])
		require.Zero(t, st.Violations)
		total := 0
		for _, c := range st.PerSecond {
			total += c.Requests
		}
		require.Equal(t, 2, total)
		require.GreaterOrEqual(t, st.MaxPerSecond, 1)

		stderr := p.stop(t)
		require.Contains(t, stderr, "status=500")
		require.Contains(t, stderr, "status=0", "the reset request is logged as unanswered")
	})
	t.Run("faults from the config file", func(t *testing.T) {
		t.Parallel()
		cfg := filepath.Join(t.TempDir(), "sim.json")
		require.NoError(t, os.WriteFile(cfg, []byte(`{
			"fault_seed": 5, "faults": {"rate_limited": 1, "retry_after": "3s", "rate_limit": 50}
		}`), 0o600))
		p := start(t, bin, "-addr", "127.0.0.1:0", "-config", cfg, "-rate-burst", "7")

		resp, err := postToken(p.url, http.DefaultClient)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "3", resp.Header.Get("Retry-After"))

		var f map[string]any
		getJSON(t, p.url+"/_sim/faults", "", &f)
		require.Equal(t, 1.0, f["rate_limited"])
		require.Equal(t, "3s", f["retry_after"])
		require.Equal(t, 50.0, f["rate_limit"])
		require.Equal(t, 7.0, f["rate_burst"])
		p.stop(t)
	})
	t.Run("help documents every flag", func(t *testing.T) {
		t.Parallel()
		out, err := exec.Command(bin, "-h").CombinedOutput()
		require.NoError(t, err, "-h exits 0")
		for _, f := range []string{"addr", "seed", "orgs", "users", "devices", "device-mix", "client-id", "client-secret",
			"username", "password", "token-ttl", "latency", "base-url", "config",
			"fault-5xx", "fault-429", "fault-hang", "fault-hang-for", "fault-reset", "fault-malformed", "fault-null",
			"fault-foreign", "fault-revoke", "retry-after", "fault-seed", "rate-limit", "rate-burst"} {
			require.Contains(t, string(out), "  -"+f+" ", f)
		}
	})
	t.Run("bad usage exits 2", func(t *testing.T) {
		t.Parallel()
		badFaults := filepath.Join(t.TempDir(), "faults.json")
		require.NoError(t, os.WriteFile(badFaults, []byte(`{"faults": {"hang": 0.5, "reset": 0.6}}`), 0o600))
		badMix := filepath.Join(t.TempDir(), "mix.json")
		require.NoError(t, os.WriteFile(badMix, []byte(`{"device_mix": [0.2, 0.2]}`), 0o600))
		for _, args := range [][]string{{"-nope"}, {"-orgs", "-1"}, {"-config", "/does/not/exist"}, {"stray"},
			{"-fault-5xx", "1.5"}, {"-fault-429", "0.5", "-fault-null", "0.6"}, {"-rate-limit", "-1"},
			{"-retry-after", "-1s"}, {"-config", badFaults}, {"-device-mix", "0.5,0.4"}, {"-device-mix", "1,-0.5,0.5"},
			{"-device-mix", "half"}, {"-config", badMix}} {
			err := exec.Command(bin, args...).Run()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%v", args)
			require.Equal(t, 2, exit.ExitCode(), "%v", args)
		}
	})
}

// proc is a running podero-sim.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stdout *bufio.Reader
	stderr *bytes.Buffer
}

// start runs bin with args and waits for its "listening" line.
func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, stdout: bufio.NewReader(stdout), stderr: stderr}
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // in case the test fails early

	line := make(chan string, 1)
	go func() {
		l, _ := p.stdout.ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		m := regexp.MustCompile(`^podero-sim listening on (http://127\.0\.0\.1:\d+)\n$`).FindStringSubmatch(l)
		require.NotNil(t, m, "first stdout line: %q", l)
		p.url = m[1]
	case <-time.After(30 * time.Second):
		t.Fatal("podero-sim printed no listening line")
	}
	return p
}

// stop sends SIGTERM, expects exit 0 and returns what was logged.
func (p *proc) stop(t *testing.T) string {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	rest, err := io.ReadAll(p.stdout)
	require.NoError(t, err)
	require.Empty(t, string(rest), "exactly one stdout line")
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "exit 0; stderr:\n%s", p.stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("podero-sim did not stop on SIGTERM")
	}
	return p.stderr.String()
}

func getJSON(t *testing.T, u, tok string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, u)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

// postToken asks for a client_credentials token with client.
func postToken(base string, client *http.Client) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/oauth2/token/",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("sim-client", "sim-secret")
	return client.Do(req)
}

func token(t *testing.T, base string) string { return tokenWith(t, base, "sim-secret", 36000) }

// tokenWith gets a client_credentials token with client sim-client and
// secret, and checks its expires_in.
func tokenWith(t *testing.T, base, secret string, expiresIn int) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/oauth2/token/",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("sim-client", secret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	require.Equal(t, expiresIn, tok.ExpiresIn)
	return tok.AccessToken
}
