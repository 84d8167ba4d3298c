package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
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
	"github.com/reauth/reauth/internal/session"
	"github.com/reauth/reauth/internal/store"
)

// Sweep defaults.
const (
	ReauthCooldownDefault = 72 * time.Hour // REAUTH_COOLDOWN
	MaxPerWeekDefault     = 3              // REAUTH_MAX_PER_WEEK
	SweepBatchDefault     = 1000           // SWEEP_BATCH
)

// Sync defaults.
const (
	// SyncIntervalDefault is how often at most each user's devices are
	// listed (SYNC_INTERVAL).
	SyncIntervalDefault = 6 * time.Hour
	// SyncTickDefault is how often the dispatcher queues the users due.
	SyncTickDefault = 15 * time.Second
	// SyncListBatch is how many listed users are recorded per statement.
	SyncListBatch = 1000
	// SyncListTimeout bounds one listing of every organization's users:
	// a list of millions of users streams for minutes.
	SyncListTimeout = time.Hour
	// SyncUnlimitedCallsPerTick is the device-list calls the dispatcher
	// queues per tick with no rate limit (PODERO_RATE_LIMIT=0).
	SyncUnlimitedCallsPerTick = 1000
	// SyncMaxCallsPerTick caps the calls queued per tick whatever the rate.
	SyncMaxCallsPerTick = 10000
)

// SyncWorker works reauth_sync jobs: it streams the users list of every
// configured organization into sync_user (store.UserListing), writing only
// what changed, and marks the users no longer listed, and their devices,
// gone. It lists no devices: reauth_sync_dispatch queues the users due.
type SyncWorker struct {
	river.WorkerDefaults[reauth.SyncArgs]
	cfg Config
}

// Timeout gives a listing of millions of users the time it streams.
func (w *SyncWorker) Timeout(*river.Job[reauth.SyncArgs]) time.Duration {
	return max(SyncListTimeout, w.cfg.JobTimeout)
}

// Work lists users org by org. One bad organization does not stop the
// others; throttling snoozes the job.
func (w *SyncWorker) Work(ctx context.Context, job *river.Job[reauth.SyncArgs]) error {
	ctx = podero.WithClass(ctx, podero.ClassSync)
	warned, err := w.cfg.warnSyncFit(ctx)
	if err != nil {
		return err
	}
	users := 0
	for _, org := range w.cfg.OrgIDs {
		res, err := w.listOrg(ctx, org)
		if _, ok := podero.AsError(err); ok {
			if t := throttled(err); t != err {
				return t // Podero is throttling or down: come back later
			}
			w.cfg.Logger.WarnContext(ctx, "sync: cannot list the organization's users", slog.String("org_id", org), slog.Any("error", err))
			continue
		}
		if err != nil {
			return fmt.Errorf("sync: record users of %s: %w", org, err)
		}
		users += res.Users
		attrs := []any{slog.String("org_id", org), slog.Int("users", res.Users), slog.Int64("changed", res.Changed),
			slog.Int64("users_gone", res.UsersGone), slog.Int64("devices_gone", res.DevicesGone), slog.Duration("took", res.Took)}
		if res.EmptyIgnored {
			w.cfg.Logger.WarnContext(ctx, "sync: the organization lists no users; none taken as gone", attrs...)
		} else {
			w.cfg.Logger.InfoContext(ctx, "sync: users listed", attrs...)
		}
	}
	if !warned {
		// The first listing: only now is the fleet known.
		if _, err := w.cfg.warnSyncFit(ctx); err != nil {
			return err
		}
	}
	if w.cfg.SyncSchedule == nil && len(w.cfg.OrgIDs) > 0 {
		// No periodic dispatcher (SYNC_SCHEDULE=off, `reauth sync --now`):
		// one runs until every listed user is synced.
		client := river.ClientFromContext[pgx.Tx](ctx)
		if _, err := client.Insert(ctx, reauth.SyncDispatchArgs{}, nil); err != nil {
			return fmt.Errorf("sync: insert dispatcher: %w", err)
		}
	}
	return nil
}

