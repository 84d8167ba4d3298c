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
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverlog"
	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/hostlist"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/store"
)

// MaintenanceWorkersDefault is how many sync and sweep jobs one process
// works at once; Podero's shared rate limit paces them in the end.
const MaintenanceWorkersDefault = 10

// Podero is the part of the Partner API client the workers use.
type Podero interface {
	AuthSession(ctx context.Context, orgID, userID string, kind reauth.DeviceKind, deviceID string, in podero.AuthSessionInput) (podero.AuthSession, error)
	ListUsers(ctx context.Context, orgID string) ([]podero.User, error)
	ListDevices(ctx context.Context, orgID, userID string, kind reauth.DeviceKind) ([]podero.Device, error)
}

// Sender delivers one message.
type Sender interface {
	Send(ctx context.Context, m notify.Message) error
}

// Config wires the workers. Zero durations and counts get the defaults.
type Config struct {
	Pool          *pgxpool.Pool
	Podero        Podero
	Email         Sender
	Links         *link.Signer
	PublicBaseURL string        // links and callbacks point here
	RedirectHosts hostlist.List // hosts a request's success_url/cancel_url may name
	LinkTTL       time.Duration // how long a session's link is offered
	PoderoWorkers int           // concurrent reauth_device jobs per process
	NotifyWorkers int           // concurrent reauth_notify jobs per process
	JobTimeout    time.Duration // a job running longer is cancelled
	RescueAfter   time.Duration // a job still running after this is deemed abandoned and retried
	RetryBase     time.Duration // first backoff ceiling; default RetryBaseDefault
	RetryCap      time.Duration // largest backoff ceiling; default RetryCapDefault
	MaxAttempts   int           // attempts before a job is discarded; default MaxAttemptsDefault

	// Device sync and sweep. A nil schedule leaves that periodic job off
	// (it still runs when inserted, e.g. by `reauth sync --now`).
	OrgIDs        []string // organizations the sync lists
	SyncSchedule  river.PeriodicSchedule
	SweepSchedule river.PeriodicSchedule
	SweepCooldown time.Duration // no new request for a device messaged this recently; default SweepCooldownDefault
	MaxPerWeek    int           // messages per device in seven days at most; default MaxPerWeekDefault
	SweepBatch    int           // devices per sweep page; default SweepBatchDefault
	// MaintenanceWorkers is concurrent sync and sweep jobs per process;
	// default MaintenanceWorkersDefault.
	MaintenanceWorkers int

	Metrics *metrics.Metrics // nil: none
	Logger  *slog.Logger
}

// NewClient returns a River client that works the podero, notify and
// maintenance queues.
func NewClient(cfg Config) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &DeviceWorker{cfg: cfg})
	river.AddWorker(workers, &NotifyWorker{cfg: cfg})
	river.AddWorker(workers, &SyncWorker{cfg: cfg})
	river.AddWorker(workers, &SyncUserWorker{cfg: cfg})
	river.AddWorker(workers, &SweepWorker{cfg: cfg})
	rc := ClientConfig(cfg)
	rc.Workers = workers
	return river.NewClient(riverpgxv5.New(cfg.Pool), rc)
}

// ClientConfig is the River configuration the service runs with, without
// workers: the queues, timeouts, retry policy, middleware and periodic jobs.
// The benchmark runs its no-op jobs through the same configuration.
func ClientConfig(cfg Config) *river.Config {
	var periodic []*river.PeriodicJob
	for _, p := range []struct {
		schedule river.PeriodicSchedule
		args     river.JobArgs
	}{{cfg.SyncSchedule, reauth.SyncArgs{}}, {cfg.SweepSchedule, reauth.SweepArgs{}}} {
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
		},
		PeriodicJobs:         periodic,
		FetchCooldown:        reauth.FetchCooldown, // a queue starts at most MaxWorkers jobs per cooldown
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		RetryPolicy:          &RetryPolicy{Base: cfg.RetryBase, Cap: cfg.RetryCap},
		MaxAttempts:          cmp.Or(cfg.MaxAttempts, MaxAttemptsDefault),
		Middleware: []rivertype.Middleware{
			&shutdownMiddleware{},
			// Each attempt's log lines are kept in the job's metadata, for
			// `reauth jobs show` (bounded: metadata is a jsonb column).
			riverlog.NewMiddleware(func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
				&riverlog.MiddlewareConfig{MaxSizeBytes: 8 << 10, MaxTotalBytes: 64 << 10}),
		},
		Logger: cfg.Logger,
	}
}

