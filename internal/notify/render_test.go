package notify

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

const testLink = "https://reauth.example.com/r/tok_ABC-123"

var testExpiry = time.Date(2030, time.March, 4, 5, 6, 0, 0, time.UTC)

func newRenderer(t *testing.T) *Renderer {
	t.Helper()
	r, err := NewRenderer("")
	require.NoError(t, err)
	return r
}

func TestRender(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)

	nouns := map[string]map[reauth.DeviceKind]string{
		"en": {reauth.Inverter: "solar inverter", reauth.ElectricVehicle: "electric vehicle", reauth.Wallbox: "wallbox"},
		"de": {reauth.Inverter: "Wechselrichter", reauth.ElectricVehicle: "Elektroauto", reauth.Wallbox: "Wallbox"},
	}
	type wording struct{ first, reminder, lapsed, expires string }
	words := map[string]wording{
		"en": {first: "Please reconnect", reminder: "Reminder:", lapsed: "has lapsed", expires: "4 March 2030 at 05:06 UTC"},
		"de": {first: "Bitte verbinden Sie", reminder: "Erinnerung:", lapsed: "abgelaufen", expires: "4. März 2030 um 06:06 Uhr (CET)"},
	}
	for _, locale := range []string{"en", "de"} {
		for _, kind := range reauth.DeviceKinds {
			for _, step := range []int{0, 1, 2} {
				t.Run(locale+"/"+string(kind)+"/step"+strconv.Itoa(step), func(t *testing.T) {
					t.Parallel()
					out, err := r.Render(Message{
						Key: "reauth-1-0", To: "u@example.com", Locale: locale, DeviceKind: kind,
						Link: testLink, Step: step, ExpiresAt: testExpiry,
					})
					require.NoError(t, err)
					noun, w := nouns[locale][kind], words[locale]

					require.Contains(t, out.Subject, noun)
					require.NotContains(t, out.Subject, "\n")
					require.Contains(t, out.Text, noun)
					require.Contains(t, out.HTML, noun)
					require.Contains(t, out.Text, testLink)
					require.Contains(t, out.HTML, `href="`+testLink+`"`)
					require.Contains(t, out.HTML, ">"+testLink+"</a>", "the plain link is visible too")
					require.Contains(t, out.Text, w.lapsed)
					require.Contains(t, out.Text, w.expires)
					require.Contains(t, out.HTML, w.expires)
					require.NotContains(t, out.Text, "<no value>")
					require.NotContains(t, out.HTML, "<no value>")
					if step == 0 {
						require.True(t, strings.HasPrefix(out.Subject, w.first), out.Subject)
						require.NotContains(t, out.Subject, w.reminder)
					} else {
						require.True(t, strings.HasPrefix(out.Subject, w.reminder), out.Subject)
					}
				})
			}
		}
	}

	t.Run("german grammar", func(t *testing.T) {
		t.Parallel()
		for kind, want := range map[reauth.DeviceKind]string{
			reauth.Inverter:        "Bitte verbinden Sie Ihren Wechselrichter erneut",
			reauth.ElectricVehicle: "Bitte verbinden Sie Ihr Elektroauto erneut",
			reauth.Wallbox:         "Bitte verbinden Sie Ihre Wallbox erneut",
		} {
			out, err := r.Render(Message{Locale: "de", DeviceKind: kind, Link: testLink})
			require.NoError(t, err)
			require.Equal(t, want, out.Subject)
		}
	})

	t.Run("no expiry", func(t *testing.T) {
		t.Parallel()
		out, err := r.Render(Message{Locale: "en", DeviceKind: reauth.Wallbox, Link: testLink})
		require.NoError(t, err)
		require.NotContains(t, out.Text, "works until")
		require.NotContains(t, out.HTML, "works until")
	})
}

func TestRenderEscaping(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	link := `https://reauth.example.com/r/a"<>&b`
	for _, locale := range []string{"en", "de"} {
		t.Run(locale, func(t *testing.T) {
			t.Parallel()
			out, err := r.Render(Message{Locale: locale, DeviceKind: reauth.Inverter, Link: link})
			require.NoError(t, err)
			require.Contains(t, out.Text, link, "the text part carries the link as is")
			require.NotContains(t, out.HTML, `a"<>&b`)
			require.NotContains(t, out.HTML, `"<>`)
			require.Contains(t, out.HTML, `href="https://reauth.example.com/r/a%22%3c%3e&amp;b"`)
			require.Contains(t, out.HTML, `>https://reauth.example.com/r/a&#34;&lt;&gt;&amp;b</a>`)
		})
	}
	t.Run("javascript link is neutralised", func(t *testing.T) {
		t.Parallel()
		out, err := r.Render(Message{Locale: "en", DeviceKind: reauth.Inverter, Link: "javascript:alert(1)"})
		require.NoError(t, err)
		require.NotContains(t, out.HTML, `href="javascript:`)
	})
}