// listOrg streams org's users list into sync_user, in batches, on one
// connection (the listing's temporary table lives on it).
func (w *SyncWorker) listOrg(ctx context.Context, org string) (store.ListingResult, error) {
	conn, err := w.cfg.Pool.Acquire(ctx)
	if err != nil {
		return store.ListingResult{}, err
	}
	defer conn.Release()
	l, err := store.BeginUserListing(ctx, conn, org)
	if err != nil {
		return store.ListingResult{}, err
	}
	defer l.Close(ctx)
	batch := make([]store.ListedUser, 0, SyncListBatch)
	err = w.cfg.Podero.ForEachUser(ctx, org, func(u podero.User) error {
		if u.DeletedAt != nil || !reauth.IsUUID(u.ID) {
			return nil // a deleted user is not listed: gone
		}
		email := u.Email
		if reauth.ValidateEmail(email) != nil {
			email = ""
		}
		batch = append(batch, store.ListedUser{
			UserID: strings.ToLower(u.ID), Email: email, ExternalUserID: syncText(u.ExternalUserID), Country: syncText(u.Country),
			NumInverters: u.NumInverters, NumElectricVehicles: u.NumElectricVehicles, NumWallboxes: u.NumWallboxes,
		})
		if len(batch) < SyncListBatch {
			return nil
		}
		err := l.Add(ctx, batch)
		batch = batch[:0]
		return err
	})
	if err != nil {
		return store.ListingResult{}, err // incomplete: nobody is taken as gone
	}
	if err := l.Add(ctx, batch); err != nil {
		return store.ListingResult{}, err
	}
	return l.Finish(ctx)
}

// warnSyncFit logs a warning when the users listed cannot all be synced
// within SYNC_INTERVAL at the sync's share of the rate, saying what would
// do. It reports whether any user was listed to judge by.
func (cfg Config) warnSyncFit(ctx context.Context) (bool, error) {
	if len(cfg.OrgIDs) == 0 {
		return true, nil
	}
	st, err := store.GetSyncStatus(ctx, cfg.Pool, cfg.OrgIDs, cfg.syncInterval())
	if err != nil {
		return false, fmt.Errorf("sync status: %w", err)
	}
	if st.Users == 0 {
		return false, nil
	}
	if msg := SyncFitWarning(st, cfg.PoderoRate, cfg.syncShare(), cfg.syncInterval()); msg != "" {
		cfg.Logger.WarnContext(ctx, msg, slog.Int64("users", st.Users), slog.Int64("pass_calls", st.PassCalls),
			slog.Duration("sync_interval", cfg.syncInterval()))
	}
	return true, nil
}

// SyncFitWarning says, when st's users cannot all be synced within interval
// at share of rate calls a second, how long a pass takes and what interval
// or rate would do; "" when they can (or there is no limit).
func SyncFitWarning(st store.SyncStatus, rate, share float64, interval time.Duration) string {
	if rate <= 0 || st.PassCalls == 0 {
		return ""
	}
	perSecond := rate * share
	pass, _ := st.PassTime(perSecond)
	if pass <= interval {
		return ""
	}
	needRate := math.Ceil(float64(st.PassCalls) / interval.Seconds() / share)
	return fmt.Sprintf("sync: %d users need %d device calls a pass; at %.1f calls/s (SYNC_RATE_SHARE %g of PODERO_RATE_LIMIT %g) that is %s; set SYNC_INTERVAL ≥ %s or PODERO_RATE_LIMIT ≥ %g",
		st.Users, st.PassCalls, perSecond, share, rate, shortDuration(pass), shortDuration(pass), needRate)
}

