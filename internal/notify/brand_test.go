package notify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

var testBrand = Brand{
	Name:         "Stadtwerke Musterstadt",
	LogoURL:      "https://cdn.example.com/logo.png",
	Color:        "#0b6e4f",
	SupportURL:   "https://example.com/help",
	SupportEmail: "hilfe@example.com",
}

func TestBrandValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Brand{}.Validate())
	require.NoError(t, testBrand.Validate())
	for name, b := range map[string]Brand{
		"http logo":           {LogoURL: "http://cdn.example.com/logo.png"},
		"relative logo":       {LogoURL: "/logo.png"},
		"javascript support":  {SupportURL: "javascript:alert(1)"},
		"user info":           {SupportURL: "https://u:p@example.com/"},
		"short colour":        {Color: "#fff"},
		"named colour":        {Color: "green"},
		"css injection":       {Color: "#000000;background:url(x)"},
		"display name":        {SupportEmail: "Help <help@example.com>"},
		"not an address":      {SupportEmail: "help"},
		"address with spaces": {SupportEmail: " help@example.com"},
	} {
		require.Error(t, b.Validate(), name)
	}
	_, err := NewBrandedRenderer("", Brand{Color: "red"})
	require.ErrorContains(t, err, "BRAND_COLOR")
}

func TestBrandColors(t *testing.T) {
	t.Parallel()
	require.Equal(t, "#ffffff", Brand{}.OnColor(), "white on the default blue")
	require.Equal(t, BrandColorDefault, Brand{}.LinkColor())
	require.Equal(t, "#ffffff", Brand{Color: "#0b6e4f"}.OnColor())
	require.Equal(t, "#111111", Brand{Color: "#ffd500"}.OnColor(), "dark text on yellow")
	require.Equal(t, "#1f2933", Brand{Color: "#ffd500"}.LinkColor(), "no yellow links on white")
}

// TestRenderBrand checks that the brand is in every part of a message: the
// HTML's header, button and footer, the text's signature and support lines,
// and the push title; and that an unbranded message has none of it.
func TestRenderBrand(t *testing.T) {
	t.Parallel()
	r, err := NewBrandedRenderer("", testBrand)
	require.NoError(t, err)
	for _, locale := range []string{"en", "de"} {
		for _, step := range []int{0, 1} {
			m := Message{Locale: locale, DeviceKind: reauth.Inverter, Manufacturer: "SMA", Model: "Sunny Boy 5.0",
				Link: "https://reauth.example.com/r/tok", Step: step}
			out, err := r.Render(m)
			require.NoError(t, err)
			h := out.HTML
			require.Contains(t, h, `<img src="https://cdn.example.com/logo.png" alt="Stadtwerke Musterstadt"`)
			require.Contains(t, h, `bgcolor="#0b6e4f"`)
			require.Contains(t, h, `background-color:#0b6e4f`)
			require.Contains(t, h, `color:#ffffff;text-decoration:none`)
			require.Contains(t, h, `href="mailto:hilfe@example.com"`)
			require.Contains(t, h, `href="https://example.com/help"`)
			require.Contains(t, h, `max-width:600px`)
			require.NotContains(t, h, "<style")
			require.NotContains(t, h, "<link")

			text := out.Text
			require.Contains(t, text, "\n\nhttps://reauth.example.com/r/tok\n", "the link on a line of its own")
			require.Contains(t, text, "SMA Sunny Boy 5.0", "the device is named")
			require.Contains(t, text, "hilfe@example.com")
			require.Contains(t, text, "https://example.com/help")
			title, _, err := r.RenderPush(m)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(title, "Stadtwerke Musterstadt: "), title)
			if locale == "en" {
				require.Contains(t, text, "Your Stadtwerke Musterstadt team")
				require.Contains(t, h, "Stadtwerke Musterstadt manages your SMA Sunny Boy 5.0 inverter")
			} else {
				require.Contains(t, text, "Ihr Team von Stadtwerke Musterstadt")
				require.Contains(t, h, "Stadtwerke Musterstadt Ihren Wechselrichter SMA Sunny Boy 5.0 verwaltet")
			}
		}
	}

	t.Run("name without logo", func(t *testing.T) {
		t.Parallel()
		r, err := NewBrandedRenderer("", Brand{Name: "Acme Energy"})
		require.NoError(t, err)
		out, err := r.Render(Message{DeviceKind: reauth.Wallbox, Link: "https://x.example/r/t"})
		require.NoError(t, err)
		require.Contains(t, out.HTML, "Acme Energy</td>")
		require.NotContains(t, out.HTML, "<img")
		require.NotContains(t, out.Text, "Questions?")
		require.Contains(t, out.HTML, `bgcolor="`+BrandColorDefault+`"`)
	})

	t.Run("unbranded", func(t *testing.T) {
		t.Parallel()
		r, err := NewRenderer("")
		require.NoError(t, err)
		m := Message{DeviceKind: reauth.Wallbox, Link: "https://x.example/r/t"}
		out, err := r.Render(m)
		require.NoError(t, err)
		require.NotContains(t, out.HTML, "<img")
		require.NotContains(t, out.HTML, "mailto:")
		require.NotContains(t, out.Text, "--")
		title, _, err := r.RenderPush(m)
		require.NoError(t, err)
		require.Equal(t, "Reconnect your wallbox", title)
	})

	t.Run("an override sees the brand", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "en"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "en", filePushTitle), []byte("{{.Brand.Name}} says hi"), 0o600))
		r, err := NewBrandedRenderer(dir, testBrand)
		require.NoError(t, err)
		title, _, err := r.RenderPush(Message{DeviceKind: reauth.Wallbox, Link: "https://x.example/r/t"})
		require.NoError(t, err)
		require.Equal(t, "Stadtwerke Musterstadt says hi", title)
	})
}
