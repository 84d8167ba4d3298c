package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverlog"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/ops"
	"github.com/reauth/reauth/internal/session"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

const (
	opsOrgA = "0a000000-0000-4000-8000-00000000000a"
	opsOrgB = "0b000000-0000-4000-8000-00000000000b"
	opsUser = "0c000000-0000-4000-8000-00000000000c"
	// d1: an inverter whose login was renewed through our link (org A).
	opsDev1 = "d1000000-0000-4000-8000-000000000001"
	// d2: an electric vehicle whose request gave up after two attempts (org A).
	opsDev2 = "d2000000-0000-4000-8000-000000000002"
	// d3: a wallbox whose request is waiting for a retry (org B).
	opsDev3 = "d3000000-0000-4000-8000-000000000003"
)

// opsFixture is a migrated database with devices, sessions, messages and
// jobs in every interesting state.
type opsFixture struct {
	url  string
	pool *pgxpool.Pool
	// Job IDs.
	req1, notify1, req2, req3, sync, old int64
	// Session IDs.
	ses0, ses1, ses3 int64
}

func newOpsFixture(t *testing.T) *opsFixture {
	t.Helper()
	ctx := context.Background()
	f := &opsFixture{url: testdb.NewURL(t)}
	pool, err := pgxpool.New(ctx, f.url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	f.pool = pool

	for _, d := range []struct {
		kind     reauth.DeviceKind
		id, org  string
		authed   bool
		actions  string
		syncedAt string
	}{
		{reauth.Inverter, opsDev1, opsOrgA, true, `[]`, "now()"},
		{reauth.ElectricVehicle, opsDev2, opsOrgA, false, `[{"code": "reauthenticate"}]`, "now() - interval '1 hour'"},
		{reauth.Wallbox, opsDev3, opsOrgB, false, `[]`, "now()"},
	} {
		require.NoError(t, store.UpsertDevice(ctx, pool, d.kind, d.id, d.org, opsUser))
		_, err := pool.Exec(ctx, `UPDATE device SET is_authenticated = $3, action_needed = NOT $3, actions = $4,
			connection_status = 'connected', synced_at = `+d.syncedAt+` WHERE kind = $1 AND id = $2`,
			d.kind, d.id, d.authed, d.actions)
		require.NoError(t, err)
	}

	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	ins := func(args river.JobArgs) int64 {
		res, err := rc.Insert(ctx, args, nil)
		require.NoError(t, err)
		return res.Job.ID
	}
	// job creates a job in the state j says (see testdb.InsertJob).
	job := func(args river.JobArgs, j testdb.Job) int64 {
		t.Helper()
		return testdb.InsertJob(t, pool, args, nil, j).ID
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	devArgs := func(kind reauth.DeviceKind, id, org string) reauth.DeviceArgs {
		return reauth.DeviceArgs{OrgID: org, UserID: opsUser, DeviceKind: kind, DeviceID: id, Reason: "test"}
	}
	newSession := func(kind reauth.DeviceKind, dev string, job int64, n byte) int64 {
		var id int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
			id, err = session.Sessions{}.Create(ctx, nil, tx, session.New{NewSession: store.NewSession{
				DeviceKind: kind, DeviceID: dev, PoderoSessionID: fmt.Sprintf("5e000000-0000-4000-8000-0000000000%02x", n),
				AuthenticationURL: "https://app.podero.com/connect/" + strconv.Itoa(int(n)),
				LinkNonce:         []byte{n}, LinkHash: []byte{n, n}, Locale: "en", JobID: job,
				ExpiresAt: time.Now().Add(24 * time.Hour),
			}})
			return err
		})
		require.NoError(t, err)
		return id
	}

	// A request three days ago, outside a 24h window, that made a session
	// later superseded.
	now := time.Now()
	threeDaysAgo := now.Add(-72 * time.Hour)
	f.old = job(devArgs(reauth.Inverter, opsDev1, opsOrgA), testdb.Job{State: rivertype.JobStateCompleted, Attempt: 1,
		AttemptedAt: &threeDaysAgo, FinalizedAt: &threeDaysAgo, CreatedAt: &threeDaysAgo})
	f.ses0 = newSession(reauth.Inverter, opsDev1, f.old, 1)
	exec(`UPDATE auth_session SET created_at = now() - interval '3 days' WHERE id = $1`, f.ses0)

	// d1: request done, session sent, opened and completed.
	f.req1 = job(devArgs(reauth.Inverter, opsDev1, opsOrgA), testdb.Job{State: rivertype.JobStateCompleted, Attempt: 1})
	f.ses1 = newSession(reauth.Inverter, opsDev1, f.req1, 2)
	f.notify1 = job(reauth.NotifyArgs{SessionID: f.ses1, Step: 0}, testdb.Job{State: rivertype.JobStateCompleted, Attempt: 1})
	n, err := store.BeginNotification(ctx, pool, f.ses1, 0, "email", "user@example.com", fmt.Sprintf("reauth-%d-0", f.ses1))
	require.NoError(t, err)
	require.NoError(t, store.FinishNotification(ctx, pool, n.ID, store.NotificationSent, ""))
	_, err = store.MarkOpened(ctx, pool, f.ses1)
	require.NoError(t, err)
	ok, err := store.FinishSession(ctx, pool, f.ses1, store.SessionCompleted, []string{store.SessionOpen})
	require.NoError(t, err)
	require.True(t, ok)

	// d2: request discarded after two attempts, with riverlog's logs.
	f.req2 = job(devArgs(reauth.ElectricVehicle, opsDev2, opsOrgA), testdb.Job{
		State: rivertype.JobStateDiscarded, Attempt: 2, MaxAttempts: 2, AttemptedBy: []string{"worker-a", "worker-b"},
		Errors: []rivertype.AttemptError{
			{At: now.Add(-time.Minute), Attempt: 1, Error: "podero: 503 Service Unavailable", Trace: "goroutine 1"},
			{At: now, Attempt: 2, Error: "podero: timeout\nafter 15s"},
		},
		Metadata: map[string]any{"river:log": []map[string]any{{"attempt": 1, "log": "calling podero\n"}, {"attempt": 2, "log": "calling podero again\n"}}, "note": "x"},
	})

	// d3: request waiting for its retry; a session completed elsewhere.
	inAnHour := now.Add(time.Hour)
	f.req3 = job(devArgs(reauth.Wallbox, opsDev3, opsOrgB), testdb.Job{State: rivertype.JobStateRetryable, Attempt: 1, ScheduledAt: &inAnHour,
		Errors: []rivertype.AttemptError{{At: now, Attempt: 1, Error: "podero: 500"}}})
	f.ses3 = newSession(reauth.Wallbox, opsDev3, 0, 3)
	exec(`UPDATE auth_session SET state = 'completed_elsewhere', finished_at = now() WHERE id = $1`, f.ses3)

	f.sync = ins(reauth.SyncArgs{})
	return f
}

