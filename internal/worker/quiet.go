package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/sendwindow"
	"github.com/reauth/reauth/internal/store"
)

// This file holds quiet hours: a message goes out only inside
// Config.SendWindow in its user's zone; one due outside waits for the
// window's next start, never dropped.

// deferredMetadata marks a step-0 reauth_notify job that quiet hours
// deferred: its first message answered no interactive request (or one
// that respects the window), so it waits for the window if it runs late.
// A step-0 job without it is a renewal's, whose user just opened the link.
const deferredMetadata = `{"reauth_send_window":"deferred"}`

// deferredByWindow reports whether a job's metadata carries
// deferredMetadata.
func deferredByWindow(metadata []byte) bool {
	var m struct {
		SendWindow string `json:"reauth_send_window"`
	}
	return json.Unmarshal(metadata, &m) == nil && m.SendWindow == "deferred"
}

// zone is the zone the quiet hours of v's user are reckoned in: the
// contact's timezone, else the country's, else DefaultZone.
func (cfg Config) zone(v store.NotifyView) *time.Location {
	return sendwindow.Zones{Default: cfg.DefaultZone}.For(v.Contact.Timezone, v.Country)
}

// quietUntil is when delivery d may go out, in zone: wait is false when it
// may go now (inside the window, no window, or the first message of an
// interactive request, unless InteractiveRespectsWindow).
func (cfg Config) quietUntil(d delivery, zone *time.Location) (at time.Time, wait bool) {
	if cfg.SendWindow.IsAlways() || (d.interactive && !cfg.InteractiveRespectsWindow) {
		return time.Time{}, false
	}
	now := cfg.now()
	at = cfg.SendWindow.Next(now, zone)
	return at, at.After(now)
}

// waitForWindow defers delivery d to at, the window's start: a
// reauth_notify job snoozes until then (no attempt used); the reauth_device
// job that made the session schedules the step-0 reauth_notify job for
// then, and is done. That job is unique per session and step, so a retried
// device job inserts no second one.
func (cfg Config) waitForWindow(ctx context.Context, log *slog.Logger, d delivery, zone *time.Location, at time.Time) error {
	log.InfoContext(ctx, "outside the user's send window (SEND_WINDOW): the message waits for its start",
		slog.String("window", cfg.SendWindow.String()), slog.String("zone", zone.String()), slog.Time("at", at))
	if !d.deviceJob {
		return river.JobSnooze(max(at.Sub(cfg.now()), time.Second))
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	_, err := client.Insert(ctx, reauth.NotifyArgs{SessionID: d.session, Step: d.step},
		&river.InsertOpts{ScheduledAt: at, Metadata: []byte(deferredMetadata)})
	return err
}
