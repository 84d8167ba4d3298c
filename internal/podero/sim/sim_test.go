package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reauth/reauth"
	"github.com/stretchr/testify/require"
)

const api = "/api/partners/v2.0"

// env is a simulator behind an httptest server.
type env struct {
	t      *testing.T
	sim    *Server
	srv    *httptest.Server
	client *http.Client // does not follow redirects
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	s := New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &env{t: t, sim: s, srv: srv, client: client}
}

// do sends a request; body may be nil, a string (sent as is) or a value
// (sent as JSON). It returns the response and its body.
func (e *env) do(method, path, token string, body any, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, out
}

// token gets an access token with the client_credentials grant.
func (e *env) token() string {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth2/token/", strings.NewReader(form))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(e.sim.cfg.ClientID, e.sim.cfg.ClientSecret)
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&tok))
	require.NotEmpty(e.t, tok.AccessToken)
	return tok.AccessToken
}

// firstDevice returns the org, user and first device of kind k of the
// first user.
func (e *env) firstDevice(k reauth.DeviceKind) (orgID, userID, deviceID string) {
	e.t.Helper()
	st := e.sim.State()
	o, u := st.Orgs[0], st.Orgs[0].Users[0]
	for _, d := range u.Devices {
		if d.Kind == k {
			return o.ID, u.ID, d.ID
		}
	}
	e.t.Fatalf("no %s", k)
	return
}

func devicePath(orgID, userID, collection, id string) string {
	return fmt.Sprintf("%s/org/%s/users/%s/%s/%s", api, orgID, userID, collection, id)
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(b, &v), string(b))
	return v
}

type sessionOut struct {
	AuthenticationURL *string `json:"authentication_url"`
	DeviceID          *string `json:"device_id"`
	SessionID         *string `json:"session_id"`
}

func TestDeterministicIDs(t *testing.T) {
	t.Parallel()
	cfg := Config{Seed: "s1", Orgs: 2, UsersPerOrg: 2, DevicesPerKind: 2}
	a, b := New(cfg).State(), New(cfg).State()

	t.Run("same seed same state", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, a, b)
	})
	t.Run("shape and ids", func(t *testing.T) {
		t.Parallel()
		require.Len(t, a.Orgs, 2)
		seen := map[string]bool{}
		for i, o := range a.Orgs {
			require.Len(t, o.Users, 2)
			ids := []string{o.ID}
			for j, u := range o.Users {
				require.Equal(t, fmt.Sprintf("user%d.org%d@example.test", j+1, i+1), u.Email)
				require.NotEmpty(t, u.ExternalUserID)
				require.Len(t, u.Devices, 6) // 2 of each of the 3 kinds
				ids = append(ids, u.ID)
				for _, d := range u.Devices {
					require.True(t, d.Kind.Valid())
					require.False(t, d.IsAuthenticated, "seeded devices start lapsed")
					require.True(t, d.ActionNeeded)
					require.Zero(t, d.Sessions)
					ids = append(ids, d.ID)
				}
			}
			for _, id := range ids {
				require.True(t, reauth.IsUUID(id), id)
				require.Equal(t, byte('4'), id[14], "version 4: %s", id)
				require.Contains(t, "89ab", string(id[19]), "variant: %s", id)
				require.False(t, seen[id], "duplicate id %s", id)
				seen[id] = true
			}
		}
	})
	t.Run("other seed other ids", func(t *testing.T) {
		t.Parallel()
		c := New(Config{Seed: "s2", Orgs: 2, UsersPerOrg: 2, DevicesPerKind: 2}).State()
		require.NotEqual(t, a.Orgs[0].ID, c.Orgs[0].ID)
		require.NotEqual(t, a.Orgs[0].Users[0].ID, c.Orgs[0].Users[0].ID)
		require.NotEqual(t, a.Orgs[0].Users[0].Devices[0].ID, c.Orgs[0].Users[0].Devices[0].ID)
	})
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		d := New(Config{}).State()
		require.Len(t, d.Orgs, 1)
		require.Len(t, d.Orgs[0].Users, 3)
		require.Len(t, d.Orgs[0].Users[0].Devices, 3)
		require.Equal(t, New(Config{Seed: "demo"}).State(), d)
		require.Equal(t, "sim-client", New(Config{}).Config().ClientID)
	})
}

func TestToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{TokenTTL: time.Hour})

	post := func(t *testing.T, path, contentType, body string, basic ...string) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", contentType)
		if len(basic) == 2 {
			req.SetBasicAuth(basic[0], basic[1])
		}
		resp, err := e.client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp, out
	}
	const form = "application/x-www-form-urlencoded"
	requireToken := func(t *testing.T, resp *http.Response, out map[string]any) {
		t.Helper()
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		require.NotEmpty(t, out["access_token"])
		require.Equal(t, float64(3600), out["expires_in"])
		require.Equal(t, "Bearer", out["token_type"])
		require.Equal(t, "read write", out["scope"])
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		// The token works.
		r, _ := e.do(http.MethodGet, api+"/org/"+e.sim.State().Orgs[0].ID+"/users", out["access_token"].(string), nil)
		require.Equal(t, http.StatusOK, r.StatusCode)
	}

	t.Run("form with basic auth on both URLs", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/oauth2/token/", api + "/auth/token"} {
			resp, out := post(t, path, form, "grant_type=client_credentials", "sim-client", "sim-secret")
			requireToken(t, resp, out)
		}
	})
	t.Run("form with body client auth", func(t *testing.T) {
		t.Parallel()
		resp, out := post(t, "/oauth2/token/", form, "grant_type=client_credentials&client_id=sim-client&client_secret=sim-secret")
		requireToken(t, resp, out)
	})
	t.Run("json with body client auth", func(t *testing.T) {
		t.Parallel()
		resp, out := post(t, api+"/auth/token", "application/json",
			`{"grant_type":"client_credentials","client_id":"sim-client","client_secret":"sim-secret"}`)
		requireToken(t, resp, out)
	})
	t.Run("password grant", func(t *testing.T) {
		t.Parallel()
		resp, out := post(t, api+"/auth/token", form, "grant_type=password&username=sim-user&password=sim-password", "sim-client", "sim-secret")
		requireToken(t, resp, out)
		resp, out = post(t, api+"/auth/token", "application/json",
			`{"grant_type":"password","username":"sim-user","password":"sim-password","client_id":"sim-client","client_secret":"sim-secret"}`)
		requireToken(t, resp, out)
	})
	t.Run("bad password", func(t *testing.T) {
		t.Parallel()
		resp, out := post(t, api+"/auth/token", form, "grant_type=password&username=sim-user&password=nope", "sim-client", "sim-secret")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Equal(t, "invalid_grant", out["error"])
	})
	t.Run("wrong client credentials", func(t *testing.T) {
		t.Parallel()
		resp, out := post(t, "/oauth2/token/", form, "grant_type=client_credentials", "sim-client", "wrong")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Equal(t, "invalid_client", out["error"])
		require.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))

		resp, out = post(t, "/oauth2/token/", "application/json", `{"grant_type":"client_credentials","client_id":"x","client_secret":"sim-secret"}`)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Equal(t, "invalid_client", out["error"])

		resp, out = post(t, "/oauth2/token/", form, "grant_type=client_credentials")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no credentials at all")
		require.Equal(t, "invalid_client", out["error"])

		// The password grant needs the client credentials too.
		resp, out = post(t, api+"/auth/token", form, "grant_type=password&username=sim-user&password=sim-password")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Equal(t, "invalid_client", out["error"])
	})
	t.Run("unsupported grant", func(t *testing.T) {
		t.Parallel()
		resp, out := post(t, "/oauth2/token/", form, "grant_type=authorization_code&code=x", "sim-client", "sim-secret")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "unsupported_grant_type", out["error"])

		resp, out = post(t, "/oauth2/token/", form, "", "sim-client", "sim-secret")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_request", out["error"])
	})
}

