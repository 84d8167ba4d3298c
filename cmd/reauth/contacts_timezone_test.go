package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
)

// TestContactsTimezone: `contacts set -timezone` stores the user's zone for
// quiet hours; an unknown zone exits 2.
func TestContactsTimezone(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	const org, user = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	out, errOut, err := opsRun(t, url, "contacts", "set", org, user, "--timezone", "Europe/Stockholm")
	require.NoError(t, err, errOut)
	require.Regexp(t, `timezone\s+Europe/Stockholm`, out)
	_, errOut, err = opsRun(t, url, "contacts", "set", org, user, "--timezone", "Mars/Olympus")
	require.ErrorIs(t, err, errUsage)
	require.Contains(t, errOut, "unknown time zone")
}
