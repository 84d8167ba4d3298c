package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/testdb"
)

// TestFCMTokenAge: a token registered longer ago than FCMTokenMaxAge is
// not returned for sending, a younger one is; naming a token again
// refreshes it, a change without tokens keeps their times, and
// PruneFCMTokens removes only the stale ones.
func TestFCMTokenAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	const org = "0a000000-0000-4000-8000-00000000000a"
	const (
		stale = "0c000000-0000-4000-8000-000000000001"
		fresh = "0c000000-0000-4000-8000-000000000002"
		mixed = "0c000000-0000-4000-8000-000000000003"
	)
	day := 24 * time.Hour
	tokens := func(ts ...string) *[]string { return &ts }
	upsert := func(user string, u ContactUpdate) Contact {
		t.Helper()
		c, err := UpsertContact(ctx, pool, org, user, u)
		require.NoError(t, err)
		return c
	}
	sendTo := func(user string) []string {
		t.Helper()
		v, err := ViewRequest(ctx, pool, org, user, reauth.Inverter, "0c000000-0000-4000-8000-0000000000ff", "", time.Time{})
		require.NoError(t, err)
		return v.Contact.FCMTokens
	}
	// registerAt sets when one stored token was registered, so that a
	// contact can hold tokens of different ages.
	registerAt := func(user, token string, at time.Time) {
		t.Helper()
		tag, err := pool.Exec(ctx, `UPDATE contact SET fcm_registered_at = jsonb_set(fcm_registered_at, ARRAY[$3], to_jsonb($4::timestamptz))
			WHERE org_id = $1 AND user_id = $2 AND $3 = ANY(fcm_tokens)`, org, user, token, at)
		require.NoError(t, err)
		require.EqualValues(t, 1, tag.RowsAffected())
	}

	old := time.Now().Add(-FCMTokenMaxAge - day)
	c := upsert(stale, ContactUpdate{FCMTokens: tokens("tok-stale"), FCMRegisteredAt: old})
	require.Equal(t, []string{"tok-stale"}, c.FCMTokens, "a stale token is still stored")
	require.Len(t, c.FCMRegisteredAt, 1)
	require.WithinDuration(t, old, c.FCMRegisteredAt[0], time.Millisecond)
	require.Empty(t, sendTo(stale), "271 days old: not sent to")

	young := time.Now().Add(-FCMTokenMaxAge + day)
	upsert(fresh, ContactUpdate{FCMTokens: tokens("tok-fresh"), FCMRegisteredAt: young})
	require.Equal(t, []string{"tok-fresh"}, sendTo(fresh), "269 days old: sent to")

	// A change that names no tokens keeps their times; naming one again
	// refreshes it.
	email := "ann@example.com"
	c = upsert(stale, ContactUpdate{Email: &email})
	require.WithinDuration(t, old, c.FCMRegisteredAt[0], time.Millisecond)
	require.Empty(t, sendTo(stale))
	c = upsert(stale, ContactUpdate{FCMTokens: tokens("tok-stale", "tok-new")})
	require.Len(t, c.FCMRegisteredAt, 2)
	require.WithinDuration(t, time.Now(), c.FCMRegisteredAt[0], time.Minute, "registered again")
	require.Equal(t, []string{"tok-stale", "tok-new"}, sendTo(stale))
	got, err := GetContact(ctx, pool, org, stale)
	require.NoError(t, err)
	require.Equal(t, c.FCMRegisteredAt, got.FCMRegisteredAt)

	// Tokens of different ages: only the young ones are sent to and kept.
	upsert(mixed, ContactUpdate{FCMTokens: tokens("tok-a", "tok-b", "tok-c", "tok-d")})
	registerAt(mixed, "tok-a", old)
	registerAt(mixed, "tok-c", young)
	registerAt(mixed, "tok-d", old)
	require.Equal(t, []string{"tok-b", "tok-c"}, sendTo(mixed))

	// RemoveFCMTokens forgets a token's time with it.
	require.NoError(t, RemoveFCMTokens(ctx, pool, org, mixed, []string{"tok-b"}))
	got, err = GetContact(ctx, pool, org, mixed)
	require.NoError(t, err)
	require.Equal(t, []string{"tok-a", "tok-c", "tok-d"}, got.FCMTokens)
	require.Len(t, got.FCMRegisteredAt, 3)

	// The prune, with the 270-day cutoff: stale tokens go, fresh ones stay.
	upsert(stale, ContactUpdate{FCMTokens: tokens("tok-stale"), FCMRegisteredAt: old})
	n, err := PruneFCMTokens(ctx, pool, time.Now().Add(-FCMTokenMaxAge))
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "tok-stale, tok-a and tok-d")
	for user, want := range map[string][]string{stale: {}, fresh: {"tok-fresh"}, mixed: {"tok-c"}} {
		got, err := GetContact(ctx, pool, org, user)
		require.NoError(t, err)
		require.Equal(t, want, got.FCMTokens, user)
		require.Len(t, got.FCMRegisteredAt, len(want), user)
		var keys int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM contact, jsonb_object_keys(fcm_registered_at)
			WHERE org_id = $1 AND user_id = $2`, org, user).Scan(&keys))
		require.Equal(t, len(want), keys, "%s: the times of pruned tokens go too", user)
	}
	n, err = PruneFCMTokens(ctx, pool, time.Now().Add(-FCMTokenMaxAge))
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to prune")

	// A user without a contact has no tokens.
	require.Empty(t, sendTo("0c000000-0000-4000-8000-0000000000ff"))
}
