package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
)

// JobStates are River's job states, in the order River documents them.
var JobStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted,
	rivertype.JobStateDiscarded, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// Finished reports whether a job in state has finished: River changes it
// no more unless it is retried.
func Finished(state rivertype.JobState) bool {
	switch state {
	case rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded:
		return true
	}
	return false
}

// Job is a River job as operators see it, in lists and as the head of a
// JobDetail. The json-less fields are read from its args for linking.
type Job struct {
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

	// DeviceKind and DeviceID are set when the args name a valid device;
	// SessionID and Step when they name a session (reauth_notify).
	DeviceKind reauth.DeviceKind `json:"-"`
	DeviceID   string            `json:"-"`
	SessionID  int64             `json:"-"`
	Step       int               `json:"-"`
	// Subject says briefly what the job is about, from its args.
	Subject string `json:"-"`
}

// NewJob is j as operators see it.
func NewJob(j *rivertype.JobRow) Job {
	out := Job{
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
	out.Subject = "-"
	// Args come from other systems too: a malformed one just names nothing.
	var a map[string]any
	if json.Unmarshal(j.EncodedArgs, &a) != nil {
		out.Subject = oneLine(string(j.EncodedArgs), 50)
		return out
	}
	kind, _ := a["device_kind"].(string)
	id, _ := a["device_id"].(string)
	sid, isSession := a["session_id"].(float64)
	step, _ := a["step"].(float64)
	switch {
	case kind != "" || id != "":
		out.Subject = dash(kind) + " " + dash(id)
		if reauth.DeviceKind(kind).Valid() && reauth.IsUUID(id) {
			out.DeviceKind, out.DeviceID = reauth.DeviceKind(kind), strings.ToLower(id)
		}
	case isSession:
		out.SessionID, out.Step = int64(sid), int(step)
		out.Subject = fmt.Sprintf("session %d step %d", out.SessionID, out.Step)
	case len(a) > 0:
		out.Subject = oneLine(string(j.EncodedArgs), 50)
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine shortens s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func rawJSON(b []byte) json.RawMessage {
	if !json.Valid(b) {
		s, _ := json.Marshal(string(b))
		return s
	}
	return b
}

// JobDetail is one job with everything River keeps of it.
type JobDetail struct {
	Job
	AttemptedBy []string        `json:"attempted_by"`
	Metadata    json.RawMessage `json:"metadata"`
	Errors      []AttemptError  `json:"errors"`
	Logs        []AttemptLog    `json:"logs"`
	// OtherMetadata is the metadata without riverlog's "river:log".
	OtherMetadata json.RawMessage `json:"-"`
}

// AttemptError is the error of one failed attempt.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
	Trace   string    `json:"trace,omitempty"`
}

// AttemptLog is what riverlog keeps of one attempt in the job's metadata,
// under "river:log"; Lines is Log read line by line.
type AttemptLog struct {
	Attempt int       `json:"attempt"`
	Log     string    `json:"log"`
	Lines   []LogLine `json:"-"`
}

// LogLine is one line of an attempt's log. A line slog's JSON handler
// wrote (as the service's workers log) is read into its time, level,
// message and the other attributes (key=value, in order); any other line
// is kept as Text.
type LogLine struct {
	Time  time.Time
	Level string
	Msg   string
	Attrs string
	Text  string // the line as it is, when it is not such JSON
}

// TimeText is the line's time in UTC to the millisecond, "" when it has none.
func (l LogLine) TimeText() string {
	if l.Time.IsZero() {
		return ""
	}
	return l.Time.UTC().Format("15:04:05.000Z")
}

// String is the line for a terminal: time, level, message and attributes.
func (l LogLine) String() string {
	if l.Text != "" || l.Msg == "" && l.Attrs == "" {
		return l.Text
	}
	return strings.Join(slices.DeleteFunc([]string{l.TimeText(), l.Level, l.Msg, l.Attrs}, func(s string) bool { return s == "" }), " ")
}

// ParseLog reads an attempt's log line by line.
func ParseLog(log string) []LogLine {
	var lines []LogLine
	for s := range strings.SplitSeq(strings.TrimRight(log, "\n"), "\n") {
		lines = append(lines, parseLogLine(s))
	}
	return lines
}

func parseLogLine(s string) LogLine {
	raw := LogLine{Text: s}
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return raw
	}
	var l LogLine
	var attrs []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return raw
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return raw
		}
		var str string
		isString := json.Unmarshal(v, &str) == nil
		switch {
		case key == "time" && isString && l.Time.IsZero():
			if t, err := time.Parse(time.RFC3339Nano, str); err == nil {
				l.Time = t
				continue
			}
		case key == "level" && isString && l.Level == "":
			l.Level = str
			continue
		case key == "msg" && isString && l.Msg == "":
			l.Msg = str
			continue
		}
		if isString {
			if str == "" || strings.ContainsAny(str, " \t\n\"=") {
				str = strconv.Quote(str)
			}
			attrs = append(attrs, key+"="+str)
		} else {
			attrs = append(attrs, key+"="+string(v))
		}
	}
	if _, err := dec.Token(); err != nil || dec.More() {
		return raw
	}
	l.Attrs = strings.Join(attrs, " ")
	return l
}