// DeviceWorker works reauth_device jobs.
type DeviceWorker struct {
	river.WorkerDefaults[reauth.DeviceArgs]
	cfg   Config
	users userCache
}

// Work asks Podero for a session and, in one transaction, stores it,
// supersedes the device's older open session, inserts the notify job and
// completes this job: either all of it happens or none.
func (w *DeviceWorker) Work(ctx context.Context, job *river.Job[reauth.DeviceArgs]) error {
	a := job.Args
	if err := errors.Join(a.Validate(), w.cfg.RedirectHosts.Check("success_url", a.SuccessURL),
		w.cfg.RedirectHosts.Check("cancel_url", a.CancelURL)); err != nil {
		return river.JobCancel(fmt.Errorf("invalid job args: %w", err))
	}
	// Run again after it stored its session (an operator retried a completed
	// job): nothing more to do. A first attempt has stored nothing yet.
	if job.Attempt > 1 {
		if stored, err := store.SessionStoredForJob(ctx, w.cfg.Pool, job.ID); err != nil || stored {
			return err
		}
	}
	// A sweep's request waits in the queue; the device may have been fixed,
	// or got a session, meanwhile.
	if a.Reason == "sweep" {
		needed, err := store.SweepStillNeeded(ctx, w.cfg.Pool, a.DeviceKind, a.DeviceID)
		if err != nil || !needed {
			return err
		}
	}
	email := a.Email
	if email == "" {
		var err error
		if email, err = w.userEmail(ctx, a.OrgID, a.UserID); err != nil {
			return w.poderoError(ctx, a, err)
		}
		if email == "" {
			// Nobody to send a link to: do not ask Podero for one.
			return river.JobCancel(errors.New("no email address for the user: none in the request and none (or a deleted user) in Podero's user list"))
		}
	}

	nonce := link.NewNonce()
	token := w.cfg.Links.Token(nonce)
	done := w.cfg.PublicBaseURL + "/r/" + token + "/done?result="
	sess, err := w.cfg.Podero.AuthSession(ctx, a.OrgID, a.UserID, a.DeviceKind, a.DeviceID,
		podero.AuthSessionInput{SuccessURL: done + "success", CancelURL: done + "cancel"})
	if err != nil {
		// Podero may echo the request (and so the token) in an error body.
		return redact(w.poderoError(ctx, a, err), token)
	}

	tx, err := w.cfg.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := store.UpsertDevice(ctx, tx, a.DeviceKind, a.DeviceID, a.OrgID, a.UserID); err != nil {
		return fmt.Errorf("store device: %w", err)
	}
	locale := a.Locale
	if locale == "" {
		locale = "en"
	}
	id, err := store.CreateSession(ctx, tx, store.NewSession{
		DeviceKind:        a.DeviceKind,
		DeviceID:          a.DeviceID,
		PoderoSessionID:   sess.SessionID,
		AuthenticationURL: sess.AuthenticationURL,
		LinkNonce:         nonce,
		LinkHash:          link.Hash(token),
		Email:             email,
		Locale:            locale,
		SuccessURL:        a.SuccessURL,
		CancelURL:         a.CancelURL,
		JobID:             job.ID,
		ExpiresAt:         time.Now().Add(w.cfg.LinkTTL),
	})
	if err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	if _, err := client.InsertTx(ctx, tx, reauth.NotifyArgs{SessionID: id, Step: 0}, nil); err != nil {
		return fmt.Errorf("insert notify job: %w", err)
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("complete job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit session: %w", err)
	}
	w.cfg.Metrics.Funnel(metrics.StepLinkCreated)
	jobLogger(ctx, w.cfg.Logger).InfoContext(ctx, "session stored",
		slog.Int64("job_id", job.ID), slog.Int64("session", id),
		slog.String("device_kind", string(a.DeviceKind)), slog.String("device_id", a.DeviceID))
	return nil
}

// userEmail finds the user's email in Podero's user list (cached per
// organization); "" when the user has none or is deleted.
func (w *DeviceWorker) userEmail(ctx context.Context, orgID, userID string) (string, error) {
	return w.users.email(ctx, w.cfg.Podero, orgID, userID)
}

