package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
)

// jobStates are River's job states, in the order River documents them.
var jobStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted,
	rivertype.JobStateDiscarded, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// maxDeviceJobs is how many of a device's newest jobs --device considers.
const maxDeviceJobs = 10000

// jobFilterFlags are the flags that choose jobs.
type jobFilterFlags struct {
	state, kind, queue, device, since string
}

func (f *jobFilterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.state, "state", "", "only jobs in these `states` (comma-separated): available, scheduled, running,\nretryable, pending, completed, discarded, cancelled")
	fs.StringVar(&f.kind, "kind", "", "only jobs of these `kinds` (comma-separated), e.g. reauth_device, reauth_notify")
	fs.StringVar(&f.queue, "queue", "", "only jobs on these `queues` (comma-separated): podero, notify, maintenance")
	fs.StringVar(&f.device, "device", "", "only the jobs of the device with this Podero `UUID` (its requests and its messages;\nits newest 10000)")
	fs.StringVar(&f.since, "since", "", "only jobs created after this: a `duration` back from now (90m, 24h, 7d) or an RFC 3339 time")
}

func (f *jobFilterFlags) set() bool {
	return f.state != "" || f.kind != "" || f.queue != "" || f.device != "" || f.since != ""
}

// jobFilter is a checked jobFilterFlags.
type jobFilter struct {
	states        []rivertype.JobState
	kinds, queues []string
	device        string
	since         time.Time
}

// opsSplitList splits a comma-separated flag value.
func opsSplitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// check validates the flags; the error says what is wrong.
func (f *jobFilterFlags) check(now time.Time) (jobFilter, error) {
	var jf jobFilter
	for _, s := range opsSplitList(f.state) {
		st := rivertype.JobState(strings.ToLower(s))
		if !slices.Contains(jobStates, st) {
			return jf, fmt.Errorf("unknown state %q: use available, scheduled, running, retryable, pending, completed, discarded or cancelled", s)
		}
		jf.states = append(jf.states, st)
	}
	jf.kinds, jf.queues = opsSplitList(f.kind), opsSplitList(f.queue)
	if f.device != "" {
		if !reauth.IsUUID(f.device) {
			return jf, fmt.Errorf("--device must be a UUID, not %q", f.device)
		}
		jf.device = strings.ToLower(f.device)
	}
	if f.since != "" {
		t, err := opsParseSince(f.since, now)
		if err != nil {
			return jf, fmt.Errorf("--since: %w", err)
		}
		jf.since = t
	}
	return jf, nil
}

// params turns the filter into River list parameters, newest first.
func (jf jobFilter) params(ctx context.Context, pool *pgxpool.Pool) (*river.JobListParams, error) {
	p := river.NewJobListParams().OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if len(jf.states) > 0 {
		p = p.States(jf.states...)
	}
	if len(jf.kinds) > 0 {
		p = p.Kinds(jf.kinds...)
	}
	if len(jf.queues) > 0 {
		p = p.Queues(jf.queues...)
	}
	if !jf.since.IsZero() {
		p = p.Where("created_at >= @reauth_since", river.NamedArgs{"reauth_since": jf.since})
	}
	if jf.device != "" {
		// The device's jobs by ID: a few index lookups, where a filter on
		// args could have Postgres walk river_job backwards by id.
		ids, err := store.DeviceJobIDs(ctx, pool, jf.device, maxDeviceJobs)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return p.Where("false"), nil
		}
		p = p.IDs(ids...)
	}
	return p, nil
}

// jobJSON is a job in --json output.
type jobJSON struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	Queue       string          `json:"queue"`
	State       string          `json:"state"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	Priority    int             `json:"priority"`
	Tags        []string        `json:"tags"`
	Args        json.RawMessage `json:"args"`
	CreatedAt   time.Time       `json:"created_at"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	AttemptedAt *time.Time      `json:"attempted_at"`
	FinalizedAt *time.Time      `json:"finalized_at"`
	LastError   string          `json:"last_error,omitempty"`
}

