package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// TestStoreSession: on a pool, the device, the supersede, the session and
// its first message's claim and attempt are one transaction: all of them
// or, when one statement fails, none.
func TestStoreSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	const dev = "e2314723-06cc-4c2e-8819-118905579c7a"
	newSession := func(hash byte) store.NewSession {
		return store.NewSession{DeviceKind: reauth.Inverter, DeviceID: dev, PoderoSessionID: fmt.Sprintf("5e000000-0000-4000-8000-0000000000%02x", hash),
			AuthenticationURL: "https://app.podero.com/connect/1", LinkNonce: []byte{hash}, LinkHash: []byte{hash, hash},
			Locale: "en", JobID: int64(hash), ExpiresAt: time.Now().Add(time.Hour)}
	}
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, pool.QueryRow(ctx, q, args...).Scan(&n))
		return n
	}

	first, old, rows, err := store.StoreSession(ctx, pool, opsOrg, opsUser, newSession(1),
		&store.FirstMessage{JobID: 1, Channel: "email", Recipient: "a@example.test"})
	require.NoError(t, err)
	require.Zero(t, old)
	require.Len(t, rows, 1)
	require.Equal(t, store.MessageKey([]int64{first}, 0), rows[0].IdempotencyKey)
	n, err := store.GetNotifyView(ctx, pool, first, 0)
	require.NoError(t, err)
	require.Equal(t, opsUser, n.UserID, "the device's owner recorded")
	require.Equal(t, 1, count(`SELECT count(*) FROM notification WHERE id = $1 AND session_id = $2 AND idempotency_key = $3 AND state = 'sending'`,
		rows[0].ID, first, rows[0].IdempotencyKey))
	claim, err := store.JobMessage(ctx, pool, 1)
	require.NoError(t, err)
	require.Equal(t, rows[0].IdempotencyKey, claim, "the SQL key is MessageKey's")

	// A second one supersedes it; claimed only (quiet hours): no row.
	second, old, rows, err := store.StoreSession(ctx, pool, opsOrg, opsUser, newSession(2), &store.FirstMessage{JobID: 2})
	require.NoError(t, err)
	require.Equal(t, first, old)
	require.Empty(t, rows)
	require.Equal(t, 1, count(`SELECT count(*) FROM notification_claim WHERE session_id = $1 AND job_id = 2`, second))

	// A failing insert (the link hash taken) leaves everything as it was:
	// the second session still open, no third claim, the owner unchanged.
	const otherUser = "1b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	_, _, _, err = store.StoreSession(ctx, pool, opsOrg, otherUser, newSession(2), &store.FirstMessage{JobID: 3, Channel: "email", Recipient: "a@example.test"})
	require.ErrorIs(t, err, store.ErrConflict)
	require.Equal(t, 1, count(`SELECT count(*) FROM auth_session WHERE id = $1 AND state = 'open'`, second))
	require.Zero(t, count(`SELECT count(*) FROM notification_claim WHERE job_id = 3`))
	require.Equal(t, 1, count(`SELECT count(*) FROM device WHERE id = $1 AND user_id = $2`, dev, opsUser))
}
