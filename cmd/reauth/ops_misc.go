package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/ops"
)

func (o *opsCLI) devicesShow(ctx context.Context, args []string) error {
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
	kind, id, err := ops.ParseDevice(pos[0], pos[1])
	if err != nil {
		return o.usageErr("devices show", "%v", err)
	}
	c, err := o.core(ctx)
	if err != nil {
		return err
	}
	defer c.Pool.Close()
	d, err := c.Device(ctx, kind, id)
	if errors.Is(err, ops.ErrNotFound) {
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
		opsRow(w, "synced", ts(d.SyncedAt))
		opsRow(w, "gone", ts(d.GoneAt))
		opsRow(w, "created", ts(d.CreatedAt))
		opsRow(w, "updated", ts(d.UpdatedAt))
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
				job = opsItoa(*s.JobID)
			}
			opsRow(w, "  "+opsItoa(s.ID), s.State, ts(s.CreatedAt), ts(s.ExpiresAt),
				ts(s.OpenedAt), opsItoa(s.Clicks), ts(s.CancelledAt), ts(s.FinishedAt), job, s.PoderoSessionID)
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
			opsRow(w, "  "+opsItoa(n.SessionID), opsItoa(n.Step), n.Channel, n.State,
				opsItoa(n.Attempts), ts(n.CreatedAt), ts(n.SentAt), n.Recipient,
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
			opsRow(w, "  "+opsItoa(j.ID), j.Kind, j.State, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts),
				ts(j.CreatedAt), ts(j.FinalizedAt), opsDash(opsOneLine(j.LastError, 60)))
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

func (o *opsCLI) sessionsList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sessions list", flag.ContinueOnError)
	var f ops.SessionFilter
	fs.StringVar(&f.State, "state", "", "only sessions in this `state`: "+strings.Join(ops.SessionStates, ", "))
	fs.IntVar(&f.Limit, "limit", 50, "at most `N` sessions (1 to 10000)")
	fs.Int64Var(&f.After, "after", 0, "only sessions older than the one with this `ID` (for the next page)")
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
	if err := f.Check(); err != nil {
		return o.usageErr("sessions list", "%v", err)
	}
	c, err := o.core(ctx)
	if err != nil {
		return err
	}
	defer c.Pool.Close()
	page, err := c.Sessions(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		return o.printJSON(page)
	}
	if len(page.Sessions) == 0 {
		fmt.Fprintln(o.stdout, "no sessions match")
		return nil
	}
	w := opsTable(o.stdout)
	opsRow(w, "ID", "STATE", "DEVICE", "ORG", "CREATED", "EXPIRES", "OPENED", "FINISHED", "MESSAGE")
	for _, s := range page.Sessions {
		msg := opsDash(s.MessageState)
		if s.MessageSentAt != nil {
			msg += " " + ts(s.MessageSentAt)
		}
		opsRow(w, opsItoa(s.ID), s.State, string(s.DeviceKind)+" "+s.DeviceID, s.OrgID,
			ts(s.CreatedAt), ts(s.ExpiresAt), ts(s.OpenedAt), ts(s.FinishedAt), msg)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if page.NextAfter != nil {
		fmt.Fprintf(o.stdout, "next page: --after %d\n", *page.NextAfter)
	}
	return nil
}

func (o *opsCLI) queuesList(ctx context.Context, args []string) error {
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
	c, err := o.core(ctx)
	if err != nil {
		return err
	}
	defer c.Pool.Close()
	qs, err := c.Queues(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return o.printJSON(struct {
			Queues []ops.Queue `json:"queues"`
		}{qs})
	}
	if len(qs) == 0 {
		fmt.Fprintln(o.stdout, "no queues yet: a queue appears once a worker has started on it or a job was inserted into it")
		return nil
	}
	w := opsTable(o.stdout)
	opsRow(w, "NAME", "PAUSED", "AVAILABLE", "SCHEDULED", "RUNNING", "RETRYABLE", "DISCARDED", "CANCELLED")
	for _, q := range qs {
		paused := "no"
		if q.Paused {
			paused = "since " + ts(q.PausedAt)
		}
		opsRow(w, q.Name, paused, opsItoa(q.Available), opsItoa(q.Scheduled), opsItoa(q.Running), opsItoa(q.Retryable),
			opsItoa(q.Discarded), opsItoa(q.Cancelled))
	}
	return w.Flush()
}

func (o *opsCLI) queuesPause(ctx context.Context, args []string) error {
	return o.queuePauseResume(ctx, args, true)
}

func (o *opsCLI) queuesResume(ctx context.Context, args []string) error {
	return o.queuePauseResume(ctx, args, false)
}

func (o *opsCLI) queuePauseResume(ctx context.Context, args []string, pause bool) error {
	verb, past, summary := "resume", "resumed", `Lets every worker fetch jobs from queue NAME again ("*": every queue).`
	if pause {
		verb, past, summary = "pause", "paused", `Stops every worker, in every process, from fetching new jobs from queue NAME
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
	c, err := o.core(ctx)
	if err != nil {
		return err
	}
	defer c.Pool.Close()
	if pause {
		err = c.PauseQueue(ctx, queue)
	} else {
		err = c.ResumeQueue(ctx, queue)
	}
	if errors.Is(err, ops.ErrNotFound) {
		return fmt.Errorf("queue %q not found: River knows a queue once a worker has started on it (see 'reauth queues list')", queue)
	}
	if err != nil {
		return err
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
	fmt.Fprintf(o.stdout, "%s %s\n", past, queue)
	return nil
}

func (o *opsCLI) stats(ctx context.Context, args []string) error {
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
	d, err := ops.ParseDuration(*window)
	if err != nil || d <= 0 {
		return o.usageErr("stats", "--window must be a positive duration like 90m, 24h or 7d")
	}
	c, err := o.core(ctx)
	if err != nil {
		return err
	}
	defer c.Pool.Close()
	s, err := c.Stats(ctx, d)
	if err != nil {
		return err
	}
	if *asJSON {
		return o.printJSON(s)
	}
	out := o.stdout
	fmt.Fprintln(out, "queues (unfinished jobs by state):")
	w := opsTable(out)
	opsRow(w, "  QUEUE", "PAUSED", "AVAILABLE", "SCHEDULED", "RUNNING", "RETRYABLE")
	for _, q := range s.Queues {
		opsRow(w, "  "+q.Name, opsYesNo(&q.Paused), opsItoa(q.Available), opsItoa(q.Scheduled), opsItoa(q.Running), opsItoa(q.Retryable))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nfunnel, last %s (since %s):\n", *window, ts(s.Since))
	w = opsTable(out)
	opsRow(w, "  ORG", "KIND", "REQUESTED", "LINK CREATED", "SENT", "OPENED", "COMPLETED")
	for _, f := range append(s.Funnel, s.Total) {
		opsRow(w, "  "+f.OrgID, f.DeviceKind, opsItoa(f.Requested), opsItoa(f.LinkCreated), opsItoa(f.Sent),
			opsItoa(f.Opened), opsItoa(f.Completed)+opsPercent(f.Completed, f.LinkCreated))
	}
	if err := w.Flush(); err != nil {
		return err
	}

	b := s.Budget
	fmt.Fprintln(out, "\nPodero budget (calls a second over about the last minute, every process):")
	w = opsTable(out)
	opsRow(w, "  PURPOSE", "CALLS/S")
	for _, p := range b.Purposes {
		opsRow(w, "  "+p.Purpose, fmt.Sprintf("%.2f", p.Rate))
	}
	opsRow(w, "  total", fmt.Sprintf("%.2f %s", b.Total, b.LimitText()))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "  requests waiting: %d, drained in %s\n", b.Waiting, b.DrainText())

	y := s.Sync
	fmt.Fprintf(out, "\ndevice sync (SYNC_INTERVAL %s):\n", y.Interval)
	fmt.Fprintf(out, "  users listed: %d (%d with devices), %d device calls a pass; %d due, %d queued\n",
		y.Users, y.UsersWithDevices, y.PassCalls, y.Due, y.Queued)
	fmt.Fprintf(out, "  lag: %s\n", y.LagText())
	fmt.Fprintf(out, "  a full pass: %s; %s\n", y.PassText(), y.CurrentText())
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
func (o *opsCLI) runNow(ctx context.Context, cmd string, args []string) error {
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
	c, err := o.core(ctx)
	if err != nil {
		return err
	}
	defer c.Pool.Close()
	res, err := c.River.Insert(ctx, jobArgs, nil)
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
