package httpapi

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()

	t.Run("ZeroGetsDefaults", func(t *testing.T) {
		t.Parallel()
		cfg := Config{}.withDefaults()
		require.NoError(t, cfg.validate())
		require.Equal(t, reauth.MaxAttemptsDefault, cfg.MaxAttempts)
		require.NotNil(t, cfg.Logger)
		require.NotNil(t, cfg.Now)
		require.Zero(t, cfg.RenewWait, "zero: no wait")
		require.Zero(t, cfg.RepeatCooldown, "zero: off")
	})

	t.Run("Rejected", func(t *testing.T) {
		t.Parallel()
		for want, c := range map[string]Config{
			"RenewWait must be between 0 and 1m0s": {RenewWait: 2 * time.Minute},
			"RepeatCooldown and SyncInterval":      {RepeatCooldown: -time.Second},
			"MaxAttempts must be at least 1":       {MaxAttempts: -1},
			"SyncShare must be between 0 and 1":    {SyncShare: 2},
			`token "t" has unknown scope "admin"`:  {Tokens: []APIToken{{Name: "t", Scopes: []string{"admin"}}}},
		} {
			require.ErrorContains(t, c.withDefaults().validate(), want)
			require.PanicsWithError(t, c.withDefaults().validate().Error(), func() { New(c) })
		}
	})
}