func TestRenderLocaleFallback(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	require.Equal(t, []string{"de", "en"}, r.Locales())
	for _, tc := range []struct{ locale, wantPrefix string }{
		{"", "Please reconnect"},
		{"fr", "Please reconnect"},
		{"sv", "Please reconnect"},
		{"xx-YY", "Please reconnect"},
		{"EN", "Please reconnect"},
		{"de", "Bitte verbinden"},
		{"de-AT", "Bitte verbinden"},
		{"de_CH", "Bitte verbinden"},
		{"DE", "Bitte verbinden"},
	} {
		t.Run("locale="+tc.locale, func(t *testing.T) {
			t.Parallel()
			out, err := r.Render(Message{Locale: tc.locale, DeviceKind: reauth.ElectricVehicle, Link: testLink})
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(out.Subject, tc.wantPrefix), out.Subject)
		})
	}
}

func TestRenderInvalid(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	for name, m := range map[string]Message{
		"unknown kind":  {DeviceKind: "heat_pump", Link: testLink},
		"empty kind":    {Link: testLink},
		"no link":       {DeviceKind: reauth.Inverter},
		"negative step": {DeviceKind: reauth.Inverter, Link: testLink, Step: -1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := r.Render(m)
			require.Error(t, err)
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func TestRendererOverride(t *testing.T) {
	t.Parallel()

	t.Run("file wins over embedded", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "en", "subject.txt.tmpl"), "ACME: reconnect {{.Device.your}}\n")
		r, err := NewRenderer(dir)
		require.NoError(t, err)
		out, err := r.Render(Message{Locale: "en", DeviceKind: reauth.Wallbox, Link: testLink})
		require.NoError(t, err)
		require.Equal(t, "ACME: reconnect your wallbox", out.Subject)
		require.Contains(t, out.Text, "has lapsed", "other files stay embedded")
		out, err = r.Render(Message{Locale: "de", DeviceKind: reauth.Wallbox, Link: testLink})
		require.NoError(t, err)
		require.Equal(t, "Bitte verbinden Sie Ihre Wallbox erneut", out.Subject)
	})

	t.Run("new locale", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for _, f := range []string{"body.txt.tmpl", "body.html.tmpl", "push_title.txt.tmpl", "push_body.txt.tmpl"} {
			b, err := embedded.ReadFile("templates/en/" + f)
			require.NoError(t, err)
			writeFile(t, filepath.Join(dir, "sv", f), string(b))
		}
		writeFile(t, filepath.Join(dir, "sv", "subject.txt.tmpl"), "Anslut din {{.Device.noun}} igen\n")
		writeFile(t, filepath.Join(dir, "sv", "locale.json"), `{"kinds": {
			"inverter": {"noun": "växelriktare", "your": "din växelriktare"},
			"electric_vehicle": {"noun": "elbil", "your": "din elbil"},
			"wallbox": {"noun": "laddbox", "your": "din laddbox"}}}`)
		r, err := NewRenderer(dir)
		require.NoError(t, err)
		require.Equal(t, []string{"de", "en", "sv"}, r.Locales())
		out, err := r.Render(Message{Locale: "sv", DeviceKind: reauth.ElectricVehicle, Link: testLink, ExpiresAt: testExpiry})
		require.NoError(t, err)
		require.Equal(t, "Anslut din elbil igen", out.Subject)
		require.Contains(t, out.Text, "2030-03-04 05:06 UTC", "default date format")
	})

	for name, files := range map[string]map[string]string{
		"broken template":    {"en/body.txt.tmpl": "{{.Link"},
		"unknown field":      {"en/body.txt.tmpl": "{{.Nope}}"},
		"missing form":       {"de/subject.txt.tmpl": "{{.Device.genitive}}"},
		"missing noun":       {"en/locale.json": `{"kinds": {"inverter": {"noun": "x"}, "wallbox": {"noun": "y"}}}`},
		"unknown kind":       {"en/locale.json": `{"kinds": {"inverter": {"noun": "x"}, "wallbox": {"noun": "y"}, "electric_vehicle": {"noun": "z"}, "boat": {"noun": "b"}}}`},
		"bad time zone":      {"en/locale.json": `{"time_zone": "Mars/Olympus", "kinds": {"inverter": {"noun": "x"}, "wallbox": {"noun": "y"}, "electric_vehicle": {"noun": "z"}}}`},
		"incomplete locale":  {"fr/subject.txt.tmpl": "Bonjour"},
		"empty subject":      {"en/subject.txt.tmpl": "  \n"},
		"html template fail": {"en/body.html.tmpl": "<a href=\"{{.Link}}\">{{.Device.missing}}</a>"},
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

	t.Run("missing directory", func(t *testing.T) {
		t.Parallel()
		_, err := NewRenderer(filepath.Join(t.TempDir(), "nope"))
		require.Error(t, err)
	})
}
