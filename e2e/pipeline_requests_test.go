package e2e_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/worker"
)

// TestExternalUserID: a partner's own customer ID stands in for Podero's
// user ID. Over HTTP it is looked up at once (an unknown one is a 400); a
// request inserted by other means is resolved by the worker, and an unknown
// one is cancelled with the reason.
func TestExternalUserID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("HTTPResolvesAndSends", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.start(t)
		d := b.device(reauth.Inverter)
		status, out := b.post(t, pipelineToken, map[string]any{"org_id": b.org, "external_user_id": b.user.ExternalUserID,
			"device_kind": d.Kind, "device_id": d.ID})
		require.Equal(t, http.StatusAccepted, status, "%v", out)
		id := jobID(t, out)
		var userID, ext string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT args->>'user_id', coalesce(args->>'external_user_id', '') FROM river_job WHERE id = $1`, id).Scan(&userID, &ext))
		require.Equal(t, b.user.ID, userID, "the job carries Podero's user ID")
		require.Empty(t, ext)
		b.waitJob(t, id, "completed")
		msgs, err := b.mails.Wait(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, []string{b.user.Email}, msgs[0].To)
		require.Equal(t, 1, b.sim.Counts()["user_by_ext_id"])
	})

	t.Run("HTTPLookupCached", func(t *testing.T) {
		// Two requests naming the same external_user_id, and then a job
		// inserted from Go naming it too: one by-ext-id call, the API and
		// the worker sharing the process's user cache.
		t.Parallel()
		b := setup(t)
		b.start(t)
		var ids []int64
		for _, kind := range []reauth.DeviceKind{reauth.Inverter, reauth.ElectricVehicle} {
			d := b.device(kind)
			status, out := b.post(t, pipelineToken, map[string]any{"org_id": b.org, "external_user_id": b.user.ExternalUserID,
				"device_kind": d.Kind, "device_id": d.ID})
			require.Equal(t, http.StatusAccepted, status, "%v", out)
			ids = append(ids, jobID(t, out))
		}
		require.Equal(t, 1, b.sim.Counts()["user_by_ext_id"], "the second request is answered from the cache")
		d := b.device(reauth.Wallbox)
		res := b.enqueue(t, reauth.DeviceArgs{OrgID: b.org, ExternalUserID: b.user.ExternalUserID, DeviceKind: d.Kind, DeviceID: d.ID})
		for _, id := range append(ids, res.JobID) {
			b.waitJob(t, id, "completed")
		}
		var userID string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT user_id FROM device WHERE id = $1`, d.ID).Scan(&userID))
		require.Equal(t, b.user.ID, userID, "the worker resolved the Go job's user")
		c := b.sim.Counts()
		require.Equal(t, 1, c["user_by_ext_id"], "the worker's lookup came from the cache the API filled")
		require.Equal(t, 3, c["auth_session"])
	})

	t.Run("HTTPUnknownIsBadRequest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		d := b.device(reauth.Inverter)
		status, out := b.post(t, pipelineToken, map[string]any{"org_id": b.org, "external_user_id": "no-such-customer",
			"device_kind": d.Kind, "device_id": d.ID})
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, out["error"], `external_user_id "no-such-customer" is not a user of organization`)
		require.Zero(t, b.count(t, "SELECT count(*) FROM river_job WHERE kind = 'reauth_device'"), "nothing enqueued")
	})

	t.Run("HTTPBothIDsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		d := b.device(reauth.Inverter)
		body := b.body(d)
		body["external_user_id"] = b.user.ExternalUserID
		status, out := b.post(t, pipelineToken, body)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, out["error"], "not both")
	})

	t.Run("WorkerResolves", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.start(t)
		d := b.device(reauth.ElectricVehicle)
		res := b.enqueue(t, reauth.DeviceArgs{OrgID: b.org, ExternalUserID: b.user.ExternalUserID, DeviceKind: d.Kind, DeviceID: d.ID})
		b.waitJob(t, res.JobID, "completed")
		msgs, err := b.mails.Wait(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, []string{b.user.Email}, msgs[0].To, "the email came with the by-ext-id answer")
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM device WHERE id = $1 AND user_id = $2", d.ID, b.user.ID))
		c := b.sim.Counts()
		require.Equal(t, 1, c["user_by_ext_id"])
		require.Zero(t, c["list_users"], "no users list needed")
	})

	t.Run("WorkerUnknownCancels", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.start(t)
		d := b.device(reauth.Wallbox)
		res := b.enqueue(t, reauth.DeviceArgs{OrgID: b.org, ExternalUserID: "crm-0000", DeviceKind: d.Kind, DeviceID: d.ID})
		b.waitJob(t, res.JobID, "cancelled")
		var reason string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT errors[array_upper(errors, 1)]->>'error' FROM river_job WHERE id = $1`, res.JobID).Scan(&reason))
		require.Contains(t, reason, `no Podero user with external_user_id "crm-0000" in organization `+b.org)
		require.Zero(t, b.sim.Counts()["auth_session"], "Podero was not asked for a session")
	})
}

// TestRepeatCooldown: a request for a device whose session completed within
// REAUTH_REPEAT_COOLDOWN is a duplicate of that session and sends nothing;
// force overrides it. The worker holds the line for requests that did not
// come through the API.
func TestRepeatCooldown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, func(wc *worker.Config, hc *httpapi.Config) {
		wc.RepeatCooldown, hc.RepeatCooldown = 30*time.Minute, 30*time.Minute
	})
	b.start(t)
	d := b.device(reauth.Inverter)

	status, out := b.post(t, pipelineToken, b.body(d))
	require.Equal(t, http.StatusAccepted, status)
	first := jobID(t, out)
	b.waitJob(t, first, "completed")
	msgs, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)
	link := mailcatch.FindLink(msgs[0].Text, b.api.URL+"/r/")
	resp, err := noRedirect.Get(link + "/done?result=success")
	require.NoError(t, err)
	resp.Body.Close()
	var session int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM auth_session WHERE job_id = $1 AND state = 'completed'", first).Scan(&session))

	// The partner's own check asks again a second later.
	status, out = b.post(t, pipelineToken, b.body(d))
	require.Equal(t, http.StatusAccepted, status)
	require.Equal(t, map[string]any{"job_id": float64(first), "duplicate": true, "session_id": float64(session)}, out)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM river_job WHERE kind = 'reauth_device'"), "nothing enqueued")

	// The same from Go (or Python): the job is done without a message.
	res := b.enqueue(t, reauth.DeviceArgs{OrgID: b.org, UserID: b.user.ID, DeviceKind: d.Kind, DeviceID: d.ID})
	b.waitJob(t, res.JobID, "completed")
	require.Equal(t, 1, b.sim.Counts()["auth_session"], "Podero was not asked again")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM auth_session"))

	// Forced, it goes through.
	body := b.body(d)
	body["force"] = true
	status, out = b.post(t, pipelineToken, body)
	require.Equal(t, http.StatusAccepted, status)
	require.Equal(t, false, out["duplicate"])
	b.waitJob(t, jobID(t, out), "completed")
	_, err = b.mails.Wait(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, 2, b.sim.Counts()["auth_session"])
}

// TestMaxAttempts: every path that inserts a reauth_device job from Go gives
// it the configured attempts (MAX_ATTEMPTS), or reauth.MaxAttemptsDefault
// for callers outside the service.
func TestMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, func(wc *worker.Config, hc *httpapi.Config) { wc.MaxAttempts, hc.MaxAttempts = 42, 42 })
	devs := b.user.Devices
	attempts := func(id int64) int {
		return b.count(t, "SELECT max_attempts FROM river_job WHERE id = $1", id)
	}

	status, out := b.post(t, pipelineToken, b.body(devs[0]))
	require.Equal(t, http.StatusAccepted, status)
	require.Equal(t, 42, attempts(jobID(t, out)), "HTTP")

	res := b.enqueue(t, reauth.DeviceArgs{OrgID: b.org, UserID: b.user.ID, DeviceKind: devs[1].Kind, DeviceID: devs[1].ID})
	require.Equal(t, reauth.MaxAttemptsDefault, attempts(res.JobID), "reauth.Enqueue")

	var many []reauth.Result
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) (err error) {
		many, err = reauth.EnqueueManyWith(ctx, tx, []reauth.DeviceArgs{{OrgID: b.org, UserID: b.user.ID, DeviceKind: devs[2].Kind, DeviceID: devs[2].ID}},
			reauth.EnqueueOpts{MaxAttempts: 7})
		return err
	}))
	require.Equal(t, 7, attempts(many[0].JobID), "reauth.EnqueueManyWith")
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) (err error) {
		many, err = reauth.EnqueueMany(ctx, tx, []reauth.DeviceArgs{{OrgID: b.org, UserID: b.user.ID, DeviceKind: reauth.Inverter, DeviceID: randomUUID()}})
		return err
	}))
	require.Equal(t, reauth.MaxAttemptsDefault, attempts(many[0].JobID), "reauth.EnqueueMany")

	// The sweep inserts with the service's client.
	other := randomUUID()
	_, err := b.pool.Exec(ctx, `INSERT INTO device (kind, id, org_id, user_id, is_authenticated, synced_at) VALUES ('wallbox', $1, $2, $3, false, now())`,
		other, b.org, b.user.ID)
	require.NoError(t, err)
	b.start(t)
	sweep, err := b.river.Insert(ctx, reauth.SweepArgs{}, nil)
	require.NoError(t, err)
	b.waitJob(t, sweep.Job.ID, "completed")
	var swept int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM river_job WHERE kind = 'reauth_device' AND args->>'device_id' = $1", other).Scan(&swept))
	require.Equal(t, 42, attempts(swept), "sweep")
}

// enqueue inserts a request the way a Go caller does.
func (b *testBundle) enqueue(t *testing.T, a reauth.DeviceArgs) reauth.Result {
	t.Helper()
	var res reauth.Result
	require.NoError(t, pgx.BeginFunc(context.Background(), b.pool, func(tx pgx.Tx) (err error) {
		res, err = reauth.Enqueue(context.Background(), tx, a)
		return err
	}))
	return res
}
