package notify

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

// TestRenderDeviceName pins how messages name the device: by manufacturer
// and model, by manufacturer alone, or by its kind, in English and German.
func TestRenderDeviceName(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)

	type want struct {
		subject, reminder string // first message and reminder subjects
		text              string // a phrase of the text and HTML bodies
		title             string // the first push title
	}
	for _, tc := range []struct {
		locale       string
		kind         reauth.DeviceKind
		maker, model string
		want         want
	}{
		// English, manufacturer and model.
		{"en", reauth.Inverter, "SMA", "Sunny Boy 5.0", want{
			"Please reconnect your SMA Sunny Boy 5.0 inverter",
			"Reminder: please reconnect your SMA Sunny Boy 5.0 inverter",
			"The connection between your SMA Sunny Boy 5.0 inverter and its manufacturer has lapsed. To keep your SMA Sunny Boy 5.0 inverter connected",
			"Reconnect your SMA Sunny Boy 5.0 inverter"}},
		{"en", reauth.ElectricVehicle, "Tesla", "Model 3", want{
			"Please reconnect your Tesla Model 3",
			"Reminder: please reconnect your Tesla Model 3",
			"The connection between your Tesla Model 3 and its manufacturer has lapsed. To keep your Tesla Model 3 connected",
			"Reconnect your Tesla Model 3"}},
		{"en", reauth.Wallbox, "Easee", "Home", want{
			"Please reconnect your Easee Home wallbox",
			"Reminder: please reconnect your Easee Home wallbox",
			"The connection between your Easee Home wallbox and its manufacturer has lapsed.",
			"Reconnect your Easee Home wallbox"}},
		// English, manufacturer only.
		{"en", reauth.Inverter, "SMA", "", want{
			"Please reconnect your SMA inverter",
			"Reminder: please reconnect your SMA inverter",
			"The connection between your SMA inverter and its manufacturer has lapsed.",
			"Reconnect your SMA inverter"}},
		{"en", reauth.ElectricVehicle, "Renault", "", want{
			"Please reconnect your Renault",
			"Reminder: please reconnect your Renault",
			"The connection between your Renault and its manufacturer has lapsed.",
			"Reconnect your Renault"}},
		{"en", reauth.Wallbox, "Zaptec", "", want{
			"Please reconnect your Zaptec wallbox",
			"Reminder: please reconnect your Zaptec wallbox",
			"The connection between your Zaptec wallbox and its manufacturer has lapsed.",
			"Reconnect your Zaptec wallbox"}},
		// English, neither (a model alone does not name a device).
		{"en", reauth.Inverter, "", "Sunny Boy 5.0", want{
			"Please reconnect your solar inverter",
			"Reminder: please reconnect your solar inverter",
			"The connection between your solar inverter and its manufacturer has lapsed.",
			"Reconnect your solar inverter"}},
		{"en", reauth.ElectricVehicle, "", "", want{
			"Please reconnect your electric vehicle",
			"Reminder: please reconnect your electric vehicle",
			"The connection between your electric vehicle and its manufacturer has lapsed.",
			"Reconnect your electric vehicle"}},
		{"en", reauth.Wallbox, "", "", want{
			"Please reconnect your wallbox",
			"Reminder: please reconnect your wallbox",
			"The connection between your wallbox and its manufacturer has lapsed.",
			"Reconnect your wallbox"}},

		// German, manufacturer and model: der Wechselrichter, der (Tesla)
		// Wagen, die Wallbox. A subject too long with the model names the
		// manufacturer alone, or the kind.
		{"de", reauth.Inverter, "SMA", "Sunny Boy 5.0", want{
			"Bitte verbinden Sie Ihren Wechselrichter SMA erneut",
			"Erinnerung: Bitte verbinden Sie Ihren Wechselrichter erneut",
			"die Verbindung zwischen Ihrem Wechselrichter SMA Sunny Boy 5.0 und dem Hersteller ist abgelaufen. Damit Ihr Gerät (Wechselrichter SMA Sunny Boy 5.0) verbunden bleibt",
			"Wechselrichter SMA Sunny Boy 5.0 erneut verbinden"}},
		{"de", reauth.ElectricVehicle, "Tesla", "Model 3", want{
			"Bitte verbinden Sie Ihren Tesla Model 3 erneut",
			"Erinnerung: Bitte verbinden Sie Ihren Tesla Model 3 erneut",
			"die Verbindung zwischen Ihrem Tesla Model 3 und dem Hersteller ist abgelaufen. Damit Ihr Gerät (Tesla Model 3) verbunden bleibt",
			"Tesla Model 3 erneut verbinden"}},
		{"de", reauth.Wallbox, "Easee", "Home", want{
			"Bitte verbinden Sie Ihre Wallbox Easee Home erneut",
			"Erinnerung: Bitte verbinden Sie Ihre Wallbox Easee erneut",
			"die Verbindung zwischen Ihrer Wallbox Easee Home und dem Hersteller ist abgelaufen.",
			"Wallbox Easee Home erneut verbinden"}},
		// German, manufacturer only.
		{"de", reauth.Inverter, "Fronius", "", want{
			"Bitte verbinden Sie Ihren Wechselrichter Fronius erneut",
			"Erinnerung: Bitte verbinden Sie Ihren Wechselrichter erneut",
			"die Verbindung zwischen Ihrem Wechselrichter Fronius und dem Hersteller ist abgelaufen.",
			"Wechselrichter Fronius erneut verbinden"}},
		{"de", reauth.ElectricVehicle, "BMW", "", want{
			"Bitte verbinden Sie Ihren BMW erneut",
			"Erinnerung: Bitte verbinden Sie Ihren BMW erneut",
			"die Verbindung zwischen Ihrem BMW und dem Hersteller ist abgelaufen.",
			"BMW erneut verbinden"}},
		{"de", reauth.Wallbox, "Easee", "", want{
			"Bitte verbinden Sie Ihre Wallbox Easee erneut",
			"Erinnerung: Bitte verbinden Sie Ihre Wallbox Easee erneut",
			"die Verbindung zwischen Ihrer Wallbox Easee und dem Hersteller ist abgelaufen.",
			"Wallbox Easee erneut verbinden"}},
		// German, neither.
		{"de", reauth.Inverter, "", "", want{
			"Bitte verbinden Sie Ihren Wechselrichter erneut",
			"Erinnerung: Bitte verbinden Sie Ihren Wechselrichter erneut",
			"die Verbindung zwischen Ihrem Wechselrichter und dem Hersteller ist abgelaufen.",
			"Wechselrichter erneut verbinden"}},
		{"de", reauth.ElectricVehicle, "", "Model 3", want{
			"Bitte verbinden Sie Ihr Elektroauto erneut",
			"Erinnerung: Bitte verbinden Sie Ihr Elektroauto erneut",
			"die Verbindung zwischen Ihrem Elektroauto und dem Hersteller ist abgelaufen.",
			"Elektroauto erneut verbinden"}},
		{"de", reauth.Wallbox, "", "", want{
			"Bitte verbinden Sie Ihre Wallbox erneut",
			"Erinnerung: Bitte verbinden Sie Ihre Wallbox erneut",
			"die Verbindung zwischen Ihrer Wallbox und dem Hersteller ist abgelaufen.",
			"Wallbox erneut verbinden"}},
	} {
		t.Run(tc.locale+"/"+string(tc.kind)+"/"+tc.maker+"/"+tc.model, func(t *testing.T) {
			t.Parallel()
			m := Message{Locale: tc.locale, DeviceKind: tc.kind, Manufacturer: tc.maker, Model: tc.model, Link: testLink, ExpiresAt: testExpiry}
			out, err := r.Render(m)
			require.NoError(t, err)
			require.Equal(t, tc.want.subject, out.Subject)
			require.Contains(t, out.Text, tc.want.text)
			require.Contains(t, out.HTML, tc.want.text)
			require.Contains(t, out.HTML, "<title>"+tc.want.subject+"</title>")
			title, _, err := r.RenderPush(m)
			require.NoError(t, err)
			require.Equal(t, tc.want.title, title)

			m.Step = 1
			out, err = r.Render(m)
			require.NoError(t, err)
			require.Equal(t, tc.want.reminder, out.Subject)
		})
	}
}

