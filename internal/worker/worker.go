// Package worker holds the River workers and the client configuration that
// runs them: reauth_device asks Podero for a fresh authentication session and
// stores it; reauth_notify delivers its link to the user.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverlog"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/trace"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/hostlist"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/sendwindow"
	"github.com/reauth/reauth/internal/session"
	"github.com/reauth/reauth/internal/store"
)

// EventWorkersDefault is how many events one process delivers at once.
const EventWorkersDefault = 10

// MaintenanceWorkersDefault is how many sync and sweep jobs one process
// works at once; Podero's shared rate limit paces them in the end.
const MaintenanceWorkersDefault = 10

// Podero is the part of the Partner API client the workers use.
type Podero interface {
	AuthSession(ctx context.Context, orgID, userID string, kind reauth.DeviceKind, deviceID string, in podero.AuthSessionInput) (podero.AuthSession, error)
	ForEachUser(ctx context.Context, orgID string, fn func(podero.User) error) error
	UserByExternalID(ctx context.Context, orgID, externalID string) (podero.User, error)
	ListDevices(ctx context.Context, orgID, userID string, kind reauth.DeviceKind) ([]podero.Device, error)
}

// Sender delivers one message.
type Sender interface {
	Send(ctx context.Context, m notify.Message) error
}

// Config wires the workers. Zero durations and counts get the defaults
// (defaults.go), except where zero means off (noted); NewClient rejects
// negative ones.
type Config struct {
	Pool    *pgxpool.Pool
	Podero  Podero
	Email   Sender // the email channel
	Push    Sender // the push channel (FCM); nil: not configured
	Webhook Sender // the partner's push service; nil: not configured
	// ReminderOffsets are when reminders go, after the session's creation,
	// while it is open; none: no reminders.
	ReminderOffsets []time.Duration
	// PostEvent delivers one reauth.* event (EVENTS_WEBHOOK_URL); nil: events
	// are off and none are inserted.
	PostEvent func(ctx context.Context, id string, payload any) error
	// EventsGiveUpAfter is how long after its creation an event is still
	// retried while the endpoint answers 401, 403, 404 or a redirect (a
	// partner's deploy, a rotated secret); default
	// EventsGiveUpAfterDefault.
	EventsGiveUpAfter time.Duration
	// Quiet hours (quiet.go): messages go out only inside SendWindow
	// (SEND_WINDOW) in the user's zone; one due outside waits for the
	// window's start. The zero Window sends at any hour. DefaultZone is
	// the zone of a user with neither a contact timezone nor a known
	// country (DEFAULT_TIMEZONE); nil: sendwindow.TimezoneDefault.
	// InteractiveRespectsWindow (SEND_WINDOW_INTERACTIVE=respect): the
	// first message answering an interactive request waits too; false: it
	// goes at once.
	SendWindow                sendwindow.Window
	DefaultZone               *time.Location
	InteractiveRespectsWindow bool

	// Now is the clock; nil is time.Now. Tests move it.
	Now           func() time.Time
	Links         *link.Signer
	PublicBaseURL string        // links and callbacks point here
	RedirectHosts hostlist.List // hosts a request's success_url/cancel_url may name
	LinkTTL       time.Duration // how long a session's link is offered; default LinkTTLDefault
	// RenewWait is how long opening an expired link waits for the fresh
	// session (LINK_RENEW_WAIT); that session's first message waits as long,
	// and is skipped when the user was sent straight to it.
	RenewWait     time.Duration
	PoderoWorkers int           // concurrent reauth_device jobs per process
	NotifyWorkers int           // concurrent reauth_notify jobs per process
	JobTimeout    time.Duration // a job running longer is cancelled
	RescueAfter   time.Duration // a job still running after this is deemed abandoned and retried
	RetryBase     time.Duration // first backoff ceiling; default RetryBaseDefault
	RetryCap      time.Duration // largest backoff ceiling; default RetryCapDefault
	MaxAttempts   int           // attempts before a job is discarded; default MaxAttemptsDefault
	// BatchWindow (BATCH_WINDOW): the first messages of one user's
	// devices that need a link within it go out as one message, when it
	// ends, and their reminders as one message per step; a request asking
	// for an immediate message (DeviceArgs.Immediate) and a renewed link
	// get their own. 0: every request's message on its own, at once.
	BatchWindow time.Duration
	// RepeatCooldown: a request for a device whose session completed this
	// recently is done without a message, unless forced; 0 turns it off.
	RepeatCooldown time.Duration
	// VerifyAfter is how long after a success callback, and then how often,
	// the device is checked at Podero (VERIFY_AFTER); default
	// session.VerifyAfterDefault. VerifyTimeout is how long after the
	// callback it may still be lapsed before the completion is unverified
	// (VERIFY_TIMEOUT); default VerifyTimeoutDefault. See VerifyWorker.
	VerifyAfter   time.Duration
	VerifyTimeout time.Duration

	// Device sync and sweep. A nil schedule leaves that periodic job off
	// (it still runs when inserted, e.g. by `reauth sync --now`).
	OrgIDs []string // organizations the sync lists
	// SyncSchedule is when the users lists are refreshed; with it, the
	// dispatcher queues the users due every SyncTick. Nil: neither runs
	// on its own, and a reauth_sync job inserted (`reauth sync --now`)
	// runs a dispatcher until every user due is synced.
	SyncSchedule river.PeriodicSchedule
	// SyncInterval is how often at most a user's devices are listed
	// (SYNC_INTERVAL); default SyncIntervalDefault. SyncTick is how often
	// the dispatcher queues the users due; default SyncTickDefault.
	SyncInterval time.Duration
	SyncTick     time.Duration
	// PoderoRate (PODERO_RATE_LIMIT, 0: none) and SyncShare
	// (SYNC_RATE_SHARE; 0: SyncRateShareDefault) cap the dispatcher's
	// ticks: SyncShare × PoderoRate × SyncTick device-list calls each
	// (while requests wait; PoderoRate × SyncTick otherwise). Within the
	// cap a scheduled tick spreads the pass over SyncInterval
	// (store.SyncTickQuota); overdue users and a run-once dispatcher take
	// the whole cap.
	PoderoRate    float64
	SyncShare     float64
	SweepSchedule river.PeriodicSchedule
	// PruneSchedule is when reauth_prune removes stale FCM tokens (the
	// service's: PruneScheduleDefault); nil: never on its own.
	PruneSchedule river.PeriodicSchedule
	// ReauthCooldown (REAUTH_COOLDOWN): the sweep makes no new request for
	// a device messaged this recently; default ReauthCooldownDefault.
	ReauthCooldown time.Duration
	MaxPerWeek     int // messages per device in seven days at most; default MaxPerWeekDefault
	SweepBatch     int // devices per sweep page; default SweepBatchDefault
	// MaintenanceWorkers is concurrent sync and sweep jobs per process;
	// default MaintenanceWorkersDefault.
	MaintenanceWorkers int
	// UserRefetchAfter is how old an organization's cached user list must
	// be before a user missing from it has it fetched again; default
	// UserRefetchAfter. It applies to the cache NewClient makes when Users
	// is nil, and to Users when that has none of its own yet.
	UserRefetchAfter time.Duration
	// Users is the process's cache of Podero's users, shared with the HTTP
	// API's external_user_id lookup (see UserCache); nil: the workers get
	// their own.
	Users *UserCache

	Metrics *metrics.Metrics // nil: none
	Logger  *slog.Logger
	// TracerProvider traces the jobs and each channel's send (see
	// tracingMiddleware); nil: tracing off.
	TracerProvider trace.TracerProvider

	sentLog *sentLog // the client's group commit of sent records; nil: each alone
}

