package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
)

const contactsUsage = `Usage: reauth contacts <set|show> ORG_ID USER_ID [flags]
       reauth contacts <suppressed|unsuppress> EMAIL

  set ORG_ID USER_ID    create or change how the user is reached (only the flags given change)
  show ORG_ID USER_ID   the user's contact
  suppressed EMAIL      whether email is suppressed (an SMTP server said the mailbox does not exist), and why
  unsuppress EMAIL      take email off the suppression list, so messages go to it again

Run 'reauth contacts set -h' for its flags.
`

// stringsFlag collects a repeated flag; -flag "" clears the list.
type stringsFlag struct {
	vals []string
	set  bool
}

func (f *stringsFlag) String() string { return strings.Join(f.vals, ",") }
func (f *stringsFlag) Set(v string) error {
	f.set = true
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			f.vals = append(f.vals, p)
		}
	}
	return nil
}

func (o *opsCLI) contactsSet(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("contacts set", flag.ContinueOnError)
	email := fs.String("email", "", "the user's email address (\"\" clears)")
	locale := fs.String("locale", "", "the user's language: "+strings.Join(reauth.Locales, ", ")+" (\"\" clears)")
	timezone := fs.String("timezone", "", "the user's IANA time zone for quiet hours, e.g. Europe/Vienna (\"\" clears)")
	var tokens, channels, optedOut stringsFlag
	fs.Var(&tokens, "fcm-token", "an FCM registration token; repeat or separate with commas; replaces the stored list (\"\" clears)")
	fs.Var(&channels, "channels", "channels in order of preference, e.g. push,email ("+strings.Join(reauth.Channels, ", ")+")")
	fs.Var(&optedOut, "opt-out", "channels never to use, e.g. push (\"\" clears)")
	pos, err := o.parseArgs(fs, args, "contacts set ORG_ID USER_ID [flags]",
		`Creates or changes the user's contact: the flags given replace what is stored,
the others keep it. A request's own email and locale still win over these.`)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) != 2 {
		return o.usageErr("contacts set", "want ORG_ID USER_ID, got %d arguments", len(pos))
	}
	var c reauth.Contact
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "email":
			c.Email = email
		case "locale":
			c.Locale = locale
		case "timezone":
			c.Timezone = timezone
		case "fcm-token":
			c.FCMTokens = &tokens.vals
		case "channels":
			c.Channels = &channels.vals
		case "opt-out":
			c.OptedOut = &optedOut.vals
		}
	})
	c = c.Normalized()
	orgID, userID := strings.ToLower(pos[0]), strings.ToLower(pos[1])
	if !reauth.IsUUID(orgID) || !reauth.IsUUID(userID) {
		return o.usageErr("contacts set", "ORG_ID and USER_ID must be UUIDs")
	}
	if err := c.Validate(); err != nil {
		return o.usageErr("contacts set", "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	pool, err := o.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	saved, err := store.UpsertContact(ctx, pool, orgID, userID, store.ContactUpdate{
		Email: c.Email, Locale: c.Locale, Timezone: c.Timezone, FCMTokens: c.FCMTokens, Channels: c.Channels, OptedOut: c.OptedOut,
	})
	if err != nil {
		return err
	}
	return o.printContact(saved)
}

func (o *opsCLI) contactsShow(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("contacts show", flag.ContinueOnError)
	pos, err := o.parseArgs(fs, args, "contacts show ORG_ID USER_ID", "Shows the user's contact.")
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) != 2 || !reauth.IsUUID(pos[0]) || !reauth.IsUUID(pos[1]) {
		return o.usageErr("contacts show", "want ORG_ID USER_ID (UUIDs)")
	}
	pool, err := o.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	c, err := store.GetContact(ctx, pool, strings.ToLower(pos[0]), strings.ToLower(pos[1]))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no contact for user %s in org %s", pos[1], pos[0])
	}
	if err != nil {
		return err
	}
	return o.printContact(c)
}

func (o *opsCLI) printContact(c store.Contact) error {
	tw := opsTable(o.stdout)
	opsRow(tw, "org", c.OrgID)
	opsRow(tw, "user", c.UserID)
	opsRow(tw, "email", opsDash(c.Email))
	opsRow(tw, "locale", opsDash(c.Locale))
	opsRow(tw, "timezone", opsDash(c.Timezone))
	opsRow(tw, "fcm tokens", fmt.Sprint(len(c.FCMTokens)))
	opsRow(tw, "channels", strings.Join(c.Channels, ", "))
	opsRow(tw, "opted out", opsDash(strings.Join(c.OptedOut, ", ")))
	opsRow(tw, "updated", ts(c.UpdatedAt))
	return tw.Flush()
}

func (o *opsCLI) contactsSuppressed(ctx context.Context, args []string) error {
	return o.suppression(ctx, "contacts suppressed", args, false)
}

func (o *opsCLI) contactsUnsuppress(ctx context.Context, args []string) error {
	return o.suppression(ctx, "contacts unsuppress", args, true)
}

// suppression shows email's suppression, or lifts it.
func (o *opsCLI) suppression(ctx context.Context, cmd string, args []string, lift bool) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	summary := "Shows whether EMAIL is on the suppression list (no email goes to it), and why."
	if lift {
		summary = `Takes EMAIL off the suppression list: messages go to it again, and jobs
cancelled because it was refused can be retried (reauth jobs retry).`
	}
	pos, err := o.parseArgs(fs, args, cmd+" EMAIL", summary)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) != 1 || reauth.ValidateEmail(pos[0]) != nil {
		return o.usageErr(cmd, "want one EMAIL address")
	}
	pool, err := o.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	get := store.GetSuppression
	if lift {
		get = store.LiftSuppression
	}
	sup, err := get(ctx, pool, pos[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s is not suppressed", pos[0])
	}
	if err != nil {
		return err
	}
	tw := opsTable(o.stdout)
	opsRow(tw, "email", sup.Address)
	if lift {
		opsRow(tw, "suppression", "lifted")
	}
	opsRow(tw, "reason", sup.Reason)
	opsRow(tw, "suppressed", ts(sup.CreatedAt))
	return tw.Flush()
}
