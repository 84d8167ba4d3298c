package e2e_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/podero/sim"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/worker"
)

// insertLikePython inserts args exactly as given (no normalizing) with the
// options the README gives Python and Ruby callers: queue podero, priority
// 1, max_attempts 100, unique by_args device_id and device_kind while not
// finished. River's unique key is the args' text, so an upper-case
// device_id is another key.
func (b *testBundle) insertLikePython(t *testing.T, a reauth.DeviceArgs, scheduledAt time.Time) int64 {
	t.Helper()
	id, err := b.tryInsertLikePython(a, scheduledAt)
	require.NoError(t, err)
	return id
}

// tryInsertLikePython is insertLikePython for goroutines other than the test's.
func (b *testBundle) tryInsertLikePython(a reauth.DeviceArgs, scheduledAt time.Time) (int64, error) {
	rc, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	if err != nil {
		return 0, err
	}
	res, err := rc.Insert(context.Background(), a, &river.InsertOpts{
		Queue: reauth.QueuePodero, Priority: 1, MaxAttempts: 100, ScheduledAt: scheduledAt,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled}},
	})
	if err == nil && res.UniqueSkippedAsDuplicate {
		err = fmt.Errorf("job %d is a duplicate: another spelling must be another unique key", res.Job.ID)
	}
	if err != nil {
		return 0, err
	}
	return res.Job.ID, nil
}

// waitRequestsFinished waits until no reauth_device job is left unfinished.
func (b *testBundle) waitRequestsFinished(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for b.count(t, "SELECT count(*) FROM river_job WHERE kind = 'reauth_device' AND finalized_at IS NULL") > 0 {
		require.True(t, time.Now().Before(deadline), "requests still unfinished")
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCanonicalDeviceIDs: a device_id another language inserted in upper
// case is the same device: never a second session or message.
func TestCanonicalDeviceIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("BothFormsAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Both spellings are pending at once: the service starts once both
		// are in. Started before, it could hand one on in lower case before
		// the other's insert, which then is that job's duplicate (seen under
		// CI load: "job 7 is a duplicate").
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, 2*len(b.user.Devices))
		for _, d := range b.user.Devices {
			for _, id := range []string{d.ID, strings.ToUpper(d.ID)} {
				wg.Go(func() {
					<-start
					_, err := b.tryInsertLikePython(reauth.DeviceArgs{OrgID: b.org, UserID: b.user.ID, DeviceKind: d.Kind, DeviceID: id}, time.Time{})
					errs <- err
				})
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		b.start(t)
		b.waitRequestsFinished(t)

		n := len(b.user.Devices)
		require.Equal(t, n, b.count(t, "SELECT count(*) FROM auth_session"), "one session per device")
		require.Equal(t, n, b.sim.Counts()[sim.EndpointAuthSession], "one Podero call per device")
		_, err := b.mails.Wait(ctx, n)
		require.NoError(t, err)
		require.Len(t, b.mails.Messages(), n, "one message per device")
		require.Zero(t, b.count(t, "SELECT count(*) FROM river_job WHERE kind = 'reauth_device' AND state <> 'completed'"),
			"the upper-case requests are done, not cancelled or failed")
		for _, d := range b.user.Devices {
			require.Equal(t, 1, b.count(t, "SELECT count(*) FROM auth_session WHERE device_id = $1", d.ID), d.ID)
		}
	})

	t.Run("AloneIsHandedOnInLowerCase", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.start(t)
		d := b.device(reauth.Inverter)
		upper := b.insertLikePython(t, reauth.DeviceArgs{OrgID: strings.ToUpper(b.org), UserID: strings.ToUpper(b.user.ID),
			DeviceKind: d.Kind, DeviceID: strings.ToUpper(d.ID)}, time.Time{})
		b.waitJob(t, upper, "completed")
		b.waitRequestsFinished(t)
		_, err := b.mails.Wait(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM auth_session WHERE device_id = $1", d.ID))

		// The request is visible where the device's requests are looked up,
		// with lower-case IDs, and says where it came from.
		v, err := store.GetDeviceView(ctx, b.pool, d.Kind, d.ID)
		require.NoError(t, err)
		require.Len(t, v.Jobs, 1)
		require.Equal(t, "completed", v.Jobs[0].State)
		var org, user, from string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT args->>'org_id', args->>'user_id', metadata->>'normalized_from_job'
			FROM river_job WHERE id = $1`, v.Jobs[0].ID).Scan(&org, &user, &from))
		require.Equal(t, b.org, org)
		require.Equal(t, b.user.ID, user)
		require.Equal(t, strconv.FormatInt(upper, 10), from)
		var log string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT coalesce(metadata ->> 'river:log', '') FROM river_job WHERE id = $1`, upper).Scan(&log))
		require.Contains(t, log, "insert IDs in lower case")
	})

	t.Run("TwinFinishedWhileThisWaited", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		d := b.device(reauth.Wallbox)
		// The upper-case request is pending (due a moment later) while its
		// lower-case twin is worked and finished.
		upper := b.insertLikePython(t, reauth.DeviceArgs{OrgID: b.org, UserID: b.user.ID, DeviceKind: d.Kind, DeviceID: strings.ToUpper(d.ID)},
			time.Now().Add(1500*time.Millisecond))
		lower := b.insertLikePython(t, reauth.DeviceArgs{OrgID: b.org, UserID: b.user.ID, DeviceKind: d.Kind, DeviceID: d.ID}, time.Time{})
		b.start(t)
		b.waitJob(t, lower, "completed")
		b.waitJob(t, upper, "completed")
		b.waitRequestsFinished(t)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM auth_session"))
		require.Equal(t, 1, b.sim.Counts()[sim.EndpointAuthSession])
		require.Equal(t, 2, b.count(t, "SELECT count(*) FROM river_job WHERE kind = 'reauth_device'"), "nothing handed on")
		require.Len(t, b.mails.Messages(), 1)
	})
}