func TestBearer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{TokenTTL: 200 * time.Millisecond})
	usersPath := api + "/org/" + e.sim.State().Orgs[0].ID + "/users"

	requireUnauthorized := func(t *testing.T, resp *http.Response, body []byte) {
		t.Helper()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.JSONEq(t, `{"detail":"Unauthorized"}`, string(body))
	}
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		resp, body := e.do(http.MethodGet, usersPath, "", nil)
		requireUnauthorized(t, resp, body)
	})
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		resp, body := e.do(http.MethodGet, usersPath, "not-a-token", nil)
		requireUnauthorized(t, resp, body)
		resp, body = e.do(http.MethodGet, usersPath, "", nil, "Authorization", "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0")
		requireUnauthorized(t, resp, body)
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		tok := e.token()
		resp, _ := e.do(http.MethodGet, usersPath, tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Eventually(t, func() bool {
			resp, _ := e.do(http.MethodGet, usersPath, tok, nil)
			return resp.StatusCode == http.StatusUnauthorized
		}, 5*time.Second, 50*time.Millisecond)
	})
	t.Run("before validation", func(t *testing.T) {
		t.Parallel()
		resp, body := e.do(http.MethodPost, devicePath("bad", "bad", "inverters", "bad")+"/auth_session", "", map[string]any{})
		requireUnauthorized(t, resp, body)
	})
}

func TestAuthSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Seed: "auth-session"})
	tok := e.token()

	t.Run("success connects the device", func(t *testing.T) {
		t.Parallel()
		orgID, userID, id := e.firstDevice(reauth.Inverter)
		path := devicePath(orgID, userID, "inverters", id)

		resp, body := e.do(http.MethodGet, path, tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		before := decode[map[string]any](t, body)
		require.Equal(t, false, before["is_authenticated"])
		require.Equal(t, "error", before["connection_status"])

		resp, body = e.do(http.MethodPost, path+"/auth_session", tok,
			map[string]any{"success_url": "https://partner.example/ok", "cancel_url": "https://partner.example/cancel"})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		out := decode[sessionOut](t, body)
		require.Equal(t, id, *out.DeviceID)
		require.True(t, reauth.IsUUID(*out.SessionID))
		require.Equal(t, DefaultConnectURL(e.srv.URL)+"/connect/"+*out.SessionID, *out.AuthenticationURL)

		// The user opens the link: a page with both choices.
		connect := strings.TrimPrefix(*out.AuthenticationURL, DefaultConnectURL(e.srv.URL))
		resp, body = e.do(http.MethodGet, connect, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(body), `href="?result=success"`)
		require.Contains(t, string(body), `href="?result=cancel"`)

		// ... and logs in.
		resp, _ = e.do(http.MethodGet, connect+"?result=success", "", nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://partner.example/ok", resp.Header.Get("Location"))

		resp, body = e.do(http.MethodGet, path, tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		after := decode[map[string]any](t, body)
		require.Equal(t, true, after["is_authenticated"])
		require.Equal(t, false, after["action_needed"])
		require.Equal(t, []any{}, after["actions"])
		require.Equal(t, "ok", after["connection_status"])

		d := findDevice(t, e.sim.State(), id)
		require.True(t, d.IsAuthenticated)
		require.False(t, d.ActionNeeded)
		require.Equal(t, 1, d.Sessions)

		// The admin API lapses it again.
		resp, body = e.do(http.MethodPost, "/_sim/devices/"+id+"/lapse", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.False(t, decode[Device](t, body).IsAuthenticated)
		require.False(t, findDevice(t, e.sim.State(), id).IsAuthenticated)
	})
	t.Run("cancel redirects to cancel_url", func(t *testing.T) {
		t.Parallel()
		orgID, userID, id := e.firstDevice(reauth.ElectricVehicle)
		resp, body := e.do(http.MethodPost, devicePath(orgID, userID, "electric-vehicles", id)+"/auth_session", tok,
			map[string]any{"success_url": "https://partner.example/ok", "cancel_url": "https://partner.example/cancel"})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		out := decode[sessionOut](t, body)

		resp, _ = e.do(http.MethodGet, "/connect/"+*out.SessionID+"?result=cancel", "", nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "https://partner.example/cancel", resp.Header.Get("Location"))
		require.False(t, findDevice(t, e.sim.State(), id).IsAuthenticated)
	})
	t.Run("without urls", func(t *testing.T) {
		t.Parallel()
		orgID, userID, id := e.firstDevice(reauth.Wallbox)
		resp, body := e.do(http.MethodPost, devicePath(orgID, userID, "wallboxes", id)+"/auth_session", tok,
			map[string]any{"success_url": nil})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		out := decode[sessionOut](t, body)
		resp, body = e.do(http.MethodGet, "/connect/"+*out.SessionID+"?result=success", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(body), "Connected")
		require.True(t, findDevice(t, e.sim.State(), id).IsAuthenticated)
	})
	t.Run("unknown session", func(t *testing.T) {
		t.Parallel()
		resp, _ := e.do(http.MethodGet, "/connect/"+randomUUID(), "", nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
	t.Run("422 on bad UUIDs", func(t *testing.T) {
		t.Parallel()
		orgID, _, id := e.firstDevice(reauth.Inverter)
		resp, body := e.do(http.MethodPost, devicePath(orgID, "nope", "inverters", id[:8])+"/auth_session", tok, map[string]any{})
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		require.JSONEq(t, `{"detail":[
			{"type":"uuid_parsing","loc":["path","user_id"],"msg":"Input should be a valid UUID","input":"nope"},
			{"type":"uuid_parsing","loc":["path","inverter_id"],"msg":"Input should be a valid UUID","input":"`+id[:8]+`"}]}`, string(body))

		resp, body = e.do(http.MethodPost, devicePath("x", "y", "electric-vehicles", "z")+"/auth_session", tok, map[string]any{})
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		got := decode[struct {
			Detail []struct {
				Type string   `json:"type"`
				Loc  []string `json:"loc"`
				Msg  string   `json:"msg"`
			} `json:"detail"`
		}](t, body)
		require.Len(t, got.Detail, 3)
		for i, name := range []string{"org_id", "user_id", "electric_vehicle_id"} {
			require.Equal(t, "uuid_parsing", got.Detail[i].Type)
			require.Equal(t, []string{"path", name}, got.Detail[i].Loc)
			require.Equal(t, "Input should be a valid UUID", got.Detail[i].Msg)
		}
	})
	t.Run("bad bodies", func(t *testing.T) {
		t.Parallel()
		orgID, userID, id := e.firstDevice(reauth.Inverter)
		path := devicePath(orgID, userID, "inverters", id) + "/auth_session"

		resp, body := e.do(http.MethodPost, path, tok, map[string]any{"success_url": 1, "cancel_url": "x"})
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		require.JSONEq(t, `{"detail":[{"type":"string_type","loc":["body","payload","success_url"],"msg":"Input should be a valid string","input":1}]}`, string(body))

		resp, body = e.do(http.MethodPost, path, tok, nil)
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "missing body")
		require.Contains(t, string(body), `"missing"`)

		resp, body = e.do(http.MethodPost, path, tok, []string{"a"})
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "not an object")
		require.Contains(t, string(body), `"model_attributes_type"`)

		resp, body = e.do(http.MethodPost, path, tok, "{not json")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.JSONEq(t, `{"detail":"Cannot parse request body"}`, string(body))
	})
	t.Run("404 unknown device", func(t *testing.T) {
		t.Parallel()
		orgID, userID, _ := e.firstDevice(reauth.Inverter)
		resp, body := e.do(http.MethodPost, devicePath(orgID, userID, "inverters", randomUUID())+"/auth_session", tok, map[string]any{})
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.JSONEq(t, `{"detail":"Not Found"}`, string(body))

		// Another user's device is not found under this user.
		st := e.sim.State()
		other := st.Orgs[0].Users[1].Devices[0]
		resp, _ = e.do(http.MethodPost, devicePath(orgID, userID, "inverters", other.ID)+"/auth_session", tok, map[string]any{})
		require.Equal(t, http.StatusNotFound, resp.StatusCode)

		// An unknown collection is no route at all.
		resp, _ = e.do(http.MethodPost, devicePath(orgID, userID, "heat-pumps", other.ID)+"/auth_session", tok, map[string]any{})
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
	t.Run("404 wrong kind", func(t *testing.T) {
		t.Parallel()
		orgID, userID, ev := e.firstDevice(reauth.ElectricVehicle)
		for _, c := range []string{"inverters", "wallboxes"} {
			resp, body := e.do(http.MethodPost, devicePath(orgID, userID, c, ev)+"/auth_session", tok, map[string]any{})
			require.Equal(t, http.StatusNotFound, resp.StatusCode, c)
			require.JSONEq(t, `{"detail":"Not Found"}`, string(body))
			resp, _ = e.do(http.MethodGet, devicePath(orgID, userID, c, ev), tok, nil)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, c)
		}
	})
}

func findDevice(t *testing.T, st State, id string) Device {
	t.Helper()
	for _, o := range st.Orgs {
		for _, u := range o.Users {
			for _, d := range u.Devices {
				if d.ID == id {
					return d
				}
			}
		}
	}
	t.Fatalf("device %s not in state", id)
	return Device{}
}

func TestScript(t *testing.T) {
	t.Parallel()

	t.Run("500 then success", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Config{})
		tok := e.token()
		orgID, userID, id := e.firstDevice(reauth.Inverter)
		path := devicePath(orgID, userID, "inverters", id) + "/auth_session"
		e.sim.Script(id, Response{Status: 500})

		resp, body := e.do(http.MethodPost, path, tok, map[string]any{})
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		require.JSONEq(t, `{"detail":"Internal Server Error"}`, string(body))
		require.Zero(t, findDevice(t, e.sim.State(), id).Sessions)

		resp, body = e.do(http.MethodPost, path, tok, map[string]any{})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.NotNil(t, decode[sessionOut](t, body).AuthenticationURL)
		require.Equal(t, 1, findDevice(t, e.sim.State(), id).Sessions)
	})
	t.Run("429 with retry-after and body via admin API", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Config{})
		tok := e.token()
		orgID, userID, id := e.firstDevice(reauth.Wallbox)
		path := devicePath(orgID, userID, "wallboxes", id) + "/auth_session"

		resp, body := e.do(http.MethodPost, "/_sim/devices/"+id+"/script", "",
			[]Response{{Status: 429, RetryAfter: "7", Body: `{"detail":"slow down"}`}, {Status: 503}})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.JSONEq(t, `{"device_id":"`+id+`","queued":2}`, string(body))

		resp, body = e.do(http.MethodPost, path, tok, map[string]any{})
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "7", resp.Header.Get("Retry-After"))
		require.JSONEq(t, `{"detail":"slow down"}`, string(body))

		resp, _ = e.do(http.MethodPost, path, tok, map[string]any{})
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

		resp, _ = e.do(http.MethodPost, path, tok, map[string]any{})
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("admin script rejects bad input", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Config{})
		_, _, id := e.firstDevice(reauth.Wallbox)
		resp, _ := e.do(http.MethodPost, "/_sim/devices/"+randomUUID()+"/script", "", []Response{{Status: 500}})
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		resp, _ = e.do(http.MethodPost, "/_sim/devices/"+id+"/script", "", []Response{{Status: 200, Null: []string{"nope"}}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		resp, _ = e.do(http.MethodPost, "/_sim/devices/"+id+"/script", "", `{"status":500}`)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		resp, _ = e.do(http.MethodPost, "/_sim/devices/"+randomUUID()+"/lapse", "", nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
	t.Run("null authentication_url", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Config{})
		tok := e.token()
		orgID, userID, id := e.firstDevice(reauth.ElectricVehicle)
		path := devicePath(orgID, userID, "electric-vehicles", id) + "/auth_session"
		e.sim.Script(id, Response{Status: 200, Null: []string{"authentication_url"}})

		resp, body := e.do(http.MethodPost, path, tok, map[string]any{"success_url": "https://partner.example/ok"})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		raw := decode[map[string]any](t, body)
		require.Contains(t, raw, "authentication_url")
		require.Nil(t, raw["authentication_url"])
		require.Equal(t, id, raw["device_id"])
		sid, ok := raw["session_id"].(string)
		require.True(t, ok)

		// No usable session came of it.
		require.Zero(t, findDevice(t, e.sim.State(), id).Sessions)
		resp, _ = e.do(http.MethodGet, "/connect/"+sid+"?result=success", "", nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.False(t, findDevice(t, e.sim.State(), id).IsAuthenticated)
	})
	t.Run("Script panics on a bad response", func(t *testing.T) {
		t.Parallel()
		s := New(Config{})
		require.Panics(t, func() { s.Script("x", Response{Status: 42}) })
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Seed: "list", UsersPerOrg: 2, DevicesPerKind: 2, BaseURL: "https://sim.example/"})
	tok := e.token()
	st := e.sim.State()
	org := st.Orgs[0]

	t.Run("users", func(t *testing.T) {
		t.Parallel()
		resp, body := e.do(http.MethodGet, api+"/org/"+org.ID+"/users", tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		users := decode[[]map[string]any](t, body)
		require.Len(t, users, 2)
		for i, u := range users {
			require.Equal(t, org.Users[i].ID, u["id"])
			require.Equal(t, org.Users[i].Email, u["email"])
			require.Equal(t, org.Users[i].ExternalUserID, u["external_user_id"])
			require.Equal(t, "user", u["role"])
			require.Equal(t, org.ID, u["organization_id"])
			require.NotEmpty(t, u["first_name"])
			require.NotEmpty(t, u["last_name"])
			require.Equal(t, true, u["is_onboarded"])
			require.Regexp(t, `^[A-Z]{2}$`, u["country"])
			for _, f := range []string{"joined_at", "last_login"} {
				_, err := time.Parse(time.RFC3339, u[f].(string))
				require.NoError(t, err, f)
			}
			// Two devices of each kind, no heat pumps.
			for _, f := range []string{"num_inverters", "num_electric_vehicles", "num_wallboxes"} {
				require.Equal(t, 2.0, u[f], f)
			}
			require.Equal(t, 0.0, u["num_heat_pumps"])
			require.Contains(t, u, "deleted_at")
			require.Nil(t, u["deleted_at"])
		}
	})
	t.Run("users of unknown org", func(t *testing.T) {
		t.Parallel()
		resp, body := e.do(http.MethodGet, api+"/org/"+randomUUID()+"/users", tok, nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.JSONEq(t, `{"detail":"Not Found"}`, string(body))
		resp, _ = e.do(http.MethodGet, api+"/org/nope/users", tok, nil)
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	})
	t.Run("devices", func(t *testing.T) {
		t.Parallel()
		u := org.Users[1]
		_, body := e.do(http.MethodGet, api+"/org/"+org.ID+"/users", tok, nil)
		users := decode[[]map[string]any](t, body)
		require.Equal(t, u.ID, users[1]["id"])
		for _, c := range []struct {
			collection string
			kind       reauth.DeviceKind
		}{{"inverters", reauth.Inverter}, {"electric-vehicles", reauth.ElectricVehicle}, {"wallboxes", reauth.Wallbox}} {
			resp, body := e.do(http.MethodGet, fmt.Sprintf("%s/org/%s/users/%s/%s", api, org.ID, u.ID, c.collection), tok, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			devs := decode[[]map[string]any](t, body)
			require.Len(t, devs, 2)
			var want []string
			for _, d := range u.Devices {
				if d.Kind == c.kind {
					want = append(want, d.ID)
				}
			}
			for i, d := range devs {
				require.Equal(t, want[i], d["id"])
				require.NotEmpty(t, d["name"])
				require.Equal(t, false, d["is_authenticated"])
				require.Equal(t, true, d["action_needed"])
				require.Equal(t, []any{map[string]any{
					"code": "reauthenticate",
					"resolution_link": map[string]any{
						"url":                 "https://sim.example/connect/device/" + want[i],
						"required_parameters": []any{},
					},
				}}, d["actions"])
				require.Equal(t, "error", d["connection_status"])
				require.Equal(t, "error", d["monitoring_status"])
				require.Equal(t, "error", d["steering_status"])
				require.Equal(t, "error", d["lifecycle_state"])
				require.Equal(t, map[string]any{"code": "reauthentication_required",
					"message": "The manufacturer connection has lapsed. The user needs to reconnect their device."}, d["lifecycle_error"])
				require.Equal(t, map[string]any{"id": u.ID, "email": u.Email, "external_id": u.ExternalUserID,
					"first_name": users[1]["first_name"], "last_name": users[1]["last_name"]}, d["owner"])
				model := d["device_model"].(map[string]any)
				require.Equal(t, string(c.kind), model["device_type"].(map[string]any)["short_name"])
				for _, f := range []string{"manufacturer", "model", "year", "cloud_service"} {
					require.Contains(t, model, f)
				}
				require.NotEmpty(t, d["external_device_id"])
				for _, f := range []string{"created_at", "updated_at", "current_state_last_updated_at"} {
					_, err := time.Parse(time.RFC3339, d[f].(string))
					require.NoError(t, err, f)
				}
				require.Contains(t, d, "deleted_at")
				require.Nil(t, d["deleted_at"])
			}
		}
	})
	t.Run("devices of unknown user", func(t *testing.T) {
		t.Parallel()
		resp, _ := e.do(http.MethodGet, fmt.Sprintf("%s/org/%s/users/%s/inverters", api, org.ID, randomUUID()), tok, nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		resp, body := e.do(http.MethodGet, fmt.Sprintf("%s/org/%s/users/x/inverters", api, org.ID), tok, nil)
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		require.Contains(t, string(body), `["path","user_id"]`)
	})
	t.Run("one device", func(t *testing.T) {
		t.Parallel()
		u := org.Users[0]
		d := u.Devices[0]
		resp, body := e.do(http.MethodGet, devicePath(org.ID, u.ID, "inverters", strings.ToUpper(d.ID)), tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, d.ID, decode[map[string]any](t, body)["id"])
	})
	t.Run("resolution link", func(t *testing.T) {
		t.Parallel()
		d := org.Users[0].Devices[1]
		resp, body := e.do(http.MethodGet, "/connect/device/"+d.ID, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(body), "?result=success")
		resp, _ = e.do(http.MethodGet, "/connect/device/"+randomUUID(), "", nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

func TestCounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Seed: "counts"})
	require.Equal(t, map[string]int{"token": 0, "auth_session": 0, "list_users": 0, "user_by_ext_id": 0, "list_devices": 0, "get_device": 0, "connect": 0}, e.sim.Counts())

	tok := e.token()
	orgID, userID, id := e.firstDevice(reauth.Inverter)
	e.do(http.MethodGet, api+"/org/"+orgID+"/users", tok, nil)
	e.do(http.MethodGet, api+"/org/"+orgID+"/users", "", nil) // 401, still counted
	e.do(http.MethodGet, fmt.Sprintf("%s/org/%s/users/%s/inverters", api, orgID, userID), tok, nil)
	e.do(http.MethodGet, devicePath(orgID, userID, "inverters", id), tok, nil)
	_, body := e.do(http.MethodPost, devicePath(orgID, userID, "inverters", id)+"/auth_session", tok, map[string]any{})
	e.do(http.MethodPost, devicePath(orgID, userID, "inverters", id)+"/auth_session", "bad", map[string]any{})
	e.do(http.MethodGet, "/connect/"+*decode[sessionOut](t, body).SessionID, "", nil)
	e.do(http.MethodGet, "/_sim/state", "", nil) // admin: not counted
	ext := e.sim.State().Orgs[0].Users[0].ExternalUserID
	resp, body := e.do(http.MethodGet, api+"/org/"+orgID+"/users/by-ext-id/"+url.PathEscape(ext), tok, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, userID, decode[map[string]any](t, body)["id"], "by-ext-id finds the user")
	resp, _ = e.do(http.MethodGet, api+"/org/"+orgID+"/users/by-ext-id/no-such-customer", tok, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	want := map[string]int{"token": 1, "auth_session": 2, "list_users": 2, "user_by_ext_id": 2, "list_devices": 1, "get_device": 1, "connect": 1}
	require.Equal(t, want, e.sim.Counts())
	resp, body = e.do(http.MethodGet, "/_sim/counts", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, want, decode[map[string]int](t, body))
}

func TestLatency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Latency: 150 * time.Millisecond})
	start := time.Now()
	e.token()
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)

	start = time.Now()
	resp, _ := e.do(http.MethodGet, "/_sim/state", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Less(t, time.Since(start), 150*time.Millisecond, "no latency on the admin API")
}

func TestConcurrentSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	tok := e.token()
	orgID, userID, id := e.firstDevice(reauth.Inverter)
	path := devicePath(orgID, userID, "inverters", id) + "/auth_session"
	e.sim.Script(id, Response{Status: 502}, Response{Status: 502})

	const n = 20
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := e.client.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
			_ = e.sim.State()
		})
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	require.Equal(t, map[int]int{200: n - 2, 502: 2}, got)
	require.Equal(t, n-2, findDevice(t, e.sim.State(), id).Sessions)
	require.Equal(t, n, e.sim.Counts()["auth_session"])
}
