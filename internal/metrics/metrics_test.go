package metrics

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// linkRejected returns reauth_podero_link_rejected_total by host.
func linkRejected(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "reauth_podero_link_rejected_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			require.Len(t, mt.GetLabel(), 1)
			require.Equal(t, "host", mt.GetLabel()[0].GetName())
			out[mt.GetLabel()[0].GetValue()] = mt.GetCounter().GetValue()
		}
	}
	return out
}

func TestPoderoLinkRejected(t *testing.T) {
	t.Parallel()

	t.Run("CountsByHost", func(t *testing.T) {
		t.Parallel()
		m := New(nil, nil)
		require.Empty(t, linkRejected(t, m))
		m.PoderoLinkRejected("connect.elsewhere.example")
		m.PoderoLinkRejected("connect.elsewhere.example")
		m.PoderoLinkRejected("http://connect.localhost:8090")
		require.Equal(t, map[string]float64{"connect.elsewhere.example": 2, "http://connect.localhost:8090": 1}, linkRejected(t, m))
	})

	t.Run("HostsAreBounded", func(t *testing.T) {
		t.Parallel()
		m := New(nil, nil)
		for i := range MaxLinkRejectedHosts + 5 {
			m.PoderoLinkRejected(fmt.Sprintf("h%d.example", i))
		}
		m.PoderoLinkRejected("h0.example") // a known host keeps its label
		got := linkRejected(t, m)
		require.Len(t, got, MaxLinkRejectedHosts+1)
		require.Equal(t, 5.0, got["other"])
		require.Equal(t, 2.0, got["h0.example"])
	})

	t.Run("NilIsANoOp", func(t *testing.T) {
		t.Parallel()
		var m *Metrics
		m.PoderoLinkRejected("x.example")
	})
}

// TestWatchBudget: the budget's reading is exported, read at most every
// 15 s, and nothing is exported before a first good reading.
func TestWatchBudget(t *testing.T) {
	t.Parallel()
	m := New(nil, nil)
	reads := 0
	var fail error = fmt.Errorf("database down")
	m.WatchBudget(func(context.Context) (BudgetReading, error) {
		reads++
		return BudgetReading{Rates: map[string]float64{"sweep": 2.5, "sync": 0.5}, Waiting: 300, DrainSeconds: 120,
			SyncLagSeconds: 3600, SyncPassSeconds: 7200}, fail
	})
	gauges := func() map[string]float64 {
		families, err := m.Registry.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, f := range families {
			for _, mt := range f.GetMetric() {
				name := f.GetName()
				for _, l := range mt.GetLabel() {
					name += "/" + l.GetValue()
				}
				if mt.GetGauge() != nil {
					out[name] = mt.GetGauge().GetValue()
				}
			}
		}
		return out
	}
	require.NotContains(t, gauges(), "reauth_requests_waiting", "no reading yet")
	fail = nil
	g := gauges()
	require.Equal(t, 2.5, g["reauth_podero_calls_per_second/sweep"])
	require.Equal(t, 0.5, g["reauth_podero_calls_per_second/sync"])
	require.Equal(t, 300.0, g["reauth_requests_waiting"])
	require.Equal(t, 120.0, g["reauth_backlog_drain_seconds"])
	require.Equal(t, 3600.0, g["reauth_sync_lag_seconds"])
	require.Equal(t, 7200.0, g["reauth_sync_pass_seconds"])
	gauges()
	require.Equal(t, 2, reads, "cached for 15 s")
}