// NewClient returns a River client that works the podero, notify and
// maintenance queues. It gives cfg's zero fields their defaults and
// returns an error for the rest that is out of range.
func NewClient(cfg Config) (*river.Client[pgx.Tx], error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.sentLog = &sentLog{}
	workers := river.NewWorkers()
	users := cfg.Users
	if users == nil {
		users = &UserCache{}
	}
	if users.refetchAfter == 0 {
		users.refetchAfter = cfg.UserRefetchAfter // before any use: the client is not started yet
	}
	river.AddWorker(workers, &DeviceWorker{cfg: cfg, users: users})
	river.AddWorker(workers, &NotifyWorker{cfg: cfg})
	river.AddWorker(workers, &SyncWorker{cfg: cfg})
	river.AddWorker(workers, &SyncUserWorker{cfg: cfg})
	river.AddWorker(workers, &SyncDispatchWorker{cfg: cfg})
	river.AddWorker(workers, &SweepWorker{cfg: cfg})
	river.AddWorker(workers, &PruneWorker{cfg: cfg})
	river.AddWorker(workers, &EventWorker{cfg: cfg})
	river.AddWorker(workers, &VerifyWorker{cfg: cfg})
	rc := ClientConfig(cfg)
	rc.Workers = workers
	return river.NewClient(riverpgxv5.New(cfg.Pool), rc)
}

// ClientConfig is the River configuration the service runs with, without
// workers: the queues, timeouts, retry policy, middleware and periodic jobs.
// The benchmark runs its no-op jobs through the same configuration. Zero
// fields get their defaults, as in NewClient.
func ClientConfig(cfg Config) *river.Config {
	cfg = cfg.withDefaults()
	var periodic []*river.PeriodicJob
	for _, p := range []struct {
		schedule river.PeriodicSchedule
		args     river.JobArgs
	}{{cfg.SyncSchedule, reauth.SyncArgs{}}, {cfg.SweepSchedule, reauth.SweepArgs{}}, {cfg.syncDispatchSchedule(), reauth.SyncDispatchArgs{}},
		{cfg.PruneSchedule, reauth.PruneArgs{}}} {
		if p.schedule != nil {
			args := p.args
			periodic = append(periodic, river.NewPeriodicJob(p.schedule,
				func() (river.JobArgs, *river.InsertOpts) { return args, nil }, nil))
		}
	}
	return &river.Config{
		Queues: map[string]river.QueueConfig{
			reauth.QueuePodero:      {MaxWorkers: cfg.PoderoWorkers},
			reauth.QueueNotify:      {MaxWorkers: cfg.NotifyWorkers},
			reauth.QueueMaintenance: {MaxWorkers: cmp.Or(cfg.MaintenanceWorkers, MaintenanceWorkersDefault)},
			reauth.QueueEvents:      {MaxWorkers: EventWorkersDefault},
		},
		PeriodicJobs:         periodic,
		FetchCooldown:        reauth.FetchCooldown, // a queue starts at most MaxWorkers jobs per cooldown
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		ReindexerIndexNames:  reindexed(),
		RetryPolicy:          &RetryPolicy{Base: cfg.RetryBase, Cap: cfg.RetryCap},
		MaxAttempts:          cmp.Or(cfg.MaxAttempts, MaxAttemptsDefault),
		Middleware: append(tracingMiddleware(cfg.TracerProvider),
			&shutdownMiddleware{},
			// Each attempt's log lines are kept in the job's metadata, for
			// `reauth jobs show` (bounded: metadata is a jsonb column).
			riverlog.NewMiddleware(func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
				&riverlog.MiddlewareConfig{MaxSizeBytes: 8 << 10, MaxTotalBytes: 64 << 10}),
		),
		Logger: cfg.Logger,
	}
}

// reindexed is the indexes River's reindexer rebuilds: its defaults but the
// GIN indexes on args and metadata, which migration 013 drops, and the
// index on kind, which migration 014 drops.
func reindexed() []string {
	return slices.DeleteFunc(river.ReindexerIndexNamesDefault(), func(name string) bool {
		return name == "river_job_args_index" || name == "river_job_metadata_index" || name == "river_job_kind"
	})
}

// DeviceWorker works reauth_device jobs.
type DeviceWorker struct {
	river.WorkerDefaults[reauth.DeviceArgs]
	cfg   Config
	users *UserCache
}