// TestRenderDeviceNameCleaned: names come from Podero and are not trusted.
func TestRenderDeviceNameCleaned(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	subject := func(locale string, kind reauth.DeviceKind, maker, model string) string {
		t.Helper()
		out, err := r.Render(Message{Locale: locale, DeviceKind: kind, Manufacturer: maker, Model: model, Link: testLink})
		require.NoError(t, err)
		require.NotContains(t, out.Subject, "  ")
		return out.Subject
	}
	for name, tc := range map[string]struct {
		locale       string
		kind         reauth.DeviceKind
		maker, model string
		want         string
	}{
		"model repeats the make": {"en", reauth.ElectricVehicle, "Tesla", "Tesla Model 3", "Please reconnect your Tesla Model 3"},
		"model is the make":      {"en", reauth.ElectricVehicle, "tesla", "Tesla", "Please reconnect your tesla"},
		"make is the kind (en)":  {"en", reauth.Wallbox, "Wallbox", "Pulsar Plus", "Please reconnect your Pulsar Plus wallbox"},
		"make is the kind (de)":  {"de", reauth.Wallbox, "Wallbox", "Pulsar Plus", "Bitte verbinden Sie Ihre Wallbox Pulsar Plus erneut"},
		"make is the kind alone": {"de", reauth.Wallbox, "wallbox", "", "Bitte verbinden Sie Ihre Wallbox erneut"},
		"placeholder make":       {"en", reauth.Inverter, "Unknown", "Sunny Boy", "Please reconnect your solar inverter"},
		"placeholder model":      {"en", reauth.Inverter, "SMA", "n/a", "Please reconnect your SMA inverter"},
		"white space only":       {"en", reauth.Inverter, " \t ", "X", "Please reconnect your solar inverter"},
		"line breaks":            {"en", reauth.ElectricVehicle, "Volks\r\nwagen", "ID.4\n\nBcc: x@example.com", "Please reconnect your Volks wagen ID.4 Bcc: x@example.com"},
		"control characters":     {"en", reauth.ElectricVehicle, "BM\x00W\u200b", "i4\x1b[31m", "Please reconnect your BMW i4[31m"},
		"invalid UTF-8":          {"en", reauth.Wallbox, "Ea\xffsee", "", "Please reconnect your Easee wallbox"},
		"long model":             {"en", reauth.ElectricVehicle, "Mercedes-Benz", "EQS 580 4MATIC SUV with a very long trim name indeed", "Please reconnect your Mercedes-Benz"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, subject(tc.locale, tc.kind, tc.maker, tc.model))
		})
	}

	t.Run("long parts are cut at a word", func(t *testing.T) {
		t.Parallel()
		out, err := r.Render(Message{Locale: "en", DeviceKind: reauth.ElectricVehicle, Link: testLink,
			Manufacturer: "Mercedes-Benz", Model: "EQS 580 4MATIC SUV with a very long trim name indeed"})
		require.NoError(t, err)
		require.Contains(t, out.Text, "your Mercedes-Benz EQS 580 4MATIC SUV with a very long and its manufacturer")
	})

	t.Run("markup is escaped in HTML", func(t *testing.T) {
		t.Parallel()
		out, err := r.Render(Message{Locale: "en", DeviceKind: reauth.Wallbox, Link: testLink,
			Manufacturer: `<b>Acme</b>`, Model: `"Pro" & <i>`})
		require.NoError(t, err)
		require.NotContains(t, out.HTML, "<b>Acme")
		require.NotContains(t, out.HTML, "<i>")
		require.Contains(t, out.HTML, "&lt;b&gt;Acme&lt;/b&gt; &#34;Pro&#34; &amp; &lt;i&gt; wallbox")
		require.Contains(t, out.Text, `your <b>Acme</b> "Pro" & <i> wallbox`, "the text part is plain text")
	})
}

