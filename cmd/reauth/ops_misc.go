package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/store"
)

func (o *ops) devicesShow(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("devices show", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the device as JSON")
	pos, err := o.parseArgs(fs, args, "devices show KIND ID [--json]", `Shows one device: what the last sync saw (authenticated, needs reauth, synced,
gone), its sessions, their messages, and its jobs (requests and messages),
newest first. KIND is inverter, electric_vehicle or wallbox; ID is Podero's.`)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) != 2 {
		return o.usageErr("devices show", "give the device's KIND and ID")
	}
	kind, id := reauth.DeviceKind(pos[0]), strings.ToLower(pos[1])
	if !kind.Valid() {
		return o.usageErr("devices show", "KIND must be inverter, electric_vehicle or wallbox, not %q", pos[0])
	}
	if !reauth.IsUUID(id) {
		return o.usageErr("devices show", "ID must be a UUID, not %q", pos[1])
	}
	pool, err := o.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	d, err := store.GetDeviceDetail(ctx, pool, kind, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("device %s %s not found (no device row and no request for it)", kind, id)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return o.printJSON(d)
	}

	out := o.stdout
	w := opsTable(out)
	opsRow(w, "device", string(d.Kind)+" "+d.ID)
	if !d.Known {
		opsRow(w, "known", "no: only requested so far, not synced or served yet")
	} else {
		opsRow(w, "org", d.OrgID)
		opsRow(w, "user", d.UserID)
		opsRow(w, "authenticated", opsYesNo(d.IsAuthenticated))
		opsRow(w, "needs reauth", opsYesNo(&d.NeedsReauth))
		opsRow(w, "action needed", opsYesNo(d.ActionNeeded))
		if a := string(d.Actions); a != "" && a != "[]" {
			opsRow(w, "actions", opsOneLine(a, 200))
		}
		opsRow(w, "connection", opsDash(opsDeref(d.ConnectionStatus)))
		opsRow(w, "make", opsDash(strings.TrimSpace(opsDeref(d.Manufacturer)+" "+opsDeref(d.Model))))
		opsRow(w, "lifecycle", opsDash(opsDeref(d.LifecycleState)))
		if le := string(d.LifecycleError); le != "" {
			opsRow(w, "lifecycle error", opsOneLine(le, 200))
		}
		opsRow(w, "external ID", opsDash(opsDeref(d.ExternalDeviceID)))
		opsRow(w, "owner email", opsDash(opsDeref(d.OwnerEmail)))
		opsRow(w, "synced", opsTimePtr(d.SyncedAt))
		opsRow(w, "gone", opsTimePtr(d.GoneAt))
		opsRow(w, "created", opsTime(d.CreatedAt))
		opsRow(w, "updated", opsTime(d.UpdatedAt))
	}
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nsessions (%d):\n", len(d.Sessions))
	if len(d.Sessions) > 0 {
		w = opsTable(out)
		opsRow(w, "  ID", "STATE", "CREATED", "EXPIRES", "OPENED", "CLICKS", "CANCELLED", "FINISHED", "JOB", "PODERO SESSION")
		for _, s := range d.Sessions {
			job := "-"
			if s.JobID != nil {
				job = strconv.FormatInt(*s.JobID, 10)
			}
			opsRow(w, "  "+strconv.FormatInt(s.ID, 10), s.State, opsTime(s.CreatedAt), opsTime(s.ExpiresAt),
				opsTimePtr(s.OpenedAt), strconv.Itoa(s.Clicks), opsTimePtr(s.CancelledAt), opsTimePtr(s.FinishedAt), job, s.PoderoSessionID)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "\nmessages (%d):\n", len(d.Notifications))
	if len(d.Notifications) > 0 {
		w = opsTable(out)
		opsRow(w, "  SESSION", "STEP", "CHANNEL", "STATE", "ATTEMPTS", "CREATED", "SENT", "RECIPIENT", "LAST ERROR")
		for _, n := range d.Notifications {
			opsRow(w, "  "+strconv.FormatInt(n.SessionID, 10), strconv.Itoa(n.Step), n.Channel, n.State,
				strconv.Itoa(n.Attempts), opsTime(n.CreatedAt), opsTimePtr(n.SentAt), n.Recipient,
				opsDash(opsOneLine(n.LastError, 60)))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "\njobs (%d):\n", len(d.Jobs))
	if len(d.Jobs) > 0 {
		w = opsTable(out)
		opsRow(w, "  ID", "KIND", "STATE", "ATTEMPT", "CREATED", "FINALIZED", "LAST ERROR")
		for _, j := range d.Jobs {
			opsRow(w, "  "+strconv.FormatInt(j.ID, 10), j.Kind, j.State, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts),
				opsTime(j.CreatedAt), opsTimePtr(j.FinalizedAt), opsDash(opsOneLine(j.LastError, 60)))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func opsDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sessionStates are the states an auth_session can be in.
var sessionStates = []string{"open", "completed", "cancelled", "superseded", "completed_elsewhere", "device_gone"}

func (o *ops) sessionsList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sessions list", flag.ContinueOnError)
	state := fs.String("state", "", "only sessions in this `state`: "+strings.Join(sessionStates, ", "))
	limit := fs.Int("limit", 50, "at most `N` sessions (1 to 10000)")
	after := fs.Int64("after", 0, "only sessions older than the one with this `ID` (for the next page)")
	asJSON := fs.Bool("json", false, "print JSON: {\"sessions\": [...], \"next_after\": ...}")
	pos, err := o.parseArgs(fs, args, "sessions list [flags]", `Lists authentication sessions, newest first, with their device and their
latest message. When there are more than --limit, the last line says how to
get the next page.`)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) > 0 {
		return o.usageErr("sessions list", "unexpected argument %q", pos[0])
	}
	if *state != "" && !slices.Contains(sessionStates, *state) {
		return o.usageErr("sessions list", "--state must be one of %s", strings.Join(sessionStates, ", "))
	}
	if *limit < 1 || *limit > 10000 {
		return o.usageErr("sessions list", "--limit must be between 1 and 10000")
	}
	if *after < 0 {
		return o.usageErr("sessions list", "--after must be a session ID")
	}
	pool, err := o.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	// One more than asked tells whether there is a next page.
	list, err := store.ListSessions(ctx, pool, store.SessionListFilter{State: *state, BeforeID: *after, Limit: *limit + 1})
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	var next int64
	if len(list) > *limit {
		list = list[:*limit]
		next = list[len(list)-1].ID
	}
	if *asJSON {
		out := struct {
			Sessions  []store.SessionListItem `json:"sessions"`
			NextAfter *int64                  `json:"next_after"`
		}{Sessions: list}
		if out.Sessions == nil {
			out.Sessions = []store.SessionListItem{}
		}
		if next > 0 {
			out.NextAfter = &next
		}
		return o.printJSON(out)
	}
	if len(list) == 0 {
		fmt.Fprintln(o.stdout, "no sessions match")
		return nil
	}
	w := opsTable(o.stdout)
	opsRow(w, "ID", "STATE", "DEVICE", "ORG", "CREATED", "EXPIRES", "OPENED", "FINISHED", "MESSAGE")
	for _, s := range list {
		msg := opsDash(s.MessageState)
		if s.MessageSentAt != nil {
			msg += " " + opsTime(*s.MessageSentAt)
		}
		opsRow(w, strconv.FormatInt(s.ID, 10), s.State, string(s.DeviceKind)+" "+s.DeviceID, s.OrgID,
			opsTime(s.CreatedAt), opsTime(s.ExpiresAt), opsTimePtr(s.OpenedAt), opsTimePtr(s.FinishedAt), msg)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if next > 0 {
		fmt.Fprintf(o.stdout, "next page: --after %d\n", next)
	}
	return nil
}

// queueJSON is a queue in --json output.
type queueJSON struct {
	store.OpsQueue
	Paused bool `json:"paused"`
}

func (o *ops) queuesList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("queues list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON: {\"queues\": [...]}")
	pos, err := o.parseArgs(fs, args, "queues list [--json]", `Lists River's queues: whether each is paused, its unfinished jobs by state, and
its discarded and cancelled jobs.`)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) > 0 {
		return o.usageErr("queues list", "unexpected argument %q", pos[0])
	}
	pool, err := o.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	qs, err := store.OpsQueues(ctx, pool)
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	if *asJSON {
		out := struct {
			Queues []queueJSON `json:"queues"`
		}{Queues: []queueJSON{}}
		for _, q := range qs {
			out.Queues = append(out.Queues, queueJSON{OpsQueue: q, Paused: q.PausedAt != nil})
		}
		return o.printJSON(out)
	}
	if len(qs) == 0 {
		fmt.Fprintln(o.stdout, "no queues yet: a queue appears once a worker has started on it or a job was inserted into it")
		return nil
	}
	w := opsTable(o.stdout)
	opsRow(w, "NAME", "PAUSED", "AVAILABLE", "SCHEDULED", "RUNNING", "RETRYABLE", "DISCARDED", "CANCELLED")
	for _, q := range qs {
		paused := "no"
		if q.PausedAt != nil {
			paused = "since " + opsTime(*q.PausedAt)
		}
		opsRow(w, q.Name, paused, opsItoa(q.Available), opsItoa(q.Scheduled), opsItoa(q.Running), opsItoa(q.Retryable),
			opsItoa(q.Discarded), opsItoa(q.Cancelled))
	}
	return w.Flush()
}

func opsItoa(n int64) string { return strconv.FormatInt(n, 10) }

func (o *ops) queuesPause(ctx context.Context, args []string) error {
	return o.queuePauseResume(ctx, args, true)
}

func (o *ops) queuesResume(ctx context.Context, args []string) error {
	return o.queuePauseResume(ctx, args, false)
}

func (o *ops) queuePauseResume(ctx context.Context, args []string, pause bool) error {
	verb, summary := "resume", `Lets every worker fetch jobs from queue NAME again ("*": every queue).`
	if pause {
		verb, summary = "pause", `Stops every worker, in every process, from fetching new jobs from queue NAME
("*": every queue). Jobs already running finish; new ones wait in the queue
until 'reauth queues resume NAME'.`
	}
	name := "queues " + verb
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := o.parseArgs(fs, args, name+" NAME [--json]", summary)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) != 1 {
		return o.usageErr(name, "give exactly one queue NAME (or \"*\" for all)")
	}
	queue := pos[0]
	pool, rc, err := o.river(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if pause {
		err = rc.QueuePause(ctx, queue, nil)
	} else {
		err = rc.QueueResume(ctx, queue, nil)
	}
	if errors.Is(err, rivertype.ErrNotFound) {
		return fmt.Errorf("queue %q not found: River knows a queue once a worker has started on it (see 'reauth queues list')", queue)
	}
	if err != nil {
		return fmt.Errorf("%s queue %q: %w", verb, queue, err)
	}
	if *asJSON {
		return o.printJSON(struct {
			Queue  string `json:"queue"`
			Paused bool   `json:"paused"`
		}{queue, pause})
	}
	if queue == "*" {
		queue = "every queue"
	} else {
		queue = "queue " + queue
	}
	fmt.Fprintf(o.stdout, "%s %s\n", pastTenseQueue(verb), queue)
	return nil
}

func pastTenseQueue(verb string) string {
	if verb == "pause" {
		return "paused"
	}
	return "resumed"
}

// statsJSON is `reauth stats --json`.
type statsJSON struct {
	Window string            `json:"window"`
	Since  time.Time         `json:"since"`
	Queues []store.OpsQueue  `json:"queues"`
	Funnel []store.OrgFunnel `json:"funnel"`
	Total  store.OrgFunnel   `json:"total"`
	Budget budgetJSON        `json:"budget"`
	Sync   syncJSON          `json:"sync"`
}

// syncJSON is the device sync's status as `reauth stats --json` prints it.
type syncJSON struct {
	store.SyncStatus
	LagSeconds float64 `json:"lag_s"`
	// PassSeconds is a full pass at SYNC_RATE_SHARE × PODERO_RATE_LIMIT
	// (null: no limit), CurrentPassSeconds at the sync's calls a second
	// over the last 10 minutes (null: none).
	PassSeconds        *float64 `json:"pass_s"`
	CallsPerSecond     float64  `json:"calls_per_second"`
	CurrentPassSeconds *float64 `json:"current_pass_s"`
	Interval           string   `json:"interval"` // SYNC_INTERVAL
}

func newSyncJSON(s store.SyncStatus, rate, share float64, interval time.Duration) syncJSON {
	out := syncJSON{SyncStatus: s, LagSeconds: s.Lag.Seconds(), CallsPerSecond: s.CallsPerSecond(), Interval: interval.String()}
	if d, ok := s.PassTime(rate * share); ok && rate > 0 {
		secs := d.Seconds()
		out.PassSeconds = &secs
	}
	if d, ok := s.PassTime(s.CallsPerSecond()); ok {
		secs := d.Seconds()
		out.CurrentPassSeconds = &secs
	}
	return out
}

// printSync writes the device sync's status as `reauth stats` shows it.
func printSync(out io.Writer, j syncJSON) {
	fmt.Fprintf(out, "\ndevice sync (SYNC_INTERVAL %s):\n", j.Interval)
	fmt.Fprintf(out, "  users listed: %d (%d with devices), %d device calls a pass; %d due, %d queued\n",
		j.Users, j.UsersWithDevices, j.PassCalls, j.Due, j.Queued)
	lag := "-"
	if !j.OldestSync.IsZero() {
		lag = fmt.Sprintf("%s (oldest sync %s)", j.Lag.Round(time.Second), opsTime(j.OldestSync))
	}
	fmt.Fprintf(out, "  lag: %s\n", lag)
	pass := "no limit"
	if j.PassSeconds != nil {
		pass = fmt.Sprintf("%s at SYNC_RATE_SHARE of PODERO_RATE_LIMIT", secondsText(*j.PassSeconds))
	}
	current := "no sync calls in the last 10 minutes"
	if j.CurrentPassSeconds != nil && j.CallsPerSecond > 0 {
		current = fmt.Sprintf("%s at the current %.2f calls/s", secondsText(*j.CurrentPassSeconds), j.CallsPerSecond)
	}
	fmt.Fprintf(out, "  a full pass: %s; %s\n", pass, current)
}

// secondsText is secs as a duration rounded to the second.
func secondsText(secs float64) string {
	return (time.Duration(secs * float64(time.Second))).Round(time.Second).String()
}

// budgetJSON is the Podero budget as `reauth stats --json` prints it.
type budgetJSON struct {
	store.Budget
	RateLimit float64 `json:"rate_limit"` // PODERO_RATE_LIMIT; 0: none
	// DrainSeconds is how long the waiting requests take at the rate they
	// get; null when they get none.
	DrainSeconds *float64 `json:"drain_seconds"`
}

func newBudgetJSON(b store.Budget, limit float64) budgetJSON {
	out := budgetJSON{Budget: b, RateLimit: limit}
	if d, ok := b.DrainTime(); ok {
		secs := d.Seconds()
		out.DrainSeconds = &secs
	}
	return out
}

// printBudget writes the budget as `reauth stats` shows it.
func printBudget(out io.Writer, b store.Budget, limit float64) error {
	fmt.Fprintln(out, "\nPodero budget (calls a second over about the last minute, every process):")
	w := opsTable(out)
	opsRow(w, "  PURPOSE", "CALLS/S")
	var total float64
	for _, p := range podero.Purposes {
		if r, ok := b.Rates[p]; ok {
			opsRow(w, "  "+p, fmt.Sprintf("%.2f", r))
			total += r
		}
	}
	limitText := "no limit"
	if limit > 0 {
		limitText = fmt.Sprintf("of %.4g (PODERO_RATE_LIMIT)", limit)
	}
	opsRow(w, "  total", fmt.Sprintf("%.2f %s", total, limitText))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "  requests waiting: %d, drained in %s\n", b.Waiting, b.DrainText())
	return nil
}

