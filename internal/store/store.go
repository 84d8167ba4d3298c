// Package store holds every SQL statement of the service. Functions take a DB
// (a pool or a transaction), so callers choose the transaction boundaries and
// River can complete a job in the same transaction that stores its result.
// Driver errors are mapped here: nothing above this package inspects pgx
// errors.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reauth/reauth"
)

// DB is what pgxpool.Pool, pgx.Conn and pgx.Tx have in common.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a uniqueness rule refused the write (for example a
	// second open session for a device).
	ErrConflict = errors.New("conflict")
)

// mapErr turns driver errors into the package's sentinels.
func mapErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	}
	return err
}

// Session states.
const (
	SessionOpen       = "open"
	SessionCompleted  = "completed"
	SessionCancelled  = "cancelled"
	SessionSuperseded = "superseded"
	// SessionCompletedElsewhere: a sync saw the device authenticated again.
	SessionCompletedElsewhere = "completed_elsewhere"
	// SessionDeviceGone: Podero no longer knows the device.
	SessionDeviceGone = "device_gone"
)

// Notification states.
const (
	NotificationSending = "sending"
	NotificationSent    = "sent"
	NotificationFailed  = "failed"
)

// Device is a device the service has been asked about.
type Device struct {
	Kind      reauth.DeviceKind `json:"device_kind"`
	ID        string            `json:"device_id"`
	OrgID     string            `json:"org_id"`
	UserID    string            `json:"user_id"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	GoneAt    *time.Time        `json:"gone_at,omitempty"`
	// What the last sync saw at Podero; null when Podero sent null or the
	// device was never synced. OwnerEmail is the device owner's email.
	Manufacturer     *string         `json:"manufacturer"`
	Model            *string         `json:"model"`
	LifecycleState   *string         `json:"lifecycle_state"`
	LifecycleError   json.RawMessage `json:"lifecycle_error"`
	ExternalDeviceID *string         `json:"external_device_id"`
	OwnerEmail       *string         `json:"owner_email"`
}

// UpsertDevice records a device, refreshing its owner; a device Podero
// answers for again is no longer gone.
func UpsertDevice(ctx context.Context, db DB, kind reauth.DeviceKind, id, orgID, userID string) error {
	_, err := db.Exec(ctx, `
		INSERT INTO device (kind, id, org_id, user_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (kind, id) DO UPDATE
		SET org_id = excluded.org_id, user_id = excluded.user_id, updated_at = now(), gone_at = NULL`,
		kind, id, orgID, userID)
	return mapErr(err)
}

// MarkDeviceGone records that Podero does not know the device (any more).
func MarkDeviceGone(ctx context.Context, db DB, kind reauth.DeviceKind, id, orgID, userID string) error {
	_, err := db.Exec(ctx, `
		INSERT INTO device (kind, id, org_id, user_id, gone_at) VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (kind, id) DO UPDATE SET gone_at = now(), updated_at = now()`,
		kind, id, orgID, userID)
	return mapErr(err)
}

// Session is an authentication session Podero returned.
type Session struct {
	ID                int64             `json:"id"`
	DeviceKind        reauth.DeviceKind `json:"device_kind"`
	DeviceID          string            `json:"device_id"`
	OrgID             string            `json:"org_id"`
	UserID            string            `json:"user_id"`
	PoderoSessionID   string            `json:"session_id"`
	AuthenticationURL string            `json:"authentication_url"`
	State             string            `json:"state"`
	LinkNonce         []byte            `json:"-"`
	Email             string            `json:"-"`
	Locale            string            `json:"locale"`
	SuccessURL        string            `json:"-"`
	CancelURL         string            `json:"-"`
	JobID             *int64            `json:"job_id,omitempty"`
	CreatedAt         time.Time         `json:"created_at"`
	ExpiresAt         time.Time         `json:"expires_at"`
	OpenedAt          *time.Time        `json:"opened_at,omitempty"`
	FinishedAt        *time.Time        `json:"finished_at,omitempty"`
	CancelledAt       *time.Time        `json:"cancelled_at,omitempty"` // the user's last cancel, kept if completed later
	Clicks            int               `json:"clicks"`
	LastOpenedAt      *time.Time        `json:"last_opened_at,omitempty"`
}

// NewSession is what CreateSession stores.
type NewSession struct {
	DeviceKind        reauth.DeviceKind
	DeviceID          string
	PoderoSessionID   string
	AuthenticationURL string
	LinkNonce         []byte
	LinkHash          []byte
	Email             string
	Locale            string
	SuccessURL        string
	CancelURL         string
	JobID             int64     // 0: not made by a job
	CreatedAt         time.Time // zero: the database's now()
	ExpiresAt         time.Time
}

// CreateSession supersedes the device's open session, if any (cancelling
// its pending reminders), and stores s as the open one. Run it in the
// transaction that completes the job.
func CreateSession(ctx context.Context, db DB, s NewSession) (int64, error) {
	// The old session's pending reminders go with it.
	var old int64
	err := db.QueryRow(ctx, `
		UPDATE auth_session SET state = 'superseded', finished_at = now()
		WHERE device_kind = $1 AND device_id = $2 AND state = 'open'
		RETURNING id`, s.DeviceKind, s.DeviceID).Scan(&old)
	switch {
	case err == nil:
		if _, err := CancelReminders(ctx, db, old); err != nil {
			return 0, err
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, mapErr(err)
	}
	var id int64
	err = db.QueryRow(ctx, `
		INSERT INTO auth_session (device_kind, device_id, podero_session_id, authentication_url,
			link_nonce, link_hash, email, locale, success_url, cancel_url, job_id, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''), $8, nullif($9, ''), nullif($10, ''), nullif($11, 0), $12,
			coalesce($13, now()))
		RETURNING id`,
		s.DeviceKind, s.DeviceID, s.PoderoSessionID, s.AuthenticationURL, s.LinkNonce, s.LinkHash,
		s.Email, s.Locale, s.SuccessURL, s.CancelURL, s.JobID, s.ExpiresAt, nullTime(s.CreatedAt)).Scan(&id)
	return id, mapErr(err)
}

const sessionColumns = `s.id, s.device_kind, s.device_id, d.org_id, d.user_id, s.podero_session_id,
	s.authentication_url, s.state, s.link_nonce, coalesce(s.email, ''), s.locale,
	coalesce(s.success_url, ''), coalesce(s.cancel_url, ''), s.job_id, s.created_at, s.expires_at,
	s.opened_at, s.finished_at, s.cancelled_at, s.clicks, s.last_opened_at`

// dest is where a row of sessionColumns scans to.
func (s *Session) dest() []any {
	return []any{&s.ID, &s.DeviceKind, &s.DeviceID, &s.OrgID, &s.UserID, &s.PoderoSessionID,
		&s.AuthenticationURL, &s.State, &s.LinkNonce, &s.Email, &s.Locale,
		&s.SuccessURL, &s.CancelURL, &s.JobID, &s.CreatedAt, &s.ExpiresAt, &s.OpenedAt, &s.FinishedAt,
		&s.CancelledAt, &s.Clicks, &s.LastOpenedAt}
}

func scanSession(row pgx.Row) (Session, error) {
	var s Session
	err := row.Scan(s.dest()...)
	return s, mapErr(err)
}

// nullTime is nil for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// GetSession returns the session with our id.
func GetSession(ctx context.Context, db DB, id int64) (Session, error) {
	return scanSession(db.QueryRow(ctx, `SELECT `+sessionColumns+`
		FROM auth_session s JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
		WHERE s.id = $1`, id))
}

// SessionByLinkHash returns the session whose link token hashes to hash.
func SessionByLinkHash(ctx context.Context, db DB, hash []byte) (Session, error) {
	return scanSession(db.QueryRow(ctx, `SELECT `+sessionColumns+`
		FROM auth_session s JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
		WHERE s.link_hash = $1`, hash))
}

// OpenSession returns the device's open session.
func OpenSession(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID string) (Session, error) {
	return scanSession(db.QueryRow(ctx, `SELECT `+sessionColumns+`
		FROM auth_session s JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
		WHERE s.device_kind = $1 AND s.device_id = $2 AND s.state = 'open'`, kind, deviceID))
}

// LatestSession returns the device's newest session: its open one when it
// has one (a newer session supersedes the open one), else the last to finish.
func LatestSession(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID string) (Session, error) {
	return scanSession(db.QueryRow(ctx, `SELECT `+sessionColumns+`
		FROM auth_session s JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
		WHERE s.device_kind = $1 AND s.device_id = $2
		ORDER BY s.created_at DESC, s.id DESC LIMIT 1`, kind, deviceID))
}

// RecentCompletion returns the device's session completed (through its link
// or, as the sync saw, elsewhere) most recently since since, and the job
// that made it; ErrNotFound when there is none. A repeat request for such a
// device is a duplicate: Podero takes minutes to show it authenticated.
func RecentCompletion(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID string, since time.Time) (sessionID, jobID int64, err error) {
	var job *int64
	err = db.QueryRow(ctx, `
		SELECT id, job_id FROM auth_session
		WHERE device_kind = $1 AND device_id = $2 AND state IN ('completed', 'completed_elsewhere') AND finished_at >= $3
		ORDER BY finished_at DESC LIMIT 1`, kind, deviceID, since).Scan(&sessionID, &job)
	if job != nil {
		jobID = *job
	}
	return sessionID, jobID, mapErr(err)
}

// MarkOpened records a click on the session's link (the first one's time
// in opened_at, every one's in clicks and last_opened_at) and reports
// whether it was the first.
func MarkOpened(ctx context.Context, db DB, id int64) (first bool, err error) {
	err = db.QueryRow(ctx, `
		UPDATE auth_session SET clicks = clicks + 1, last_opened_at = now(), opened_at = coalesce(opened_at, now())
		WHERE id = $1 RETURNING clicks = 1`, id).Scan(&first)
	return first, mapErr(err)
}

// FinishSession moves an open session to state (completed or cancelled); a
// cancelled one may still be completed, since its link keeps working. It
// reports false when nothing changed.
func FinishSession(ctx context.Context, db DB, id int64, state string) (bool, error) {
	tag, err := db.Exec(ctx, `
		UPDATE auth_session SET state = $2, finished_at = now(), opened_at = coalesce(opened_at, now()),
			cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE cancelled_at END
		WHERE id = $1 AND (state = 'open' OR (state = 'cancelled' AND $2 = 'completed'))`, id, state)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

// CompleteOpenSession completes the device's open session, if it is not
// except: a success through any of the device's links (an older one, or one
// opened before it was superseded) is the device's, and its current session
// must not stay open and keep reminding. It returns the session it
// completed, or 0 when there was none.
func CompleteOpenSession(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID string, except int64) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `
		UPDATE auth_session SET state = 'completed', finished_at = now()
		WHERE device_kind = $1 AND device_id = $2 AND state = 'open' AND id <> $3
		RETURNING id`, kind, deviceID, except).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return id, mapErr(err)
}

// Notification is one message about one session step.
type Notification struct {
	ID             int64      `json:"-"`
	SessionID      int64      `json:"session_id"`
	Step           int        `json:"step"`
	Channel        string     `json:"channel"`
	Recipient      string     `json:"recipient"`
	IdempotencyKey string     `json:"idempotency_key"`
	State          string     `json:"state"`
	Attempts       int        `json:"attempts"`
	LastError      string     `json:"last_error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	SentAt         *time.Time `json:"sent_at"`
}

