package sim

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

// listDevices lists a user's devices of kind k through the API.
func (e *env) listDevices(tok, orgID, userID string, k reauth.DeviceKind) []map[string]any {
	e.t.Helper()
	collection := map[reauth.DeviceKind]string{reauth.Inverter: "inverters", reauth.ElectricVehicle: "electric-vehicles", reauth.Wallbox: "wallboxes"}[k]
	resp, body := e.do(http.MethodGet, fmt.Sprintf("%s/org/%s/users/%s/%s", api, orgID, userID, collection), tok, nil)
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	return decode[[]map[string]any](e.t, body)
}

// TestDeviceModels: devices carry realistic makes and models, chosen from
// the seed, some without a model or a make (null in the JSON).
func TestDeviceModels(t *testing.T) {
	t.Parallel()
	cfg := Config{Seed: "models", UsersPerOrg: 40, DevicesPerKind: 1}
	e := newEnv(t, cfg)
	tok := e.token()
	org := e.sim.State().Orgs[0]

	seen := map[reauth.DeviceKind]map[string]bool{}
	nullModel, nullMaker := 0, 0
	for _, u := range org.Users {
		for _, kind := range reauth.DeviceKinds {
			for _, d := range e.listDevices(tok, org.ID, u.ID, kind) {
				m := d["device_model"].(map[string]any)
				maker, _ := m["manufacturer"].(string)
				model, _ := m["model"].(string)
				if seen[kind] == nil {
					seen[kind] = map[string]bool{}
				}
				seen[kind][maker+"|"+model] = true
				switch {
				case m["manufacturer"] == nil:
					nullMaker++
					require.Nil(t, m["model"])
					require.Nil(t, m["year"])
				case m["model"] == nil:
					nullModel++
				default:
					require.NotNil(t, m["year"], "%s %s", maker, model)
					require.NotEmpty(t, m["cloud_service"])
				}
			}
		}
	}
	require.True(t, seen[reauth.Inverter]["SMA|Sunny Boy 5.0"], "%v", seen[reauth.Inverter])
	require.True(t, seen[reauth.ElectricVehicle]["Tesla|Model 3"], "%v", seen[reauth.ElectricVehicle])
	require.True(t, seen[reauth.Wallbox]["Easee|Home"], "%v", seen[reauth.Wallbox])
	for _, kind := range reauth.DeviceKinds {
		require.Len(t, seen[kind], len(catalog[kind]), "every %s product is handed out", kind)
	}
	require.Positive(t, nullModel)
	require.Positive(t, nullMaker)

	// The same seed gives the same makes; the state shows them too.
	again := New(cfg).State()
	for i, u := range org.Users {
		for j, d := range u.Devices {
			require.Equal(t, d, again.Orgs[0].Users[i].Devices[j])
		}
	}
	d := org.Users[0].Devices[0]
	e.sim.mu.Lock()
	p := e.sim.devices[d.ID].product
	e.sim.mu.Unlock()
	require.Equal(t, p.manufacturer, d.Manufacturer)
	require.Equal(t, p.model, d.Model)
}

// TestDeviceLifecycle: a healthy device is authenticated and fresh; a
// lapsed one is in lifecycle_state error with its lifecycle_error, and
// both move when the device lapses or is reconnected.
func TestDeviceLifecycle(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 8, 7, 30, 0, time.UTC)
	clock := func() time.Time { return now }
	e := newEnv(t, Config{Seed: "lifecycle", Healthy: 1, Now: clock})
	tok := e.token()
	orgID, userID, id := e.firstDevice(reauth.Wallbox)
	get := func() map[string]any {
		t.Helper()
		resp, body := e.do(http.MethodGet, devicePath(orgID, userID, "wallboxes", id), tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return decode[map[string]any](t, body)
	}

	d := get()
	require.Equal(t, true, d["is_authenticated"])
	require.Equal(t, "authenticated", d["lifecycle_state"])
	require.Contains(t, d, "lifecycle_error")
	require.Nil(t, d["lifecycle_error"])
	require.Equal(t, []any{}, d["actions"])
	for _, f := range []string{"connection_status", "monitoring_status", "steering_status"} {
		require.Equal(t, "ok", d[f], f)
	}
	require.Equal(t, "2025-03-01T08:05:00Z", d["current_state_last_updated_at"], "refreshed every 5 minutes")
	seededUpdate := d["updated_at"]

	// It lapses: error, and its state stops at the lapse.
	now = now.Add(time.Hour)
	resp, _ := e.do(http.MethodPost, "/_sim/devices/"+id+"/lapse", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	now = now.Add(time.Hour)
	d = get()
	require.Equal(t, "error", d["lifecycle_state"])
	require.Equal(t, "reauthentication_required", d["lifecycle_error"].(map[string]any)["code"])
	require.Equal(t, "error", d["connection_status"])
	require.Equal(t, "2025-03-01T09:07:30Z", d["updated_at"])
	require.Equal(t, "2025-03-01T09:07:30Z", d["current_state_last_updated_at"])
	require.NotEqual(t, seededUpdate, d["updated_at"])

	// The user reconnects it through its resolution link.
	link := d["actions"].([]any)[0].(map[string]any)["resolution_link"].(map[string]any)["url"].(string)
	require.Contains(t, link, "/connect/device/"+id)
	resp, _ = e.do(http.MethodGet, "/connect/device/"+id+"?result=success", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	d = get()
	require.Equal(t, "authenticated", d["lifecycle_state"])
	require.Nil(t, d["lifecycle_error"])
	require.Equal(t, "2025-03-01T10:07:30Z", d["updated_at"])
	require.Equal(t, "2025-03-01T10:05:00Z", d["current_state_last_updated_at"])
}

// TestUserCounts: a user's num_* counts are what the device lists hold.
func TestUserCounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Seed: "counts-per-user", UsersPerOrg: 2, DevicesPerKind: 3})
	tok := e.token()
	org := e.sim.State().Orgs[0]
	resp, body := e.do(http.MethodGet, api+"/org/"+org.ID+"/users", tok, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	users := decode[[]map[string]any](t, body)
	require.Len(t, users, 2)
	for _, u := range users {
		for kind, field := range map[reauth.DeviceKind]string{
			reauth.Inverter: "num_inverters", reauth.ElectricVehicle: "num_electric_vehicles", reauth.Wallbox: "num_wallboxes",
		} {
			devs := e.listDevices(tok, org.ID, u["id"].(string), kind)
			require.Len(t, devs, 3)
			require.Equal(t, float64(len(devs)), u[field], field)
			for _, d := range devs {
				require.Equal(t, u["email"], d["owner"].(map[string]any)["email"])
				require.Equal(t, u["external_user_id"], d["owner"].(map[string]any)["external_id"])
			}
		}
		require.Equal(t, 0.0, u["num_heat_pumps"])
	}
}
