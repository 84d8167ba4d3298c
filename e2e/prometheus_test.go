package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
)

// The files the test checks, relative to this package's directory.
const (
	dashboardFile  = "../deploy/grafana/reauth.json"
	alertRulesFile = "../deploy/prometheus/alerts.yaml"
)

// TestPrometheusScrapesServe starts Debian's Prometheus server against a
// running serve, after one request went through, and checks that every
// query of the Grafana dashboard returns data and that Prometheus loads and
// evaluates every alert rule without an error.
func TestPrometheusScrapesServe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not installed: `make deps` installs Debian's prometheus package (.ci/ensure-prometheus), "+
			"or run `apt-get install -y --no-install-recommends prometheus` as root: %v", err)
	}
	queries := dashboardQueries(t)

	// One request goes through before the first scrape, so that every
	// series the dashboard draws exists.
	s := newService(t, testdb.NewURL(t))
	s.serve(t)
	st := s.state(t)
	org, user := st.Orgs[0].ID, st.Orgs[0].Users[0]
	s.enqueue(t, org, user, user.Devices[0], "")
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = s.mails.Wait(waitCtx, 1)
	require.NoError(t, err)

	prom := startPrometheus(t, promBin, strings.TrimPrefix(s.base, "http://"))

	// A few good scrapes, the last one too, so that rates over a minute
	// have samples.
	deadline := time.Now().Add(25 * time.Second)
	for {
		r := promQuery(t, prom, `sum_over_time(up{job="reauth"}[1m]) >= 4 and on () up{job="reauth"} == 1`)
		if len(r) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape %s/metrics 4 times within 25 s; targets: %s", s.base, promGet(t, prom, "/api/v1/targets"))
		}
		time.Sleep(250 * time.Millisecond)
	}

	for _, q := range queries {
		require.NotEmpty(t, promQuery(t, prom, q.expr), "panel %q: %s returns no data", q.panel, q.expr)
	}

	// Every alert rule is loaded and has been evaluated without an error.
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		require.NoError(t, json.Unmarshal([]byte(promGet(t, prom, "/api/v1/rules")), &rules))
		n, ok := 0, true
		for _, g := range rules.Data.Groups {
			for _, r := range g.Rules {
				n++
				require.Empty(t, r.LastError, "rule %s", r.Name)
				ok = ok && r.Health == "ok"
			}
		}
		require.NotZero(t, n, "no alert rules loaded from %s", alertRulesFile)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert rules not all evaluated within 10 s: %+v", rules.Data.Groups)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// dashboardQuery is one target of a dashboard panel.
type dashboardQuery struct {
	panel, expr string
}

// dashboardQueries returns every query of the dashboard's panels (rows'
// panels too), with Grafana's variables replaced as Grafana would for a
// one-minute view.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	vars := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1m")
	var out []dashboardQuery
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			require.NoError(t, json.Unmarshal(r, &p))
			for _, tg := range p.Targets {
				expr := vars.Replace(tg.Expr)
				require.NotContains(t, expr, "$", "panel %q: a variable the test does not replace: %s", p.Title, tg.Expr)
				out = append(out, dashboardQuery{p.Title, expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	require.NotEmpty(t, out, "no queries in %s", dashboardFile)
	return out
}

// startPrometheus runs bin scraping target's /metrics every second, with
// the alert rules loaded, on a free port with its data in a temporary
// directory, and returns its base URL once it is ready.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(alertRulesFile)
	require.NoError(t, err)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: reauth
    static_configs:
      - targets: [%q]
`, rules, target)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600))
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("prometheus output:\n%s", tail(out.String(), 4000))
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-done:
			t.Fatalf("prometheus exited: %s", tail(out.String(), 2000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 15 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promGet returns the body of a GET of path on Prometheus, which must
// answer 200.
func promGet(t *testing.T, base, path string) string {
	t.Helper()
	resp, err := http.Get(base + path)
	require.NoError(t, err)
	body := readAll(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, body)
	return body
}

// promQuery runs an instant query and returns its result's elements.
func promQuery(t *testing.T, base, query string) []json.RawMessage {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(promGet(t, base, "/api/v1/query?query="+url.QueryEscape(query))), &r))
	require.Equal(t, "success", r.Status, "%s: %s", query, r.Error)
	if r.Data.ResultType != "vector" && r.Data.ResultType != "matrix" {
		return []json.RawMessage{r.Data.Result} // a scalar or a string
	}
	var elems []json.RawMessage
	require.NoError(t, json.Unmarshal(r.Data.Result, &elems))
	return elems
}
