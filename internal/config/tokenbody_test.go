package config

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/podero"
)

func TestPoderoTokenBody(t *testing.T) {
	t.Parallel()

	t.Run("DefaultAuto", func(t *testing.T) {
		t.Parallel()
		c, err := Load(envOf(map[string]string{}))
		require.NoError(t, err)
		require.Equal(t, "auto", c.PoderoTokenBody)
		require.Equal(t, podero.TokenBodyDefault, c.PoderoTokenBody)
	})

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{"form", "json", "auto"} {
			c, err := Load(envOf(map[string]string{"PODERO_TOKEN_BODY": v}))
			require.NoError(t, err, v)
			require.Equal(t, v, c.PoderoTokenBody)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{"JSON", "xml", "form-urlencoded"} {
			_, err := Load(envOf(map[string]string{"PODERO_TOKEN_BODY": v}))
			require.ErrorContains(t, err, `PODERO_TOKEN_BODY must be form (RFC 6749, what OAuth2 libraries send), json (as Podero's guide posts it) or auto (form, then json when the form is turned away), not "`+v+`"`)
		}
	})

	t.Run("Printed", func(t *testing.T) {
		t.Parallel()
		c, err := Load(envOf(map[string]string{"PODERO_TOKEN_BODY": "json"}))
		require.NoError(t, err)
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", slog.Any("config", c))
		require.Contains(t, buf.String(), `"podero_token_body":"json"`)
	})
}
