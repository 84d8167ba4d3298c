// Package session owns the lifecycle of an authentication session (an
// auth_session row: one Podero login link sent to a user for one device).
// Every change of a session's state is made here, and every reauth.* event
// the partner's backend gets is inserted here (Emit); the HTTP API and the
// workers only call these functions, and the SQL they run is in store.
//
//	Create (reauth_device worker)
//	            |
//	            v
//	       +---------+  Open (a click), Renew (a click after
//	       |  open   |  expires_at): the session stays open
//	       +---------+
//	        | | | | |
//	        | | | | +-- Create for the same device ---------> superseded
//	        | | | +---- DeviceGone, the sync ---------------> device_gone
//	        | | +------ CompletedElsewhere (the sync) ------> completed_elsewhere
//	        | +-------- Finish(success) --------------------> completed
//	        |                                                     ^  |
//	        +-- Finish(cancel) --> cancelled -- Finish(success) --+  |
//	                                                                 |
//	   completed -- Confirm (Podero shows the device authenticated) -+-> completed, verified_at set
//	             -- Unverified (still lapsed after VERIFY_TIMEOUT) --> unverified
//
// Who calls what:
//   - Create: the reauth_device worker, in the transaction that stores
//     Podero's session; the device's open session, if any, is superseded
//     and its pending reminders cancelled. Event reauth.link_created.
//   - Follow and Open: the HTTP API's GET /r/{token}. Follow says where a
//     link leads (every link of a device leads to its newest session); Open
//     records the click, the first one with reauth.link_opened.
//   - Renew and AwaitRenewal: the HTTP API, when the session a link leads
//     to has expired: a fresh request (reason link_expired), and the wait
//     for its session. The renewed request's address and language follow
//     Recipient.
//   - Finish: the HTTP API's GET /r/{token}/done, Podero's callback.
//     success completes the session and the device's open session if that
//     is another (the success is the device's, whichever link it came
//     through); cancel cancels it. A cancelled session may still complete:
//     its link keeps working (see finishableFrom). Reminders are cancelled;
//     events reauth.completed (detail via_link, verified false) and
//     reauth.cancelled. A success also queues the check of the device at
//     Podero (reauth_verify, VerifyAfter later).
//   - Confirm and Unverified: the reauth_verify worker. Confirm records
//     that Podero shows the device authenticated (verified_at), with
//     reauth.completed (verified true); Unverified moves a completion
//     Podero still shows lapsed after VERIFY_TIMEOUT to unverified, with
//     reauth.verification_failed, and requests a fresh link (reason
//     verification_failed, forced), whose first message says the last
//     login did not work.
//   - CompletedElsewhere: the reauth_sync_user worker, when Podero lists a
//     device authenticated again without our link; reminders cancelled,
//     event reauth.completed (detail elsewhere, verified true: Podero's
//     own listing said so).
//   - DeviceGone and MissingGone: the reauth_device worker (Podero answers
//     404 for the device) and the reauth_sync_user worker (the device is no
//     longer listed). Setting device.gone_at closes the open session as
//     device_gone in the database (trigger device_gone_closes_sessions,
//     migration 004), whichever way it is set, so a sync that sees a
//     deleted device (store.RecordSyncedDevice) closes it too. No event.
//   - Recipient: the reauth_device worker, for the address and language
//     of the session it is about to create (their precedence lives there).
//   - ByUnsubscribeToken and StopReminders (reminders.go): the HTTP API's
//     POST /u/{token}, a reminder's one-click opt-out: the open session's
//     pending reminders are cancelled and no later step sent or scheduled;
//     the session stays open. Event reauth.reminders_stopped.
//   - Emit: the transitions above, and the workers' reauth.failed events
//     (a request that ends without a session, a step every channel failed).
//
// Every session but an open one is finished; only a cancelled one may move
// on (to completed). A reminder job that runs after its session finished
// finds it not open and sends nothing.
package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/store"
)

// Sessions makes the transitions. Its fields are what they need; the
// callers build one from their own configuration (it is cheap to copy).
type Sessions struct {
	Pool *pgxpool.Pool
	// Events: the transitions insert reauth.* event jobs
	// (EVENTS_WEBHOOK_URL is set); false: none are inserted.
	Events  bool
	Now     func() time.Time // nil: time.Now
	Logger  *slog.Logger     // nil: slog.Default()
	Metrics *metrics.Metrics // nil: none
	// Verify: Finish(success) queues the check of the device at Podero (a
	// reauth_verify job); false: none is queued. VerifyAfter is how long
	// after the callback it runs (VERIFY_AFTER); 0: VerifyAfterDefault.
	Verify      bool
	VerifyAfter time.Duration
}

