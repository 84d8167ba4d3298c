package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/session"
	"github.com/reauth/reauth/internal/store"
)

// VerifyTimeoutDefault is VERIFY_TIMEOUT's default: how long after a
// success callback a device Podero still shows lapsed is checked again
// before the completion counts as unverified. Podero refreshes a device's
// state every 5 to 15 minutes; two hours leave room for a slow
// manufacturer.
const VerifyTimeoutDefault = 2 * time.Hour

func (cfg Config) verifyAfter() time.Duration {
	return cmp.Or(cfg.VerifyAfter, session.VerifyAfterDefault)
}

func (cfg Config) verifyTimeout() time.Duration {
	return cmp.Or(cfg.VerifyTimeout, VerifyTimeoutDefault)
}

// VerifyWorker works reauth_verify jobs: it checks at Podero that the
// device of a session completed through its link is authenticated again.
// The device's listing (the sync's call, as class Bulk and purpose verify
// at the shared rate limit) decides: authenticated (is_authenticated and
// no reauthenticate action) confirms the completion (session.Confirm);
// still lapsed, it is checked again every VERIFY_AFTER until
// VERIFY_TIMEOUT after the callback, and then the session becomes
// unverified and the user gets a fresh link (session.Unverified). A device
// Podero no longer lists is left to the sync (it marks it gone).
type VerifyWorker struct {
	river.WorkerDefaults[reauth.VerifyArgs]
	cfg Config
}

// Work makes one check.
func (w *VerifyWorker) Work(ctx context.Context, job *river.Job[reauth.VerifyArgs]) error {
	a := job.Args
	if err := a.Validate(); err != nil {
		return river.JobCancel(fmt.Errorf("invalid job args: %w", err))
	}
	sess, err := store.GetSession(ctx, w.cfg.Pool, a.SessionID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("session %d does not exist", a.SessionID))
	}
	if err != nil {
		return err
	}
	log := jobLogger(ctx, w.cfg.Logger).With(slog.Int64("job_id", job.ID), slog.Int64("session", sess.ID))
	if sess.State != store.SessionCompleted || sess.VerifiedAt != nil || sess.FinishedAt == nil {
		log.InfoContext(ctx, "nothing to verify", slog.String("state", sess.State))
		return nil
	}
	ctx = podero.WithPurpose(podero.WithClass(ctx, podero.ClassBulk), podero.PurposeVerify)
	devices, err := w.cfg.Podero.ListDevices(ctx, sess.OrgID, sess.UserID, sess.DeviceKind)
	if pe, ok := podero.AsError(err); ok && (pe.Kind == podero.KindNotFound || pe.Kind == podero.KindInvalid) {
		return river.JobCancel(fmt.Errorf("cannot verify: %w", err)) // the user is gone at Podero
	}
	if err != nil {
		return throttled(err)
	}
	var found *podero.Device
	for i := range devices {
		if strings.EqualFold(devices[i].ID, sess.DeviceID) {
			found = &devices[i]
		}
	}
	if found == nil {
		log.InfoContext(ctx, "device no longer listed at Podero: not verified", slog.String("device_id", sess.DeviceID))
		return nil
	}
	if Authenticated(*found) {
		_, err := w.cfg.sessions().Confirm(ctx, nil, sess)
		return err
	}
	waited := w.cfg.now().Sub(*sess.FinishedAt)
	if left := w.cfg.verifyTimeout() - waited; left > 0 {
		log.InfoContext(ctx, "device still lapsed at Podero: checked again", slog.Duration("after", min(w.cfg.verifyAfter(), left)))
		return river.JobSnooze(min(w.cfg.verifyAfter(), left))
	}
	detail := fmt.Sprintf("Podero still shows the device lapsed %s after the login (VERIFY_TIMEOUT)", shortDuration(waited))
	_, _, err = w.cfg.sessions().Unverified(ctx, nil, sess, detail)
	return err
}

// Authenticated reports whether Podero lists d authenticated again: its
// is_authenticated is true and no action asks to reauthenticate (the
// sweep's rule, device.needs_reauth, the other way round).
func Authenticated(d podero.Device) bool {
	if d.IsAuthenticated == nil || !*d.IsAuthenticated || d.DeletedAt != nil {
		return false
	}
	for _, a := range d.Actions {
		if a.Code == "reauthenticate" {
			return false
		}
	}
	return true
}
