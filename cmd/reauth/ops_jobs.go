package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/reauth/reauth/internal/ops"
)

// registerFilter adds the flags that choose jobs.
func registerFilter(fs *flag.FlagSet, f *ops.FilterText) {
	fs.StringVar(&f.State, "state", "", "only jobs in these `states` (comma-separated): available, scheduled, running,\nretryable, pending, completed, discarded, cancelled")
	fs.StringVar(&f.Kind, "kind", "", "only jobs of these `kinds` (comma-separated), e.g. reauth_device, reauth_notify")
	fs.StringVar(&f.Queue, "queue", "", "only jobs on these `queues` (comma-separated): podero, notify, maintenance")
	fs.StringVar(&f.Device, "device", "", "only the jobs of the device with this Podero `UUID` (its requests and its messages;\nits newest 10000)")
	fs.StringVar(&f.Since, "since", "", "only jobs created after this: a `duration` back from now (90m, 24h, 7d) or an RFC 3339 time")
}

func (o *opsCLI) jobsList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jobs list", flag.ContinueOnError)
	var f ops.FilterText
	registerFilter(fs, &f)
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
	jf, err := f.Parse(time.Now())
	if err != nil {
		return o.usageErr("jobs list", "%v", err)
	}
	if *limit < 1 || *limit > ops.MaxLimit {
		return o.usageErr("jobs list", "--limit must be between 1 and 10000")
	}
	c, err := o.core(ctx)
	if err != nil {
		return err
	}
	defer c.Pool.Close()
	page, err := c.Jobs(ctx, jf, *limit, *after)
	if errors.Is(err, ops.ErrBadCursor) {
		return o.usageErr("jobs list", "--after is not a cursor this command printed")
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return o.printJSON(page)
	}
	if len(page.Jobs) == 0 {
		fmt.Fprintln(o.stdout, "no jobs match")
		return nil
	}
	w := opsTable(o.stdout)
	opsRow(w, "ID", "STATE", "KIND", "QUEUE", "ATTEMPT", "CREATED", "SUBJECT", "LAST ERROR")
	for _, j := range page.Jobs {
		opsRow(w, opsItoa(j.ID), j.State, j.Kind, j.Queue, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts),
			ts(j.CreatedAt), j.Subject, opsDash(opsOneLine(j.LastError, 60)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if page.NextCursor != nil {
		fmt.Fprintf(o.stdout, "next page: --after %s\n", *page.NextCursor)
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

func (o *opsCLI) jobsShow(ctx context.Context, args []string) error {
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
	c, err := o.core(ctx)
	if err != nil {
		return err
	}
	defer c.Pool.Close()
	j, err := c.Job(ctx, ids[0])
	if errors.Is(err, ops.ErrNotFound) {
		return fmt.Errorf("job %d not found", ids[0])
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return o.printJSON(j)
	}
	return printJob(o.stdout, j)
}

func printJob(out io.Writer, j ops.JobDetail) error {
	w := opsTable(out)
	opsRow(w, "job", opsItoa(j.ID))
	opsRow(w, "kind", j.Kind)
	opsRow(w, "queue", j.Queue)
	opsRow(w, "state", j.State)
	opsRow(w, "attempt", fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts))
	opsRow(w, "priority", opsItoa(j.Priority))
	if len(j.Tags) > 0 {
		opsRow(w, "tags", strings.Join(j.Tags, ", "))
	}
	opsRow(w, "created", ts(j.CreatedAt))
	opsRow(w, "scheduled", ts(j.ScheduledAt))
	opsRow(w, "attempted", ts(j.AttemptedAt))
	opsRow(w, "finalized", ts(j.FinalizedAt))
	if len(j.AttemptedBy) > 0 {
		opsRow(w, "attempted by", strings.Join(j.AttemptedBy, ", "))
	}
	if meta := string(j.OtherMetadata); meta != "{}" && meta != "" {
		opsRow(w, "metadata", meta)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nargs:")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, j.Args, "  ", "  "); err != nil {
		pretty.Reset()
		pretty.Write(j.Args)
	}
	fmt.Fprintf(out, "  %s\n", pretty.String())

	fmt.Fprintf(out, "\nerrors (%d):\n", len(j.Errors))
	if len(j.Errors) == 0 {
		fmt.Fprintln(out, "  none")
	}
	for _, e := range j.Errors {
		fmt.Fprintf(out, "  attempt %d at %s:\n%s\n", e.Attempt, ts(e.At), opsIndent(e.Error, "    "))
	}
	if len(j.Logs) > 0 {
		fmt.Fprintln(out, "\nlogs:")
		for _, l := range j.Logs {
			fmt.Fprintf(out, "  attempt %d:\n", l.Attempt)
			for _, line := range l.Lines {
				fmt.Fprintln(out, opsIndent(line.String(), "    "))
			}
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

func (o *opsCLI) jobsRetry(ctx context.Context, args []string) error {
	return o.jobsAct(ctx, args, "retry", `Makes jobs available to run again now (River's JobRetry): a discarded or
cancelled job gets another attempt, a scheduled or retryable one runs now. A
running job is left alone. A request for a device that has another pending is
skipped (duplicate).

Give job IDs, or choose jobs with --state (required) and the other filters;
then it asks "retry N jobs? [y/N]" unless --yes. Exit 1 when any job could
not be retried (not found, error).`, (*ops.Ops).Retry)
}

func (o *opsCLI) jobsCancel(ctx context.Context, args []string) error {
	return o.jobsAct(ctx, args, "cancel", `Cancels jobs (River's JobCancel): a job still in the queue is cancelled at
once; a running one is told to stop and is cancelled when it returns. A
finished job is left alone.

Give job IDs, or choose jobs with --state (required) and the other filters;
then it asks "cancel N jobs? [y/N]" unless --yes. Exit 1 when any job could
not be cancelled (not found, error).`, (*ops.Ops).Cancel)
}

func (o *opsCLI) jobsAct(ctx context.Context, args []string, verb, summary string,
	act func(*ops.Ops, context.Context, int64) ops.Action) error {
	name := "jobs " + verb
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f ops.FilterText
	registerFilter(fs, &f)
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
	byFilter := f.Set()
	switch {
	case len(ids) > 0 && byFilter:
		return o.usageErr(name, "give job IDs or filters, not both")
	case len(ids) == 0 && !byFilter:
		return o.usageErr(name, "give job IDs, or choose jobs with --state and other filters")
	case byFilter && f.State == "":
		return o.usageErr(name, "--state is required when choosing jobs by filter")
	}
	jf, err := f.Parse(time.Now())
	if err != nil {
		return o.usageErr(name, "%v", err)
	}
	past := map[string]string{"retry": "retried", "cancel": "cancelled"}[verb]

	c, err := o.core(ctx)
	if err != nil {
		return err
	}
	defer c.Pool.Close()
	if byFilter {
		if ids, err = c.JobIDs(ctx, jf); err != nil {
			return err
		}
		if len(ids) == 0 {
			if *asJSON {
				return o.printJSON(ops.Report{Results: []ops.Action{}})
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
				return fmt.Errorf("aborted: no job was %s", past)
			}
		}
	}

	rep := ops.Report{Results: []ops.Action{}}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := act(c, ctx, id)
		rep.Add(a)
		if !*asJSON && (!byFilter || a.Failed() || a.Skipped()) {
			fmt.Fprintf(o.stdout, "job %d: %s\n", a.ID, a.Message)
		}
	}
	if *asJSON {
		if err := o.printJSON(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(o.stdout, "%s %d, skipped %d, failed %d\n", past, rep.Done, rep.Skipped, rep.Failed)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d of %d jobs could not be %s", rep.Failed, len(ids), past)
	}
	return nil
}
