package worker

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/podero"
)

func TestSyncText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "SMA", syncText("  SMA \t"))
	require.Equal(t, "", syncText("Sunny\nBoy"), "control characters: not a name")
	require.Equal(t, "", syncText("Ea\xffsee"), "invalid UTF-8")
	long := syncText(strings.Repeat("ä", syncTextMax))
	require.LessOrEqual(t, len(long), syncTextMax)
	require.Equal(t, strings.Repeat("ä", syncTextMax/2), long, "cut at a character boundary")
}

func TestOwnerEmail(t *testing.T) {
	t.Parallel()
	const user = "0b8f7a3e-9c1d-4e55-8a2b-3c4d5e6f7a81"
	require.Equal(t, "a@example.com", ownerEmail(podero.Owner{ID: user, Email: "a@example.com"}, user))
	require.Equal(t, "a@example.com", ownerEmail(podero.Owner{ID: strings.ToUpper(user), Email: "a@example.com"}, user))
	require.Equal(t, "a@example.com", ownerEmail(podero.Owner{Email: "a@example.com"}, user), "no owner id: the listed user's")
	require.Empty(t, ownerEmail(podero.Owner{ID: "11111111-2222-4333-8444-555555555555", Email: "a@example.com"}, user), "another user's")
	require.Empty(t, ownerEmail(podero.Owner{ID: user, Email: "Anna <a@example.com>"}, user), "not a plain address")
	require.Empty(t, ownerEmail(podero.Owner{ID: user}, user))
}