// opsRun runs the reauth command line with only DATABASE_URL set.
func opsRun(t *testing.T, url string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}
	err = run(context.Background(), args, getenv, &out, &errOut)
	return out.String(), errOut.String(), err
}

// opsJSON runs a command with --json and decodes its output into v.
func opsJSON(t *testing.T, url string, v any, args ...string) {
	t.Helper()
	out, errOut, err := opsRun(t, url, append(args, "--json")...)
	require.NoError(t, err, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), v), out)
}

func (f *opsFixture) jobState(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&s))
	return s
}

type jobsListOut struct {
	Jobs       []ops.Job `json:"jobs"`
	NextCursor *string   `json:"next_cursor"`
}

func opsJobIDs(jobs []ops.Job) []int64 {
	ids := []int64{}
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

func TestOpsJobsList(t *testing.T) {
	t.Parallel()
	f := newOpsFixture(t)

	out, _, err := opsRun(t, f.url, "jobs", "list")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 7, out) // header and six jobs
	require.Regexp(t, `^ID +STATE +KIND +QUEUE +ATTEMPT +CREATED +SUBJECT +LAST ERROR$`, lines[0])
	require.Regexp(t, `^`+strconv.FormatInt(f.sync, 10)+` +available +reauth_sync +maintenance +0/25 `, lines[1])
	require.Contains(t, out, "electric_vehicle "+opsDev2)
	require.Contains(t, out, fmt.Sprintf("session %d step 0", f.ses1))
	require.Regexp(t, strconv.FormatInt(f.req2, 10)+` +discarded +reauth_device +podero +2/2 .* podero: timeout after 15s\n`, out)
	require.NotContains(t, out, "next page")

	var all jobsListOut
	opsJSON(t, f.url, &all, "jobs", "list")
	require.Equal(t, []int64{f.sync, f.req3, f.req2, f.notify1, f.req1, f.old}, opsJobIDs(all.Jobs), "newest first")
	require.Nil(t, all.NextCursor)
	require.Equal(t, "podero: timeout\nafter 15s", all.Jobs[2].LastError)
	require.JSONEq(t, `{"org_id":"`+opsOrgA+`","user_id":"`+opsUser+`","device_kind":"electric_vehicle","device_id":"`+opsDev2+`","reason":"test"}`,
		string(all.Jobs[2].Args))

	for _, tc := range []struct {
		args []string
		want []int64
	}{
		{[]string{"--state", "discarded,retryable"}, []int64{f.req3, f.req2}},
		{[]string{"--kind", "reauth_notify"}, []int64{f.notify1}},
		{[]string{"--queue", "maintenance"}, []int64{f.sync}},
		{[]string{"--kind", "reauth_device", "--state", "completed"}, []int64{f.req1, f.old}},
		// The device's requests and the messages of its sessions.
		{[]string{"--device", strings.ToUpper(opsDev1)}, []int64{f.notify1, f.req1, f.old}},
		{[]string{"--device", opsDev2}, []int64{f.req2}},
		{[]string{"--since", "24h", "--kind", "reauth_device"}, []int64{f.req3, f.req2, f.req1}},
		{[]string{"--since", time.Now().Add(-4 * 24 * time.Hour).UTC().Format(time.RFC3339), "--device", opsDev1}, []int64{f.notify1, f.req1, f.old}},
		{[]string{"--since", "2d", "--device", opsDev1}, []int64{f.notify1, f.req1}},
	} {
		var got jobsListOut
		opsJSON(t, f.url, &got, append([]string{"jobs", "list"}, tc.args...)...)
		require.Equal(t, tc.want, opsJobIDs(got.Jobs), "%v", tc.args)
	}

	out, _, err = opsRun(t, f.url, "jobs", "list", "--kind", "nothing_like_it")
	require.NoError(t, err)
	require.Equal(t, "no jobs match\n", out)

	// Paging: two at a time through all six, with the cursor each page prints.
	var paged []int64
	var cursor string
	for page := 0; ; page++ {
		require.Less(t, page, 4)
		args := []string{"jobs", "list", "--limit", "2"}
		if cursor != "" {
			args = append(args, "--after", cursor)
		}
		var got jobsListOut
		opsJSON(t, f.url, &got, args...)
		paged = append(paged, opsJobIDs(got.Jobs)...)
		if got.NextCursor == nil {
			break
		}
		cursor = *got.NextCursor
	}
	require.Equal(t, opsJobIDs(all.Jobs), paged)
	// A full last page offers no next page; the text form prints the cursor.
	out, _, err = opsRun(t, f.url, "jobs", "list", "--limit", "5")
	require.NoError(t, err)
	require.Regexp(t, `\nnext page: --after \S+\n$`, out)
	cursor = strings.TrimPrefix(strings.TrimSpace(out[strings.LastIndex(out, "next page: "):]), "next page: --after ")
	var last jobsListOut
	opsJSON(t, f.url, &last, "jobs", "list", "--limit", "5", "--after", cursor)
	require.Equal(t, []int64{f.old}, opsJobIDs(last.Jobs))

	for _, bad := range [][]string{
		{"--state", "finished"},
		{"--device", "not-a-uuid"},
		{"--since", "yesterday"},
		{"--limit", "0"},
		{"--after", "%%%"},
		{"--frobnicate"},
		{"extra"},
	} {
		_, errOut, err := opsRun(t, f.url, append([]string{"jobs", "list"}, bad...)...)
		require.ErrorIs(t, err, errUsage, "%v", bad)
		require.NotEmpty(t, errOut, "%v", bad)
	}
}