// VerifyAfterDefault is VERIFY_AFTER's default: Podero refreshes a
// device's state every 5 to 15 minutes.
const VerifyAfterDefault = 15 * time.Minute

func (s Sessions) verifyAfter() time.Duration { return cmp.Or(s.VerifyAfter, VerifyAfterDefault) }

func (s Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s Sessions) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Subject is the event subject of sess.
func Subject(sess store.Session) reauth.EventSubject {
	return reauth.EventSubject{SessionID: sess.ID, OrgID: sess.OrgID, UserID: sess.UserID, DeviceKind: sess.DeviceKind, DeviceID: sess.DeviceID}
}

// RequestSubject is the event subject of the request a, worked by the job
// jobID, about session sessionID (0: it got none).
func RequestSubject(a reauth.DeviceArgs, jobID, sessionID int64) reauth.EventSubject {
	return reauth.EventSubject{SessionID: sessionID, JobID: jobID, OrgID: a.OrgID, UserID: a.UserID, DeviceKind: a.DeviceKind, DeviceID: a.DeviceID}
}

// inserter is client, or in a River worker (client nil) the worker's own.
func inserter(ctx context.Context, client *river.Client[pgx.Tx]) *river.Client[pgx.Tx] {
	if client != nil {
		return client
	}
	return river.ClientFromContext[pgx.Tx](ctx)
}

// Emit inserts the event typ about subject, with detail, when events are
// on: in tx, or with a nil tx on its own, through client (nil in a River
// worker: the worker's own client). It is the only place that inserts
// reauth_event jobs.
func (s Sessions) Emit(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, typ string, subject reauth.EventSubject, detail string) error {
	return s.emit(ctx, client, tx, reauth.NewEvent(typ, subject, detail))
}

// completedEvent is reauth.completed about subject with detail, verified
// or not.
func completedEvent(subject reauth.EventSubject, detail string, verified bool) reauth.EventArgs {
	ev := reauth.NewEvent(reauth.EventCompleted, subject, detail)
	ev.Verified = &verified
	return ev
}

// emit inserts ev as Emit does.
func (s Sessions) emit(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, ev reauth.EventArgs) error {
	if !s.Events {
		return nil
	}
	typ := ev.Type
	ev.OccurredAt = s.now().UTC()
	var err error
	if tx != nil {
		_, err = inserter(ctx, client).InsertTx(ctx, tx, ev, nil)
	} else {
		_, err = inserter(ctx, client).Insert(ctx, ev, nil)
	}
	if err != nil {
		return fmt.Errorf("insert %s event: %w", typ, err)
	}
	return nil
}

// New is a session to create: what store stores, and about whom.
type New struct {
	store.NewSession
	Request reauth.DeviceArgs // the request it answers (normalized, with its UserID)
}

// Create stores n as the device's open session in tx, its owner recorded
// (the request's OrgID and UserID, when it names them), superseding the device's open session
// (its pending reminders cancelled), with the event
// reauth.link_created (detail: the request's reason). The caller commits.
// client inserts the jobs, as for Emit; so for every function here.
func (s Sessions) Create(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, n New) (int64, error) {
	n.NewSession.Reason = cmp.Or(n.NewSession.Reason, n.Request.Reason)
	id, old, _, err := store.StoreSession(ctx, tx, n.Request.OrgID, n.Request.UserID, n.NewSession, nil)
	if err != nil {
		return 0, fmt.Errorf("store session: %w", err)
	}
	if old != 0 {
		if _, err := store.CancelReminders(ctx, tx, old); err != nil {
			return 0, err
		}
	}
	if err := s.Emit(ctx, client, tx, reauth.EventLinkCreated, RequestSubject(n.Request, n.JobID, id), n.Request.Reason); err != nil {
		return 0, err
	}
	return id, nil
}

// Recipient is where a new session's messages go, and in which language,
// with what else the request's work reads in the same query (see
// store.RequestView).
type Recipient struct {
	store.RequestView
	Email  string // "" when neither the request nor the contact names one
	Locale string
}