// poderoError decides what a failed Podero call means for the job: permanent
// errors cancel it (404 also marks the device gone), throttling and an open
// circuit breaker snooze it, everything else is retried with backoff.
func (w *DeviceWorker) poderoError(ctx context.Context, a reauth.DeviceArgs, err error) error {
	pe, ok := podero.AsError(err)
	if !ok {
		return err
	}
	// Kept in the attempt's log (riverlog), for `reauth jobs show`.
	jobLogger(ctx, w.cfg.Logger).WarnContext(ctx, "podero call failed", slog.String("op", pe.Op),
		slog.String("kind", string(pe.Kind)), slog.Int("status", pe.Status), slog.String("device_id", a.DeviceID))
	switch pe.Kind {
	case podero.KindNotFound:
		if pe.Op != podero.OpAuthSession {
			return river.JobCancel(pe) // an unknown org or user, not a gone device
		}
		if err := store.MarkDeviceGone(ctx, w.cfg.Pool, a.DeviceKind, a.DeviceID, a.OrgID, a.UserID); err != nil {
			return fmt.Errorf("mark device gone: %w (after %w)", err, pe)
		}
		return river.JobCancel(pe)
	case podero.KindInvalid:
		return river.JobCancel(pe)
	}
	return throttled(pe)
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

// Work delivers one step of a session's messages. The notification row is
// written before sending and marked sent after: a crash in between resends
// the same message under the same idempotency key, never a different one.
func (w *NotifyWorker) Work(ctx context.Context, job *river.Job[reauth.NotifyArgs]) error {
	a := job.Args
	if err := a.Validate(); err != nil {
		return river.JobCancel(fmt.Errorf("invalid job args: %w", err))
	}
	s, err := store.GetSession(ctx, w.cfg.Pool, a.SessionID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("session %d does not exist", a.SessionID))
	}
	if err != nil {
		return err
	}
	log := jobLogger(ctx, w.cfg.Logger).With(slog.Int64("job_id", job.ID), slog.Int64("session", s.ID), slog.Int("step", a.Step))
	if s.State != store.SessionOpen {
		log.InfoContext(ctx, "session no longer open, nothing to send", slog.String("state", s.State))
		return nil
	}
	if s.Email == "" {
		return river.JobCancel(errors.New("no email address for the user: none in the request and none in Podero's user list"))
	}

	key := fmt.Sprintf("reauth-%d-%d", s.ID, a.Step)
	n, err := store.BeginNotification(ctx, w.cfg.Pool, s.ID, a.Step, "email", s.Email, key)
	if err != nil {
		return fmt.Errorf("record notification: %w", err)
	}
	switch n.State {
	case store.NotificationSent:
		return nil
	case store.NotificationFailed:
		return river.JobCancel(fmt.Errorf("delivery failed permanently: %s", n.LastError))
	}

	err = w.cfg.Email.Send(ctx, notify.Message{
		Key:        key,
		To:         s.Email,
		Locale:     s.Locale,
		DeviceKind: s.DeviceKind,
		Link:       w.cfg.PublicBaseURL + "/r/" + w.cfg.Links.Token(s.LinkNonce),
		Step:       a.Step,
		ExpiresAt:  s.ExpiresAt,
	})
	if err != nil {
		state := store.NotificationSending // retried
		if errors.Is(err, notify.ErrPermanent) || job.Attempt >= job.MaxAttempts {
			state = store.NotificationFailed
		}
		if ferr := store.FinishNotification(ctx, w.cfg.Pool, n.ID, state, err.Error()); ferr != nil {
			return fmt.Errorf("record failed delivery: %w (after %w)", ferr, err)
		}
		if state == store.NotificationFailed {
			w.cfg.Metrics.Notification("email", "failed")
			return river.JobCancel(err)
		}
		w.cfg.Metrics.Notification("email", "retry")
		return err
	}

	// The message is out. Record it even past a shutdown or dropped database
	// connections: a retried job would resend it (the same message, same
	// key), and one is better than two. The statement is idempotent. After
	// Postgres cut its connections every idle one in the pool is dead, so the
	// retries outnumber the pool. Once it is recorded, River completes the
	// job in one of its batches; a job run again before that finds the row
	// sent above and sends nothing.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	err = retry(recordCtx, 30, func() error {
		return store.FinishNotification(recordCtx, w.cfg.Pool, n.ID, store.NotificationSent, "")
	})
	if err != nil {
		return fmt.Errorf("message sent but not recorded (a retry resends the same message): %w", err)
	}
	w.cfg.Metrics.Notification("email", "sent")
	w.cfg.Metrics.Funnel(metrics.StepSent)
	log.InfoContext(ctx, "message sent", slog.String("channel", "email"), slog.String("key", key))
	return nil
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
