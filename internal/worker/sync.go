package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/store"
)

// Sweep defaults.
const (
	SweepCooldownDefault = 72 * time.Hour
	MaxPerWeekDefault    = 3
	SweepBatchDefault    = 1000
)

// SyncWorker works reauth_sync jobs: it lists the users of every configured
// organization and fans out one reauth_sync_user job per user.
type SyncWorker struct {
	river.WorkerDefaults[reauth.SyncArgs]
	cfg Config
}

// Work lists users org by org and inserts their sync jobs in batches.
func (w *SyncWorker) Work(ctx context.Context, job *river.Job[reauth.SyncArgs]) error {
	ctx = podero.WithClass(ctx, podero.ClassSync)
	client := river.ClientFromContext[pgx.Tx](ctx)
	total := 0
	for _, org := range w.cfg.OrgIDs {
		users, err := w.cfg.Podero.ListUsers(ctx, org)
		if err != nil {
			if t := throttled(err); t != err {
				return t // Podero is throttling or down: come back later
			}
			// One bad organization must not stop the others' sync.
			w.cfg.Logger.WarnContext(ctx, "sync: cannot list the organization's users", slog.String("org_id", org), slog.Any("error", err))
			continue
		}
		var batch []river.InsertManyParams
		var listed []string
		for _, u := range users {
			if u.DeletedAt != nil || !reauth.IsUUID(u.ID) {
				continue
			}
			listed = append(listed, u.ID)
			batch = append(batch, river.InsertManyParams{Args: reauth.SyncUserArgs{OrgID: org, UserID: u.ID}})
			if len(batch) == SweepBatchDefault {
				if _, err := client.InsertMany(ctx, batch); err != nil {
					return err
				}
				total, batch = total+len(batch), batch[:0]
			}
		}
		if len(batch) > 0 {
			if _, err := client.InsertMany(ctx, batch); err != nil {
				return err
			}
			total += len(batch)
		}
		// Devices of users deleted at Podero, or no longer listed, are gone.
		// An empty list is not trusted to mean that every user left.
		if len(listed) == 0 {
			continue
		}
		if n, err := store.MarkUsersGone(ctx, w.cfg.Pool, org, listed); err != nil {
			return err
		} else if n > 0 {
			w.cfg.Logger.InfoContext(ctx, "sync: devices of departed users gone", slog.String("org_id", org), slog.Int64("devices", n))
		}
	}
	w.cfg.Logger.InfoContext(ctx, "sync fanned out", slog.Int("orgs", len(w.cfg.OrgIDs)), slog.Int("users", total))
	return nil
}

// SyncUserWorker works reauth_sync_user jobs: it records what Podero says of
// one user's devices.
type SyncUserWorker struct {
	river.WorkerDefaults[reauth.SyncUserArgs]
	cfg Config
}