// Recipient decides the address and language of the session that request
// a makes, the one place for their precedence: the request's own, then the
// user's contact's, then "en" for the language; for the address, when
// neither names one, the reauth_device worker asks Podero (the
// users/by-ext-id answer, the device owner's as synced, the user list's).
// A renewal (reason link_expired, see Renew) carries the expired session's
// address and language: the contact's win over those, so a user who set
// their own meanwhile gets them, as a new request without its own would.
// The device's session completed since completedSince (zero: not looked
// for) is read along, for REAUTH_REPEAT_COOLDOWN.
func (s Sessions) Recipient(ctx context.Context, db store.DB, a reauth.DeviceArgs, completedSince time.Time) (Recipient, error) {
	// A fresh link after a login that did not take carries the session's
	// address and language as a renewal does.
	renewal := a.Reason == reauth.ReasonLinkExpired || a.Reason == reauth.ReasonVerificationFailed
	own := a.Email
	if renewal {
		own = "" // the contact's first
	}
	v, err := store.ViewRequest(ctx, db, a.OrgID, a.UserID, a.DeviceKind, a.DeviceID, own, completedSince)
	if err != nil {
		return Recipient{}, err
	}
	c := v.Contact
	r := Recipient{RequestView: v, Email: cmp.Or(own, c.Email), Locale: cmp.Or(a.Locale, c.Locale, "en")}
	if renewal {
		r.Locale = cmp.Or(c.Locale, a.Locale, "en")
		if r.Email == "" && a.Email != "" {
			r.Email = a.Email
			if r.Suppressed, err = store.EmailSuppressed(ctx, db, a.Email); err != nil {
				return Recipient{}, err
			}
		}
	}
	return r, nil
}

// ByToken returns the session of a link token; store.ErrNotFound for a
// token that is malformed or no session's.
func (s Sessions) ByToken(ctx context.Context, token string) (store.Session, error) {
	if !link.WellFormed(token) {
		return store.Session{}, store.ErrNotFound
	}
	return store.SessionByLinkHash(ctx, s.Pool, link.Hash(token))
}

// Landing is where a link leads.
type Landing int

// Where Follow sends a link.
const (
	// Login: on to the session's authentication_url (an open session, or a
	// cancelled one: its link keeps working).
	Login Landing = iota + 1
	// Expired: the same, but past its expires_at: Renew.
	Expired
	// Connected: the device's session completed, here or elsewhere.
	Connected
	// Gone: Podero no longer knows the device.
	Gone
	// Superseded: anything else (a superseded link whose device has no
	// newer session that says more).
	Superseded
)

// Follow says where the link of sess leads. Every link of the device leads
// to its newest session: its open one when it has one (from a superseded
// link, a cancelled one after a newer request, a completed one after the
// device lapsed again), else the one that finished last (a superseded
// link's successor completed: connected). It returns that session.
func (s Sessions) Follow(ctx context.Context, sess store.Session) (store.Session, Landing, error) {
	if sess.State != store.SessionOpen {
		cur, err := store.LatestSession(ctx, s.Pool, sess.DeviceKind, sess.DeviceID)
		if err != nil {
			return sess, 0, err
		}
		sess = cur
	}
	switch sess.State {
	case store.SessionOpen, store.SessionCancelled:
		if s.now().After(sess.ExpiresAt) {
			return sess, Expired, nil
		}
		return sess, Login, nil
	case store.SessionCompleted, store.SessionCompletedElsewhere:
		return sess, Connected, nil
	case store.SessionDeviceGone:
		return sess, Gone, nil
	}
	return sess, Superseded, nil
}

// Open records a click on the link of sess (every one counted, the first
// one's time kept). The first sends reauth.link_opened, on its own: an
// event that cannot be inserted is logged, the click is not failed for it.
func (s Sessions) Open(ctx context.Context, client *river.Client[pgx.Tx], sess store.Session) error {
	first, err := store.MarkOpened(ctx, s.Pool, sess.ID)
	if err != nil || !first {
		return err
	}
	s.Metrics.Funnel(metrics.StepOpened)
	if err := s.Emit(ctx, client, nil, reauth.EventLinkOpened, Subject(sess), ""); err != nil {
		s.logger().ErrorContext(ctx, "insert event", slog.String("type", reauth.EventLinkOpened), slog.Int64("session", sess.ID), slog.Any("error", err))
	}
	return nil
}

// Renew asks for a fresh session for the device of sess, whose link was
// opened after it expired, and reports whether it did: not when the device
// no longer needs one (gone, or seen authenticated by the sync). The
// request (a duplicate while one is on its way already) names the expired
// session's address, language and pages; see Recipient for how a contact
// set meanwhile wins.
func (s Sessions) Renew(ctx context.Context, client *river.Client[pgx.Tx], sess store.Session) (bool, error) {
	needs, err := store.DeviceStillNeedsLink(ctx, s.Pool, sess.DeviceKind, sess.DeviceID)
	if err != nil || !needs {
		return false, err
	}
	args := reauth.DeviceArgs{
		OrgID: sess.OrgID, UserID: sess.UserID, DeviceKind: sess.DeviceKind, DeviceID: sess.DeviceID,
		Email: sess.Email, Locale: sess.Locale, SuccessURL: sess.SuccessURL, CancelURL: sess.CancelURL,
		Reason: reauth.ReasonLinkExpired,
	}
	if _, err := inserter(ctx, client).Insert(ctx, args, nil); err != nil {
		return false, fmt.Errorf("request a fresh session: %w", err)
	}
	return true, nil
}

