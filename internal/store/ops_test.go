package store

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/testdb"
)

func TestDeviceOpsQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	const (
		org  = "0a000000-0000-4000-8000-00000000000a"
		user = "0c000000-0000-4000-8000-00000000000c"
		dev  = "d1000000-0000-4000-8000-000000000001"
		// Requested, never served: no device row.
		waiting = "d2000000-0000-4000-8000-000000000002"
	)
	// Plenty of other devices, sessions and jobs, so that the planner's
	// choices are the ones it makes at scale.
	_, err := pool.Exec(ctx, `
		INSERT INTO device (kind, id, org_id, user_id)
		SELECT 'inverter', gen_random_uuid(), '`+org+`', gen_random_uuid() FROM generate_series(1, 20000);
		INSERT INTO river_job (kind, queue, args, state, finalized_at)
		SELECT 'reauth_device', 'podero', jsonb_build_object('device_kind', kind, 'device_id', id::text, 'org_id', org_id::text),
			'completed', now() FROM device;
		INSERT INTO auth_session (device_kind, device_id, podero_session_id, authentication_url, link_nonce, link_hash,
			expires_at, state, finished_at)
		SELECT kind, id, gen_random_uuid(), 'https://app.podero.com/x', '\x00', decode(md5(id::text), 'hex'), now(),
			'completed', now() FROM device;
		INSERT INTO river_job (kind, queue, args, state, finalized_at)
		SELECT 'reauth_notify', 'notify', jsonb_build_object('session_id', id, 'step', 0), 'completed', now() FROM auth_session;
		ANALYZE`)
	require.NoError(t, err)

	require.NoError(t, UpsertDevice(ctx, pool, reauth.Inverter, dev, org, user))
	insertJob := func(kind, args string) int64 {
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO river_job (kind, queue, args) VALUES ($1, 'podero', $2) RETURNING id`,
			kind, args).Scan(&id))
		return id
	}
	req := insertJob("reauth_device", `{"device_kind": "inverter", "device_id": "`+dev+`", "org_id": "`+org+`"}`)
	ses, err := CreateSession(ctx, pool, NewSession{DeviceKind: reauth.Inverter, DeviceID: dev,
		PoderoSessionID: "5e000000-0000-4000-8000-000000000001", AuthenticationURL: "https://app.podero.com/c",
		LinkNonce: []byte{1}, LinkHash: []byte{1, 1}, Locale: "en", JobID: req, ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	notify := insertJob("reauth_notify", `{"session_id": `+strconv.FormatInt(ses, 10)+`, "step": 0}`)
	reminder := insertJob("reauth_notify", `{"session_id": `+strconv.FormatInt(ses, 10)+`, "step": 1}`)
	waitingReq := insertJob("reauth_device", `{"device_kind": "wallbox", "device_id": "`+waiting+`", "org_id": "`+org+`"}`)

	ids, err := DeviceJobIDs(ctx, pool, dev, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{reminder, notify, req}, ids)
	ids, err = DeviceJobIDs(ctx, pool, dev, 2)
	require.NoError(t, err)
	require.Equal(t, []int64{reminder, notify}, ids)

	d, err := GetDeviceDetail(ctx, pool, reauth.Inverter, dev)
	require.NoError(t, err)
	require.True(t, d.Known)
	require.Nil(t, d.IsAuthenticated)
	require.JSONEq(t, `[]`, string(d.Actions))
	require.Len(t, d.Sessions, 1)
	require.Empty(t, d.Notifications)
	// The device's jobs (read through River by internal/ops, whose test
	// checks their kinds and args).
	ids, err = DeviceKindJobIDs(ctx, pool, reauth.Inverter, dev, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{reminder, notify, req}, ids)

	d, err = GetDeviceDetail(ctx, pool, reauth.Wallbox, waiting)
	require.NoError(t, err)
	require.False(t, d.Known)
	ids, err = DeviceKindJobIDs(ctx, pool, reauth.Wallbox, waiting, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{waitingReq}, ids)
	_, err = GetDeviceDetail(ctx, pool, reauth.Wallbox, "d9000000-0000-4000-8000-000000000009")
	require.ErrorIs(t, err, ErrNotFound)

	list, err := ListSessions(ctx, pool, SessionListFilter{State: SessionOpen, Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, ses, list[0].ID)
	require.Equal(t, org, list[0].OrgID)

	// A device's jobs are found through indexes, not by reading river_job.
	p := explain(t, pool, deviceJobIDsSQL, dev, []string{"inverter", "electric_vehicle", "wallbox"}, 100, []string{strconv.FormatInt(ses, 10)})
	require.NotContains(t, p, "Seq Scan", p)
	require.Contains(t, p, "river_job_reauth_device", p)
	require.Contains(t, p, "river_job_reauth_notify", p)
}

// TestPendingUserMessagePlan: the look for a user's pending grouped
// message reads river_job_reauth_notify_user, which holds the grouped jobs
// (with a user_id) and not the sessions' own messages and reminders.
func TestPendingUserMessagePlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	_, err := pool.Exec(ctx, `
		INSERT INTO river_job (kind, queue, args, state, scheduled_at)
		SELECT 'reauth_notify', 'notify', jsonb_build_object('session_id', i, 'step', 1), 'scheduled', now() + interval '1 day'
		FROM generate_series(1, 20000) i;
		INSERT INTO river_job (kind, queue, args, state, scheduled_at)
		SELECT 'reauth_notify', 'notify', jsonb_build_object('org_id', gen_random_uuid(), 'user_id', gen_random_uuid(), 'step', 0),
			'scheduled', now() + interval '2 minutes'
		FROM generate_series(1, 200);
		ANALYZE`)
	require.NoError(t, err)
	var entries int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT reltuples::bigint FROM pg_class WHERE relname = 'river_job_reauth_notify_user'`).Scan(&entries))
	require.Equal(t, int64(200), entries, "only the grouped jobs are in the index")

	p := explain(t, pool, pendingUserMessageSQL, "0a000000-0000-4000-8000-00000000000a",
		"0c000000-0000-4000-8000-00000000000c", 0, nil, time.Now().Add(time.Hour))
	require.NotContains(t, p, "Seq Scan on river_job", p)
	require.Contains(t, p, "river_job_reauth_notify_user", p)
}

// explain is the plan Postgres makes for sql with args, one line a node.
func explain(t *testing.T, db DB, sql string, args ...any) string {
	t.Helper()
	plan, err := queryValues[string](context.Background(), db, "EXPLAIN "+sql, args...)
	require.NoError(t, err)
	return strings.Join(plan, "\n")
}