func TestOpsJobsShow(t *testing.T) {
	t.Parallel()
	f := newOpsFixture(t)
	id := strconv.FormatInt(f.req2, 10)

	out, _, err := opsRun(t, f.url, "jobs", "show", id)
	require.NoError(t, err)
	for _, re := range []string{
		`(?m)^job +` + id + `$`,
		`(?m)^kind +reauth_device$`,
		`(?m)^queue +podero$`,
		`(?m)^state +discarded$`,
		`(?m)^attempt +2/2$`,
		`(?m)^finalized +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$`,
		`(?m)^attempted by +worker-a, worker-b$`,
		`(?m)^metadata +\{"note":"x"\}$`,
		`"device_kind": "electric_vehicle"`,
		`errors \(2\):\n  attempt 1 at [^\n]+:\n    podero: 503 Service Unavailable\n  attempt 2 at [^\n]+:\n    podero: timeout\n    after 15s\n`,
		`logs:\n  attempt 1:\n    calling podero\n  attempt 2:\n    calling podero again\n`,
	} {
		require.Regexp(t, re, out)
	}

	var j ops.JobDetail
	opsJSON(t, f.url, &j, "jobs", "show", id)
	require.Equal(t, f.req2, j.ID)
	require.Equal(t, "discarded", j.State)
	require.Equal(t, []string{"worker-a", "worker-b"}, j.AttemptedBy)
	require.Len(t, j.Errors, 2)
	require.Equal(t, 1, j.Errors[0].Attempt)
	require.Equal(t, "goroutine 1", j.Errors[0].Trace)
	require.Equal(t, []ops.AttemptLog{{Attempt: 1, Log: "calling podero\n"}, {Attempt: 2, Log: "calling podero again\n"}}, j.Logs)
	require.NotNil(t, j.FinalizedAt)

	// Flags may follow the ID.
	_, _, err = opsRun(t, f.url, "jobs", "show", "--json", strconv.FormatInt(f.sync, 10))
	require.NoError(t, err)

	_, _, err = opsRun(t, f.url, "jobs", "show", "999999")
	require.EqualError(t, err, "job 999999 not found")
	for _, bad := range [][]string{{}, {"abc"}, {"1", "2"}, {"-5"}} {
		_, _, err = opsRun(t, f.url, append([]string{"jobs", "show"}, bad...)...)
		require.ErrorIs(t, err, errUsage, "%v", bad)
	}
}