// jobDetailJSON is a job in `jobs show --json`.
type jobDetailJSON struct {
	jobJSON
	AttemptedBy []string        `json:"attempted_by"`
	Metadata    json.RawMessage `json:"metadata"`
	Errors      []attemptError  `json:"errors"`
	Logs        []attemptLog    `json:"logs"`
}

type attemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
	Trace   string    `json:"trace,omitempty"`
}

// attemptLog is what riverlog keeps per attempt in the job's metadata
// under "river:log".
type attemptLog struct {
	Attempt int    `json:"attempt"`
	Log     string `json:"log"`
}

func rawJSON(b []byte) json.RawMessage {
	if !json.Valid(b) {
		s, _ := json.Marshal(string(b))
		return s
	}
	return b
}

func toJobJSON(j *rivertype.JobRow) jobJSON {
	out := jobJSON{
		ID: j.ID, Kind: j.Kind, Queue: j.Queue, State: string(j.State), Attempt: j.Attempt,
		MaxAttempts: j.MaxAttempts, Priority: j.Priority, Tags: j.Tags, Args: rawJSON(j.EncodedArgs),
		CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt, AttemptedAt: j.AttemptedAt, FinalizedAt: j.FinalizedAt,
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if n := len(j.Errors); n > 0 {
		out.LastError = j.Errors[n-1].Error
	}
	return out
}

// jobLogs returns riverlog's per-attempt logs and the rest of the metadata.
func jobLogs(metadata []byte) ([]attemptLog, json.RawMessage) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(metadata, &m); err != nil {
		return nil, rawJSON(metadata)
	}
	var logs []attemptLog
	if raw, ok := m["river:log"]; ok {
		if json.Unmarshal(raw, &logs) == nil {
			delete(m, "river:log")
		}
	}
	rest, _ := json.Marshal(m)
	return logs, rest
}

// jobSubject says briefly what a job is about, from its args.
func jobSubject(j *rivertype.JobRow) string {
	var a map[string]any
	if json.Unmarshal(j.EncodedArgs, &a) == nil {
		kind, _ := a["device_kind"].(string)
		id, _ := a["device_id"].(string)
		if kind != "" || id != "" {
			return opsDash(kind) + " " + opsDash(id)
		}
		if sid, ok := a["session_id"].(float64); ok {
			step, _ := a["step"].(float64)
			return fmt.Sprintf("session %d step %d", int64(sid), int64(step))
		}
		if len(a) == 0 {
			return "-"
		}
	}
	return opsOneLine(string(j.EncodedArgs), 50)
}

func (o *ops) jobsList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jobs list", flag.ContinueOnError)
	var f jobFilterFlags
	f.register(fs)
	limit := fs.Int("limit", 50, "at most `N` jobs (1 to 10000)")
	after := fs.String("after", "", "continue after this `cursor` (printed at the end of the previous page)")
	asJSON := fs.Bool("json", false, "print JSON: {\"jobs\": [...], \"next_cursor\": ...}")
	pos, err := o.parseArgs(fs, args, "jobs list [flags]", `Lists River jobs, newest first. When there are more than --limit, the last
line is the cursor for the next page: pass it with --after.`)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) > 0 {
		return o.usageErr("jobs list", "unexpected argument %q", pos[0])
	}
	jf, err := f.check(time.Now())
	if err != nil {
		return o.usageErr("jobs list", "%v", err)
	}
	if *limit < 1 || *limit > 10000 {
		return o.usageErr("jobs list", "--limit must be between 1 and 10000")
	}
	var cursor *river.JobListCursor
	if *after != "" {
		cursor = new(river.JobListCursor)
		if err := cursor.UnmarshalText([]byte(*after)); err != nil {
			return o.usageErr("jobs list", "--after is not a cursor this command printed")
		}
	}

	pool, rc, err := o.river(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	params, err := jf.params(ctx, pool)
	if err != nil {
		return err
	}
	if cursor != nil {
		params = params.After(cursor)
	}
	res, err := rc.JobList(ctx, params.First(*limit))
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	var next string
	if len(res.Jobs) == *limit {
		// Only offer a next page that has something on it.
		more, err := rc.JobList(ctx, params.After(res.LastCursor).First(1))
		if err != nil {
			return fmt.Errorf("list jobs: %w", err)
		}
		if len(more.Jobs) > 0 {
			b, err := res.LastCursor.MarshalText()
			if err != nil {
				return err
			}
			next = string(b)
		}
	}

	if *asJSON {
		out := struct {
			Jobs       []jobJSON `json:"jobs"`
			NextCursor *string   `json:"next_cursor"`
		}{Jobs: []jobJSON{}}
		for _, j := range res.Jobs {
			out.Jobs = append(out.Jobs, toJobJSON(j))
		}
		if next != "" {
			out.NextCursor = &next
		}
		return o.printJSON(out)
	}
	if len(res.Jobs) == 0 {
		fmt.Fprintln(o.stdout, "no jobs match")
		return nil
	}
	w := opsTable(o.stdout)
	opsRow(w, "ID", "STATE", "KIND", "QUEUE", "ATTEMPT", "CREATED", "SUBJECT", "LAST ERROR")
	for _, j := range res.Jobs {
		lastErr := ""
		if n := len(j.Errors); n > 0 {
			lastErr = opsOneLine(j.Errors[n-1].Error, 60)
		}
		opsRow(w, strconv.FormatInt(j.ID, 10), string(j.State), j.Kind, j.Queue,
			fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), opsTime(j.CreatedAt), jobSubject(j), opsDash(lastErr))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(o.stdout, "next page: --after %s\n", next)
	}
	return nil
}