// renewPoll is how often AwaitRenewal looks for the fresh session.
const renewPoll = 50 * time.Millisecond

// AwaitRenewal waits until ctx is done for the device of the expired sess
// to have another, unexpired open session (the one Renew asked for), and
// returns it; false when ctx ended first.
func (s Sessions) AwaitRenewal(ctx context.Context, sess store.Session) (store.Session, bool, error) {
	tick := time.NewTicker(renewPoll)
	defer tick.Stop()
	for {
		cur, err := store.OpenSession(ctx, s.Pool, sess.DeviceKind, sess.DeviceID)
		if err == nil && cur.ID != sess.ID && s.now().Before(cur.ExpiresAt) {
			return cur, true, nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			return store.Session{}, false, err
		}
		select {
		case <-ctx.Done():
			return store.Session{}, false, nil
		case <-tick.C:
		}
	}
}

// Results of a login, as Podero's callback names them.
const (
	ResultSuccess = "success"
	ResultCancel  = "cancel"
)

// Finish records the outcome of the login through sess's link, result
// ResultSuccess or ResultCancel, in one transaction: sess moves to
// completed or cancelled (when its state allows, see finishableFrom), and a
// success also completes the device's open session if that is another (sess
// was superseded, or cancelled before a newer request). Each session
// finished gets its reminders cancelled and its event (reauth.completed
// via_link with verified false, reauth.cancelled); each one completed, its
// check at Podero (a reauth_verify job, VerifyAfter later).
func (s Sessions) Finish(ctx context.Context, client *river.Client[pgx.Tx], sess store.Session, result string) error {
	state, event, detail := store.SessionCompleted, reauth.EventCompleted, "via_link"
	if result == ResultCancel {
		state, event, detail = store.SessionCancelled, reauth.EventCancelled, ""
	}
	var finished []int64
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		finished = finished[:0]
		ok, err := store.FinishSession(ctx, tx, sess.ID, state, finishableFrom(state))
		if err != nil {
			return err
		}
		if ok {
			finished = append(finished, sess.ID)
		}
		if state == store.SessionCompleted {
			cur, err := store.CloseOpenSession(ctx, tx, sess.DeviceKind, sess.DeviceID, store.SessionCompleted, sess.ID)
			if err != nil {
				return err
			}
			if cur != 0 {
				finished = append(finished, cur)
			}
		}
		for _, id := range finished {
			if _, err := store.CancelReminders(ctx, tx, id); err != nil {
				return err
			}
			subject := Subject(sess)
			subject.SessionID = id
			ev := reauth.NewEvent(event, subject, detail)
			if state == store.SessionCompleted {
				ev = completedEvent(subject, detail, false)
			}
			if state == store.SessionCompleted && s.Verify {
				check := &river.InsertOpts{ScheduledAt: s.now().Add(s.verifyAfter())}
				if _, err := inserter(ctx, client).InsertTx(ctx, tx, reauth.VerifyArgs{SessionID: id}, check); err != nil {
					return fmt.Errorf("insert verify job: %w", err)
				}
			}
			if err := s.emit(ctx, client, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range finished {
		if state == store.SessionCompleted {
			s.Metrics.Funnel(metrics.StepCompleted)
		}
		s.logger().InfoContext(ctx, "session finished", slog.Int64("session", id), slog.String("state", state),
			slog.Int64("via_session", sess.ID))
	}
	return nil
}

// finishableFrom are the states from which the user's outcome may move a
// session to state: open; and for completed also cancelled, since a
// cancelled session's link keeps working and the user may try again. A
// completed session is never cancelled afterwards.
func finishableFrom(state string) []string {
	if state == store.SessionCompleted {
		return []string{store.SessionOpen, store.SessionCancelled}
	}
	return []string{store.SessionOpen}
}

// CompletedElsewhere closes the open session of d, which the sync saw
// authenticated again without our link, as completed_elsewhere in tx: its
// reminders are cancelled and reauth.completed (detail elsewhere) sent. It
// returns the session closed, 0 when there was none; the caller counts it
// once tx commits.
func (s Sessions) CompletedElsewhere(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, d Device) (int64, error) {
	id, err := store.CloseOpenSession(ctx, tx, d.Kind, d.ID, store.SessionCompletedElsewhere, 0)
	if err != nil || id == 0 {
		return 0, err
	}
	if _, err := store.CancelReminders(ctx, tx, id); err != nil {
		return 0, err
	}
	subject := reauth.EventSubject{SessionID: id, OrgID: d.OrgID, UserID: d.UserID, DeviceKind: d.Kind, DeviceID: d.ID}
	if err := s.emit(ctx, client, tx, completedEvent(subject, "elsewhere", true)); err != nil {
		return 0, err
	}
	return id, nil
}

// Device names a device and its owner.
type Device struct {
	Kind          reauth.DeviceKind
	ID            string
	OrgID, UserID string
}

// DeviceGone records that Podero does not know d (any more): its open
// session closes as device_gone.
func (s Sessions) DeviceGone(ctx context.Context, db store.DB, d Device) error {
	return store.MarkDeviceGone(ctx, db, d.Kind, d.ID, d.OrgID, d.UserID)
}

// MissingGone marks the user's devices of kind that Podero no longer lists
// (listed are the ones it does) as gone, closing their open sessions as
// device_gone, and returns how many.
func (s Sessions) MissingGone(ctx context.Context, db store.DB, orgID, userID string, kind reauth.DeviceKind, listed []string) (int64, error) {
	return store.MarkMissingGone(ctx, db, orgID, userID, kind, listed)
}

// Confirm records that Podero shows the device of sess, completed through
// its link, authenticated again: verified_at is set and reauth.completed
// (verified true, its own event ID) sent, in one transaction. It reports
// whether it did: not when sess is no longer completed or was confirmed
// before.
func (s Sessions) Confirm(ctx context.Context, client *river.Client[pgx.Tx], sess store.Session) (bool, error) {
	var ok bool
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if ok, err = store.MarkVerified(ctx, tx, sess.ID); err != nil || !ok {
			return err
		}
		return s.emit(ctx, client, tx, reauth.NewVerifiedCompletion(Subject(sess)))
	})
	if err == nil && ok {
		s.logger().InfoContext(ctx, "completion verified", slog.Int64("session", sess.ID))
	}
	return ok && err == nil, err
}