type actionOut struct {
	Results []ops.Action `json:"results"`
	Done    int          `json:"done"`
	Skipped int          `json:"skipped"`
	Failed  int          `json:"failed"`
}

func TestOpsJobsRetryCancelByID(t *testing.T) {
	t.Parallel()
	f := newOpsFixture(t)
	s := func(id int64) string { return strconv.FormatInt(id, 10) }

	out, _, err := opsRun(t, f.url, "jobs", "retry", s(f.req2))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("job %d: retried, now available\nretried 1, skipped 0, failed 0\n", f.req2), out)
	require.Equal(t, "available", f.jobState(t, f.req2))

	// A job that does not exist fails the command; the others are still done.
	out, _, err = opsRun(t, f.url, "jobs", "cancel", s(f.req2), "999999", s(f.req1))
	require.EqualError(t, err, "1 of 3 jobs could not be cancelled")
	require.False(t, errors.Is(err, errUsage))
	require.Equal(t, fmt.Sprintf("job %d: cancelled\njob 999999: not found\njob %d: skipped: already completed\ncancelled 1, skipped 1, failed 1\n", f.req2, f.req1), out)
	require.Equal(t, "cancelled", f.jobState(t, f.req2))

	var rep actionOut
	opsJSON(t, f.url, &rep, "jobs", "cancel", s(f.req3))
	require.Equal(t, actionOut{Results: []ops.Action{{ID: f.req3, Outcome: "cancelled", State: "cancelled", Message: "cancelled"}}, Done: 1}, rep)

	// Retrying an old request of a device that has another pending is
	// skipped, not an error: River's unique rule refuses it.
	testdb.SetJobState(t, f.pool, f.req2, rivertype.JobStateAvailable)
	dup := opsInsertJob(t, f.pool, reauth.DeviceArgs{OrgID: opsOrgA, UserID: opsUser, DeviceKind: reauth.ElectricVehicle, DeviceID: opsDev2})
	require.Equal(t, f.req2, dup, "the pending request is the duplicate")
	testdb.SetJobState(t, f.pool, f.req2, rivertype.JobStateDiscarded)
	newer := opsInsertJob(t, f.pool, reauth.DeviceArgs{OrgID: opsOrgA, UserID: opsUser, DeviceKind: reauth.ElectricVehicle, DeviceID: opsDev2})
	require.NotEqual(t, f.req2, newer)
	out, _, err = opsRun(t, f.url, "jobs", "retry", s(f.req2))
	require.NoError(t, err)
	require.Contains(t, out, fmt.Sprintf("job %d: skipped: another job with the same unique args (the same device) is pending\n", f.req2))
	require.Equal(t, "discarded", f.jobState(t, f.req2))

	for _, bad := range [][]string{{}, {"x"}, {"1", "--state", "discarded"}, {"--kind", "reauth_device"}, {"--state", "bogus"}} {
		_, errOut, err := opsRun(t, f.url, append([]string{"jobs", "retry"}, bad...)...)
		require.ErrorIs(t, err, errUsage, "%v", bad)
		require.NotEmpty(t, errOut)
	}
}

func opsInsertJob(t *testing.T, pool *pgxpool.Pool, args river.JobArgs) int64 {
	t.Helper()
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	res, err := rc.Insert(context.Background(), args, nil)
	require.NoError(t, err)
	return res.Job.ID
}