// parseJobIDs parses positional job IDs.
func parseJobIDs(pos []string) ([]int64, error) {
	var ids []int64
	for _, p := range pos {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("%q is not a job ID", p)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (o *ops) jobsShow(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jobs show", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the job as JSON")
	pos, err := o.parseArgs(fs, args, "jobs show ID [--json]", `Shows one job: kind, queue, state, attempts, args, metadata, times, every
error with its attempt, and the logs of each attempt (kept by riverlog).`)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) != 1 {
		return o.usageErr("jobs show", "give exactly one job ID")
	}
	ids, err := parseJobIDs(pos)
	if err != nil {
		return o.usageErr("jobs show", "%v", err)
	}
	pool, rc, err := o.river(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	j, err := rc.JobGet(ctx, ids[0])
	if errors.Is(err, rivertype.ErrNotFound) {
		return fmt.Errorf("job %d not found", ids[0])
	}
	if err != nil {
		return fmt.Errorf("get job %d: %w", ids[0], err)
	}
	logs, meta := jobLogs(j.Metadata)
	if *asJSON {
		out := jobDetailJSON{jobJSON: toJobJSON(j), AttemptedBy: j.AttemptedBy, Metadata: rawJSON(j.Metadata),
			Errors: []attemptError{}, Logs: logs}
		if out.AttemptedBy == nil {
			out.AttemptedBy = []string{}
		}
		if out.Logs == nil {
			out.Logs = []attemptLog{}
		}
		for _, e := range j.Errors {
			out.Errors = append(out.Errors, attemptError{Attempt: e.Attempt, At: e.At, Error: e.Error, Trace: e.Trace})
		}
		return o.printJSON(out)
	}
	return printJob(o.stdout, j, logs, meta)
}

func printJob(out io.Writer, j *rivertype.JobRow, logs []attemptLog, meta json.RawMessage) error {
	w := opsTable(out)
	opsRow(w, "job", strconv.FormatInt(j.ID, 10))
	opsRow(w, "kind", j.Kind)
	opsRow(w, "queue", j.Queue)
	opsRow(w, "state", string(j.State))
	opsRow(w, "attempt", fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts))
	opsRow(w, "priority", strconv.Itoa(j.Priority))
	if len(j.Tags) > 0 {
		opsRow(w, "tags", strings.Join(j.Tags, ", "))
	}
	opsRow(w, "created", opsTime(j.CreatedAt))
	opsRow(w, "scheduled", opsTime(j.ScheduledAt))
	opsRow(w, "attempted", opsTimePtr(j.AttemptedAt))
	opsRow(w, "finalized", opsTimePtr(j.FinalizedAt))
	if len(j.AttemptedBy) > 0 {
		opsRow(w, "attempted by", strings.Join(j.AttemptedBy, ", "))
	}
	if string(meta) != "{}" && len(meta) > 0 {
		opsRow(w, "metadata", string(meta))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nargs:")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, j.EncodedArgs, "  ", "  "); err != nil {
		pretty.Reset()
		pretty.Write(j.EncodedArgs)
	}
	fmt.Fprintf(out, "  %s\n", pretty.String())

	fmt.Fprintf(out, "\nerrors (%d):\n", len(j.Errors))
	if len(j.Errors) == 0 {
		fmt.Fprintln(out, "  none")
	}
	for _, e := range j.Errors {
		fmt.Fprintf(out, "  attempt %d at %s:\n%s\n", e.Attempt, opsTime(e.At), opsIndent(e.Error, "    "))
	}
	if len(logs) > 0 {
		fmt.Fprintln(out, "\nlogs:")
		for _, l := range logs {
			fmt.Fprintf(out, "  attempt %d:\n%s\n", l.Attempt, opsIndent(strings.TrimRight(l.Log, "\n"), "    "))
		}
	}
	return nil
}

