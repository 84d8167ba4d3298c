package metrics

import (
	"context"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/testdb"
)

// TestMetricNames: every reauth_ metric the service exports is in
// docs/metrics.md, and the alert rules and the dashboard use no other
// (e2e's TestPrometheusScrapesServe runs them against a real Prometheus).
func TestMetricNames(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	testdb.InsertJob(t, pool, reauth.NotifyArgs{SessionID: 1}, nil, testdb.Job{}) // for reauth_queue_jobs
	m := New(pool, func() bool { return false })
	m.WatchBudget(func(context.Context) (BudgetReading, error) { return BudgetReading{}, nil })
	m.WatchEmail(func() bool { return false })
	// One of each, so that every vector has a series.
	m.JobFinished("reauth_device", "completed")
	m.PoderoRequest("sessions", 200, time.Millisecond)
	m.LimiterWaited(time.Millisecond, false)
	m.LimiterWaited(0, true)
	m.PoderoLinkRejected("x.example")
	m.Notification("email", "sent")
	m.EmailRefused("mailbox")
	m.EmailChannelBroken()
	m.EventGivenUp("refused")
	families, err := m.Registry.Gather()
	require.NoError(t, err)

	exported := map[string]bool{} // with a histogram's series names
	var names []string
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "reauth_") {
			continue
		}
		names = append(names, name)
		exported[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				exported[name+s] = true
			}
		}
	}
	sort.Strings(names)

	docs, err := os.ReadFile("../../docs/metrics.md")
	require.NoError(t, err)
	for _, n := range names {
		require.Contains(t, string(docs), "`"+n, "docs/metrics.md does not list %s", n)
	}

	used := regexp.MustCompile(`reauth_[a-z_]+`)
	for _, file := range []string{"../../deploy/prometheus/alerts.yaml", "../../deploy/grafana/reauth.json"} {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, n := range used.FindAllString(string(b), -1) {
			require.True(t, exported[n], "%s uses %s, which the service does not export", file, n)
		}
	}
}