// Not parallel: replaces opsStdin.
func TestOpsJobsRetryByFilter(t *testing.T) {
	f := newOpsFixture(t)
	saved := opsStdin
	t.Cleanup(func() { opsStdin = saved })
	withStdin := func(s string) { opsStdin = strings.NewReader(s) }
	filter := []string{"jobs", "retry", "--state", "discarded,retryable", "--kind", "reauth_device"}

	// No answer on stdin: refused, exit 2, nothing changed.
	withStdin("")
	_, errOut, err := opsRun(t, f.url, filter...)
	require.ErrorIs(t, err, errUsage)
	require.Contains(t, errOut, "retry 2 jobs? [y/N]")
	require.Contains(t, errOut, "2 jobs match, but there is no answer on stdin; nothing changed. Pass --yes to confirm.")
	require.Equal(t, "discarded", f.jobState(t, f.req2))

	// Declined: exit 1, nothing changed.
	withStdin("n\n")
	_, _, err = opsRun(t, f.url, filter...)
	require.EqualError(t, err, "aborted: no job was retried")
	require.Equal(t, "discarded", f.jobState(t, f.req2))
	require.Equal(t, "retryable", f.jobState(t, f.req3))

	// Confirmed.
	withStdin("y\n")
	out, errOut, err := opsRun(t, f.url, filter...)
	require.NoError(t, err)
	require.Contains(t, errOut, "retry 2 jobs? [y/N]")
	require.Equal(t, "retried 2, skipped 0, failed 0\n", out)
	require.Equal(t, "available", f.jobState(t, f.req2))
	require.Equal(t, "available", f.jobState(t, f.req3))

	// Nothing left to match.
	out, _, err = opsRun(t, f.url, filter...)
	require.NoError(t, err)
	require.Equal(t, "no jobs match\n", out)

	// --yes asks nothing; cancel by filter, JSON.
	withStdin("")
	var rep actionOut
	opsJSON(t, f.url, &rep, "jobs", "cancel", "--state", "available", "--device", opsDev3, "--yes")
	require.Equal(t, 1, rep.Done)
	require.Equal(t, f.req3, rep.Results[0].ID)
	require.Equal(t, "cancelled", f.jobState(t, f.req3))
	require.Equal(t, "available", f.jobState(t, f.req2))
}

// A real worker with riverlog: the job fails, `jobs show` has its error and
// its log, `jobs retry` runs it again and it completes.
func TestOpsJobsRetryRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	fail := make(chan bool, 2)
	fail <- true
	fail <- false
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[opsFlakyArgs]) error {
		riverlog.Logger(ctx).InfoContext(ctx, "calling the flaky thing")
		if <-fail {
			return errors.New("flaky thing is down")
		}
		return nil
	}))
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:           workers,
		FetchPollInterval: 100 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		Middleware: []rivertype.Middleware{riverlog.NewMiddleware(func(w io.Writer) slog.Handler {
			return slog.NewTextHandler(w, nil)
		}, nil)},
	})
	require.NoError(t, err)
	events, cancel := rc.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancel()
	require.NoError(t, rc.Start(ctx))
	t.Cleanup(func() { _ = rc.Stop(context.Background()) })

	res, err := rc.Insert(ctx, opsFlakyArgs{}, &river.InsertOpts{MaxAttempts: 1})
	require.NoError(t, err)
	id := strconv.FormatInt(res.Job.ID, 10)
	opsWaitEvent(t, events, river.EventKindJobFailed)

	out, _, err := opsRun(t, url, "jobs", "show", id)
	require.NoError(t, err)
	require.Regexp(t, `(?m)^state +discarded$`, out)
	require.Regexp(t, `attempt 1 at [^\n]+:\n    flaky thing is down\n`, out)
	require.Regexp(t, `logs:\n  attempt 1:\n    .*msg="calling the flaky thing"`, out)

	out, _, err = opsRun(t, url, "jobs", "retry", id)
	require.NoError(t, err)
	require.Contains(t, out, "job "+id+": retried, now available")
	opsWaitEvent(t, events, river.EventKindJobCompleted)

	var j ops.JobDetail
	opsJSON(t, url, &j, "jobs", "show", id)
	require.Equal(t, "completed", j.State)
	require.Equal(t, 2, j.Attempt)
	require.Len(t, j.Logs, 2)
	require.Len(t, j.Errors, 1)
}

type opsFlakyArgs struct{}

func (opsFlakyArgs) Kind() string { return "ops_test_flaky" }

func opsWaitEvent(t *testing.T, events <-chan *river.Event, kind river.EventKind) {
	t.Helper()
	select {
	case ev := <-events:
		require.Equal(t, kind, ev.Kind)
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s event", kind)
	}
}