func opsIndent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// jobAction is the outcome of retrying or cancelling one job.
type jobAction struct {
	ID int64 `json:"id"`
	// Outcome is retried, cancelled or cancel_requested (done); running,
	// duplicate or already_finished (skipped); not_found or error (failed).
	Outcome string `json:"outcome"`
	State   string `json:"state,omitempty"`
	Message string `json:"message"`
	failed  bool
	skipped bool
}

func (o *ops) jobsRetry(ctx context.Context, args []string) error {
	return o.jobsAct(ctx, args, "retry", `Makes jobs available to run again now (River's JobRetry): a discarded or
cancelled job gets another attempt, a scheduled or retryable one runs now. A
running job is left alone. A request for a device that has another pending is
skipped (duplicate).

Give job IDs, or choose jobs with --state (required) and the other filters;
then it asks "retry N jobs? [y/N]" unless --yes. Exit 1 when any job could
not be retried (not found, error).`, retryJob)
}

func (o *ops) jobsCancel(ctx context.Context, args []string) error {
	return o.jobsAct(ctx, args, "cancel", `Cancels jobs (River's JobCancel): a job still in the queue is cancelled at
once; a running one is told to stop and is cancelled when it returns. A
finished job is left alone.

Give job IDs, or choose jobs with --state (required) and the other filters;
then it asks "cancel N jobs? [y/N]" unless --yes. Exit 1 when any job could
not be cancelled (not found, error).`, cancelJob)
}

func retryJob(ctx context.Context, rc *river.Client[pgx.Tx], id int64) jobAction {
	a := jobAction{ID: id}
	j, err := rc.JobRetry(ctx, id)
	switch {
	case errors.Is(err, rivertype.ErrNotFound):
		a.Outcome, a.Message, a.failed = "not_found", "not found", true
	case errors.Is(store.MapDriverError(err), store.ErrConflict):
		a.Outcome, a.skipped = "duplicate", true
		a.Message = "skipped: another job with the same unique args (the same device) is pending"
	case err != nil:
		a.Outcome, a.Message, a.failed = "error", err.Error(), true
	case j.State == rivertype.JobStateRunning:
		a.Outcome, a.State, a.skipped = "running", string(j.State), true
		a.Message = "skipped: running now"
	default:
		a.Outcome, a.State = "retried", string(j.State)
		a.Message = "retried, now " + string(j.State)
	}
	return a
}

func cancelJob(ctx context.Context, rc *river.Client[pgx.Tx], id int64) jobAction {
	a := jobAction{ID: id}
	before, err := rc.JobGet(ctx, id)
	if err == nil {
		switch before.State {
		case rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded:
			a.Outcome, a.State, a.skipped = "already_finished", string(before.State), true
			a.Message = "skipped: already " + string(before.State)
			return a
		}
		var j *rivertype.JobRow
		j, err = rc.JobCancel(ctx, id)
		if err == nil {
			a.State = string(j.State)
			if j.State == rivertype.JobStateCancelled {
				a.Outcome, a.Message = "cancelled", "cancelled"
			} else {
				a.Outcome = "cancel_requested"
				a.Message = "cancellation requested: the job is " + string(j.State) + " and is cancelled when its worker returns"
			}
			return a
		}
	}
	if errors.Is(err, rivertype.ErrNotFound) {
		a.Outcome, a.Message, a.failed = "not_found", "not found", true
	} else {
		a.Outcome, a.Message, a.failed = "error", err.Error(), true
	}
	return a
}

