package sim

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

// TestLoginDoesNotTake: a device scripted so still redirects to the
// success URL on a successful login, but stays lapsed; off, the next login
// takes. The admin endpoint does the same; an unknown device is 404.
func TestLoginDoesNotTake(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Seed: t.Name()})
	tok := e.token()
	orgID, userID, id := e.firstDevice(reauth.Inverter)
	resp, body := e.do(http.MethodPost, "/_sim/devices/"+id+"/login_does_not_take", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	login := func() {
		t.Helper()
		resp, body := e.do(http.MethodPost, devicePath(orgID, userID, "inverters", id)+"/auth_session", tok,
			map[string]any{"success_url": "https://partner.example/ok"})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		out := decode[sessionOut](t, body)
		resp, _ = e.do(http.MethodGet, "/connect/"+*out.SessionID+"?result=success", "", nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://partner.example/ok", resp.Header.Get("Location"))
	}
	login()
	require.False(t, findDevice(t, e.sim.State(), id).IsAuthenticated, "the login did not take")

	resp, _ = e.do(http.MethodPost, "/_sim/devices/"+id+"/login_does_not_take?off", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	login()
	require.True(t, findDevice(t, e.sim.State(), id).IsAuthenticated)

	require.False(t, e.sim.LoginDoesNotTake(randomUUID(), true))
	resp, _ = e.do(http.MethodPost, "/_sim/devices/"+randomUUID()+"/login_does_not_take", "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