// BeginNotification records an attempt to send a message before it is sent:
// it inserts the row, or, when one exists for (session, step, channel),
// counts another attempt on it. The returned row tells whether the message
// was already sent.
func BeginNotification(ctx context.Context, db DB, sessionID int64, step int, channel, recipient, key string) (Notification, error) {
	var n Notification
	err := db.QueryRow(ctx, `
		INSERT INTO notification (session_id, step, channel, recipient, idempotency_key, attempts)
		VALUES ($1, $2, $3, $4, $5, 1)
		ON CONFLICT (session_id, step, channel) DO UPDATE
		SET attempts = notification.attempts + CASE WHEN notification.state = 'sent' THEN 0 ELSE 1 END
		RETURNING id, session_id, step, channel, recipient, idempotency_key, state, attempts,
			coalesce(last_error, ''), created_at, sent_at`,
		sessionID, step, channel, recipient, key).Scan(&n.ID, &n.SessionID, &n.Step, &n.Channel,
		&n.Recipient, &n.IdempotencyKey, &n.State, &n.Attempts, &n.LastError, &n.CreatedAt, &n.SentAt)
	return n, mapErr(err)
}

// FinishNotification records the outcome of a send: state sent (errText
// empty) or failed, or still sending with the error of a failed attempt that
// will be retried.
func FinishNotification(ctx context.Context, db DB, id int64, state, errText string) error {
	_, err := db.Exec(ctx, `
		UPDATE notification
		SET state = $2, last_error = nullif($3, ''),
			sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END
		WHERE id = $1`, id, state, errText)
	return mapErr(err)
}

