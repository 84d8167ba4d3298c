package notify

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

func TestRenderPush(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	titles := map[string]map[reauth.DeviceKind][2]string{
		"en": {
			reauth.Inverter:        {"Reconnect your solar inverter", "Reminder: reconnect your solar inverter"},
			reauth.ElectricVehicle: {"Reconnect your electric vehicle", "Reminder: reconnect your electric vehicle"},
			reauth.Wallbox:         {"Reconnect your wallbox", "Reminder: reconnect your wallbox"},
		},
		"de": {
			reauth.Inverter:        {"Wechselrichter erneut verbinden", "Erinnerung: Wechselrichter erneut verbinden"},
			reauth.ElectricVehicle: {"Elektroauto erneut verbinden", "Erinnerung: Elektroauto erneut verbinden"},
			reauth.Wallbox:         {"Wallbox erneut verbinden", "Erinnerung: Wallbox erneut verbinden"},
		},
	}
	bodies := map[string]map[reauth.DeviceKind]string{
		"en": {reauth.Inverter: "your solar inverter", reauth.ElectricVehicle: "your electric vehicle", reauth.Wallbox: "your wallbox"},
		"de": {reauth.Inverter: "Ihrem Wechselrichter", reauth.ElectricVehicle: "Ihrem Elektroauto", reauth.Wallbox: "Ihrer Wallbox"},
	}
	firstWords := map[string][2]string{"en": {"has lapsed", "not been renewed"}, "de": {"ist abgelaufen", "noch nicht erneuert"}}
	expires := map[string]string{"en": "This link works until 4 March 2030 at 05:06 UTC.", "de": "Der Link ist gültig bis 4. März 2030 um 06:06 Uhr (CET)."}
	for locale := range titles {
		for _, kind := range reauth.DeviceKinds {
			for _, step := range []int{0, 1, 2} {
				t.Run(locale+"/"+string(kind)+"/step"+strconv.Itoa(step), func(t *testing.T) {
					t.Parallel()
					reminder := min(step, 1)
					title, body, err := r.RenderPush(Message{Locale: locale, DeviceKind: kind, Link: testLink, Step: step, ExpiresAt: testExpiry})
					require.NoError(t, err)
					require.Equal(t, titles[locale][kind][reminder], title)
					require.Contains(t, strings.ToLower(body), strings.ToLower(bodies[locale][kind]))
					require.Contains(t, body, firstWords[locale][reminder])
					require.True(t, strings.HasSuffix(body, expires[locale]), body)
					require.NotContains(t, body, "\n")
					require.NotContains(t, body, "  ")
					require.NotContains(t, body, testLink, "the link travels as data, not text")

					_, noExpiry, err := r.RenderPush(Message{Locale: locale, DeviceKind: kind, Link: testLink, Step: step})
					require.NoError(t, err)
					require.NotContains(t, noExpiry, expires[locale][:10])
					require.True(t, strings.HasSuffix(noExpiry, "."), noExpiry)
				})
			}
		}
	}

	for name, m := range map[string]Message{
		"unknown kind":  {DeviceKind: "heat_pump", Link: testLink},
		"no link":       {DeviceKind: reauth.Inverter},
		"negative step": {DeviceKind: reauth.Inverter, Link: testLink, Step: -1},
	} {
		_, _, err := r.RenderPush(m)
		require.Error(t, err, name)
	}
}

// TestLocaleFallback: every language of Podero's connect UI (reauth.Locales)
// gets its own messages or, explicitly, English ones. Adding templates for
// one of them means moving it from english to own here.
func TestLocaleFallback(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	own := []string{"en", "de"}
	english := []string{"sv", "hu", "it", "et", "pl", "ro"}
	require.ElementsMatch(t, reauth.Locales, append(slices.Clone(own), english...), "reauth.Locales changed")
	require.ElementsMatch(t, own, r.Locales())

	for _, l := range own {
		require.Equal(t, l, r.ResolveLocale(l))
	}
	for _, l := range english {
		t.Run(l, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, "en", r.ResolveLocale(l))
			require.Equal(t, "en", r.ResolveLocale(l+"-XX"))
			for _, kind := range reauth.DeviceKinds {
				for _, step := range []int{0, 1} {
					m := Message{Locale: l, DeviceKind: kind, Link: testLink, Step: step, ExpiresAt: testExpiry}
					en := m
					en.Locale = "en"
					got, err := r.Render(m)
					require.NoError(t, err)
					want, err := r.Render(en)
					require.NoError(t, err)
					require.Equal(t, want, got)
					title, body, err := r.RenderPush(m)
					require.NoError(t, err)
					wantTitle, wantBody, err := r.RenderPush(en)
					require.NoError(t, err)
					require.Equal(t, [2]string{wantTitle, wantBody}, [2]string{title, body})
				}
			}
		})
	}
	require.Equal(t, "de", r.ResolveLocale("de-AT"))
	require.Equal(t, "en", r.ResolveLocale(""))
}

func TestRendererOverridePush(t *testing.T) {
	t.Parallel()

	t.Run("push file wins over embedded", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "de", "push_title.txt.tmpl"), "ACME:\n{{.Device.noun}}\n")
		r, err := NewRenderer(dir)
		require.NoError(t, err)
		title, body, err := r.RenderPush(Message{Locale: "de", DeviceKind: reauth.Wallbox, Link: testLink})
		require.NoError(t, err)
		require.Equal(t, "ACME: Wallbox", title, "one line")
		require.Contains(t, body, "Ihrer Wallbox", "the body stays embedded")
	})

	t.Run("new locale needs the push files", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for _, f := range []string{"subject.txt.tmpl", "body.txt.tmpl", "body.html.tmpl", "locale.json"} {
			b, err := embedded.ReadFile("templates/en/" + f)
			require.NoError(t, err)
			writeFile(t, filepath.Join(dir, "sv", f), string(b))
		}
		_, err := NewRenderer(dir)
		require.ErrorContains(t, err, "sv/push_title.txt.tmpl is missing")
	})

	for name, files := range map[string]map[string]string{
		"broken push title":  {"en/push_title.txt.tmpl": "{{.Link"},
		"unknown push field": {"de/push_body.txt.tmpl": "{{.Device.genitive}}"},
		"empty push body":    {"en/push_body.txt.tmpl": "{{if .Reminder}}x{{end}}"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for f, content := range files {
				writeFile(t, filepath.Join(dir, f), content)
			}
			_, err := NewRenderer(dir)
			require.Error(t, err)
		})
	}
}