// Work asks Podero for a session, stores it in one transaction (which
// supersedes the device's older open session), and then sends its first
// message itself, as a reauth_notify job would (a renewed link's first
// message waits LINK_RENEW_WAIT in a reauth_notify job instead). With
// BATCH_WINDOW, unless the request asks for an immediate message, the
// same transaction hands the first message to the user's grouped
// reauth_notify job instead (see scheduleMessage), and the job is done. A failed
// send retries this job, which finds its session stored and never asks
// Podero again; so does a job rescued after a crash. One job per request
// from Podero to the user's inbox keeps the writes to river_job per request
// at their least (fetched, completed, and the first reminder inserted).
func (w *DeviceWorker) Work(ctx context.Context, job *river.Job[reauth.DeviceArgs]) error {
	a := job.Args
	// The job's priority says who waits for it (a raised sweep request is
	// a user's now), and so its place at the rate limit.
	if job.Priority > reauth.PriorityInteractive {
		ctx = podero.WithClass(ctx, podero.ClassBulk)
	}
	if a.Reason == reauth.ReasonLinkExpired {
		ctx = podero.WithPurpose(ctx, podero.PurposeRenewal)
	}
	normalized, err := a.Check(w.cfg.RedirectHosts)
	if err != nil {
		return river.JobCancel(fmt.Errorf("invalid job args: %w", err))
	}
	// IDs are used in lower case only; a device_id in another spelling is
	// another unique key, so such a job is handed on, never worked.
	if !canonical(a) {
		return w.handOff(ctx, job)
	}
	a = normalized
	// Run again after it stored its session (a failed send, a crash, an
	// operator's retry): only the first message may be left to do. A first
	// attempt has stored nothing yet.
	if job.Attempt > 1 {
		id, err := store.SessionForJob(ctx, w.cfg.Pool, job.ID)
		switch {
		case err == nil && a.Reason == reauth.ReasonLinkExpired:
			return nil // its reauth_notify job sends the first message
		case err == nil && w.cfg.grouped(a):
			// Its user's grouped job sends the first message; make sure
			// one will (it was inserted with the session, unless
			// BATCH_WINDOW was off then).
			return w.groupFirst(ctx, id)
		case err == nil:
			return w.cfg.deliver(ctx, delivery{jobID: job.ID, attempt: job.Attempt, maxAttempts: job.MaxAttempts, session: id,
				retried: operatorRetried(job.JobRow), deviceJob: true, interactive: job.Priority <= reauth.PriorityInteractive})
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	// A sweep's request waits in the queue; the device may have been fixed,
	// or got a session, meanwhile.
	if a.Reason == reauth.ReasonSweep {
		needed, err := store.SweepStillNeeded(ctx, w.cfg.Pool, a.DeviceKind, a.DeviceID)
		if err != nil || !needed {
			return err
		}
	}
	// The user just completed a session: Podero shows the device as
	// authenticated again only minutes later, so a partner's own check may
	// ask again. Not another message for that. (Looked for in the same read
	// as the recipient, or before the lookup of an external user ID.)
	var completedSince time.Time
	if w.cfg.RepeatCooldown > 0 && !a.Force && a.Reason != reauth.ReasonLinkExpired {
		completedSince = w.cfg.now().Add(-w.cfg.RepeatCooldown)
	}
	repeat := func(sid int64) error {
		jobLogger(ctx, w.cfg.Logger).InfoContext(ctx, "device completed a session within REAUTH_REPEAT_COOLDOWN; nothing sent (force to override)",
			slog.Int64("job_id", job.ID), slog.Int64("session", sid), slog.String("device_id", a.DeviceID))
		return nil
	}
	// The partner named its own customer ID: find the user at Podero.
	var extEmail string
	if a.UserID == "" {
		if !completedSince.IsZero() {
			sid, _, err := store.RecentCompletion(ctx, w.cfg.Pool, a.DeviceKind, a.DeviceID, completedSince)
			if err == nil {
				return repeat(sid)
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			completedSince = time.Time{}
		}
		u, err := w.users.ByExternalID(ctx, w.cfg.Podero, a.OrgID, a.ExternalUserID)
		if pe, ok := podero.AsError(err); ok && pe.Kind == podero.KindNotFound {
			reason := fmt.Sprintf("no Podero user with external_user_id %q in organization %s", a.ExternalUserID, a.OrgID)
			if err := w.reportFailed(ctx, job.ID, a, reason); err != nil {
				return err
			}
			return river.JobCancel(errors.New(reason))
		}
		if err != nil {
			return w.poderoError(ctx, job.ID, a, err)
		}
		a.UserID, extEmail = u.ID, u.Email
	}
	// The request's or the contact's address and language (their order is
	// session.Recipient's); Podero's answers are the address's fallback.
	looked := time.Now()
	rcpt, err := w.cfg.sessions().Recipient(ctx, w.cfg.Pool, a, completedSince)
	if err != nil {
		return err
	}
	// The same read looked at the Retry-After hold: the call right after
	// needs no look of its own.
	ctx = podero.WithHoldLooked(ctx, looked, rcpt.HoldLeft)
	if rcpt.Completed != 0 {
		return repeat(rcpt.Completed)
	}
	contact, email, suppressed := rcpt.Contact, rcpt.Email, rcpt.Suppressed
	if email == "" && extEmail != "" && reauth.ValidateEmail(extEmail) == nil {
		email = extEmail // the by-ext-id answer named it: no list needed
		if suppressed, err = store.EmailSuppressed(ctx, w.cfg.Pool, email); err != nil {
			return err
		}
	}
	if email == "" && slices.Contains(w.cfg.channelsFor(contact, true), notify.ChannelEmail) {
		if email, err = w.ownerOrUserEmail(ctx, a, job.CreatedAt); err != nil {
			var fresh *listTooFresh
			if errors.As(err, &fresh) {
				// The user may be newer than the list: look again when it
				// may be fetched again, without using an attempt.
				return river.JobSnooze(fresh.wait)
			}
			return w.poderoError(ctx, job.ID, a, err)
		}
		if suppressed, err = store.EmailSuppressed(ctx, w.cfg.Pool, email); err != nil {
			return err
		}
	}
	if suppressed {
		email = "" // refused before: as good as none
	}
	if len(w.cfg.channelsFor(contact, email != "")) == 0 {
		// Nobody to send a link to: do not ask Podero for one.
		reason := "no way to reach the user: no usable email address (none in the request, the contact or Podero's user list, or one refused before) and no other channel"
		if err := w.reportFailed(ctx, job.ID, a, reason); err != nil {
			return err
		}
		return river.JobCancel(errors.New(reason))
	}

	nonce := link.NewNonce()
	token := w.cfg.Links.Token(nonce)
	sess, err := w.cfg.Podero.AuthSession(ctx, a.OrgID, a.UserID, a.DeviceKind, a.DeviceID, podero.AuthSessionInput{
		SuccessURL: link.DoneURL(w.cfg.PublicBaseURL, token, "success"), CancelURL: link.DoneURL(w.cfg.PublicBaseURL, token, "cancel")})
	if err != nil {
		// Podero may echo the request (and so the token) in an error body.
		return redact(w.poderoError(ctx, job.ID, a, err), token)
	}

	now := w.cfg.now()
	renewal := a.Reason == reauth.ReasonLinkExpired
	sendNow := !renewal && !w.cfg.grouped(a)
	// What the first message needs is known by now: this job sends it
	// right after the commit without reading it back.
	first := store.NotifyView{Session: store.Session{
		DeviceKind: a.DeviceKind, DeviceID: a.DeviceID, OrgID: a.OrgID, UserID: a.UserID,
		PoderoSessionID: sess.SessionID, AuthenticationURL: sess.AuthenticationURL, State: store.SessionOpen,
		LinkNonce: nonce, Email: email, Locale: rcpt.Locale, SuccessURL: a.SuccessURL, CancelURL: a.CancelURL,
		JobID: &job.ID, CreatedAt: now, ExpiresAt: now.Add(w.cfg.linkTTL()), Reason: a.Reason,
	}, Contact: contact, Suppressed: suppressed, Manufacturer: rcpt.Manufacturer, Model: rcpt.Model, Country: rcpt.Country}
	d := delivery{jobID: job.ID, attempt: job.Attempt, maxAttempts: job.MaxAttempts,
		deviceJob: true, interactive: job.Priority <= reauth.PriorityInteractive}

	ns := store.NewSession{
		DeviceKind:        a.DeviceKind,
		DeviceID:          a.DeviceID,
		PoderoSessionID:   sess.SessionID,
		AuthenticationURL: sess.AuthenticationURL,
		LinkNonce:         nonce,
		LinkHash:          link.Hash(token),
		Email:             email,
		Locale:            rcpt.Locale,
		SuccessURL:        a.SuccessURL,
		CancelURL:         a.CancelURL,
		JobID:             job.ID,
		CreatedAt:         first.CreatedAt,
		ExpiresAt:         first.ExpiresAt,
		Reason:            a.Reason,
	}
	var begun *begunRows
	if sendNow && !w.cfg.sessions().Events && !rcpt.Open {
		// The common request, a device without an open session: the
		// device, the session and its first message's claim and attempt
		// in one batch, one round trip and one transaction (an implicit
		// one: no BEGIN, no COMMIT). No event to insert with it (events
		// off) and nothing to supersede, as read above; a session opened
		// since is superseded all the same, and its reminders cancelled
		// right after (one left by a crash between finds its session
		// closed and sends nothing).
		fm := w.cfg.firstMessage(d, first)
		id, old, rows, err := store.StoreSession(ctx, w.cfg.Pool, a.OrgID, a.UserID, ns, &fm)
		if err != nil {
			return fmt.Errorf("store session: %w", err)
		}
		if old != 0 {
			if _, err := store.CancelReminders(ctx, w.cfg.Pool, old); err != nil {
				return fmt.Errorf("cancel the superseded session's reminders: %w", err)
			}
		}
		first.ID, d.session = id, id
		if fm.Channel != "" {
			begun = &begunRows{channel: fm.Channel, rows: rows}
		}
	} else {
		tx, err := w.cfg.Pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
		id, err := w.cfg.sessions().Create(ctx, nil, tx, session.New{Request: a, NewSession: ns})
		if err != nil {
			return err
		}
		first.ID, d.session = id, id
		client := river.ClientFromContext[pgx.Tx](ctx)
		switch {
		case renewal:
			res, err := client.InsertTx(ctx, tx, reauth.NotifyArgs{SessionID: id, Step: 0}, &river.InsertOpts{ScheduledAt: time.Now().Add(w.cfg.RenewWait)})
			if err != nil {
				return fmt.Errorf("insert notify job: %w", err)
			}
			if w.cfg.BatchWindow > 0 {
				// Its own message, which no grouped one takes.
				if err := store.ClaimNewSession(ctx, tx, id, 0, res.Job.ID); err != nil {
					return fmt.Errorf("claim the first message: %w", err)
				}
			}
		case !sendNow:
			// One message for the user's devices that need a link within the
			// window, when it ends.
			if err := w.cfg.scheduleMessage(ctx, client, tx, a.OrgID, a.UserID, 0, now, now.Add(w.cfg.BatchWindow)); err != nil {
				return fmt.Errorf("schedule the first message: %w", err)
			}
		default:
			// Its own message, now, which no grouped one takes; and when it
			// may go now, its attempt on the first channel is recorded here
			// too (as deliverMessage would before sending).
			if begun, err = w.cfg.beginFirst(ctx, tx, d, first); err != nil {
				return fmt.Errorf("claim the first message: %w", err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit session: %w", err)
		}
	}
	id := first.ID
	w.cfg.Metrics.Funnel(metrics.StepLinkCreated)
	// The process log only: a line in the job's own log (riverlog) would
	// cost one more write of its row.
	w.cfg.Logger.InfoContext(ctx, "session stored",
		slog.Int64("job_id", job.ID), slog.Int64("session", id),
		slog.String("device_kind", string(a.DeviceKind)), slog.String("device_id", a.DeviceID))
	if !sendNow {
		return nil
	}
	nw := &NotifyWorker{cfg: w.cfg}
	log := jobLogger(ctx, w.cfg.Logger).With(slog.Int64("job_id", job.ID), slog.Int("step", 0), slog.Int64("session", id))
	key := store.MessageKey([]int64{id}, 0)
	return nw.sendMessage(ctx, log.With(slog.String("key", key)), d, key, []store.NotifyView{first}, false, begun)
}

// begunRows are the notification rows of a message's attempt on channel,
// recorded (BeginMessage) before the send.
type begunRows struct {
	channel string
	rows    []store.Notification
}

// firstMessage is how new session v's first message, sent by delivery d
// right after the session commits, is claimed and begun: on its first
// usable channel, unless quiet hours hold it (then claimed only:
// sendMessage waits) or no channel is usable.
func (cfg Config) firstMessage(d delivery, v store.NotifyView) store.FirstMessage {
	fm := store.FirstMessage{JobID: d.jobID}
	if _, wait := cfg.quietUntil(d, cfg.zone(v)); !wait {
		for _, ch := range cfg.channelsFor(v.Contact, v.Email != "") {
			if ch == notify.ChannelEmail && v.Suppressed {
				continue
			}
			fm.Channel, fm.Recipient = ch, recipient(ch, notify.Message{To: v.Email, Tokens: v.Contact.FCMTokens, UserID: v.UserID})
			break
		}
	}
	return fm
}

// beginFirst claims, in tx, the first message of new session v for
// delivery d, and records its attempt as firstMessage decides; nil when
// only claimed.
func (cfg Config) beginFirst(ctx context.Context, tx pgx.Tx, d delivery, v store.NotifyView) (*begunRows, error) {
	fm := cfg.firstMessage(d, v)
	if fm.Channel == "" {
		return nil, store.ClaimNewSession(ctx, tx, v.ID, 0, d.jobID)
	}
	rows, err := store.BeginNewMessage(ctx, tx, v.ID, 0, d.jobID, fm.Channel, fm.Recipient)
	if err != nil {
		return nil, err
	}
	return &begunRows{channel: fm.Channel, rows: rows}, nil
}

// releaseClaims lets go of the sessions grouped job d claimed but has not
// begun to send, under the user's lock: they are claimed again, with any
// due meanwhile, when it runs again.
func (cfg Config) releaseClaims(ctx context.Context, d delivery) error {
	return pgx.BeginFunc(ctx, cfg.Pool, func(tx pgx.Tx) error {
		if err := store.LockUserMessages(ctx, tx, d.orgID, d.userID); err != nil {
			return err
		}
		return store.ReleaseClaims(ctx, tx, d.jobID, d.step)
	})
}

// grouped reports whether request a's first message waits for the user's
// grouped one (BATCH_WINDOW): unless the window is off, the request asks
// for an immediate message, it renews an expired link (whose user waits on
// the page), or it is the fresh link after a login that did not take
// (whose message says so).
func (cfg Config) grouped(a reauth.DeviceArgs) bool {
	return cfg.BatchWindow > 0 && !a.Immediate && a.Reason != reauth.ReasonLinkExpired && a.Reason != reauth.ReasonVerificationFailed
}

// groupFirst makes sure the user's grouped job will send session id's
// first message: for a job run again after it stored the session.
func (w *DeviceWorker) groupFirst(ctx context.Context, id int64) error {
	s, err := store.GetSession(ctx, w.cfg.Pool, id)
	if err != nil {
		return err
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	now := w.cfg.now()
	return pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		return w.cfg.scheduleMessage(ctx, client, tx, s.OrgID, s.UserID, 0, now, now.Add(w.cfg.BatchWindow))
	})
}

// ownerOrUserEmail finds an email for a request made at requested that
// names none: the device owner's as the last sync recorded it, else the
// user's in Podero's user list (see UserCache.email). Store errors are
// returned as they are, Podero's as *podero.Error, and a *listTooFresh when
// the user is missing from a list that may be older than the user.
func (w *DeviceWorker) ownerOrUserEmail(ctx context.Context, a reauth.DeviceArgs, requested time.Time) (string, error) {
	email, err := store.DeviceOwnerEmail(ctx, w.cfg.Pool, a.DeviceKind, a.DeviceID, a.OrgID, a.UserID)
	if err != nil || email != "" {
		return email, err
	}
	return w.users.email(ctx, w.cfg.Podero, a.OrgID, a.UserID, requested)
}

// poderoError decides what a failed Podero call means for the job: only
// answers about the device or the request cancel it (a 404 for the device
// at auth_session, which also marks it gone, or for its org or user; a 400
// or 422); throttling and an open circuit breaker snooze it; everything
// else is retried with backoff: token endpoint errors, redirects and
// undocumented 4xx (KindUnexpected) included, which the Podero client
// reports at ERROR.
func (w *DeviceWorker) poderoError(ctx context.Context, jobID int64, a reauth.DeviceArgs, err error) error {
	pe, ok := podero.AsError(err)
	if !ok {
		return err
	}
	// Kept in the attempt's log (riverlog), for `reauth jobs show`.
	jobLogger(ctx, w.cfg.Logger).WarnContext(ctx, "podero call failed", slog.String("op", pe.Op),
		slog.String("kind", string(pe.Kind)), slog.Int("status", pe.Status), slog.String("device_id", a.DeviceID))
	switch pe.Kind {
	case podero.KindNotFound, podero.KindInvalid:
		if pe.Kind == podero.KindNotFound {
			if pe.Op != podero.OpAuthSession {
				return river.JobCancel(pe) // an unknown org or user, not a gone device
			}
			if err := w.cfg.sessions().DeviceGone(ctx, w.cfg.Pool, session.Device{Kind: a.DeviceKind, ID: a.DeviceID, OrgID: a.OrgID, UserID: a.UserID}); err != nil {
				return fmt.Errorf("mark device gone: %w (after %w)", err, pe)
			}
		}
		if err := w.reportFailed(ctx, jobID, a, failure(pe)); err != nil {
			return fmt.Errorf("%w (after %w)", err, pe)
		}
		return river.JobCancel(pe)
	}
	return throttled(pe)
}

// reportFailed tells the partner (reauth.failed) that the request ends
// without a session, for reason. An error means the job must be retried, so
// the event is not lost.
func (w *DeviceWorker) reportFailed(ctx context.Context, jobID int64, a reauth.DeviceArgs, reason string) error {
	return w.cfg.sessions().Emit(ctx, nil, nil, reauth.EventFailed, session.RequestSubject(a, jobID, 0), reason)
}

// failure says why Podero refused, for the partner: the operation, the kind
// and the status, never the answer's body (it may echo the request).
func failure(pe *podero.Error) string {
	return fmt.Sprintf("podero %s: %s (HTTP %d)", pe.Op, pe.Kind, pe.Status)
}

// throttled snoozes a job that met Podero throttling or an open circuit
// breaker, without using an attempt and never longer than MaxSnooze whatever
// Retry-After says; other errors pass through, to be retried with backoff.
func throttled(err error) error {
	if pe, ok := podero.AsError(err); ok && (pe.Kind == podero.KindRateLimited || pe.Kind == podero.KindCircuitOpen) {
		return river.JobSnooze(jitter(min(pe.RetryAfter, MaxSnooze)))
	}
	return err
}

// NotifyWorker works reauth_notify jobs.
type NotifyWorker struct {
	river.WorkerDefaults[reauth.NotifyArgs]
	cfg Config
}

// Work delivers one step of a session's messages, or of the user's grouped
// ones (BATCH_WINDOW), on the user's channels in order of preference, the
// next after a permanent failure. Each channel's
// notification row is written before sending and marked after: a crash in
// between resends the same message under the same idempotency key, never a
// different one. Once a step is sent, the next reminder is scheduled in the
// same transaction.
func (w *NotifyWorker) Work(ctx context.Context, job *river.Job[reauth.NotifyArgs]) error {
	a := job.Args
	if err := a.Validate(); err != nil {
		return river.JobCancel(fmt.Errorf("invalid job args: %w", err))
	}
	if n := len(w.cfg.ReminderOffsets); a.Step > n {
		return river.JobCancel(fmt.Errorf("invalid job args: step %d is beyond the reminder schedule: REMINDER_OFFSETS gives steps 0 to %d", a.Step, n))
	}
	return w.cfg.deliver(ctx, delivery{jobID: job.ID, attempt: job.Attempt, maxAttempts: job.MaxAttempts,
		session: a.SessionID, orgID: a.OrgID, userID: a.UserID, step: a.Step, retried: operatorRetried(job.JobRow),
		interactive: !a.Grouped() && a.Step == 0 && !deferredByWindow(job.Metadata)})
}

// Why a delivery gives up (cancels its job): every channel failed, or none
// is left to try.
const (
	reasonEveryChannelFailed = "every channel failed"
	reasonNoChannel          = "no channel reaches the user"
)

// operatorRetried reports whether job runs again after its delivery gave
// up: its previous attempt ended with the give-up's cancellation. A
// cancelled job never runs again by itself, so only an operator's retry
// (River's JobRetry: `reauth jobs retry`, the ops page, River UI) can have
// made it run; its failed channels are then tried again (see deliver). A
// normal retry follows a temporary error instead.
func operatorRetried(job *rivertype.JobRow) bool {
	n := len(job.Errors)
	if n == 0 || job.Errors[n-1].Attempt != job.Attempt-1 {
		return false
	}
	last := job.Errors[n-1].Error
	return strings.Contains(last, reasonEveryChannelFailed) || strings.Contains(last, reasonNoChannel)
}

// delivery is one step of a session's messages, delivered by the job jobID
// on its attempt of maxAttempts: a reauth_notify job, or for the first
// message the reauth_device job that made the session. Without a session it
// is the grouped message of the user (orgID, userID) at that step.
type delivery struct {
	jobID                int64
	attempt, maxAttempts int
	session              int64 // 0: the user's grouped message
	orgID, userID        string
	step                 int
	// retried: an operator retried the job after the step gave up (see
	// operatorRetried): its failed channels are tried again.
	retried bool
	// deviceJob: jobID is the reauth_device job (else a reauth_notify
	// job); interactive: the step is the first message answering an
	// interactive request (see Config.InteractiveRespectsWindow).
	deviceJob, interactive bool
}

// deliver delivers one message, step d of a session's messages or of the
// user's grouped ones, on the user's channels in order of preference, the
// next after a permanent failure; see NotifyWorker.Work. Its error is the
// job's outcome.
//
// Which sessions a message covers is claimed first (notification_claim):
// a session's step is in exactly one message, whose key names it, and a
// grouped message's sessions are fixed when its job first claims them.
func (cfg Config) deliver(ctx context.Context, d delivery) error {
	w := &NotifyWorker{cfg: cfg}
	log := jobLogger(ctx, w.cfg.Logger).With(slog.Int64("job_id", d.jobID), slog.Int("step", d.step))
	var key string
	if d.session != 0 {
		log = log.With(slog.Int64("session", d.session))
		v, err := store.GetNotifyView(ctx, w.cfg.Pool, d.session, d.step)
		if errors.Is(err, store.ErrNotFound) {
			return river.JobCancel(fmt.Errorf("session %d does not exist", d.session))
		}
		if err != nil {
			return err
		}
		if v.State != store.SessionOpen {
			log.InfoContext(ctx, "session no longer open, nothing to send", slog.String("state", v.State))
			return nil
		}
		if d.step > 0 && v.RemindersStoppedAt != nil {
			log.InfoContext(ctx, "the user stopped the reminders, nothing to send")
			return nil
		}
		c, err := store.ClaimSession(ctx, w.cfg.Pool, d.session, d.step, d.jobID)
		if err != nil {
			return fmt.Errorf("claim the session's step: %w", err)
		}
		if c.Key != store.MessageKey([]int64{d.session}, d.step) {
			log.InfoContext(ctx, "the step is in a grouped message, which its own job sends", slog.String("key", c.Key), slog.Int64("by_job", c.JobID))
			return nil
		}
		key = c.Key
	} else {
		log = log.With(slog.String("org_id", d.orgID), slog.String("user_id", d.userID))
		var err error
		if key, err = store.JobMessage(ctx, w.cfg.Pool, d.jobID); errors.Is(err, store.ErrNotFound) {
			key, err = w.claimUser(ctx, d)
		}
		if err != nil {
			return fmt.Errorf("claim the user's sessions: %w", err)
		}
		if key == "" {
			log.InfoContext(ctx, "no session of the user's is due at this step, nothing to send")
			return nil
		}
	}
	claimed, err := store.MessageSessions(ctx, w.cfg.Pool, key, d.step)
	if err != nil {
		return err
	}
	return w.deliverMessage(ctx, log.With(slog.String("key", key)), d, key, claimed)
}

// claimUser claims, for d's grouped job, the user's sessions due at d's
// step (store.ClaimUserStep) and returns their message's key; "" when none
// is due.
func (w *NotifyWorker) claimUser(ctx context.Context, d delivery) (string, error) {
	// A reminder is due for a session created its offset ago; those due
	// within the window go along.
	createdBy := w.cfg.now().Add(w.cfg.BatchWindow)
	if d.step > 0 {
		createdBy = createdBy.Add(-w.cfg.ReminderOffsets[d.step-1])
	}
	var key string
	err := pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		if err := store.LockUserMessages(ctx, tx, d.orgID, d.userID); err != nil {
			return err
		}
		var err error
		_, key, err = store.ClaimUserStep(ctx, tx, d.orgID, d.userID, d.step, d.jobID, createdBy)
		return err
	})
	return key, err
}

// deliverMessage delivers message key, step d.step of the sessions claimed.
func (w *NotifyWorker) deliverMessage(ctx context.Context, log *slog.Logger, d delivery, key string, claimed []int64) error {
	step := d.step
	// Once begun on any channel, a message is the sessions it was begun
	// for, whatever became of them since: a retry sends the same message.
	begun, err := store.MessageBegun(ctx, w.cfg.Pool, claimed, step, key)
	if err != nil {
		return err
	}
	ids := claimed
	if len(begun) > 0 {
		ids = begun
	}
	views := make([]store.NotifyView, 0, len(ids))
	for _, id := range ids {
		v, err := store.GetNotifyView(ctx, w.cfg.Pool, id, step)
		if err != nil {
			return err
		}
		views = append(views, v)
	}
	return w.sendMessage(ctx, log, d, key, views, len(begun) > 0, nil)
}

// sendMessage sends message key, step d.step of the sessions views (those
// it was begun for, when begun), on the user's channels in order of
// preference; pre, when not nil, is the attempt on its channel already
// recorded (see beginFirst).
func (w *NotifyWorker) sendMessage(ctx context.Context, log *slog.Logger, d delivery, key string, views []store.NotifyView, begun bool, pre *begunRows) error {
	step := d.step
	// Who still waits for it: a session completed (or stopped its
	// reminders) meanwhile drops out; one whose link was opened before its
	// first message (an expired link renewed on the spot) is on it
	// already, and is only reminded.
	var live []store.NotifyView
	skipped := false
	for _, v := range views {
		switch {
		case v.State != store.SessionOpen, step > 0 && v.RemindersStoppedAt != nil:
		case step == 0 && v.OpenedAt != nil:
			skipped = true
		default:
			live = append(live, v)
		}
	}
	if len(live) == 0 {
		if skipped {
			log.InfoContext(ctx, "link already opened, first message skipped")
			return w.sent(ctx, d, key, views, w.cfg.zone(views[len(views)-1]), nil)
		}
		log.InfoContext(ctx, "no session of the message is open any more (or wants reminders), nothing to send")
		return nil
	}
	content := live
	if begun {
		content = views
	}
	sessions := make([]int64, len(content))
	for i, v := range content {
		sessions[i] = v.ID
	}
	// The newest session with an address names the recipient: the user's
	// latest word on it.
	lead := content[len(content)-1]
	for i := len(content) - 1; i >= 0; i-- {
		if content[i].Email != "" {
			lead = content[i]
			break
		}
	}
	s, contact := lead.Session, lead.Contact
	zone := w.cfg.zone(lead)
	msg := notify.Message{Key: key, To: s.Email, Tokens: contact.FCMTokens, OrgID: s.OrgID, UserID: s.UserID, Locale: s.Locale, Step: step,
		Retry: step == 0 && len(content) == 1 && s.Reason == reauth.ReasonVerificationFailed}
	if d.session == 0 && step == 0 {
		// A grouped first message answers an interactive request when one
		// of its sessions does (quiet hours may let it go at once).
		for _, v := range content {
			d.interactive = d.interactive || v.Reason != reauth.ReasonSweep
		}
	}
	var devices []notify.DeviceLink
	for _, v := range content {
		dl := notify.DeviceLink{DeviceKind: v.DeviceKind, DeviceID: v.DeviceID, Manufacturer: v.Manufacturer, Model: v.Model,
			Link: link.URL(w.cfg.PublicBaseURL, w.cfg.Links.Token(v.LinkNonce))}
		if w.cfg.now().Before(v.ExpiresAt) {
			// Past it, the link renews itself when opened: no date to show.
			dl.ExpiresAt = v.ExpiresAt
		}
		devices = append(devices, dl)
	}
	first := devices[0]
	msg.DeviceKind, msg.DeviceID, msg.Manufacturer, msg.Model, msg.Link, msg.ExpiresAt = first.DeviceKind, first.DeviceID, first.Manufacturer, first.Model, first.Link, first.ExpiresAt
	if len(devices) > 1 {
		msg.Devices = devices
	}
	if step > 0 {
		// A reminder is a series the user did not ask for: it carries the
		// one-click opt-out (the first message answers a request). In a
		// grouped reminder it stops the group's (see store.ClaimUserStep).
		msg.Unsubscribe = link.UnsubscribeURL(w.cfg.PublicBaseURL, w.cfg.Links.UnsubscribeToken(s.ID, s.LinkNonce))
	}
	tried := lead.Tried
	if d.retried {
		// An operator's retry after the step gave up: its failed rows on
		// channels still usable go back to sending, to be tried again
		// (under the same key), by this attempt and the next ones.
		var reopened []string
		for _, id := range sessions {
			r, err := store.ReopenFailedNotifications(ctx, w.cfg.Pool, id, step, w.cfg.channelsFor(contact, s.Email != ""))
			if err != nil {
				return fmt.Errorf("reopen failed notifications: %w", err)
			}
			if id == s.ID {
				reopened = r
			}
		}
		for i, t := range tried {
			if ch, state, _ := strings.Cut(t, ":"); state == store.NotificationFailed && slices.Contains(reopened, ch) {
				tried[i] = ch + ":" + store.NotificationSending
			}
		}
		if len(reopened) > 0 {
			log.InfoContext(ctx, "retried by an operator: the failed channels are tried again", slog.Any("channels", reopened))
		}
	}
	// What earlier attempts did decides first: a step sent on any channel is
	// done, and one caught mid-send goes on with that channel, whatever the
	// preferences say now, so a step is never two different messages.
	var order []string
	for _, t := range tried {
		ch, state, _ := strings.Cut(t, ":")
		switch {
		case state == store.NotificationSent:
			return w.sent(ctx, d, key, content, zone, nil)
		case state == store.NotificationSending && w.cfg.sender(ch) != nil:
			order = append(order, ch)
		}
	}
	if at, wait := w.cfg.quietUntil(d, zone); wait {
		if d.session == 0 && !begun {
			// Not begun: its sessions are let go, so that those due
			// before the window opens join them in one message then.
			if err := w.cfg.releaseClaims(ctx, d); err != nil {
				return fmt.Errorf("release the user's sessions: %w", err)
			}
		}
		return w.cfg.waitForWindow(ctx, log, d, zone, at)
	}
	for _, ch := range w.cfg.channelsFor(contact, s.Email != "") {
		if !slices.Contains(order, ch) {
			order = append(order, ch)
		}
	}
	var failures []string
	for _, ch := range order {
		if ch == notify.ChannelEmail && lead.Suppressed {
			failures = append(failures, "email: address refused before")
			continue
		}
		var rows []store.Notification
		var err error
		if pre != nil && pre.channel == ch {
			rows, pre = pre.rows, nil
		} else if rows, err = store.BeginMessage(ctx, w.cfg.Pool, sessions, step, ch, recipient(ch, msg), key); err != nil {
			return fmt.Errorf("record notification: %w", err)
		}
		rowIDs := make([]int64, len(rows))
		state, lastError := store.NotificationSending, ""
		for i, n := range rows {
			rowIDs[i] = n.ID
			switch {
			case n.State == store.NotificationSent:
				state = n.State
			case n.State == store.NotificationFailed && state != store.NotificationSent:
				state, lastError = n.State, n.LastError
			}
		}
		switch state {
		case store.NotificationSent:
			return w.sent(ctx, d, key, content, zone, nil)
		case store.NotificationFailed:
			failures = append(failures, ch+": "+lastError)
			continue
		}

		err = w.cfg.send(ctx, ch, msg)
		if rej, ok := notify.AsRejected(err); ok {
			if rerr := w.forget(ctx, s, rej); rerr != nil {
				return fmt.Errorf("record rejection: %w (after %w)", rerr, err)
			}
			if rerr := w.refused(ctx, log, rej, d.attempt >= d.maxAttempts); rerr != nil {
				return fmt.Errorf("record rejection: %w (after %w)", rerr, err)
			}
			if rej.Delivered {
				err = nil
			}
		}
		if err == nil {
			if err := w.sent(ctx, d, key, content, zone, rowIDs); err != nil {
				return fmt.Errorf("message sent but not recorded (a retry resends the same message): %w", err)
			}
			w.cfg.Metrics.Notification(ch, "sent")
			if step == 0 {
				for range content {
					w.cfg.Metrics.Funnel(metrics.StepSent)
				}
			}
			log.InfoContext(ctx, "message sent", slog.String("channel", ch), slog.Int("devices", len(content)))
			return nil
		}
		permanent := errors.Is(err, notify.ErrPermanent) || d.attempt >= d.maxAttempts
		state = store.NotificationSending // retried
		if permanent {
			state = store.NotificationFailed
		}
		if ferr := store.FinishNotifications(ctx, w.cfg.Pool, rowIDs, state, err.Error()); ferr != nil {
			return fmt.Errorf("record failed delivery: %w (after %w)", ferr, err)
		}
		if !permanent {
			w.cfg.Metrics.Notification(ch, "retry")
			return err
		}
		w.cfg.Metrics.Notification(ch, "failed")
		log.WarnContext(ctx, "channel failed permanently, trying the next", slog.String("channel", ch), slog.Any("error", err))
		failures = append(failures, ch+": "+err.Error())
	}
	reason := reasonNoChannel
	if len(failures) > 0 {
		reason = reasonEveryChannelFailed + ": " + strings.Join(failures, "; ")
	}
	for _, v := range content {
		if err := w.cfg.sessions().Emit(ctx, nil, nil, reauth.EventFailed, session.Subject(v.Session), reason); err != nil {
			return err
		}
	}
	return river.JobCancel(errors.New(reason))
}

// recipient is what a notification row names as the recipient.
func recipient(channel string, m notify.Message) string {
	switch channel {
	case notify.ChannelEmail:
		return m.To
	case notify.ChannelPush:
		return fmt.Sprintf("%d FCM token(s)", len(m.Tokens))
	}
	return "user " + m.UserID
}

// forget stops using what a channel rejected: the address, when the server
// said the address itself does not work (suppressed), or the unregistered
// FCM tokens (removed from the contact). A refusal for the relay's reasons
// (policy, auth, capacity) or while the channel counts as broken is no fact
// about the user: nothing is forgotten.
func (w *NotifyWorker) forget(ctx context.Context, s store.Session, rej *notify.RejectedError) error {
	if rej.Address != "" && rej.Mailbox {
		if err := store.SuppressEmail(ctx, w.cfg.Pool, rej.Address, rej.Reason); err != nil {
			return err
		}
	}
	if len(rej.Tokens) > 0 {
		return store.RemoveFCMTokens(ctx, w.cfg.Pool, s.OrgID, s.UserID, rej.Tokens)
	}
	return nil
}

// refused counts and reports an email refusal at RCPT TO. One that is not
// about the address (the relay's policy, authentication, capacity) is
// logged at ERROR: the message is retried, so someone must fix the relay.
// When this refusal made the channel count as broken, that is logged at
// ERROR too, and the addresses suppressed within its window are taken off
// the list again: the relay refused them, not their mailboxes. A push
// webhook endpoint's answer for its own reasons (webhook.EndpointFault) is
// logged at ERROR as well: retried, but on the job's last attempt (last)
// given up for the next channel, as any temporary failure is.
func (w *NotifyWorker) refused(ctx context.Context, log *slog.Logger, rej *notify.RejectedError, last bool) error {
	if rej.Channel == notify.ChannelWebhook && rej.Class == notify.RefusalSystem {
		next := "the message is retried on it, not sent on the next channel"
		if last {
			next = "this was the job's last attempt (MAX_ATTEMPTS): the webhook is given up for this message and the next channel tried"
		}
		log.ErrorContext(ctx, "the push webhook endpoint answered for its own reasons (a rotated secret, a deploy, a moved URL), not the user's: "+
			next+"; check PUSH_WEBHOOK_URL and PUSH_WEBHOOK_SECRET", slog.Int("status", rej.Status), slog.String("reply", rej.Reason))
		return nil
	}
	if rej.Channel != notify.ChannelEmail || rej.Class == "" {
		return nil
	}
	attrs := []any{slog.String("class", rej.Class), slog.String("code", rej.Code), slog.String("reply", rej.Reason)}
	switch {
	case rej.Broken != nil:
		w.cfg.Metrics.EmailRefused("channel_broken")
		if !rej.BrokenBegan {
			log.WarnContext(ctx, "email refused while the channel counts as broken: retried, nothing suppressed", attrs...)
			return nil
		}
		h := rej.Broken
		lifted, err := store.LiftSuppressionsSince(ctx, w.cfg.Pool, w.cfg.now().Add(-h.Window))
		if err != nil {
			return fmt.Errorf("lift suppressions: %w", err)
		}
		w.cfg.Metrics.EmailChannelBroken()
		log.ErrorContext(ctx, "email channel broken: many distinct addresses refused within minutes, so the relay is at fault, not the addresses; "+
			"messages are retried and nothing is suppressed until it takes mail again; check SMTP_URL (credentials), MAIL_FROM and the relay's allow-list",
			append(attrs, slog.Int("addresses", h.Addresses), slog.Int("refused", h.Refused), slog.Int("accepted", h.Accepted),
				slog.Duration("window", h.Window), slog.Int64("suppressions_lifted", lifted))...)
	case rej.Class == notify.RefusalSystem:
		w.cfg.Metrics.EmailRefused(rej.Class)
		log.ErrorContext(ctx, "the SMTP server refused a recipient for its own reasons (policy, authentication, relaying, capacity), not the address's: "+
			"the message is retried and the address kept; check SMTP_URL, MAIL_FROM and the relay", attrs...)
	default:
		w.cfg.Metrics.EmailRefused(rej.Class)
	}
	return nil
}

// sent records message key as sent (rowIDs, its notification rows, when it
// went out) and schedules the next reminder of its sessions while one is
// open, in one transaction, retried even past a shutdown or dropped
// connections: the message is out, and a retried job would resend it.
// After Postgres cut its connections every idle one in the pool is dead, so
// the retries outnumber the pool. A session's own message (BATCH_WINDOW
// off) is recorded together with those other workers sent meanwhile, in
// one transaction (see sentLog); it returns once its record committed.
// River completes the job in one of its batches; a job run again before
// that finds the rows sent and sends nothing.
func (w *NotifyWorker) sent(ctx context.Context, d delivery, key string, views []store.NotifyView, zone *time.Location, rowIDs []int64) error {
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sentRecordTimeout)
	defer cancel()
	rec := sentRecord{ctx: recordCtx, d: d, key: key, views: views, zone: zone, rows: rowIDs}
	client := river.ClientFromContext[pgx.Tx](ctx)
	if w.cfg.sentLog != nil && d.session != 0 && w.cfg.BatchWindow == 0 {
		return retry(recordCtx, 30, func() error { return w.cfg.sentLog.record(w.cfg, client, rec) })
	}
	return retry(recordCtx, 30, func() error {
		return pgx.BeginFunc(recordCtx, w.cfg.Pool, func(tx pgx.Tx) error {
			return w.cfg.recordSent(recordCtx, client, tx, []sentRecord{rec})
		})
	})
}

// sentRecord is one message's record for sent.
type sentRecord struct {
	ctx   context.Context // its job's (values only): its reminder continues its trace
	d     delivery
	key   string
	views []store.NotifyView
	zone  *time.Location
	rows  []int64
}

// recordSent records, in tx, that the messages of recs went out, and
// schedules each one's next reminder while one of its sessions is open.
// Locked against /done and the opt-out until commit: no reminder is
// scheduled after either cancelled the others.
func (cfg Config) recordSent(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, recs []sentRecord) error {
	msgs := make([]store.Finished, len(recs))
	for i, r := range recs {
		msgs[i] = store.Finished{Rows: r.rows, Key: r.key, Step: r.d.step}
		if r.d.step < len(cfg.ReminderOffsets) {
			for _, v := range r.views {
				msgs[i].Sessions = append(msgs[i].Sessions, v.ID)
			}
		}
	}
	open, err := store.FinishMessages(ctx, tx, msgs)
	if err != nil {
		return err
	}
	var reminders []river.InsertManyParams
	for _, r := range recs {
		var first *store.Session
		for i := range r.views {
			if slices.Contains(open, r.views[i].ID) && (first == nil || r.views[i].CreatedAt.Before(first.CreatedAt)) {
				first = &r.views[i].Session
			}
		}
		if first == nil {
			continue
		}
		step := r.d.step
		at := cfg.SendWindow.Next(cfg.reminderAt(first.CreatedAt, step), r.zone)
		if r.d.session != 0 && cfg.BatchWindow == 0 {
			reminder := river.InsertManyParams{Args: reauth.NotifyArgs{SessionID: first.ID, Step: step + 1},
				InsertOpts: &river.InsertOpts{ScheduledAt: at}}
			if cfg.TracerProvider != nil {
				// Inserted in its own request's trace (one insert each).
				if _, err := client.InsertManyTx(r.ctx, tx, []river.InsertManyParams{reminder}); err != nil {
					return err
				}
				continue
			}
			reminders = append(reminders, reminder)
			continue
		}
		// One reminder for the user's sessions due then: those of this
		// message, and any other due within the window.
		due := first.CreatedAt.Add(cfg.ReminderOffsets[step])
		if err := cfg.scheduleMessage(ctx, client, tx, first.OrgID, first.UserID, step+1, due, at); err != nil {
			return err
		}
	}
	if len(reminders) == 0 {
		return nil
	}
	_, err = client.InsertManyTx(ctx, tx, reminders)
	return err
}

// scheduleMessage makes sure a grouped job will send step of the user's
// sessions due at due, at about at: one waiting that has claimed nothing
// yet (and so will claim them when it runs) and is scheduled within the
// window of at takes them; otherwise a new one is inserted for at. A first
// message (step 0) joins any waiting one: that claims every session
// waiting for its first message (one that quiet hours hold until the
// window opens included).
func (cfg Config) scheduleMessage(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, orgID, userID string, step int, due, at time.Time) error {
	if err := store.LockUserMessages(ctx, tx, orgID, userID); err != nil {
		return err
	}
	from, to := time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if step > 0 {
		from, to = at.Add(-cfg.BatchWindow), at.Add(cfg.BatchWindow)
	}
	joined, err := store.PendingUserMessage(ctx, tx, orgID, userID, step, from, to)
	if err != nil || joined {
		return err
	}
	_, err = client.InsertTx(ctx, tx, reauth.NotifyArgs{OrgID: orgID, UserID: userID, Step: step, Batch: max(due.UnixMilli(), 1)},
		&river.InsertOpts{ScheduledAt: at})
	return err
}

// reminderAt is when the reminder after step is due: its offset after the
// session's creation, but never sooner after now than the gap between the
// offsets, so a late message is not followed at once by the next.
func (cfg Config) reminderAt(created time.Time, step int) time.Time {
	offsets := cfg.ReminderOffsets
	gap := offsets[step]
	if step > 0 {
		gap -= offsets[step-1]
	}
	return latest(created.Add(offsets[step]), cfg.now().Add(gap))
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// channelsFor is the order in which to try the channels for a user with
// contact c (the zero Contact when there is none), with or without an email
// address: the contact's preference (email only by default), without the
// channels opted out of, not configured, or with nothing to send to.
func (cfg Config) channelsFor(c store.Contact, hasEmail bool) []string {
	prefs := c.Channels
	if len(prefs) == 0 {
		prefs = []string{notify.ChannelEmail}
	}
	var out []string
	for _, ch := range prefs {
		usable := false
		switch ch {
		case notify.ChannelEmail:
			usable = hasEmail && cfg.Email != nil
		case notify.ChannelPush:
			usable = len(c.FCMTokens) > 0 && cfg.Push != nil
		case notify.ChannelWebhook:
			usable = cfg.Webhook != nil
		}
		if usable && !slices.Contains(c.OptedOut, ch) {
			out = append(out, ch)
		}
	}
	return out
}

func (cfg Config) sender(channel string) Sender {
	switch channel {
	case notify.ChannelPush:
		return cfg.Push
	case notify.ChannelWebhook:
		return cfg.Webhook
	}
	return cfg.Email
}

func (cfg Config) now() time.Time {
	if cfg.Now != nil {
		return cfg.Now()
	}
	return time.Now()
}

// sessions makes the session transitions and inserts the events
// (session.Sessions), with this configuration.
func (cfg Config) sessions() session.Sessions {
	return session.Sessions{Pool: cfg.Pool, Events: cfg.PostEvent != nil, Now: cfg.Now, Logger: cfg.Logger, Metrics: cfg.Metrics,
		Verify: true, VerifyAfter: cfg.VerifyAfter}
}

// jobLogger logs to the process log and, inside a job, to the attempt's log
// that riverlog keeps in the job's metadata.
func jobLogger(ctx context.Context, base *slog.Logger) *slog.Logger {
	if jl, ok := riverlog.LoggerSafely(ctx); ok {
		return slog.New(slog.NewMultiHandler(base.Handler(), jl.Handler()))
	}
	return base
}

// retry runs fn up to attempts times, backing off from 10 ms to at most a
// second, until it succeeds or ctx is done.
func retry(ctx context.Context, attempts int, fn func() error) error {
	var err error
	wait := 10 * time.Millisecond
	for i := range attempts {
		if err = fn(); err == nil || i == attempts-1 {
			break
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
	return err
}

// redact replaces secret in err's message, keeping River's cancel and snooze
// semantics intact.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	clean := errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
	var cancel *river.JobCancelError
	if errors.As(err, &cancel) {
		return river.JobCancel(clean)
	}
	return clean
}