func TestOpsDevicesShow(t *testing.T) {
	t.Parallel()
	f := newOpsFixture(t)
	_, err := f.pool.Exec(context.Background(), `UPDATE device SET manufacturer = 'SMA', model = 'Sunny Boy 5.0',
		lifecycle_state = 'error', lifecycle_error = '{"code": "reauthentication_required"}',
		external_device_id = '3008123456', owner_email = 'owner@example.com' WHERE id = $1`, opsDev1)
	require.NoError(t, err)

	out, _, err := opsRun(t, f.url, "devices", "show", "inverter", opsDev1)
	require.NoError(t, err)
	for _, re := range []string{
		`(?m)^device +inverter ` + opsDev1 + `$`,
		`(?m)^make +SMA Sunny Boy 5\.0$`,
		`(?m)^lifecycle +error$`,
		`(?m)^lifecycle error +\{"code": "reauthentication_required"\}$`,
		`(?m)^external ID +3008123456$`,
		`(?m)^owner email +owner@example\.com$`,
		`(?m)^org +` + opsOrgA + `$`,
		`(?m)^authenticated +yes$`,
		`(?m)^needs reauth +no$`,
		`(?m)^synced +\d{4}-`,
		`(?m)^gone +-$`,
		fmt.Sprintf(`sessions \(2\):\n +ID +STATE .*\n +%d +completed .*\n +%d +superseded `, f.ses1, f.ses0),
		fmt.Sprintf(`messages \(1\):\n +SESSION .*\n +%d +0 +email +sent +1 .* user@example\.com +-\n`, f.ses1),
		fmt.Sprintf(`jobs \(3\):\n +ID .*\n +%d +reauth_notify +completed .*\n +%d +reauth_device +completed .*\n +%d +reauth_device `, f.notify1, f.req1, f.old),
	} {
		require.Regexp(t, re, out)
	}

	var d ops.Device
	opsJSON(t, f.url, &d, "devices", "show", "electric_vehicle", strings.ToUpper(opsDev2))
	require.Equal(t, opsDev2, d.ID)
	require.True(t, d.Known)
	require.True(t, d.NeedsReauth)
	require.False(t, *d.IsAuthenticated)
	require.JSONEq(t, `[{"code": "reauthenticate"}]`, string(d.Actions))
	require.Nil(t, d.Manufacturer, "never synced with a make")
	require.Equal(t, "null", string(d.LifecycleError))
	require.Empty(t, d.Sessions)
	require.Len(t, d.Jobs, 1)
	require.Equal(t, "podero: timeout\nafter 15s", d.Jobs[0].LastError)

	_, _, err = opsRun(t, f.url, "devices", "show", "wallbox", "d9000000-0000-4000-8000-000000000009")
	require.EqualError(t, err, "device wallbox d9000000-0000-4000-8000-000000000009 not found (no device row and no request for it)")
	for _, bad := range [][]string{{}, {"inverter"}, {"toaster", opsDev1}, {"inverter", "123"}} {
		_, _, err = opsRun(t, f.url, append([]string{"devices", "show"}, bad...)...)
		require.ErrorIs(t, err, errUsage, "%v", bad)
	}
}

func TestOpsSessionsList(t *testing.T) {
	t.Parallel()
	f := newOpsFixture(t)

	out, _, err := opsRun(t, f.url, "sessions", "list")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	require.Regexp(t, `^ID +STATE +DEVICE +ORG +CREATED +EXPIRES +OPENED +FINISHED +MESSAGE$`, lines[0])
	require.Regexp(t, fmt.Sprintf(`^%d +completed_elsewhere +wallbox %s +%s `, f.ses3, opsDev3, opsOrgB), lines[1])
	require.Regexp(t, fmt.Sprintf(`^%d +completed +inverter %s .* sent \d{4}-`, f.ses1, opsDev1), lines[2])

	var got struct {
		Sessions  []store.SessionListItem `json:"sessions"`
		NextAfter *int64                  `json:"next_after"`
	}
	opsJSON(t, f.url, &got, "sessions", "list", "--state", "superseded")
	require.Len(t, got.Sessions, 1)
	require.Equal(t, f.ses0, got.Sessions[0].ID)
	require.Nil(t, got.NextAfter)

	opsJSON(t, f.url, &got, "sessions", "list", "--limit", "2")
	require.Len(t, got.Sessions, 2)
	require.Equal(t, f.ses1, *got.NextAfter)
	require.Equal(t, "sent", got.Sessions[1].MessageState)
	opsJSON(t, f.url, &got, "sessions", "list", "--limit", "2", "--after", strconv.FormatInt(*got.NextAfter, 10))
	require.Len(t, got.Sessions, 1)
	require.Equal(t, f.ses0, got.Sessions[0].ID)

	out, _, err = opsRun(t, f.url, "sessions", "list", "--state", "open")
	require.NoError(t, err)
	require.Equal(t, "no sessions match\n", out)
	_, _, err = opsRun(t, f.url, "sessions", "list", "--state", "closed")
	require.ErrorIs(t, err, errUsage)
}

