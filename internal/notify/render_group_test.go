package notify_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/notify"
)

// TestRenderGroup: a grouped message lists every device with its own link,
// in English and German, in the email's text and HTML and the push texts.
func TestRenderGroup(t *testing.T) {
	t.Parallel()
	r, err := notify.NewBrandedRenderer("", notify.Brand{Name: "Example Energy"})
	require.NoError(t, err)
	expires := time.Date(2030, time.March, 4, 5, 6, 0, 0, time.UTC)
	m := notify.Message{Key: "reauth-1-0-2", Devices: []notify.DeviceLink{
		{DeviceKind: reauth.Inverter, Manufacturer: "SMA", Model: "Sunny Boy 5.0", Link: "https://r.example/r/tok_inv", ExpiresAt: expires},
		{DeviceKind: reauth.ElectricVehicle, Link: "https://r.example/r/tok_ev"},
	}}
	for _, c := range []struct {
		locale, subject, reminder, inverter, ev, title, body string
	}{
		{"en", "Please reconnect your 2 devices", "Reminder: please reconnect your 2 devices", "your SMA Sunny Boy 5.0 inverter", "your electric vehicle",
			"Example Energy: Reconnect 2 devices", "your SMA Sunny Boy 5.0 inverter and your electric vehicle"},
		{"de", "Bitte verbinden Sie Ihre 2 Geräte erneut", "Erinnerung: Bitte verbinden Sie Ihre 2 Geräte erneut", "Wechselrichter SMA Sunny Boy 5.0", "Elektroauto",
			"Example Energy: 2 Geräte erneut verbinden", "Ihrem Wechselrichter SMA Sunny Boy 5.0 und Ihrem Elektroauto"},
	} {
		t.Run(c.locale, func(t *testing.T) {
			t.Parallel()
			m := m
			m.Locale = c.locale
			out, err := r.Render(m)
			require.NoError(t, err)
			require.Equal(t, c.subject, out.Subject)
			for _, part := range []string{out.Text, out.HTML} {
				require.Contains(t, part, "https://r.example/r/tok_inv")
				require.Contains(t, part, "https://r.example/r/tok_ev")
				require.Contains(t, part, c.inverter)
				require.Contains(t, part, c.ev)
				require.Contains(t, part, "Example Energy")
			}
			require.Less(t, strings.Index(out.Text, "tok_inv"), strings.Index(out.Text, "tok_ev"), "in order")
			require.Contains(t, out.Text, map[string]string{"en": "4 March 2030", "de": "4. März 2030"}[c.locale], "each link's expiry")
			require.NotContains(t, out.HTML, "<style", "inline styles only")

			title, body, err := r.RenderPush(m)
			require.NoError(t, err)
			require.Equal(t, c.title, title)
			require.Contains(t, body, c.body)

			m.Step = 1
			out, err = r.Render(m)
			require.NoError(t, err)
			require.Equal(t, c.reminder, out.Subject)
		})
	}

	// One device is a device's own message, as before.
	single := notify.Message{Key: "reauth-1-0", Locale: "en", DeviceKind: reauth.Wallbox, Link: "https://r.example/r/tok_wb",
		Devices: []notify.DeviceLink{{DeviceKind: reauth.Wallbox, Link: "https://r.example/r/tok_wb"}}}
	out, err := r.Render(single)
	require.NoError(t, err)
	require.Equal(t, "Please reconnect your wallbox", out.Subject)
}