// TestNotifyStepBounded: a reauth_notify step beyond the reminder schedule
// is cancelled with the reason, never sent, whatever its size.
func TestNotifyStepBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, func(wc *worker.Config, _ *httpapi.Config) { wc.ReminderOffsets = []time.Duration{time.Hour} })
	b.start(t)
	res := b.enqueue(t, reauth.DeviceArgs{OrgID: b.org, UserID: b.user.ID, DeviceKind: reauth.Inverter, DeviceID: b.device(reauth.Inverter).ID})
	b.waitJob(t, res.JobID, "completed")
	_, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)
	var session int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM auth_session").Scan(&session))

	var ids []int64
	for _, step := range []string{"2", "1000", "2147483647", "2147483648", "9007199254740993"} {
		var id int64
		require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO river_job (kind, queue, args, state, max_attempts, priority)
			VALUES ('reauth_notify', 'notify', ('{"session_id":' || $1::bigint || ',"step":' || $2 || '}')::jsonb, 'available', 25, 1)
			RETURNING id`, session, step).Scan(&id))
		ids = append(ids, id)
	}
	for _, id := range ids {
		b.waitJob(t, id, "cancelled")
		var attempt int
		var reason string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT attempt, errors[1] ->> 'error' FROM river_job WHERE id = $1", id).Scan(&attempt, &reason))
		require.Equal(t, 1, attempt, "cancelled at once")
		require.Contains(t, reason, "beyond the reminder schedule: REMINDER_OFFSETS gives steps 0 to 1")
	}
	require.Len(t, b.mails.Messages(), 1, "no extra message")
	require.Zero(t, b.count(t, "SELECT count(*) FROM notification WHERE step > 1"))

	// The schedule's own reminder still goes.
	var reminder int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'reauth_notify' AND state = 'scheduled'
		AND args ->> 'session_id' = $1::bigint::text AND args ->> 'step' = '1'`, session).Scan(&reminder))
	_, err = b.river.JobRetry(ctx, reminder) // due now
	require.NoError(t, err)
	_, err = b.mails.Wait(ctx, 2)
	require.NoError(t, err)
}