// shortDuration is d rounded up to the minute, without zero units: "10h",
// "1h30m", "45m".
func shortDuration(d time.Duration) string {
	d = (d + time.Minute - 1).Truncate(time.Minute)
	s := strings.TrimSuffix(d.String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (cfg Config) syncInterval() time.Duration { return cmp.Or(cfg.SyncInterval, SyncIntervalDefault) }
func (cfg Config) syncTick() time.Duration     { return cmp.Or(cfg.SyncTick, SyncTickDefault) }
func (cfg Config) syncShare() float64 {
	if cfg.SyncShare <= 0 || cfg.SyncShare > 1 {
		return SyncRateShareDefault
	}
	return cfg.SyncShare
}

// syncCallsPerTick is the device-list calls the sync's part of the rate
// serves in one tick of the dispatcher: SYNC_RATE_SHARE of it while
// requests wait, all of it otherwise (as the limiter gives it).
func (cfg Config) syncCallsPerTick(requestsWaiting bool) int {
	if cfg.PoderoRate <= 0 {
		return SyncUnlimitedCallsPerTick
	}
	share := 1.0
	if requestsWaiting {
		share = cfg.syncShare()
	}
	calls := share * cfg.PoderoRate * cfg.syncTick().Seconds()
	return max(1, min(int(calls), SyncMaxCallsPerTick))
}

// SyncDispatchWorker works reauth_sync_dispatch jobs: every SyncTick, on
// the leader, it queues reauth_sync_user jobs for the users due (never
// synced, or not within SYNC_INTERVAL), oldest first, spread over the
// interval: a tick queues at most store.SyncTickQuota of a full pass's
// device-list calls (pass calls × SyncTick / SYNC_INTERVAL), so that each
// user is synced about once per interval and the calls are even over it,
// never more than the sync's part of the rate serves until the next tick
// (SYNC_RATE_SHARE of it while requests wait, all of it otherwise), less
// what the jobs still pending will take. Users overdue (store.SyncOverdue:
// one interval beyond due) go first and may take all of the rate's part,
// to catch up; so do all users due when the dispatcher runs once (`reauth
// sync --now` with no schedule). A pending user is never queued again;
// users without devices never are.
type SyncDispatchWorker struct {
	river.WorkerDefaults[reauth.SyncDispatchArgs]
	cfg Config
}

// Work queues one tick's users in one transaction: picked, inserted,
// marked queued.
func (w *SyncDispatchWorker) Work(ctx context.Context, job *river.Job[reauth.SyncDispatchArgs]) error {
	if len(w.cfg.OrgIDs) == 0 {
		return nil
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	interval := w.cfg.syncInterval()
	waiting, err := store.RequestsWaiting(ctx, w.cfg.Pool)
	if err != nil {
		return err
	}
	pick := store.SyncPick{Interval: interval, Calls: w.cfg.syncCallsPerTick(waiting)}
	if w.cfg.SyncSchedule != nil {
		// Scheduled: spread the pass over the interval. Run once (`reauth
		// sync --now`), every user due goes at the cap: asked for now.
		pick.Tick = w.cfg.syncTick()
	}
	var picked store.SyncPicked
	err = pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		var err error
		picked, err = store.PickSyncUsers(ctx, tx, w.cfg.OrgIDs, pick)
		due := picked.Due
		if err != nil || len(due) == 0 {
			return err
		}
		params := make([]river.InsertManyParams, len(due))
		for i, u := range due {
			params[i] = river.InsertManyParams{Args: reauth.SyncUserArgs{OrgID: u.OrgID, UserID: u.UserID, Kinds: u.Kinds}}
		}
		res, err := client.InsertManyTx(ctx, tx, params)
		if err != nil {
			return fmt.Errorf("insert sync jobs: %w", err)
		}
		jobs := make([]int64, len(res))
		for i, r := range res {
			jobs[i] = r.Job.ID // a duplicate's is the job already pending
		}
		return store.MarkSyncQueued(ctx, tx, due, jobs)
	})
	if err != nil {
		return fmt.Errorf("sync dispatch: %w", err)
	}
	due, pending := picked.Due, picked.Pending
	if len(due) > 0 {
		w.cfg.Logger.DebugContext(ctx, "sync: users queued", slog.Int("users", len(due)), slog.Int("overdue", picked.Overdue),
			slog.Int("pending_calls", pending), slog.Int("cap_calls", pick.Calls), slog.Int("spread_calls", picked.Quota),
			slog.Int64("pass_calls", picked.PassCalls))
	}
	if w.cfg.SyncSchedule != nil {
		return nil // the periodic job comes back next tick
	}
	// Run once (`reauth sync --now` with no schedule): come back until
	// every user due is synced.
	more, err := store.SyncUsersDue(ctx, w.cfg.Pool, w.cfg.OrgIDs, interval)
	if err != nil {
		return err
	}
	if more || pending > 0 || len(due) > 0 {
		return river.JobSnooze(w.cfg.syncTick())
	}
	return nil
}

// SyncUserWorker works reauth_sync_user jobs: it records what Podero says of
// one user's devices.
type SyncUserWorker struct {
	river.WorkerDefaults[reauth.SyncUserArgs]
	cfg Config
}

// Work lists the user's devices of the kinds its args name (every kind
// when they name none), upserts them, marks the ones Podero no longer lists
// gone, closes sessions of devices that are authenticated again, and
// records the user synced. The kinds the users list said the user has none
// of are not asked for: the listing marked those devices gone.
func (w *SyncUserWorker) Work(ctx context.Context, job *river.Job[reauth.SyncUserArgs]) error {
	ctx = podero.WithClass(ctx, podero.ClassSync)
	a := job.Args
	if err := a.Validate(); err != nil {
		if reauth.IsUUID(a.OrgID) && reauth.IsUUID(a.UserID) {
			if err := store.MarkUserSynced(ctx, w.cfg.Pool, a.OrgID, a.UserID); err != nil {
				return err
			}
		}
		return river.JobCancel(fmt.Errorf("invalid job args: %w", err))
	}
	// List first, then record everything in one transaction, in the
	// sweep's (kind, id) order so the two never lock rows crosswise.
	kinds := a.Kinds
	if len(kinds) == 0 {
		kinds = reauth.DeviceKinds
	}
	kinds = slices.Sorted(slices.Values(kinds))
	listed := make(map[reauth.DeviceKind][]podero.Device, len(kinds))
	for _, kind := range kinds {
		devices, err := w.cfg.Podero.ListDevices(ctx, a.OrgID, a.UserID, kind)
		if pe, ok := podero.AsError(err); ok && (pe.Kind == podero.KindNotFound || pe.Kind == podero.KindInvalid) {
			// The user (or org) is gone at Podero: so are its devices.
			if pe.Kind == podero.KindNotFound {
				for _, k := range reauth.DeviceKinds {
					if _, gerr := w.cfg.sessions().MissingGone(ctx, w.cfg.Pool, a.OrgID, a.UserID, k, nil); gerr != nil {
						return gerr
					}
				}
				if gerr := store.MarkSyncUserGone(ctx, w.cfg.Pool, a.OrgID, a.UserID); gerr != nil {
					return gerr
				}
			} else if gerr := store.MarkUserSynced(ctx, w.cfg.Pool, a.OrgID, a.UserID); gerr != nil {
				return gerr // not asked again before SYNC_INTERVAL
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
				authenticated, err := store.RecordSyncedDevice(ctx, tx, store.SyncedDevice{
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
				if authenticated {
					c, err := w.cfg.sessions().CompletedElsewhere(ctx, nil, tx, session.Device{Kind: kind, ID: d.ID, OrgID: a.OrgID, UserID: a.UserID})
					if err != nil {
						return err
					}
					if c != 0 {
						closed++
					}
				}
				ids = append(ids, d.ID)
			}
			n, err := w.cfg.sessions().MissingGone(ctx, tx, a.OrgID, a.UserID, kind, ids)
			if err != nil {
				return err
			}
			gone += n
		}
		return store.MarkUserSynced(ctx, tx, a.OrgID, a.UserID)
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
			page, next, err = store.SweepPage(ctx, tx, after, cmp.Or(w.cfg.ReauthCooldown, ReauthCooldownDefault),
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

// syncDispatchSchedule is the dispatcher's: every SyncTick while the sync
// is scheduled, none otherwise.
func (cfg Config) syncDispatchSchedule() river.PeriodicSchedule {
	if cfg.SyncSchedule == nil {
		return nil
	}
	return river.PeriodicInterval(cfg.syncTick())
}