// TestRenderSubjectShort: whatever the device is called, a subject (and a
// push title) that names it stays within MaxSubjectRunes, while the body
// names it in full.
func TestRenderSubjectShort(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	names := [][2]string{
		{"SMA", "Sunny Boy 5.0"}, {"Fronius", "Primo 8.2-1"}, {"Huawei", "SUN2000-6KTL-M1"}, {"SolarEdge", "SE5000H"},
		{"Tesla", "Model 3"}, {"Volkswagen", "ID.4"}, {"BMW", "i4 eDrive40"}, {"Hyundai", "IONIQ 5"},
		{"Easee", "Home"}, {"Zaptec", "Go"}, {"Wallbox", "Pulsar Plus"}, {"go-e", "Charger Gemini"},
		{"Mercedes-Benz", "EQS 580 4MATIC SUV Electric Art Premium Edition"},
		{strings.Repeat("Longmaker", 10), strings.Repeat("Longmodel ", 10)},
		{"SMA", ""}, {"", ""},
	}
	for _, locale := range r.Locales() {
		for _, kind := range reauth.DeviceKinds {
			for _, step := range []int{0, 1} {
				for _, n := range names {
					m := Message{Locale: locale, DeviceKind: kind, Step: step, Manufacturer: n[0], Model: n[1], Link: testLink}
					out, err := r.Render(m)
					require.NoError(t, err)
					require.LessOrEqual(t, utf8.RuneCountInString(out.Subject), MaxSubjectRunes, out.Subject)
					title, _, err := r.RenderPush(m)
					require.NoError(t, err)
					require.LessOrEqual(t, utf8.RuneCountInString(title), MaxSubjectRunes, title)
					if n[0] == "Huawei" {
						require.Contains(t, out.Text, "Huawei SUN2000-6KTL-M1", "the body names it in full")
					}
				}
			}
		}
	}
}

