package sim

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
)

func TestDefaultConnectURL(t *testing.T) {
	t.Parallel()
	for base, want := range map[string]string{
		"http://127.0.0.1:8090":   "http://connect.localhost:8090",
		"http://127.0.0.1:8090/":  "http://connect.localhost:8090",
		"http://localhost:8090":   "http://connect.localhost:8090",
		"http://LOCALHOST:8090":   "http://connect.localhost:8090",
		"http://[::1]:8090":       "http://connect.localhost:8090",
		"http://127.0.0.1":        "http://connect.localhost",
		"https://127.0.0.1:8443":  "https://connect.localhost:8443",
		"https://sim.example":     "https://sim.example",
		"http://10.0.0.7:8090":    "http://10.0.0.7:8090",
		"http://podero-sim:8090/": "http://podero-sim:8090",
	} {
		require.Equal(t, want, DefaultConnectURL(base), base)
	}
}

// TestConnectHost plays Podero's two hosts: the API hands out links on the
// connect host, a client must allow that host as it must allow
// connect.podero.com, and the connect pages answer there.
func TestConnectHost(t *testing.T) {
	t.Parallel()

	type bundle struct {
		srv            *httptest.Server
		org, user, dev string
	}
	setup := func(t *testing.T, cfg Config) *bundle {
		t.Helper()
		s := New(cfg)
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		st := s.State()
		u := st.Orgs[0].Users[0]
		return &bundle{srv: srv, org: st.Orgs[0].ID, user: u.ID, dev: u.Devices[0].ID}
	}
	client := func(t *testing.T, b *bundle, cfg podero.Config) *podero.Client {
		t.Helper()
		cfg.BaseURL, cfg.ClientID = b.srv.URL, "sim-client"
		if cfg.ClientSecret == "" {
			cfg.ClientSecret = "sim-secret"
		}
		c, err := podero.New(cfg)
		require.NoError(t, err)
		return c
	}
	session := func(c *podero.Client, b *bundle) (podero.AuthSession, error) {
		return c.AuthSession(context.Background(), b.org, b.user, reauth.Inverter, b.dev, podero.AuthSessionInput{})
	}

	t.Run("LinksNeedTheConnectHostAllowed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Seed: t.Name()})
		connect := DefaultConnectURL(b.srv.URL)
		require.True(t, strings.HasPrefix(connect, "http://connect.localhost:"), connect)

		// Podero's defaults do not allow the simulator's connect host ...
		_, err := session(client(t, b, podero.Config{}), b)
		e, ok := podero.AsError(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, podero.KindMalformed, e.Kind)
		require.Contains(t, e.Detail, connect)

		// ... PODERO_LINK_HOSTS naming it does.
		s, err := session(client(t, b, podero.Config{LinkHosts: []string{connect}}), b)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(s.AuthenticationURL, connect+"/connect/"), s.AuthenticationURL)

		// The connect page answers on that host (the same listener).
		resp, err := LocalhostClient().Get(s.AuthenticationURL)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(body), "Connect your device")
		require.Equal(t, strings.TrimPrefix(connect, "http://"), resp.Request.URL.Host)
	})

	t.Run("ConfiguredConnectURL", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Seed: t.Name(), ConnectURL: "https://connect.sim.example/"})
		s, err := session(client(t, b, podero.Config{LinkHosts: []string{"connect.sim.example"}}), b)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(s.AuthenticationURL, "https://connect.sim.example/connect/"), s.AuthenticationURL)
	})

	// The token endpoint takes both bodies, and Basic credentials both
	// form-encoded (x/oauth2) and raw (Podero's guide, the JSON body).
	t.Run("TokenBodies", func(t *testing.T) {
		t.Parallel()
		const secret = "s3cret+with/odd" // a raw "+" is a space once form-decoded
		b := setup(t, Config{Seed: t.Name(), ClientSecret: secret})
		for _, body := range []string{podero.TokenBodyForm, podero.TokenBodyJSON, podero.TokenBodyAuto} {
			c := client(t, b, podero.Config{ClientSecret: secret, TokenBody: body, LinkHosts: []string{DefaultConnectURL(b.srv.URL)}})
			_, err := session(c, b)
			require.NoError(t, err, body)
		}
	})
}
