package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/config"
	"github.com/reauth/reauth/internal/testdb"
)

// TestPoolJITOff: the service's connections run with JIT off, unless
// DATABASE_URL asks for it.
func TestPoolJITOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	for _, c := range []struct{ url, want string }{{url, "off"}, {url + "&jit=on", "on"}} {
		pool, err := openPool(ctx, config.Config{DatabaseURL: config.Secret(c.url)})
		require.NoError(t, err)
		var jit string
		require.NoError(t, pool.QueryRow(ctx, "SHOW jit").Scan(&jit))
		pool.Close()
		require.Equal(t, c.want, jit, c.url)
	}
}
