package reauth_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/testdb"
)

const good = `{"org_id":"6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f","user_id":"0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f","device_kind":"inverter","device_id":"a2314723-06cc-4c2e-8819-118905579c7a"}`

func TestDeviceArgsDecoding(t *testing.T) {
	t.Parallel()
	with := func(field, raw string) string {
		var m map[string]json.RawMessage
		_ = json.Unmarshal([]byte(good), &m)
		if raw == "" {
			delete(m, field)
		} else {
			m[field] = json.RawMessage(raw)
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	// Syntactically invalid JSON cannot reach a worker: river_job.args is jsonb.
	for _, tt := range []struct {
		name, args, want string
	}{
		{"Valid", good, ""},
		{"Null", `null`, "org_id is required"},
		{"Array", `[1,2]`, "must be a JSON object, not array"},
		{"String", `"x"`, "must be a JSON object, not string"},
		{"KindIsNumber", with("device_kind", `7`), `field "device_kind" must be a string, not number`},
		{"IDIsObject", with("device_id", `{"a":1}`), `field "device_id" must be a string, not object`},
		{"UnknownField", with("priority", `"high"`), `unknown field "priority"`},
		{"MissingDevice", with("device_id", ""), "device_id is required"},
		{"BadUUID", with("user_id", `"../../etc/passwd"`), "user_id must be a UUID"},
		{"BadKind", with("device_kind", `"heat_pump"`), "device_kind must be one of"},
		{"BadEmail", with("email", `"a@b@c"`), "email must be a plain address"},
		{"EmailWithName", with("email", `"Eve <eve@example.com>"`), "email must be a plain address"},
		{"BadLocale", with("locale", `"klingon"`), "locale must be one of"},
		{"JavascriptURL", with("success_url", `"javascript:alert(1)"`), "success_url"},
		{"LongReason", with("reason", `"`+strings.Repeat("x", 201)+`"`), "reason must be at most 200"},
		{"ExternalUserInsteadOfUser", strings.Replace(with("user_id", ""), `{`, `{"external_user_id":"crm-4711",`, 1), ""},
		{"BothUserIDs", with("external_user_id", `"crm-4711"`), "give user_id or external_user_id, not both"},
		{"NoUserID", with("user_id", ""), "user_id is required (or external_user_id)"},
		{"ExternalUserControlChar", strings.Replace(with("user_id", ""), `{`, `{"external_user_id":"crm\n4711",`, 1), "external_user_id must be"},
		{"ExternalUserTooLong", strings.Replace(with("user_id", ""), `{`, `{"external_user_id":"`+strings.Repeat("x", 256)+`",`, 1), "external_user_id must be"},
		{"ForceNotBool", with("force", `"yes"`), `field "force" must be a bool`},
		{"KeyInOtherCase", strings.Replace(good, `"device_id"`, `"DEVICE_ID"`, 1), `unknown field "DEVICE_ID"`},
		{"KeyTwice", strings.Replace(good, `{`, `{"device_id":"11111111-1111-4111-8111-111111111111",`, 1), `field "device_id" given twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var a reauth.DeviceArgs
			require.NoError(t, json.Unmarshal([]byte(tt.args), &a), "decoding never fails: Validate reports")
			err := a.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestNotifyArgsDecoding(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]string{
		`{"session_id":12,"step":0}`:       "",
		`{"session_id":"12","step":0}`:     `field "session_id" must be a int64, not string`,
		`{"session_id":0,"step":0}`:        "session_id must be positive",
		`{"session_id":12,"step":-1}`:      "step not negative",
		`{"session_id":12,"step":0,"x":1}`: `unknown field "x"`,
		`{"session_id":1e400}`:             "must be a int64",
	} {
		var a reauth.NotifyArgs
		require.NoError(t, json.Unmarshal([]byte(args), &a))
		if want == "" {
			require.NoError(t, a.Validate(), args)
		} else {
			require.ErrorContains(t, a.Validate(), want, args)
		}
	}
}

// TestEnqueue: requests exist when the caller's transaction commits; a
// second request for a device with an unfinished one is a duplicate of it,
// within one batch too; one invalid request in a batch writes nothing.
func TestEnqueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	dev := func(id string) reauth.DeviceArgs {
		return reauth.DeviceArgs{OrgID: "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", UserID: "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
			DeviceKind: reauth.Inverter, DeviceID: id}
	}
	a, b := "a2314723-06cc-4c2e-8819-118905579c7a", "B2314723-06CC-4C2E-8819-118905579C7A"
	var one reauth.Result
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		one, err = reauth.Enqueue(ctx, tx, dev(a))
		return err
	}))
	require.False(t, one.Duplicate)

	var many []reauth.Result
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		many, err = reauth.EnqueueMany(ctx, tx, []reauth.DeviceArgs{dev(a), dev(b), dev(strings.ToLower(b))})
		return err
	}))
	require.Len(t, many, 3)
	require.Equal(t, reauth.Result{JobID: one.JobID, Duplicate: true}, many[0])
	require.False(t, many[1].Duplicate)
	require.Equal(t, reauth.Result{JobID: many[1].JobID, Duplicate: true}, many[2])

	bad := dev("c2314723-06cc-4c2e-8819-118905579c7a")
	bad.Locale = "klingon"
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := reauth.EnqueueMany(ctx, tx, []reauth.DeviceArgs{dev("d2314723-06cc-4c2e-8819-118905579c7a"), bad})
		return err
	})
	require.ErrorContains(t, err, "request 1: locale must be one of")
	var jobs int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'reauth_device'").Scan(&jobs))
	require.Equal(t, 2, jobs)
}

// TestEnqueuePriority: the sweep's requests wait behind everyone else's;
// someone asking for a device the sweep queued replaces that request with
// an interactive one.
func TestEnqueuePriority(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	a := reauth.DeviceArgs{OrgID: "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", UserID: "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
		DeviceKind: reauth.Inverter, DeviceID: "a2314723-06cc-4c2e-8819-118905579c7a", Reason: reauth.ReasonSweep}
	priority := func(id int64) (p int) {
		require.NoError(t, pool.QueryRow(ctx, "SELECT priority FROM river_job WHERE id = $1", id).Scan(&p))
		return p
	}
	enqueue := func(a reauth.DeviceArgs) (res reauth.Result) {
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
			res, err = reauth.Enqueue(ctx, tx, a)
			return err
		}))
		return res
	}
	swept := enqueue(a)
	require.Equal(t, reauth.PriorityBulk, priority(swept.JobID))
	require.True(t, enqueue(a).Duplicate)
	require.Equal(t, reauth.PriorityBulk, priority(swept.JobID), "another sweep request changes nothing")

	a.Reason = "billing-sync"
	asked := enqueue(a)
	require.False(t, asked.Duplicate, "the user's request replaces the sweep's")
	require.NotEqual(t, swept.JobID, asked.JobID)
	require.Equal(t, reauth.PriorityInteractive, priority(asked.JobID), "a user's request is not left behind the fleet")
	var state string
	var replaces int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT state::text FROM river_job WHERE id = $1", swept.JobID).Scan(&state))
	require.Equal(t, "cancelled", state, "the sweep's request is cancelled through River")
	require.NoError(t, pool.QueryRow(ctx, "SELECT (metadata ->> 'replaces')::bigint FROM river_job WHERE id = $1", asked.JobID).Scan(&replaces))
	require.Equal(t, swept.JobID, replaces)
	var unfinished int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reauth_device'
		AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled')`).Scan(&unfinished))
	require.Equal(t, 1, unfinished, "the device has one request")
	require.Equal(t, reauth.Result{JobID: asked.JobID, Duplicate: true}, enqueue(a), "asking again meets the user's request")
	a.Reason = reauth.ReasonSweep
	require.Equal(t, reauth.Result{JobID: asked.JobID, Duplicate: true}, enqueue(a), "the sweep meets it too")
	require.Equal(t, reauth.PriorityInteractive, priority(asked.JobID))
}
