package e2e_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/sendwindow"
	"github.com/reauth/reauth/internal/worker"
)

// TestQuietHours: the real pipeline in a zone where the 08:00 start of
// SEND_WINDOW is a few seconds away. A partner's request (interactive)
// gets its first message at once, as SEND_WINDOW_INTERACTIVE=skip says; a
// sweep-priority request makes its session at once but its message waits
// for 08:00, and then goes out.
func TestQuietHours(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const gap = 15 * time.Second
	start := time.Now().Add(gap).Truncate(time.Second)
	// The zone whose wall clock shows 08:00:00 at start.
	offset := (8*3600 - (start.UTC().Hour()*3600 + start.UTC().Minute()*60 + start.UTC().Second()))
	if offset > 12*3600 {
		offset -= 24 * 3600
	} else if offset <= -12*3600 {
		offset += 24 * 3600
	}
	zone := time.FixedZone("quiet-hours-test", offset)
	require.Equal(t, "08:00:00", start.In(zone).Format("15:04:05"))

	b := setup(t, func(wc *worker.Config, _ *httpapi.Config) {
		wc.SendWindow = sendwindow.MustParse(sendwindow.WindowDefault)
		wc.DefaultZone = zone
	})
	b.start(t)

	// The partner's request: sent now, at 07:59:4x local.
	status, out := b.post(t, pipelineToken, b.body(b.device(reauth.Inverter)))
	require.Equal(t, http.StatusAccepted, status)
	b.waitJob(t, jobID(t, out), "completed")
	waitCtx, cancel := context.WithTimeout(ctx, gap)
	defer cancel()
	_, err := b.mails.Wait(waitCtx, 1)
	require.NoError(t, err, "the interactive first message goes before the window opens")
	require.True(t, time.Now().Before(start), "sent before 08:00")

	// A sweep-priority request: its session now, its message at 08:00.
	ev := b.device(reauth.ElectricVehicle)
	res, err := b.river.Insert(ctx, reauth.DeviceArgs{OrgID: b.org, UserID: b.user.ID, DeviceKind: ev.Kind, DeviceID: ev.ID},
		&river.InsertOpts{Priority: reauth.PriorityBulk})
	require.NoError(t, err)
	b.waitJob(t, res.Job.ID, "completed")
	var scheduled time.Time
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT j.scheduled_at FROM river_job j JOIN auth_session s ON s.id = (j.args->>'session_id')::bigint
		WHERE j.kind = 'reauth_notify' AND (j.args->>'step')::int = 0 AND s.device_id = $1`, ev.ID).Scan(&scheduled))
	require.True(t, start.Equal(scheduled), "the first message is scheduled at 08:00 local: %s", scheduled.In(zone))
	if time.Now().Before(start) {
		require.Equal(t, 1, b.mails.Count(), "nothing more before 08:00")
	}
	waitCtx, cancel = context.WithTimeout(ctx, gap+30*time.Second)
	defer cancel()
	msgs, err := b.mails.Wait(waitCtx, 2)
	require.NoError(t, err, "the deferred message goes out once the window opens")
	require.False(t, time.Now().Before(start))
	require.Len(t, msgs, 2)
}
