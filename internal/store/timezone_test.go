package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/testdb"
)

// TestQuietHoursColumns: what quiet hours reckon the user's zone from: the
// contact's timezone (kept, changed and cleared like its other fields) and
// the country of the users list, recorded by the listing and rewritten when
// it changes.
func TestQuietHoursColumns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)

	t.Run("ContactTimezone", func(t *testing.T) {
		tz, empty := "America/New_York", ""
		c, err := UpsertContact(ctx, pool, listOrg, listedUserID(1), ContactUpdate{Timezone: &tz})
		require.NoError(t, err)
		require.Equal(t, tz, c.Timezone)
		locale := "de"
		c, err = UpsertContact(ctx, pool, listOrg, listedUserID(1), ContactUpdate{Locale: &locale})
		require.NoError(t, err)
		require.Equal(t, tz, c.Timezone, "an omitted timezone is kept")
		got, err := ViewRequest(ctx, pool, listOrg, listedUserID(1), reauth.Inverter, "0c000000-0000-4000-8000-0000000000ff", "", time.Time{})
		require.NoError(t, err)
		require.Equal(t, tz, got.Contact.Timezone, "a recipient's contact carries it")
		c, err = UpsertContact(ctx, pool, listOrg, listedUserID(1), ContactUpdate{Timezone: &empty})
		require.NoError(t, err)
		require.Empty(t, c.Timezone, "an empty one clears")
		c, err = GetContact(ctx, pool, listOrg, listedUserID(1))
		require.NoError(t, err)
		require.Empty(t, c.Timezone)
	})

	t.Run("ListedCountry", func(t *testing.T) {
		country := func(i int) string {
			var c *string
			require.NoError(t, pool.QueryRow(ctx, `SELECT country FROM sync_user WHERE org_id = $1 AND user_id = $2`,
				listOrg, listedUserID(i)).Scan(&c))
			if c == nil {
				return "<nil>"
			}
			return *c
		}
		users := []ListedUser{{UserID: listedUserID(10), Country: "AT"}, {UserID: listedUserID(11)}}
		require.Equal(t, int64(2), list(t, pool, users).Changed)
		require.Equal(t, "AT", country(10))
		require.Equal(t, "<nil>", country(11), "none sent: NULL")
		require.Zero(t, list(t, pool, users).Changed, "unchanged: nothing written")
		users[0].Country, users[1].Country = "DE", "SE"
		require.Equal(t, int64(2), list(t, pool, users).Changed, "a changed country is written")
		require.Equal(t, "DE", country(10))
		require.Equal(t, "SE", country(11))
	})
}
