package main

// The operator commands: jobs, devices, sessions, queues, stats, sync and
// sweep. Each needs only DATABASE_URL, prints aligned tables for people and
// JSON with --json, and exits 0 on success, 1 on failure and 2 on a bad
// command line.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/config"
	"github.com/reauth/reauth/internal/ops"
)

// opsStdin is where confirmations are read; tests replace it.
var opsStdin io.Reader = os.Stdin

// opsCLI is what every operator command gets: it parses the command line,
// asks internal/ops and renders the typed result.
type opsCLI struct {
	cfg            config.Config
	stdout, stderr io.Writer
}

// opsCmd runs operator command cmd (jobs, devices, sessions, queues, stats,
// sync, sweep) with its arguments.
func opsCmd(ctx context.Context, cmd string, args []string, cfg config.Config, stdout, stderr io.Writer) error {
	o := &opsCLI{cfg: cfg, stdout: stdout, stderr: stderr}
	switch cmd {
	case "jobs":
		return o.group(ctx, "jobs", args, jobsUsage, map[string]func(context.Context, []string) error{
			"list": o.jobsList, "show": o.jobsShow, "retry": o.jobsRetry, "cancel": o.jobsCancel,
		})
	case "devices":
		return o.group(ctx, "devices", args, devicesUsage, map[string]func(context.Context, []string) error{
			"show": o.devicesShow,
		})
	case "sessions":
		return o.group(ctx, "sessions", args, sessionsUsage, map[string]func(context.Context, []string) error{
			"list": o.sessionsList,
		})
	case "queues":
		return o.group(ctx, "queues", args, queuesUsage, map[string]func(context.Context, []string) error{
			"list": o.queuesList, "pause": o.queuesPause, "resume": o.queuesResume,
		})
	case "contacts":
		return o.group(ctx, "contacts", args, contactsUsage, map[string]func(context.Context, []string) error{
			"set": o.contactsSet, "show": o.contactsShow,
			"suppressed": o.contactsSuppressed, "unsuppress": o.contactsUnsuppress,
		})
	case "stats":
		return o.stats(ctx, args)
	case "sync", "sweep":
		return o.runNow(ctx, cmd, args)
	}
	return fmt.Errorf("unknown operator command %q", cmd)
}

const jobsUsage = `Usage: reauth jobs <list|show|retry|cancel> [flags]

  list                 River jobs, newest first, with filters and paging
  show ID              one job: args, attempts, every error, logs
  retry ID...          make jobs available to run again now
  retry --state S ...  the same for every job matching filters (asks first)
  cancel ID...         cancel jobs (a running job is told to stop)
  cancel --state S ... the same for every job matching filters (asks first)

Run 'reauth jobs <subcommand> -h' for its flags.
`

const devicesUsage = `Usage: reauth devices show KIND ID [--json]

  show KIND ID   a device with its sync state, sessions, messages and jobs
                 (KIND is inverter, electric_vehicle or wallbox)
`

const sessionsUsage = `Usage: reauth sessions list [flags]

  list   authentication sessions, newest first

Run 'reauth sessions list -h' for its flags.
`

const queuesUsage = `Usage: reauth queues <list|pause|resume> [flags]

  list          queues with their pause state and unfinished jobs by state
  pause NAME    stop every worker fetching jobs from queue NAME ("*" for all)
  resume NAME   let workers fetch from queue NAME again ("*" for all)
`

// group dispatches a command with subcommands.
func (o *opsCLI) group(ctx context.Context, name string, args []string, usage string, subs map[string]func(context.Context, []string) error) error {
	if len(args) == 0 {
		fmt.Fprint(o.stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(o.stdout, usage)
		return nil
	}
	sub, ok := subs[args[0]]
	if !ok {
		fmt.Fprintf(o.stderr, "reauth %s: unknown subcommand %q\n\n%s", name, args[0], usage)
		return errUsage
	}
	return sub(ctx, args[1:])
}

// parseArgs parses flags that may come before, between or after the
// positional arguments, which it returns. -h prints the usage and returns
// flag.ErrHelp.
func (o *opsCLI) parseArgs(fs *flag.FlagSet, args []string, synopsis, summary string) ([]string, error) {
	fs.SetOutput(o.stderr)
	fs.Usage = func() {
		fmt.Fprintf(o.stderr, "Usage: reauth %s\n\n%s\n", synopsis, summary)
		if hasFlags(fs) {
			fmt.Fprintln(o.stderr, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// usageErr prints a command line mistake and returns errUsage (exit 2).
func (o *opsCLI) usageErr(cmd, format string, a ...any) error {
	fmt.Fprintf(o.stderr, "reauth %s: %s\nRun 'reauth %s -h' for help.\n", cmd, fmt.Sprintf(format, a...), cmd)
	return errUsage
}

// pool connects to DATABASE_URL, refusing an unmigrated database.
func (o *opsCLI) pool(ctx context.Context) (*pgxpool.Pool, error) {
	return openMigratedPool(ctx, o.cfg)
}

// core connects to DATABASE_URL and returns the operators' core on it, with
// an insert-only River client: it works no jobs but lists, retries, cancels
// and inserts them and pauses queues. Close the pool when done.
func (o *opsCLI) core(ctx context.Context) (*ops.Ops, error) {
	pool, err := o.pool(ctx)
	if err != nil {
		return nil, err
	}
	// Jobs it inserts (sync --now, sweep --now) get MAX_ATTEMPTS like the service's.
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{MaxAttempts: o.cfg.MaxAttempts, FetchCooldown: reauth.FetchCooldown})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &ops.Ops{Pool: pool, River: rc, RateLimit: o.cfg.PoderoRateLimit, SyncShare: o.cfg.SyncRateShare,
		SyncInterval: o.cfg.SyncInterval}, nil
}

// printJSON writes v as indented JSON.
func (o *opsCLI) printJSON(v any) error {
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// opsTable returns a tabwriter for aligned columns; Flush it.
func opsTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// opsRow writes one tab-separated row.
func opsRow(w io.Writer, cols ...string) {
	fmt.Fprintln(w, strings.Join(cols, "\t"))
}

// ts is ops.FormatTime: a time.Time or *time.Time, "-" when unset.
var ts = ops.FormatTime

func opsDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func opsYesNo(b *bool) string {
	switch {
	case b == nil:
		return "-"
	case *b:
		return "yes"
	}
	return "no"
}

// opsOneLine shortens s to one line of at most n runes for a table cell.
func opsOneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func opsItoa[T int | int64](n T) string { return strconv.FormatInt(int64(n), 10) }

// errNoConfirmation: asked to confirm with nothing on stdin (exit 2).
var errNoConfirmation = errors.New("no confirmation")

// confirm asks question on stderr and reads the answer from opsStdin: true
// for y or yes. With no input at all (stdin closed or /dev/null) it returns
// errNoConfirmation.
func (o *opsCLI) confirm(question string) (bool, error) {
	fmt.Fprintf(o.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(opsStdin).ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		fmt.Fprintln(o.stderr)
		return false, errNoConfirmation
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