// TestRendererNamedKinds: named_kinds in locale.json is optional, and
// checked when there.
func TestRendererNamedKinds(t *testing.T) {
	t.Parallel()
	const kinds = `"kinds": {"inverter": {"noun": "x", "your": "your x"}, "wallbox": {"noun": "y", "your": "your y"},
		"electric_vehicle": {"noun": "z", "your": "your z"}}`

	t.Run("without, the kind only", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "en", "locale.json"), `{`+kinds+`}`)
		r, err := NewRenderer(dir)
		require.NoError(t, err)
		out, err := r.Render(Message{Locale: "en", DeviceKind: reauth.Wallbox, Manufacturer: "Easee", Model: "Home", Link: testLink})
		require.NoError(t, err)
		require.Equal(t, "Please reconnect your y", out.Subject)
	})

	t.Run("with some kinds", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "en", "locale.json"), `{`+kinds+`, "named_kinds": {"wallbox": {"your": "your {name} y"}}}`)
		r, err := NewRenderer(dir)
		require.NoError(t, err)
		out, err := r.Render(Message{Locale: "en", DeviceKind: reauth.Wallbox, Manufacturer: "Easee", Model: "Home", Link: testLink})
		require.NoError(t, err)
		require.Equal(t, "Please reconnect your Easee Home y", out.Subject)
		require.Contains(t, out.Text, "Reconnect your y here", "forms not named keep the kind's")
		out, err = r.Render(Message{Locale: "en", DeviceKind: reauth.Inverter, Manufacturer: "SMA", Link: testLink})
		require.NoError(t, err)
		require.Equal(t, "Please reconnect your x", out.Subject)
	})

	for name, named := range map[string]string{
		"unknown kind":      `{"boat": {"noun": "{name} boat"}}`,
		"unknown form":      `{"wallbox": {"genitive": "{name}s y"}}`,
		"no placeholder":    `{"wallbox": {"your": "your y"}}`,
		"not a map of maps": `{"wallbox": "{name}"}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "en", "locale.json"), `{`+kinds+`, "named_kinds": `+named+`}`)
			_, err := NewRenderer(dir)
			require.Error(t, err)
		})
	}
}
