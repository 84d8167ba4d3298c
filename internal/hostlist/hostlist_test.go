package hostlist

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestList(t *testing.T) {
	t.Parallel()
	l, err := Parse([]string{"app.podero.com", "*.partner.example", "connect.example:8443", "http://sim.local:8090"})
	require.NoError(t, err)
	for raw, want := range map[string]bool{
		"https://app.podero.com/x":         true,
		"https://APP.podero.com:443/x":     true,
		"https://app.podero.com:8443/x":    false,
		"http://app.podero.com/x":          false,
		"https://a.partner.example/x":      true,
		"https://a.b.partner.example/x":    true,
		"https://partner.example/x":        false,
		"https://evilpartner.example/x":    false,
		"https://connect.example:8443/x":   true,
		"https://connect.example/x":        false,
		"http://sim.local:8090/connect":    true,
		"https://sim.local:8090/connect":   false,
		"http://sim.local/connect":         false,
		"https://app.podero.com@evil.com/": false,
		"https://user@app.podero.com/":     false,
		"javascript:alert(1)":              false,
		"//app.podero.com/x":               false,
		"/relative":                        false,
		"":                                 false,
		"ftp://app.podero.com/":            false,
	} {
		require.Equal(t, want, l.AllowsString(raw), raw)
	}
	empty, err := Parse(nil)
	require.NoError(t, err)
	require.False(t, empty.AllowsString("https://app.podero.com/"), "an empty list allows nothing")

	for _, bad := range []string{"", "a/b", "*.", "**.x", "user@host", "host:", "https://x"} {
		_, err := Parse([]string{bad})
		require.Error(t, err, bad)
	}
}
