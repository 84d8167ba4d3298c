// Command reauth is the reauthentication service: one binary whose
// subcommands serve, migrate, enqueue and demo. Run `reauth help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lmittmann/tint"
	"golang.org/x/term"

	"github.com/reauth/reauth/internal/config"
)

const usage = `reauth keeps end users' energy devices connected to Podero.

Usage: reauth <command> [flags]

Commands:
  serve     run the HTTP API and the workers (needs a migrated database)
  migrate   apply River's and the app's database migrations
  enqueue   request a reauthentication for one device
  demo      run the whole pipeline against a built-in simulator and mail catcher
  mailcatch a local SMTP server that prints each message's subject, recipient and links
  jobs      list, show, retry and cancel River jobs
  devices   show a device with its sessions, messages and jobs
  sessions  list authentication sessions
  queues    list, pause and resume queues
  stats     queue depths and the funnel per org and device kind
  sync      run the device sync now (sync --now)
  sweep     run the sweep now (sweep --now)
  contacts  set or show how a user is reached (email, push tokens, channels); lift an address's suppression

Configuration comes from the environment; see the README.
Run 'reauth <command> -h' for a command's flags.
`

// errUsage marks a command line mistake: exit code 2, message already shown.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode is the process's exit code for run's error, printing the error
// (once prefixed "reauth: ") unless it was already shown: 0 success, 1
// failure, 2 bad command line.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errRejectedRows):
		return 1
	}
	// Errors from the reauth package already begin with its name.
	fmt.Fprintln(stderr, "reauth: "+strings.TrimPrefix(err.Error(), "reauth: "))
	return 1
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "mailcatch": // needs no configuration
		return mailcatchCmd(ctx, args, stdout, stderr)
	case "serve", "migrate", "enqueue", "demo":
	case "jobs", "devices", "sessions", "queues", "stats", "sync", "sweep", "contacts":
	default:
		fmt.Fprintf(stderr, "reauth: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(cfg, stderr)
	switch cmd {
	case "serve":
		return serveCmd(ctx, args, cfg, log, stderr)
	case "migrate":
		return migrateCmd(ctx, args, cfg, log, stderr)
	case "enqueue":
		return enqueueCmd(ctx, args, cfg, stdout, stderr)
	case "jobs", "devices", "sessions", "queues", "stats", "sync", "sweep", "contacts":
		return opsCmd(ctx, cmd, args, cfg, stdout, stderr)
	default:
		return demoCmd(ctx, args, cfg, log, stdout, stderr)
	}
}

// newLogger writes colored text to a terminal and JSON otherwise, unless
// LOG_FORMAT says which.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: cfg.LogLevel, TimeFormat: "15:04:05.000"}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
}

// parseFlags parses a subcommand's flags; -h prints its usage and returns
// flag.ErrHelp, which the caller treats as success.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, summary string) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: reauth %s [flags]\n\n%s\n", fs.Name(), summary)
		if hasFlags(fs) {
			fmt.Fprintln(stderr, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "reauth %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}
