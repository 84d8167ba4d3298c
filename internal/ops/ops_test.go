package ops_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/ops"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

const (
	org  = "0a000000-0000-4000-8000-00000000000a"
	user = "0c000000-0000-4000-8000-00000000000c"
	dev  = "d1000000-0000-4000-8000-000000000001"
)

type otherArgs struct{}

func (otherArgs) Kind() string { return "ops_core_test" }

type testBundle struct {
	pool *pgxpool.Pool
	core *ops.Ops
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := testdb.New(t)
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	return &testBundle{pool: pool, core: &ops.Ops{Pool: pool, River: rc, RateLimit: 10, SyncShare: 0.5, SyncInterval: time.Hour}}
}

func (b *testBundle) job(t *testing.T, args river.JobArgs, j testdb.Job) int64 {
	t.Helper()
	return testdb.InsertJob(t, b.pool, args, nil, j).ID
}

func (b *testBundle) state(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&s))
	return s
}

func devArgs() reauth.DeviceArgs {
	return reauth.DeviceArgs{OrgID: org, UserID: user, DeviceKind: reauth.Inverter, DeviceID: dev, Reason: "test"}
}

// The one rule of the CLI and /ops: cancel skips finished jobs and says so,
// retry skips running ones and duplicates.
func TestRetryAndCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("CancelSkipsFinishedJobs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, st := range []rivertype.JobState{rivertype.JobStateCompleted, rivertype.JobStateDiscarded, rivertype.JobStateCancelled} {
			id := b.job(t, otherArgs{}, testdb.Job{State: st})
			require.Equal(t, ops.Action{ID: id, Outcome: ops.OutcomeAlreadyFinished, State: string(st), Message: "skipped: already " + string(st)},
				b.core.Cancel(ctx, id))
			require.Equal(t, string(st), b.state(t, id))
		}
		waiting := b.job(t, otherArgs{}, testdb.Job{})
		require.Equal(t, ops.Action{ID: waiting, Outcome: ops.OutcomeCancelled, State: "cancelled", Message: "cancelled"}, b.core.Cancel(ctx, waiting))
		require.Equal(t, "cancelled", b.state(t, waiting))

		running := b.job(t, otherArgs{}, testdb.Job{State: rivertype.JobStateRunning, Attempt: 1})
		a := b.core.Cancel(ctx, running)
		require.Equal(t, ops.OutcomeCancelRequested, a.Outcome)
		require.False(t, a.Failed() || a.Skipped())

		a = b.core.Cancel(ctx, 999999)
		require.Equal(t, ops.OutcomeNotFound, a.Outcome)
		require.True(t, a.Failed())
	})

	t.Run("RetrySkipsRunningJobsAndDuplicates", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failed := b.job(t, devArgs(), testdb.Job{State: rivertype.JobStateDiscarded, Attempt: 1})
		require.Equal(t, ops.Action{ID: failed, Outcome: ops.OutcomeRetried, State: "available", Message: "retried, now available"},
			b.core.Retry(ctx, failed))
		running := b.job(t, otherArgs{}, testdb.Job{State: rivertype.JobStateRunning, Attempt: 1})
		a := b.core.Retry(ctx, running)
		require.Equal(t, ops.OutcomeRunning, a.Outcome)
		require.True(t, a.Skipped())

		// The device's request is pending again: an older one of the same
		// device is a duplicate.
		old := b.job(t, devArgs(), testdb.Job{State: rivertype.JobStateCompleted, Attempt: 1})
		a = b.core.Retry(ctx, old)
		require.Equal(t, ops.OutcomeDuplicate, a.Outcome, a.Message)
		require.Equal(t, "completed", b.state(t, old))

		var rep ops.Report
		for _, id := range []int64{failed, old, 999999} {
			rep.Add(b.core.Cancel(ctx, id))
		}
		require.Equal(t, 1, rep.Done)
		require.Equal(t, 1, rep.Skipped)
		require.Equal(t, 1, rep.Failed)
	})
}