// DeviceView is a device with its sessions, notifications and jobs, newest first.
type DeviceView struct {
	Device
	Sessions      []Session      `json:"sessions"`
	Notifications []Notification `json:"notifications"`
	Jobs          []Job          `json:"jobs"`
}

// GetDeviceView returns everything known about one device. A device that
// has only requests waiting (no row yet) is returned with just its jobs.
func GetDeviceView(ctx context.Context, db DB, kind reauth.DeviceKind, id string) (DeviceView, error) {
	var v DeviceView
	var lifecycleErr []byte
	err := db.QueryRow(ctx, `SELECT kind, id, org_id, user_id, created_at, updated_at, gone_at,
			manufacturer, model, lifecycle_state, lifecycle_error, external_device_id, owner_email
		FROM device WHERE kind = $1 AND id = $2`, kind, id).Scan(
		&v.Kind, &v.ID, &v.OrgID, &v.UserID, &v.CreatedAt, &v.UpdatedAt, &v.GoneAt,
		&v.Manufacturer, &v.Model, &v.LifecycleState, &lifecycleErr, &v.ExternalDeviceID, &v.OwnerEmail)
	if lifecycleErr != nil {
		v.LifecycleError = lifecycleErr
	}
	if err = mapErr(err); err != nil && !errors.Is(err, ErrNotFound) {
		return v, err
	}
	found := err == nil

	v.Jobs, err = requestJobs(ctx, db, kind, id)
	if err != nil {
		return v, err
	}
	if !found {
		if len(v.Jobs) == 0 {
			return v, ErrNotFound
		}
		v.Kind, v.ID = kind, id
	}

	rows, err := db.Query(ctx, `SELECT `+sessionColumns+`
		FROM auth_session s JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
		WHERE s.device_kind = $1 AND s.device_id = $2
		ORDER BY s.created_at DESC, s.id DESC LIMIT 50`, kind, id)
	if err != nil {
		return v, mapErr(err)
	}
	v.Sessions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) { return scanSession(r) })
	if err != nil {
		return v, mapErr(err)
	}

	rows, err = db.Query(ctx, `SELECT n.id, n.session_id, n.step, n.channel, n.recipient, n.idempotency_key,
			n.state, n.attempts, coalesce(n.last_error, ''), n.created_at, n.sent_at
		FROM notification n JOIN auth_session s ON s.id = n.session_id
		WHERE s.device_kind = $1 AND s.device_id = $2
		ORDER BY n.created_at DESC, n.id DESC LIMIT 100`, kind, id)
	if err != nil {
		return v, mapErr(err)
	}
	v.Notifications, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) {
		var n Notification
		return n, r.Scan(&n.ID, &n.SessionID, &n.Step, &n.Channel, &n.Recipient, &n.IdempotencyKey,
			&n.State, &n.Attempts, &n.LastError, &n.CreatedAt, &n.SentAt)
	})
	return v, mapErr(err)
}
