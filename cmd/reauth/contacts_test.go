package main

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// TestContactsCommands: `contacts set` changes only the flags given, `show`
// prints the contact, and bad input exits 2 with what is wrong.
func TestContactsCommands(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	const org, user = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"

	_, _, err := opsRun(t, url, "contacts", "show", org, user)
	require.ErrorContains(t, err, "no contact for user")

	out, errOut, err := opsRun(t, url, "contacts", "set", org, user, "--email", "ann@example.com", "--locale", "de",
		"--fcm-token", "tok-1", "--fcm-token", "tok-2,tok-1", "--channels", "push,email")
	require.NoError(t, err, errOut)
	require.Regexp(t, `email\s+ann@example.com`, out)
	require.Regexp(t, `fcm tokens\s+2`, out)
	require.Regexp(t, `channels\s+push, email`, out)

	out, errOut, err = opsRun(t, url, "contacts", "set", org, user, "--opt-out", "push", "--email", "")
	require.NoError(t, err, errOut)
	require.Regexp(t, `email\s+-`, out)
	require.Regexp(t, `locale\s+de`, out, "unnamed flags keep their values")
	require.Regexp(t, `opted out\s+push`, out)

	out, _, err = opsRun(t, url, "contacts", "show", org, user)
	require.NoError(t, err)
	require.Regexp(t, `channels\s+push, email`, out)

	for _, args := range [][]string{
		{"contacts", "set", org, user, "--channels", "sms"},
		{"contacts", "set", org, user, "--locale", "xx"},
		{"contacts", "set", "nope", user},
		{"contacts", "set", org},
		{"contacts", "frob"},
	} {
		_, errOut, err := opsRun(t, url, args...)
		require.ErrorIs(t, err, errUsage, "%v", args)
		require.NotEmpty(t, errOut, "%v", args)
	}
}

// TestContactsUnsuppress: `contacts suppressed EMAIL` says why an address
// is suppressed; `contacts unsuppress EMAIL` lifts it; an address that is
// not suppressed fails, and a bad one exits 2.
func TestContactsUnsuppress(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, store.SuppressEmail(context.Background(), pool, "gone@example.com", "550 5.1.1 User unknown"))

	out, errOut, err := opsRun(t, url, "contacts", "suppressed", "Gone@Example.com")
	require.NoError(t, err, errOut)
	require.Regexp(t, `reason\s+550 5.1.1 User unknown`, out)

	out, errOut, err = opsRun(t, url, "contacts", "unsuppress", "gone@example.com")
	require.NoError(t, err, errOut)
	require.Regexp(t, `suppression\s+lifted`, out)
	suppressed, err := store.EmailSuppressed(context.Background(), pool, "gone@example.com")
	require.NoError(t, err)
	require.False(t, suppressed)

	_, _, err = opsRun(t, url, "contacts", "unsuppress", "gone@example.com")
	require.ErrorContains(t, err, "is not suppressed")
	_, errOut, err = opsRun(t, url, "contacts", "unsuppress", "not-an-address")
	require.ErrorIs(t, err, errUsage)
	require.NotEmpty(t, errOut)
}