func TestOpsQueues(t *testing.T) {
	t.Parallel()
	f := newOpsFixture(t)
	ctx := context.Background()

	out, _, err := opsRun(t, f.url, "queues", "list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^NAME +PAUSED +AVAILABLE +SCHEDULED +RUNNING +RETRYABLE +DISCARDED +CANCELLED$`, out)
	require.Regexp(t, `(?m)^maintenance +no +1 +0 +0 +0 +0 +0$`, out)
	require.Regexp(t, `(?m)^podero +no +0 +0 +0 +1 +1 +0$`, out)

	// River knows a queue once a worker has started on it.
	_, _, err = opsRun(t, f.url, "queues", "pause", "podero")
	require.ErrorContains(t, err, `queue "podero" not found`)
	_, err = f.pool.Exec(ctx, `INSERT INTO river_queue (name) VALUES ('podero'), ('notify')`)
	require.NoError(t, err)

	out, _, err = opsRun(t, f.url, "queues", "pause", "podero")
	require.NoError(t, err)
	require.Equal(t, "paused queue podero\n", out)
	var pausedAt *time.Time
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT paused_at FROM river_queue WHERE name = 'podero'`).Scan(&pausedAt))
	require.NotNil(t, pausedAt)

	var list struct {
		Queues []ops.Queue `json:"queues"`
	}
	opsJSON(t, f.url, &list, "queues", "list")
	paused := map[string]bool{}
	for _, q := range list.Queues {
		paused[q.Name] = q.Paused
	}
	require.Equal(t, map[string]bool{"maintenance": false, "notify": false, "podero": true}, paused)
	out, _, err = opsRun(t, f.url, "queues", "list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^podero +since \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +0 +0 +0 +1 +1 +0$`, out)

	var res struct {
		Queue  string `json:"queue"`
		Paused bool   `json:"paused"`
	}
	opsJSON(t, f.url, &res, "queues", "resume", "podero")
	require.Equal(t, "podero", res.Queue)
	require.False(t, res.Paused)
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT paused_at FROM river_queue WHERE name = 'podero'`).Scan(&pausedAt))
	require.Nil(t, pausedAt)

	out, _, err = opsRun(t, f.url, "queues", "pause", "*")
	require.NoError(t, err)
	require.Equal(t, "paused every queue\n", out)

	for _, bad := range [][]string{{"pause"}, {"pause", "a", "b"}, {"drain", "podero"}} {
		_, _, err = opsRun(t, f.url, append([]string{"queues"}, bad...)...)
		require.ErrorIs(t, err, errUsage, "%v", bad)
	}
}

func TestOpsStats(t *testing.T) {
	t.Parallel()
	f := newOpsFixture(t)

	var s ops.Stats
	opsJSON(t, f.url, &s, "stats")
	require.Equal(t, "24h0m0s", s.Window)
	// completed_elsewhere is new in the JSON: the /ops page showed it already.
	require.Equal(t, []store.FunnelRow{
		{OrgID: opsOrgA, DeviceKind: "electric_vehicle", FunnelCounts: store.FunnelCounts{Requested: 1}},
		{OrgID: opsOrgA, DeviceKind: "inverter", FunnelCounts: store.FunnelCounts{Requested: 1, LinkCreated: 1, Sent: 1, Opened: 1, Completed: 1}},
		{OrgID: opsOrgB, DeviceKind: "wallbox", FunnelCounts: store.FunnelCounts{Requested: 1, LinkCreated: 1, Completed: 1, CompletedElsewhere: 1, Verified: 1}},
	}, s.Funnel)
	require.Equal(t, store.FunnelRow{OrgID: "total", DeviceKind: "all", FunnelCounts: store.FunnelCounts{Requested: 3, LinkCreated: 2, Sent: 1, Opened: 1, Completed: 2, CompletedElsewhere: 1, Verified: 1}}, s.Total)
	depth := map[string]store.OpsQueue{}
	for _, q := range s.Queues {
		depth[q.Name] = q.OpsQueue
	}
	require.EqualValues(t, 1, depth["podero"].Retryable)
	require.EqualValues(t, 1, depth["maintenance"].Available)

	// A wider window takes in the request and session of three days ago.
	opsJSON(t, f.url, &s, "stats", "--window", "7d")
	require.Equal(t, store.FunnelRow{OrgID: "total", DeviceKind: "all", FunnelCounts: store.FunnelCounts{Requested: 4, LinkCreated: 3, Sent: 1, Opened: 1, Completed: 2, CompletedElsewhere: 1, Verified: 1}}, s.Total)

	out, _, err := opsRun(t, f.url, "stats", "--window", "96h")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^  QUEUE +PAUSED +AVAILABLE +SCHEDULED +RUNNING +RETRYABLE$`, out)
	require.Regexp(t, `(?m)^  podero +no +0 +0 +0 +1$`, out)
	require.Contains(t, out, "funnel, last 96h (since ")
	require.Regexp(t, `(?m)^  ORG +KIND +REQUESTED +LINK CREATED +SENT +OPENED +COMPLETED$`, out)
	require.Regexp(t, `(?m)^  `+opsOrgA+` +inverter +2 +2 +1 +1 +1 \(50%\)$`, out)
	require.Regexp(t, `(?m)^  total +all +4 +3 +1 +1 +2 \(66%\)$`, out)

	_, _, err = opsRun(t, f.url, "stats", "--window", "0s")
	require.ErrorIs(t, err, errUsage)

	// The budget: calls reserved on the shared limiter, by purpose, and the
	// waiting requests (d3's retryable one) with the time they take.
	require.EqualValues(t, 1, s.Budget.Waiting)
	require.Nil(t, s.Budget.DrainSeconds, "a request waits but gets no calls")
	for _, p := range []string{"sweep", "sweep", "sync"} {
		_, _, err := store.ReservePoderoCall(context.Background(), f.pool, store.Reservation{Interval: time.Millisecond, Burst: 10, MaxWait: time.Hour, Purpose: p})
		require.NoError(t, err)
	}
	opsJSON(t, f.url, &s, "stats")
	require.InDelta(t, 2/store.RateWindow.Seconds(), s.Budget.Rates["sweep"], 0.001)
	require.NotNil(t, s.Budget.DrainSeconds)
	require.InDelta(t, 1/(2/store.RateWindow.Seconds()), *s.Budget.DrainSeconds, 3)
	require.EqualValues(t, 10, s.Budget.RateLimit, "PODERO_RATE_LIMIT's default")
	out, _, err = opsRun(t, f.url, "stats")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^  sweep +0\.03$`, out)
	require.Regexp(t, `(?m)^  total +0\.05 of 10 \(PODERO_RATE_LIMIT\)$`, out)
	require.Regexp(t, `(?m)^  requests waiting: 1, drained in about 3\ds at 0\.03 calls/s$`, out)
}

func TestOpsSyncSweepNow(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)

	for _, tc := range []struct{ cmd, kind string }{{"sync", "reauth_sync"}, {"sweep", "reauth_sweep"}} {
		_, errOut, err := opsRun(t, url, tc.cmd)
		require.ErrorIs(t, err, errUsage)
		require.Contains(t, errOut, "Usage: reauth "+tc.cmd+" --now")

		out, _, err := opsRun(t, url, tc.cmd, "--now")
		require.NoError(t, err)
		require.Regexp(t, `^enqueued: job \d+ \(`+tc.kind+`\)\n$`, out)
		id, err := strconv.ParseInt(strings.Fields(out)[2], 10, 64)
		require.NoError(t, err)

		out, _, err = opsRun(t, url, tc.cmd, "--now")
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("duplicate: already queued (job %d, available)\n", id), out)

		var res reauth.Result
		opsJSON(t, url, &res, tc.cmd, "--now")
		require.Equal(t, reauth.Result{JobID: id, Duplicate: true}, res)

		var list jobsListOut
		opsJSON(t, url, &list, "jobs", "list", "--kind", tc.kind)
		require.Len(t, list.Jobs, 1)
		require.Equal(t, "maintenance", list.Jobs[0].Queue)
		require.Equal(t, reauth.MaxAttemptsDefault, list.Jobs[0].MaxAttempts, "MAX_ATTEMPTS, not River's 25")
	}
}

func TestOpsUsage(t *testing.T) {
	t.Parallel()
	// Help needs no database.
	for _, args := range [][]string{
		{"jobs", "-h"}, {"jobs", "help"}, {"jobs", "list", "-h"}, {"jobs", "show", "-h"}, {"jobs", "retry", "-h"},
		{"jobs", "cancel", "--help"}, {"devices", "-h"}, {"devices", "show", "-h"}, {"sessions", "list", "-h"},
		{"queues", "-h"}, {"queues", "list", "-h"}, {"queues", "pause", "-h"}, {"queues", "resume", "-h"},
		{"stats", "-h"}, {"sync", "-h"}, {"sweep", "-h"},
	} {
		out, errOut, err := opsRun(t, "", args...)
		require.NoError(t, err, "%v", args)
		require.Contains(t, out+errOut, "Usage: reauth "+args[0], "%v", args)
	}
	for _, args := range [][]string{{"jobs"}, {"jobs", "frob"}, {"devices"}, {"sessions", "show"}, {"queues"}} {
		_, errOut, err := opsRun(t, "", args...)
		require.ErrorIs(t, err, errUsage, "%v", args)
		require.Contains(t, errOut, "Usage: reauth "+args[0], "%v", args)
	}
	// Without DATABASE_URL: a failure (exit 1) that names it.
	_, _, err := opsRun(t, "", "jobs", "list")
	require.EqualError(t, err, "missing required environment variables: DATABASE_URL")
	// The top-level usage lists the commands.
	out, _, err := opsRun(t, "", "help")
	require.NoError(t, err)
	for _, c := range []string{"jobs", "devices", "sessions", "queues", "stats", "sync", "sweep"} {
		require.Regexp(t, `(?m)^  `+c+` `, out)
	}
}