func (o *ops) stats(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	window := fs.String("window", "24h", "the funnel covers this `duration` back from now (90m, 24h, 7d)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := o.parseArgs(fs, args, "stats [--window 24h] [--json]", `Shows queue depths by state, and the funnel per org and device kind over the
window: requested (reauth_device jobs created), then of the links (sessions)
created in the window: how many were sent, opened and completed (through the
link, or elsewhere: the device was found authenticated again).`)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) > 0 {
		return o.usageErr("stats", "unexpected argument %q", pos[0])
	}
	d, err := opsParseDuration(*window)
	if err != nil || d <= 0 {
		return o.usageErr("stats", "--window must be a positive duration like 90m, 24h or 7d")
	}
	pool, err := o.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	since := time.Now().Add(-d)
	qs, err := store.OpsQueues(ctx, pool)
	if err != nil {
		return fmt.Errorf("queue depths: %w", err)
	}
	funnel, err := store.FunnelByOrg(ctx, pool, since)
	if err != nil {
		return fmt.Errorf("funnel: %w", err)
	}
	budget, err := store.GetBudget(ctx, pool)
	if err != nil {
		return fmt.Errorf("budget: %w", err)
	}
	syncStatus, err := store.GetSyncStatus(ctx, pool, nil, o.cfg.SyncInterval)
	if err != nil {
		return fmt.Errorf("sync status: %w", err)
	}
	syncOut := newSyncJSON(syncStatus, o.cfg.PoderoRateLimit, o.cfg.SyncRateShare, o.cfg.SyncInterval)
	total := store.OrgFunnel{OrgID: "total", DeviceKind: "all"}
	for _, f := range funnel {
		total.Requested += f.Requested
		total.LinkCreated += f.LinkCreated
		total.Sent += f.Sent
		total.Opened += f.Opened
		total.Completed += f.Completed
	}
	if *asJSON {
		out := statsJSON{Window: d.String(), Since: since.UTC(), Queues: qs, Funnel: funnel, Total: total,
			Budget: newBudgetJSON(budget, o.cfg.PoderoRateLimit), Sync: syncOut}
		if out.Queues == nil {
			out.Queues = []store.OpsQueue{}
		}
		if out.Funnel == nil {
			out.Funnel = []store.OrgFunnel{}
		}
		return o.printJSON(out)
	}
	out := o.stdout
	fmt.Fprintln(out, "queues (unfinished jobs by state):")
	w := opsTable(out)
	opsRow(w, "  QUEUE", "PAUSED", "AVAILABLE", "SCHEDULED", "RUNNING", "RETRYABLE")
	for _, q := range qs {
		paused := "no"
		if q.PausedAt != nil {
			paused = "yes"
		}
		opsRow(w, "  "+q.Name, paused, opsItoa(q.Available), opsItoa(q.Scheduled), opsItoa(q.Running), opsItoa(q.Retryable))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nfunnel, last %s (since %s):\n", *window, opsTime(since))
	w = opsTable(out)
	opsRow(w, "  ORG", "KIND", "REQUESTED", "LINK CREATED", "SENT", "OPENED", "COMPLETED")
	for _, f := range append(funnel, total) {
		opsRow(w, "  "+f.OrgID, f.DeviceKind, opsItoa(f.Requested), opsItoa(f.LinkCreated), opsItoa(f.Sent),
			opsItoa(f.Opened), opsItoa(f.Completed)+opsPercent(f.Completed, f.LinkCreated))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := printBudget(out, budget, o.cfg.PoderoRateLimit); err != nil {
		return err
	}
	printSync(out, syncOut)
	return nil
}

// opsPercent is " (n%)" of part in whole, or "" when whole is 0.
func opsPercent(part, whole int64) string {
	if whole == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d%%)", part*100/whole)
}

// runNow inserts a reauth_sync or reauth_sweep job, for `reauth sync|sweep --now`.
func (o *ops) runNow(ctx context.Context, cmd string, args []string) error {
	what := "the device sync (list every configured org's users at Podero;\nthose not synced within SYNC_INTERVAL then have their devices listed)"
	var jobArgs river.JobArgs = reauth.SyncArgs{}
	if cmd == "sweep" {
		what = "the sweep (enqueue a reauthentication for every device that needs one)"
		jobArgs = reauth.SweepArgs{}
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	now := fs.Bool("now", false, "run it now (required)")
	asJSON := fs.Bool("json", false, "print the result as JSON: {\"job_id\", \"duplicate\"}")
	pos, err := o.parseArgs(fs, args, cmd+" --now [--json]", fmt.Sprintf(`Runs %s
now, from any process: it inserts the job the schedule inserts (%s, queue
maintenance) and whichever process works that queue runs it. If one is already
queued or running, nothing is added and it prints "duplicate: already queued".`, what, jobArgs.Kind()))
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) > 0 {
		return o.usageErr(cmd, "unexpected argument %q", pos[0])
	}
	if !*now {
		fs.Usage()
		return errUsage
	}
	pool, rc, err := o.river(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := rc.Insert(ctx, jobArgs, nil)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", jobArgs.Kind(), err)
	}
	if *asJSON {
		return o.printJSON(reauth.Result{JobID: res.Job.ID, Duplicate: res.UniqueSkippedAsDuplicate})
	}
	if res.UniqueSkippedAsDuplicate {
		fmt.Fprintf(o.stdout, "duplicate: already queued (job %d, %s)\n", res.Job.ID, res.Job.State)
	} else {
		fmt.Fprintf(o.stdout, "enqueued: job %d (%s)\n", res.Job.ID, jobArgs.Kind())
	}
	return nil
}
