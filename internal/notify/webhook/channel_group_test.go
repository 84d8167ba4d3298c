package webhook

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/notify"
)

// TestPayloadGroup: a grouped message's payload lists every device with
// its own link; its top-level device fields are the first device's.
func TestPayloadGroup(t *testing.T) {
	t.Parallel()
	exp := time.Date(2030, time.March, 4, 5, 6, 0, 0, time.UTC)
	m := notify.Message{Key: "reauth-1-0-2", OrgID: "org-1", UserID: "user-7", DeviceKind: reauth.Inverter, DeviceID: "inv-1",
		Link: "https://r.example/r/a", ExpiresAt: exp, Devices: []notify.DeviceLink{
			{DeviceKind: reauth.Inverter, DeviceID: "inv-1", Link: "https://r.example/r/a", ExpiresAt: exp},
			{DeviceKind: reauth.ElectricVehicle, DeviceID: "ev-3", Link: "https://r.example/r/b"},
		}}
	p := payload(m, "en", "t", "b")
	require.Equal(t, "inv-1", p.DeviceID)
	require.Equal(t, []DevicePayload{
		{DeviceKind: "inverter", DeviceID: "inv-1", Link: "https://r.example/r/a", ExpiresAt: "2030-03-04T05:06:00Z"},
		{DeviceKind: "electric_vehicle", DeviceID: "ev-3", Link: "https://r.example/r/b"},
	}, p.Devices)
}