// NewJobDetail is j with its errors and riverlog's logs read out.
func NewJobDetail(j *rivertype.JobRow) JobDetail {
	d := JobDetail{Job: NewJob(j), AttemptedBy: j.AttemptedBy, Metadata: rawJSON(j.Metadata),
		Errors: []AttemptError{}, Logs: []AttemptLog{}, OtherMetadata: rawJSON(j.Metadata)}
	if d.AttemptedBy == nil {
		d.AttemptedBy = []string{}
	}
	for _, e := range j.Errors {
		d.Errors = append(d.Errors, AttemptError{Attempt: e.Attempt, At: e.At, Error: e.Error, Trace: e.Trace})
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(j.Metadata, &m) != nil {
		return d
	}
	if raw, ok := m["river:log"]; ok {
		var logs []AttemptLog
		if json.Unmarshal(raw, &logs) == nil {
			delete(m, "river:log")
			for i := range logs {
				logs[i].Lines = ParseLog(logs[i].Log)
			}
			d.Logs = append(d.Logs, logs...)
		}
	}
	d.OtherMetadata, _ = json.Marshal(m)
	return d
}

// Job returns job id; ErrNotFound when there is none.
func (o *Ops) Job(ctx context.Context, id int64) (JobDetail, error) {
	j, err := o.River.JobGet(ctx, id)
	if err != nil {
		return JobDetail{}, fmt.Errorf("job %d: %w", id, mapNotFound(err))
	}
	return NewJobDetail(j), nil
}

// FilterText is a job filter as an operator types it (a command's flags,
// the page's query): comma-separated lists, a device's Podero ID, and a
// time (RFC 3339) or a duration back from now (90m, 24h, 7d).
type FilterText struct {
	State, Kind, Queue, Device, Since string
}

// Set reports whether any part of the filter is given.
func (f FilterText) Set() bool {
	return f.State != "" || f.Kind != "" || f.Queue != "" || f.Device != "" || f.Since != ""
}

// JobFilter chooses jobs; its zero value chooses every job.
type JobFilter struct {
	States        []rivertype.JobState
	Kinds, Queues []string
	Device        string // a Podero device ID: its requests and the messages of its sessions
	Since         time.Time
}

// MaxFilterDeviceJobs is how many of a device's newest jobs a filter on
// the device considers.
const MaxFilterDeviceJobs = 10000

// splitList splits a comma-separated value.
func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// printable reports whether s can go to Postgres as text and be shown:
// at most 200 bytes of valid UTF-8 without control characters (a NUL is
// an error there, not a value that matches nothing).
func printable(s string) bool {
	return len(s) <= 200 && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// Parse checks the filter; the error says what is wrong.
func (f FilterText) Parse(now time.Time) (JobFilter, error) {
	var jf JobFilter
	for _, s := range splitList(f.State) {
		st := rivertype.JobState(strings.ToLower(s))
		if !slices.Contains(JobStates, st) {
			return jf, fmt.Errorf("unknown state %q: the state must be one of available, scheduled, running, retryable, pending, completed, discarded or cancelled", s)
		}
		jf.States = append(jf.States, st)
	}
	jf.Kinds, jf.Queues = splitList(f.Kind), splitList(f.Queue)
	for _, s := range append(slices.Clone(jf.Kinds), jf.Queues...) {
		if !printable(s) {
			return jf, errors.New("a kind or queue must be at most 200 printable characters")
		}
	}
	if f.Device != "" {
		id := strings.ToLower(strings.TrimSpace(f.Device))
		if !reauth.IsUUID(id) {
			return jf, fmt.Errorf("the device must be a UUID, not %q", f.Device)
		}
		jf.Device = id
	}
	if f.Since != "" {
		t, err := ParseSince(f.Since, now)
		if err != nil {
			return jf, fmt.Errorf("since: %w", err)
		}
		jf.Since = t
	}
	return jf, nil
}

// ParseDuration accepts Go durations (90m, 24h) and whole days (7d).
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err == nil && n >= 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration like 90m, 24h or 7d", s)
	}
	return d, nil
}

