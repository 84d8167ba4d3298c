package metrics

import (
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
