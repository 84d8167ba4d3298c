package sim

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

// TestDeviceMix: users have 0 to 3 devices in about the shares asked, of
// kinds drawn from the seed, the same for the same seed, and their num_*
// counts and device lists agree.
func TestDeviceMix(t *testing.T) {
	t.Parallel()
	mix := DeviceMix{0.3, 0.4, 0.2, 0.1}
	cfg := Config{Seed: "mix", Orgs: 2, UsersPerOrg: 2000, DeviceMix: mix}

	t.Run("shares, kinds and determinism", func(t *testing.T) {
		t.Parallel()
		st := New(cfg).State()
		require.Equal(t, st, New(cfg).State())
		users, byCount, byKind, twoOfAKind := 0, make([]int, len(mix)), map[reauth.DeviceKind]int{}, 0
		seen := map[string]bool{}
		for _, o := range st.Orgs {
			for _, u := range o.Users {
				users++
				require.Less(t, len(u.Devices), len(mix))
				byCount[len(u.Devices)]++
				kinds := map[reauth.DeviceKind]int{}
				for i, d := range u.Devices {
					require.False(t, seen[d.ID], "duplicate id %s", d.ID)
					seen[d.ID] = true
					if i > 0 {
						require.LessOrEqual(t, kindIndex(u.Devices[i-1].Kind), kindIndex(d.Kind), "in reauth.DeviceKinds order")
					}
					byKind[d.Kind]++
					kinds[d.Kind]++
				}
				for _, n := range kinds {
					if n > 1 {
						twoOfAKind++
					}
				}
			}
		}
		require.Equal(t, 4000, users)
		for n, share := range mix {
			require.InDelta(t, share, float64(byCount[n])/float64(users), 0.03, "share of users with %d devices", n)
		}
		devices := len(seen)
		for _, k := range reauth.DeviceKinds {
			require.InDelta(t, 1.0/3, float64(byKind[k])/float64(devices), 0.03, "share of %s", k)
		}
		require.Positive(t, twoOfAKind, "kinds are drawn independently: some users have two of a kind")

		other := New(Config{Seed: "mix2", Orgs: 2, UsersPerOrg: 2000, DeviceMix: mix}).State()
		require.NotEqual(t, st, other)
	})
	t.Run("num counts match the lists", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Config{Seed: "mix", UsersPerOrg: 30, DeviceMix: mix})
		tok := e.token()
		org := e.sim.State().Orgs[0]
		resp, body := e.do(http.MethodGet, api+"/org/"+org.ID+"/users", tok, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		listed := decode[[]map[string]any](t, body)
		require.Len(t, listed, 30)
		fields := map[reauth.DeviceKind]string{reauth.Inverter: "num_inverters", reauth.ElectricVehicle: "num_electric_vehicles", reauth.Wallbox: "num_wallboxes"}
		for i, u := range listed {
			want := map[reauth.DeviceKind]int{}
			for _, d := range org.Users[i].Devices {
				want[d.Kind]++
			}
			for kind, field := range fields {
				require.Equal(t, float64(want[kind]), u[field], field)
				require.Len(t, e.listDevices(tok, org.ID, u["id"].(string), kind), want[kind], field)
			}
		}
	})
	t.Run("without a mix, DevicesPerKind", func(t *testing.T) {
		t.Parallel()
		st := New(Config{Seed: "mix", UsersPerOrg: 2, DevicesPerKind: 2}).State()
		for _, u := range st.Orgs[0].Users {
			require.Len(t, u.Devices, 6)
		}
	})
	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		var m DeviceMix
		require.NoError(t, m.Set("0.3, 0.4,0.2,0.1"))
		require.Equal(t, mix, m)
		require.Equal(t, "0.3,0.4,0.2,0.1", m.String())
		require.NoError(t, m.Set(""))
		require.Nil(t, m)
		for _, bad := range []string{"0.5,0.4", "1.2,-0.2", "a,b", "0.5,,0.5", "NaN,1"} {
			require.Error(t, m.Set(bad), bad)
		}
		require.Panics(t, func() { New(Config{DeviceMix: DeviceMix{0.5}}) })
	})
}

func kindIndex(k reauth.DeviceKind) int {
	for i, kk := range reauth.DeviceKinds {
		if kk == k {
			return i
		}
	}
	return -1
}