// Device's jobs are its requests and the messages of its sessions, read
// through River, newest first.
func TestDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	req := b.job(t, devArgs(), testdb.Job{State: rivertype.JobStateCompleted, Attempt: 1})
	var ses int64
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		require.NoError(t, store.UpsertDevice(ctx, tx, reauth.Inverter, dev, org, user))
		var err error
		ses, err = store.CreateSession(ctx, tx, store.NewSession{DeviceKind: reauth.Inverter, DeviceID: dev,
			PoderoSessionID: "5e000000-0000-4000-8000-000000000001", AuthenticationURL: "https://app.podero.com/c",
			LinkNonce: []byte{1}, LinkHash: []byte{1, 1}, Locale: "en", JobID: req, ExpiresAt: time.Now().Add(time.Hour)})
		return err
	}))
	notify := b.job(t, reauth.NotifyArgs{SessionID: ses, Step: 1}, testdb.Job{State: rivertype.JobStateScheduled})
	b.job(t, otherArgs{}, testdb.Job{})

	d, err := b.core.Device(ctx, reauth.Inverter, dev)
	require.NoError(t, err)
	require.True(t, d.Known)
	require.Len(t, d.Sessions, 1)
	require.Equal(t, []int64{notify, req}, []int64{d.Jobs[0].ID, d.Jobs[1].ID})
	require.Equal(t, "reauth_notify", d.Jobs[0].Kind)
	require.JSONEq(t, `{"session_id": `+strconv.FormatInt(ses, 10)+`, "step": 1}`, string(d.Jobs[0].Args))
	require.Equal(t, ses, d.Jobs[0].SessionID)
	require.Equal(t, 1, d.Jobs[0].Step)
	require.Equal(t, reauth.Inverter, d.Jobs[1].DeviceKind)
	require.Equal(t, dev, d.Jobs[1].DeviceID)
	require.Equal(t, "inverter "+dev, d.Jobs[1].Subject)

	_, err = b.core.Device(ctx, reauth.Wallbox, dev)
	require.ErrorIs(t, err, ops.ErrNotFound)
	_, _, err = ops.ParseDevice("toaster", dev)
	require.Error(t, err)
	k, id, err := ops.ParseDevice("inverter", " "+dev[:8]+"-0000-4000-8000-000000000001")
	require.NoError(t, err)
	require.Equal(t, reauth.Inverter, k)
	require.Equal(t, dev, id)
}

