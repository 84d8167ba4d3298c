package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/config"
)

func enqueueCmd(ctx context.Context, args []string, cfg config.Config, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	var a reauth.DeviceArgs
	var kind string
	var asJSON bool
	fs.StringVar(&a.OrgID, "org", "", "Podero organization ID (UUID, required)")
	fs.StringVar(&a.UserID, "user", "", "Podero user ID (UUID, required)")
	fs.StringVar(&kind, "kind", "", "device kind: inverter, electric_vehicle or wallbox (required)")
	fs.StringVar(&a.DeviceID, "device", "", "Podero device ID (UUID, required)")
	fs.StringVar(&a.Email, "email", "", "send the link to this address instead of the user's email at Podero")
	fs.StringVar(&a.Locale, "locale", "", "message language: "+strings.Join(reauth.Locales, ", ")+" (default en)")
	fs.StringVar(&a.SuccessURL, "success-url", "", "partner page after a completed login")
	fs.StringVar(&a.CancelURL, "cancel-url", "", "partner page after a cancelled login")
	fs.StringVar(&a.Reason, "reason", "cli", "free text for operators")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	if err := parseFlags(fs, args, stderr, "Requests a reauthentication for one device. Prints the job ID, or the ID of the\nrequest already pending for the device (a duplicate)."); err != nil {
		return ignoreHelp(err)
	}
	a.DeviceKind = reauth.DeviceKind(kind)
	if err := a.Validate(); err != nil {
		fmt.Fprintf(stderr, "reauth enqueue: invalid request:\n%s\n", err)
		return errUsage
	}
	if err := cfg.Require("DATABASE_URL"); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	var res reauth.Result
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		res, err = reauth.Enqueue(ctx, tx, a)
		return err
	})
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if res.Duplicate {
		fmt.Fprintf(stdout, "duplicate: job %d is already pending for this device\n", res.JobID)
	} else {
		fmt.Fprintf(stdout, "enqueued: job %d\n", res.JobID)
	}
	return nil
}