// Work lists the user's devices of every kind, upserts them, marks the ones
// Podero no longer lists gone, and closes sessions of devices that are
// authenticated again.
func (w *SyncUserWorker) Work(ctx context.Context, job *river.Job[reauth.SyncUserArgs]) error {
	ctx = podero.WithClass(ctx, podero.ClassSync)
	a := job.Args
	if err := a.Validate(); err != nil {
		return river.JobCancel(fmt.Errorf("invalid job args: %w", err))
	}
	// List first, then record everything in one transaction, in the
	// sweep's (kind, id) order so the two never lock rows crosswise.
	kinds := slices.Sorted(slices.Values(reauth.DeviceKinds))
	listed := make(map[reauth.DeviceKind][]podero.Device, len(kinds))
	for _, kind := range kinds {
		devices, err := w.cfg.Podero.ListDevices(ctx, a.OrgID, a.UserID, kind)
		if pe, ok := podero.AsError(err); ok && (pe.Kind == podero.KindNotFound || pe.Kind == podero.KindInvalid) {
			// The user (or org) is gone at Podero: so are its devices.
			if pe.Kind == podero.KindNotFound {
				for _, k := range kinds {
					if _, gerr := store.MarkMissingGone(ctx, w.cfg.Pool, a.OrgID, a.UserID, k, nil); gerr != nil {
						return gerr
					}
				}
			}
			return river.JobCancel(err)
		}
		if err != nil {
			return throttled(err)
		}
		for i := range devices {
			devices[i].ID = strings.ToLower(devices[i].ID)
		}
		slices.SortFunc(devices, func(x, y podero.Device) int { return strings.Compare(x.ID, y.ID) })
		listed[kind] = devices
	}
	closed, gone := 0, int64(0)
	err := pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		for _, kind := range kinds {
			ids := make([]string, 0, len(listed[kind]))
			for _, d := range listed[kind] {
				if !reauth.IsUUID(d.ID) {
					continue
				}
				actions, _ := json.Marshal(d.Actions)
				c, err := store.RecordSyncedDevice(ctx, tx, store.SyncedDevice{
					Kind: kind, ID: d.ID, OrgID: a.OrgID, UserID: a.UserID,
					IsAuthenticated: d.IsAuthenticated, ActionNeeded: d.ActionNeeded, Actions: actions,
					ConnectionStatus: d.ConnectionStatus, Deleted: d.DeletedAt != nil,
					Manufacturer: syncText(d.DeviceModel.Manufacturer), Model: syncText(d.DeviceModel.Model),
					LifecycleState: syncText(d.LifecycleState), LifecycleError: d.LifecycleError,
					ExternalDeviceID: syncText(d.ExternalDeviceID), OwnerEmail: ownerEmail(d.Owner, a.UserID),
				})
				if err != nil {
					return err
				}
				if c != 0 {
					closed++
					ev := reauth.NewEvent(reauth.EventCompleted, c, 0, a.OrgID, a.UserID, kind, d.ID, "elsewhere")
					if err := w.cfg.event(ctx, tx, ev); err != nil {
						return err
					}
				}
				ids = append(ids, d.ID)
			}
			n, err := store.MarkMissingGone(ctx, tx, a.OrgID, a.UserID, kind, ids)
			if err != nil {
				return err
			}
			gone += n
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record devices: %w", err)
	}
	for range closed {
		w.cfg.Metrics.Funnel(metrics.StepCompleted)
	}
	if closed > 0 || gone > 0 {
		w.cfg.Logger.InfoContext(ctx, "user synced", slog.String("user_id", a.UserID),
			slog.Int("sessions_completed_elsewhere", closed), slog.Int64("devices_gone", gone))
	}
	return nil
}

// syncTextMax is the most of a text field from Podero the sync records, in
// bytes.
const syncTextMax = 200

// syncText is a text field from Podero as the sync records it: trimmed, at
// most syncTextMax bytes (cut at a character boundary), "" when invalid
// UTF-8 or holding control characters, which no name or state has.
func syncText(s string) string {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return ""
	}
	for len(s) > syncTextMax {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// ownerEmail is the device owner's email as the sync records it: "" unless
// it is a usable address and the owner, when the device names one, is the
// user the device was listed under.
func ownerEmail(o podero.Owner, userID string) string {
	if o.ID != "" && !strings.EqualFold(o.ID, userID) {
		return ""
	}
	if reauth.ValidateEmail(o.Email) != nil {
		return ""
	}
	return o.Email
}

// SweepWorker works reauth_sweep jobs: it requests a session for every
// device that needs one, page by page.
type SweepWorker struct {
	river.WorkerDefaults[reauth.SweepArgs]
	cfg Config
}

// Work streams through the devices needing reauthentication in keyset pages
// (constant memory whatever the fleet) and enqueues each page with River's
// unique jobs, so an overlapping sweep or a pending request never doubles up.
func (w *SweepWorker) Work(ctx context.Context, job *river.Job[reauth.SweepArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	batch := cmp.Or(w.cfg.SweepBatch, SweepBatchDefault)
	var after store.DeviceKey
	found, inserted := 0, 0
	params := make([]river.InsertManyParams, 0, batch)
	for {
		var page []store.SweepCandidate
		next := after
		err := pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
			var err error
			page, next, err = store.SweepPage(ctx, tx, after, cmp.Or(w.cfg.SweepCooldown, SweepCooldownDefault),
				cmp.Or(w.cfg.MaxPerWeek, MaxPerWeekDefault), batch)
			if err != nil || len(page) == 0 {
				return err
			}
			params = params[:0]
			for _, c := range page {
				params = append(params, river.InsertManyParams{Args: reauth.DeviceArgs{
					OrgID: c.OrgID, UserID: c.UserID, DeviceKind: c.Kind, DeviceID: c.ID, Reason: reauth.ReasonSweep,
				}})
			}
			res, err := client.InsertManyTx(ctx, tx, params)
			if err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			for _, r := range res {
				if !r.UniqueSkippedAsDuplicate {
					inserted++
					w.cfg.Metrics.Funnel(metrics.StepRequested)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sweep page after %s/%s: %w", after.Kind, after.ID, err)
		}
		if next == after {
			break // nothing more to scan
		}
		found += len(page)
		after = next
	}
	w.cfg.Logger.InfoContext(ctx, "sweep done", slog.Int("devices_needing_reauth", found), slog.Int("enqueued", inserted))
	return nil
}