// FunnelDays has one entry a UTC day, today last, zero when nothing
// happened; the funnel by kind sums every org.
func TestFunnel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	now := time.Now().UTC()
	b.core.Now = func() time.Time { return now }
	today := now.Truncate(24 * time.Hour)
	at := func(daysAgo int) *time.Time {
		t := today.AddDate(0, 0, -daysAgo).Add(time.Minute)
		return &t
	}
	b.job(t, devArgs(), testdb.Job{CreatedAt: at(0)})
	b.job(t, devArgs(), testdb.Job{State: rivertype.JobStateCompleted, CreatedAt: at(2)})
	b.job(t, devArgs(), testdb.Job{State: rivertype.JobStateCompleted, CreatedAt: at(2)})
	b.job(t, devArgs(), testdb.Job{State: rivertype.JobStateCompleted, CreatedAt: at(9)}) // before the chart
	require.NoError(t, store.UpsertDevice(ctx, b.pool, reauth.Inverter, dev, org, user))
	ses, err := store.CreateSession(ctx, b.pool, store.NewSession{DeviceKind: reauth.Inverter, DeviceID: dev,
		PoderoSessionID: "5e000000-0000-4000-8000-000000000001", AuthenticationURL: "https://app.podero.com/c",
		LinkNonce: []byte{1}, LinkHash: []byte{1, 1}, Locale: "en", ExpiresAt: now.Add(time.Hour)})
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE auth_session SET created_at = $2, state = 'completed_elsewhere', finished_at = now() WHERE id = $1`, ses, *at(2))
	require.NoError(t, err)

	days, err := b.core.FunnelDays(ctx, 7)
	require.NoError(t, err)
	require.Len(t, days, 7)
	require.Equal(t, today, days[6].Day)
	require.Equal(t, today.AddDate(0, 0, -6), days[0].Day)
	require.Equal(t, store.FunnelCounts{Requested: 1}, days[6].FunnelCounts)
	require.Equal(t, store.FunnelCounts{Requested: 2, LinkCreated: 1, Completed: 1, CompletedElsewhere: 1, Verified: 1}, days[4].FunnelCounts,
		"a completion elsewhere is verified: Podero listed it")
	for _, i := range []int{0, 1, 2, 3, 5} {
		require.Zero(t, days[i].FunnelCounts, "day %d", i)
	}

	s, err := b.core.Stats(ctx, 7*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, "168h0m0s", s.Window)
	require.Len(t, s.ByKind, len(reauth.DeviceKinds))
	require.Equal(t, store.FunnelRow{DeviceKind: "inverter", FunnelCounts: store.FunnelCounts{Requested: 3, LinkCreated: 1, Completed: 1, CompletedElsewhere: 1, Verified: 1}}, s.ByKind[0])
	require.Equal(t, store.FunnelRow{OrgID: "total", DeviceKind: "all", FunnelCounts: s.ByKind[0].FunnelCounts}, s.Total)
	require.EqualValues(t, 1, s.Budget.Waiting)
	require.Equal(t, "of 10 (PODERO_RATE_LIMIT)", s.Budget.LimitText())
	require.Equal(t, "1h0m0s", s.Sync.Interval)
	require.Equal(t, "-", s.Sync.LagText())
	_, err = b.core.Stats(ctx, 0)
	require.Error(t, err)
}

func TestJobFilter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	jf, err := ops.FilterText{State: "Discarded, retryable", Kind: "reauth_device,", Device: " " + dev + " ", Since: "7d"}.Parse(now)
	require.NoError(t, err)
	require.Equal(t, ops.JobFilter{States: []rivertype.JobState{"discarded", "retryable"}, Kinds: []string{"reauth_device"},
		Device: dev, Since: now.AddDate(0, 0, -7)}, jf)
	for _, bad := range []ops.FilterText{
		{State: "sleeping"}, {Kind: "a\x00b"}, {Queue: string(make([]byte, 201))}, {Queue: "\xff"},
		{Device: "not-a-uuid"}, {Since: "yesterday"},
	} {
		_, err := bad.Parse(now)
		require.Error(t, err, "%+v", bad)
	}
	require.False(t, ops.FilterText{}.Set())
}

func TestParseLog(t *testing.T) {
	t.Parallel()
	lines := ops.ParseLog(`{"time":"2026-12-02T06:50:01.123456Z","level":"INFO","msg":"calling podero","device":"inverter x","attempt":2}
plain text line
{"time":"2026-12-02T06:50:02Z","level":"ERROR","msg":"podero: 503","group":{"a":1}}
`)
	require.Len(t, lines, 3)
	require.Equal(t, "06:50:01.123Z INFO calling podero device=\"inverter x\" attempt=2", lines[0].String())
	require.Equal(t, "calling podero", lines[0].Msg)
	require.Equal(t, ops.LogLine{Text: "plain text line"}, lines[1])
	require.Equal(t, "ERROR", lines[2].Level)
	require.Equal(t, `group={"a":1}`, lines[2].Attrs)
	require.Equal(t, "{not json", ops.ParseLog("{not json")[0].Text)
}

func TestFormatTime(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 7, 8, 9, 0, time.FixedZone("CET", 3600))
	require.Equal(t, "2026-12-02 06:08:09Z", ops.FormatTime(at))
	require.Equal(t, "2026-12-02 06:08:09Z", ops.FormatTime(&at))
	require.Equal(t, "-", ops.FormatTime(time.Time{}))
	require.Equal(t, "-", ops.FormatTime((*time.Time)(nil)))
}