func (o *ops) jobsAct(ctx context.Context, args []string, verb, summary string,
	act func(context.Context, *river.Client[pgx.Tx], int64) jobAction) error {
	name := "jobs " + verb
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f jobFilterFlags
	f.register(fs)
	yes := fs.Bool("yes", false, "do not ask for confirmation when choosing jobs by filter")
	asJSON := fs.Bool("json", false, "print the outcome per job as JSON")
	pos, err := o.parseArgs(fs, args, name+" ID... [--json]\n       reauth "+name+" --state S [filters] [--yes] [--json]", summary)
	if err != nil {
		return ignoreHelp(err)
	}
	ids, err := parseJobIDs(pos)
	if err != nil {
		return o.usageErr(name, "%v", err)
	}
	byFilter := f.set()
	switch {
	case len(ids) > 0 && byFilter:
		return o.usageErr(name, "give job IDs or filters, not both")
	case len(ids) == 0 && !byFilter:
		return o.usageErr(name, "give job IDs, or choose jobs with --state and other filters")
	case byFilter && f.state == "":
		return o.usageErr(name, "--state is required when choosing jobs by filter")
	}
	jf, err := f.check(time.Now())
	if err != nil {
		return o.usageErr(name, "%v", err)
	}

	pool, rc, err := o.river(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if byFilter {
		ids, err = matchingJobIDs(ctx, rc, pool, jf)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			if *asJSON {
				return o.printJSON(actionReport{Results: []jobAction{}})
			}
			fmt.Fprintln(o.stdout, "no jobs match")
			return nil
		}
		if !*yes {
			ok, err := o.confirm(fmt.Sprintf("%s %d jobs?", verb, len(ids)))
			if errors.Is(err, errNoConfirmation) {
				fmt.Fprintf(o.stderr, "reauth %s: %d jobs match, but there is no answer on stdin; nothing changed. Pass --yes to confirm.\n", name, len(ids))
				return errUsage
			}
			if !ok {
				return fmt.Errorf("aborted: no job was %s", pastTense(verb))
			}
		}
	}

	rep := actionReport{Results: []jobAction{}}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := act(ctx, rc, id)
		switch {
		case a.failed:
			rep.Failed++
		case a.skipped:
			rep.Skipped++
		default:
			rep.Done++
		}
		rep.Results = append(rep.Results, a)
		if !*asJSON && (!byFilter || a.failed || a.skipped) {
			fmt.Fprintf(o.stdout, "job %d: %s\n", a.ID, a.Message)
		}
	}
	if *asJSON {
		if err := o.printJSON(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(o.stdout, "%s %d, skipped %d, failed %d\n", pastTense(verb), rep.Done, rep.Skipped, rep.Failed)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d of %d jobs could not be %s", rep.Failed, len(ids), pastTense(verb))
	}
	return nil
}

type actionReport struct {
	Results []jobAction `json:"results"`
	Done    int         `json:"done"`
	Skipped int         `json:"skipped"`
	Failed  int         `json:"failed"`
}

func pastTense(verb string) string {
	if verb == "cancel" {
		return "cancelled"
	}
	return "retried"
}

// matchingJobIDs pages through every job the filter matches.
func matchingJobIDs(ctx context.Context, rc *river.Client[pgx.Tx], pool *pgxpool.Pool, jf jobFilter) ([]int64, error) {
	params, err := jf.params(ctx, pool)
	if err != nil {
		return nil, err
	}
	const page = 1000
	params = params.First(page)
	var ids []int64
	for {
		res, err := rc.JobList(ctx, params)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		for _, j := range res.Jobs {
			ids = append(ids, j.ID)
		}
		if len(res.Jobs) < page {
			return ids, nil
		}
		params = params.After(res.LastCursor)
	}
}