// Unverified moves sess, completed through its link but still lapsed at
// Podero after VERIFY_TIMEOUT, to unverified with reauth.verification_failed
// (detail says why), and requests a fresh link for the device (reason
// verification_failed, forced past REAUTH_REPEAT_COOLDOWN, with the
// session's address, language and pages), all in one transaction. The
// fresh request is left out when the device has a newer session (someone
// asked again meanwhile) or no longer needs a link (gone). It reports
// whether sess moved, and whether a fresh link was requested.
func (s Sessions) Unverified(ctx context.Context, client *river.Client[pgx.Tx], sess store.Session, detail string) (moved, requested bool, err error) {
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		moved, requested = false, false
		ok, err := store.MarkUnverified(ctx, tx, sess.ID)
		if err != nil || !ok {
			return err
		}
		moved = true
		if err := s.Emit(ctx, client, tx, reauth.EventVerificationFailed, Subject(sess), detail); err != nil {
			return err
		}
		latest, err := store.LatestSession(ctx, tx, sess.DeviceKind, sess.DeviceID)
		if err != nil {
			return err
		}
		needs, err := store.DeviceStillNeedsLink(ctx, tx, sess.DeviceKind, sess.DeviceID)
		if err != nil || latest.ID != sess.ID || !needs {
			return err
		}
		args := reauth.DeviceArgs{
			OrgID: sess.OrgID, UserID: sess.UserID, DeviceKind: sess.DeviceKind, DeviceID: sess.DeviceID,
			Email: sess.Email, Locale: sess.Locale, SuccessURL: sess.SuccessURL, CancelURL: sess.CancelURL,
			Reason: reauth.ReasonVerificationFailed, Force: true,
		}
		if _, err := inserter(ctx, client).InsertTx(ctx, tx, args, nil); err != nil {
			return fmt.Errorf("request a fresh session: %w", err)
		}
		requested = true
		return nil
	})
	if err != nil {
		return false, false, err
	}
	if moved {
		s.logger().WarnContext(ctx, "completion not verified: the device is still lapsed at Podero", slog.Int64("session", sess.ID),
			slog.Bool("fresh_link_requested", requested))
	}
	return moved, requested, nil
}
