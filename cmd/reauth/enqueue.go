package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/term"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/config"
	"github.com/reauth/reauth/internal/hostlist"
	"github.com/reauth/reauth/internal/store"
)

func enqueueCmd(ctx context.Context, args []string, cfg config.Config, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	var a reauth.DeviceArgs
	var kind string
	var asJSON bool
	var csvFile string
	fs.StringVar(&a.OrgID, "org", "", "Podero organization ID (UUID, required)")
	fs.StringVar(&a.UserID, "user", "", "Podero user ID (UUID; this or -external-user is required)")
	fs.StringVar(&a.ExternalUserID, "external-user", "", "the partner's own customer `ID` of the user (external_user_id at Podero), instead of -user")
	fs.BoolVar(&a.Force, "force", false, "ask for a new session even if the device completed one within REAUTH_REPEAT_COOLDOWN")
	fs.StringVar(&kind, "kind", "", "device kind: inverter, electric_vehicle or wallbox (required)")
	fs.StringVar(&a.DeviceID, "device", "", "Podero device ID (UUID, required)")
	fs.StringVar(&a.Email, "email", "", "send the link to this address instead of the user's email at Podero")
	fs.StringVar(&a.Locale, "locale", "", "message language: "+strings.Join(reauth.Locales, ", ")+" (default en)")
	fs.StringVar(&a.SuccessURL, "success-url", "", "partner page after a completed login")
	fs.StringVar(&a.CancelURL, "cancel-url", "", "partner page after a cancelled login")
	fs.StringVar(&a.Reason, "reason", "cli", "free text for operators")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.StringVar(&csvFile, "csv", "", "enqueue every row of this CSV `file` instead (header: org_id, device_kind, device_id,\nuser_id or external_user_id, and optionally email, locale, success_url, cancel_url)")
	if err := parseFlags(fs, args, stderr, `Requests a reauthentication for one device. Prints the job ID, or the ID of the
request already pending for the device (a duplicate). With -csv, requests one
per row: rows that are not valid are reported and skipped, the rest enqueued;
the exit code is 1 when any row was rejected.`); err != nil {
		return ignoreHelp(err)
	}
	if csvFile != "" {
		return enqueueCSVCmd(ctx, cfg, csvFile, a.Reason, asJSON, stdout, stderr)
	}
	a.DeviceKind = reauth.DeviceKind(kind)
	redirect, err := hostlist.Parse(cfg.RedirectHosts)
	if err != nil {
		return fmt.Errorf("REDIRECT_HOSTS: %w", err)
	}
	if a, err = a.Check(redirect); err != nil {
		fmt.Fprintf(stderr, "reauth enqueue: invalid request:\n%s\n", err)
		return errUsage
	}
	pool, err := openMigratedPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := repeatResult(ctx, pool, cfg, a)
	if err == nil && res.SessionID == 0 {
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			res, err = reauth.EnqueueWith(ctx, tx, a, reauth.EnqueueOpts{MaxAttempts: cfg.MaxAttempts})
			return err
		})
	}
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	switch {
	case res.SessionID != 0:
		fmt.Fprintf(stdout, "duplicate: the device completed session %d (job %d) within REAUTH_REPEAT_COOLDOWN (%s); -force asks again\n",
			res.SessionID, res.JobID, cfg.RepeatCooldown)
	case res.Duplicate:
		fmt.Fprintf(stdout, "duplicate: job %d is already pending for this device\n", res.JobID)
	default:
		fmt.Fprintf(stdout, "enqueued: job %d\n", res.JobID)
	}
	return nil
}

func enqueueCSVCmd(ctx context.Context, cfg config.Config, path, reason string, asJSON bool, stdout, stderr io.Writer) error {
	redirect, err := hostlist.Parse(cfg.RedirectHosts)
	if err != nil {
		return fmt.Errorf("REDIRECT_HOSTS: %w", err)
	}
	pool, err := openMigratedPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	var progress func(csvReport, int64, int64)
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		progress = func(rep csvReport, read, size int64) {
			pct := 100
			if size > 0 {
				pct = int(100 * read / size)
			}
			bar := strings.Repeat("█", pct/5) + strings.Repeat("·", 20-pct/5)
			fmt.Fprintf(stderr, "\r%s %3d%%  enqueued %d, duplicates %d, rejected %d", bar, pct, rep.Enqueued, rep.Duplicates, len(rep.Rejected))
		}
	}
	rep, err := enqueueCSV(ctx, pool, path, reason, redirect, cfg.MaxAttempts, progress)
	if progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	if asJSON {
		if rep.Rejected == nil {
			rep.Rejected = []string{}
		}
		if err := json.NewEncoder(stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		for _, r := range rep.Rejected {
			fmt.Fprintln(stderr, "rejected", r)
		}
		fmt.Fprintf(stdout, "enqueued %d, duplicates %d, rejected %d\n", rep.Enqueued, rep.Duplicates, len(rep.Rejected))
	}
	if len(rep.Rejected) > 0 {
		return errRejectedRows
	}
	return nil
}

// errRejectedRows: exit code 1, the report already printed.
var errRejectedRows = errors.New("some rows were rejected")

// repeatResult is the duplicate answer for a device whose session completed
// within REAUTH_REPEAT_COOLDOWN (unless a.Force), the zero Result otherwise.
func repeatResult(ctx context.Context, db store.DB, cfg config.Config, a reauth.DeviceArgs) (reauth.Result, error) {
	if cfg.RepeatCooldown <= 0 || a.Force {
		return reauth.Result{}, nil
	}
	sid, jobID, err := store.RecentCompletion(ctx, db, a.DeviceKind, a.DeviceID, time.Now().Add(-cfg.RepeatCooldown))
	if errors.Is(err, store.ErrNotFound) {
		return reauth.Result{}, nil
	}
	if err != nil {
		return reauth.Result{}, err
	}
	return reauth.Result{JobID: jobID, Duplicate: true, SessionID: sid}, nil
}