// ParseSince accepts a duration back from now or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (90m, 24h, 7d) nor an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

// params turns the filter into River's list parameters, newest first.
func (o *Ops) params(ctx context.Context, jf JobFilter) (*river.JobListParams, error) {
	p := river.NewJobListParams().OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if len(jf.States) > 0 {
		p = p.States(jf.States...)
	}
	if len(jf.Kinds) > 0 {
		p = p.Kinds(jf.Kinds...)
	}
	if len(jf.Queues) > 0 {
		p = p.Queues(jf.Queues...)
	}
	if !jf.Since.IsZero() {
		p = p.Where("created_at >= @reauth_since", river.NamedArgs{"reauth_since": jf.Since})
	}
	if jf.Device != "" {
		// The device's jobs by ID: a few index lookups, where a filter on
		// args could have Postgres walk river_job backwards by id.
		ids, err := store.DeviceJobIDs(ctx, o.Pool, jf.Device, MaxFilterDeviceJobs)
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

// JobPage is a page of jobs, newest first; NextCursor, when set, is the
// cursor of the next page (which has at least one job).
type JobPage struct {
	Jobs       []Job   `json:"jobs"`
	NextCursor *string `json:"next_cursor"`
}

// ErrBadCursor: a cursor Jobs did not hand out.
var ErrBadCursor = errors.New("not a cursor of a job list")

// Jobs lists at most limit (1 to MaxLimit) of the jobs jf chooses, after
// cursor ("" for the first page).
func (o *Ops) Jobs(ctx context.Context, jf JobFilter, limit int, cursor string) (JobPage, error) {
	if limit < 1 || limit > MaxLimit {
		return JobPage{}, fmt.Errorf("the limit must be between 1 and %d", MaxLimit)
	}
	params, err := o.params(ctx, jf)
	if err != nil {
		return JobPage{}, err
	}
	if cursor != "" {
		c := new(river.JobListCursor)
		if err := c.UnmarshalText([]byte(cursor)); err != nil {
			return JobPage{}, ErrBadCursor
		}
		params = params.After(c)
	}
	res, err := o.River.JobList(ctx, params.First(limit))
	if err != nil {
		return JobPage{}, fmt.Errorf("list jobs: %w", err)
	}
	page := JobPage{Jobs: []Job{}}
	for _, j := range res.Jobs {
		page.Jobs = append(page.Jobs, NewJob(j))
	}
	if len(res.Jobs) == limit {
		// Only offer a next page that has something on it.
		more, err := o.River.JobList(ctx, params.After(res.LastCursor).First(1))
		if err != nil {
			return JobPage{}, fmt.Errorf("list jobs: %w", err)
		}
		if len(more.Jobs) > 0 {
			b, err := res.LastCursor.MarshalText()
			if err != nil {
				return JobPage{}, err
			}
			next := string(b)
			page.NextCursor = &next
		}
	}
	return page, nil
}

// JobIDs returns the IDs of every job jf chooses, newest first.
func (o *Ops) JobIDs(ctx context.Context, jf JobFilter) ([]int64, error) {
	params, err := o.params(ctx, jf)
	if err != nil {
		return nil, err
	}
	const page = 1000
	params = params.First(page)
	var ids []int64
	for {
		res, err := o.River.JobList(ctx, params)
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

// Outcomes of an Action.
const (
	// Done.
	OutcomeRetried         = "retried"
	OutcomeCancelled       = "cancelled"
	OutcomeCancelRequested = "cancel_requested" // running: cancelled when its worker returns
	// Skipped.
	OutcomeRunning         = "running"          // not retried: it runs now
	OutcomeDuplicate       = "duplicate"        // not retried: another job with its unique args is pending
	OutcomeAlreadyFinished = "already_finished" // not cancelled: it has finished
	// Failed.
	OutcomeNotFound = "not_found"
	OutcomeError    = "error"
)

// Action is the outcome of retrying or cancelling one job.
type Action struct {
	ID      int64  `json:"id"`
	Outcome string `json:"outcome"`         // one of the Outcome constants
	State   string `json:"state,omitempty"` // the job's state after it
	Message string `json:"message"`
}

// Failed reports whether the job could not be acted on (not found, an error).
func (a Action) Failed() bool { return a.Outcome == OutcomeNotFound || a.Outcome == OutcomeError }

// Skipped reports whether the job was left alone on purpose.
func (a Action) Skipped() bool {
	switch a.Outcome {
	case OutcomeRunning, OutcomeDuplicate, OutcomeAlreadyFinished:
		return true
	}
	return false
}

func failedAction(id int64, err error) Action {
	if errors.Is(err, rivertype.ErrNotFound) || errors.Is(err, ErrNotFound) {
		return Action{ID: id, Outcome: OutcomeNotFound, Message: "not found"}
	}
	return Action{ID: id, Outcome: OutcomeError, Message: err.Error()}
}

// Retry makes job id available to run again now (River's JobRetryTx): a
// discarded, cancelled or completed job gets another attempt, a scheduled
// or retryable one runs now. A running job is left alone, and so is a
// request for a device that has another pending (River's unique rule).
func (o *Ops) Retry(ctx context.Context, id int64) Action {
	var j *rivertype.JobRow
	err := pgx.BeginFunc(ctx, o.Pool, func(tx pgx.Tx) (err error) {
		j, err = o.River.JobRetryTx(ctx, tx, id)
		return err
	})
	switch {
	case errors.Is(store.MapDriverError(err), store.ErrConflict):
		return Action{ID: id, Outcome: OutcomeDuplicate,
			Message: "skipped: another job with the same unique args (the same device) is pending"}
	case err != nil:
		return failedAction(id, err)
	case j.State == rivertype.JobStateRunning:
		return Action{ID: id, Outcome: OutcomeRunning, State: string(j.State), Message: "skipped: running now"}
	}
	return Action{ID: id, Outcome: OutcomeRetried, State: string(j.State), Message: "retried, now " + string(j.State)}
}

// Cancel cancels job id (River's JobCancelTx): a job still in the queue is
// cancelled at once; a running one is told to stop and is cancelled when
// its worker returns. A finished job is left alone and reported so.
func (o *Ops) Cancel(ctx context.Context, id int64) Action {
	var a Action
	err := pgx.BeginFunc(ctx, o.Pool, func(tx pgx.Tx) error {
		before, err := o.River.JobGetTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if Finished(before.State) {
			a = Action{ID: id, Outcome: OutcomeAlreadyFinished, State: string(before.State),
				Message: "skipped: already " + string(before.State)}
			return nil
		}
		j, err := o.River.JobCancelTx(ctx, tx, id)
		if err != nil {
			return err
		}
		switch j.State {
		case rivertype.JobStateCancelled:
			a = Action{ID: id, Outcome: OutcomeCancelled, State: string(j.State), Message: "cancelled"}
		case rivertype.JobStateCompleted, rivertype.JobStateDiscarded:
			a = Action{ID: id, Outcome: OutcomeAlreadyFinished, State: string(j.State),
				Message: "skipped: already " + string(j.State)}
		default:
			a = Action{ID: id, Outcome: OutcomeCancelRequested, State: string(j.State),
				Message: "cancellation requested: the job is " + string(j.State) + " and is cancelled when its worker returns"}
		}
		return nil
	})
	if err != nil {
		return failedAction(id, err)
	}
	return a
}

// Report is the outcome of acting on many jobs.
type Report struct {
	Results []Action `json:"results"`
	Done    int      `json:"done"`
	Skipped int      `json:"skipped"`
	Failed  int      `json:"failed"`
}

// Add counts a.
func (r *Report) Add(a Action) {
	switch {
	case a.Failed():
		r.Failed++
	case a.Skipped():
		r.Skipped++
	default:
		r.Done++
	}
	r.Results = append(r.Results, a)
}
