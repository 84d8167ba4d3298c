package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/notify"
)

func TestBrand(t *testing.T) {
	t.Parallel()
	t.Run("settings", func(t *testing.T) {
		t.Parallel()
		c, err := Load(envOf(map[string]string{
			"BRAND_NAME": "Stadtwerke Musterstadt", "BRAND_LOGO_URL": "https://cdn.example.com/logo.png", "BRAND_COLOR": "#0B6E4F",
			"SUPPORT_URL": "https://example.com/help", "SUPPORT_EMAIL": "hilfe@example.com",
		}))
		require.NoError(t, err)
		require.Equal(t, notify.Brand{Name: "Stadtwerke Musterstadt", LogoURL: "https://cdn.example.com/logo.png", Color: "#0B6E4F",
			SupportURL: "https://example.com/help", SupportEmail: "hilfe@example.com"}, c.Brand)
	})
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		c, err := Load(envOf(nil))
		require.NoError(t, err)
		require.Equal(t, notify.Brand{Color: notify.BrandColorDefault}, c.Brand)
	})
	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		for name, v := range map[string]string{
			"BRAND_LOGO_URL": "http://cdn.example.com/logo.png", "SUPPORT_URL": "javascript:alert(1)",
			"BRAND_COLOR": "red", "SUPPORT_EMAIL": "Help <help@example.com>",
		} {
			_, err := Load(envOf(map[string]string{name: v}))
			require.ErrorContains(t, err, name, v)
		}
	})
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "brand.json")
		require.NoError(t, os.WriteFile(file, []byte(`{"name": "From File", "color": "#ffd500", "support_email": "a@example.com"}`), 0o600))
		c, err := Load(envOf(map[string]string{"BRAND_FILE": file, "BRAND_NAME": "From Env"}))
		require.NoError(t, err)
		require.Equal(t, notify.Brand{Name: "From Env", Color: "#ffd500", SupportEmail: "a@example.com"}, c.Brand, "a variable wins over the file")

		require.NoError(t, os.WriteFile(file, []byte(`{"colour": "#ffd500"}`), 0o600))
		_, err = Load(envOf(map[string]string{"BRAND_FILE": file}))
		require.ErrorContains(t, err, "BRAND_FILE")
		require.NoError(t, os.WriteFile(file, []byte(`{"color": "yellow"}`), 0o600))
		_, err = Load(envOf(map[string]string{"BRAND_FILE": file}))
		require.ErrorContains(t, err, "BRAND_COLOR", "the file's values are validated too")
		_, err = Load(envOf(map[string]string{"BRAND_FILE": filepath.Join(t.TempDir(), "nope.json")}))
		require.ErrorContains(t, err, "BRAND_FILE")
	})
}
