package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reauth/reauth"
)

// This file holds the queries of auth_session: a session's states and their
// changes, the session lists and the funnels that follow sessions.

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
	// SessionUnverified: completed through the link, but Podero still
	// showed the device lapsed VERIFY_TIMEOUT later (migration 009).
	SessionUnverified = "unverified"
)

// Session is an authentication session Podero returned.
type Session struct {
	ID                int64             `json:"id" db:"id"`
	DeviceKind        reauth.DeviceKind `json:"device_kind" db:"device_kind"`
	DeviceID          string            `json:"device_id" db:"device_id"`
	OrgID             string            `json:"org_id" db:"org_id"`
	UserID            string            `json:"user_id" db:"user_id"`
	PoderoSessionID   string            `json:"session_id" db:"podero_session_id"`
	AuthenticationURL string            `json:"authentication_url" db:"authentication_url"`
	State             string            `json:"state" db:"state"`
	LinkNonce         []byte            `json:"-" db:"link_nonce"`
	Email             string            `json:"-" db:"email"`
	Locale            string            `json:"locale" db:"locale"`
	SuccessURL        string            `json:"-" db:"success_url"`
	CancelURL         string            `json:"-" db:"cancel_url"`
	JobID             *int64            `json:"job_id,omitempty" db:"job_id"`
	CreatedAt         time.Time         `json:"created_at" db:"created_at"`
	ExpiresAt         time.Time         `json:"expires_at" db:"expires_at"`
	OpenedAt          *time.Time        `json:"opened_at,omitempty" db:"opened_at"`
	FinishedAt        *time.Time        `json:"finished_at,omitempty" db:"finished_at"`
	CancelledAt       *time.Time        `json:"cancelled_at,omitempty" db:"cancelled_at"` // the user's last cancel, kept if completed later
	Clicks            int               `json:"clicks" db:"clicks"`
	LastOpenedAt      *time.Time        `json:"last_opened_at,omitempty" db:"last_opened_at"`
	// VerifiedAt is when Podero showed the device authenticated after a
	// completion through the link (reauth_verify); nil: not (yet).
	VerifiedAt *time.Time `json:"verified_at,omitempty" db:"verified_at"`
	// Reason is the reason of the request that made the session ("" when none).
	Reason string `json:"-" db:"reason"`
	// RemindersStoppedAt: the user opted out of the session's reminders
	// (POST /u/{token}); nil: they go on.
	RemindersStoppedAt *time.Time `json:"reminders_stopped_at,omitempty" db:"reminders_stopped_at"`
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
	Reason            string    // the request's reason; "" when none
	CreatedAt         time.Time // zero: the database's now()
	ExpiresAt         time.Time
}

// CreateSession stores s as the device's open session. The device has
// none by then: session.Create closes it first (superseded); a second
// open one is ErrConflict.
func CreateSession(ctx context.Context, db DB, s NewSession) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, createSessionSQL, createSessionArgs(s)...).Scan(&id)
	return id, mapErr(err)
}

// createSessionSQL is CreateSession's statement, with createSessionArgs.
const createSessionSQL = `
	INSERT INTO auth_session (device_kind, device_id, podero_session_id, authentication_url,
		link_nonce, link_hash, email, locale, success_url, cancel_url, job_id, expires_at, created_at, reason)
	VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''), $8, nullif($9, ''), nullif($10, ''), nullif($11, 0), $12,
		coalesce($13, now()), nullif($14, ''))
	RETURNING id`

func createSessionArgs(s NewSession) []any {
	return []any{s.DeviceKind, s.DeviceID, s.PoderoSessionID, s.AuthenticationURL, s.LinkNonce, s.LinkHash,
		s.Email, s.Locale, s.SuccessURL, s.CancelURL, s.JobID, s.ExpiresAt, nullTime(s.CreatedAt), s.Reason}
}

// FirstMessage is a new session's first message, claimed with the session
// by its job (JobID) for a message of its own, and its first attempt begun
// on Channel to Recipient (Channel "": claimed only, as ClaimNewSession;
// else as BeginNewMessage).
type FirstMessage struct {
	JobID              int64
	Channel, Recipient string
}

// Batcher sends a batch: a pgx.Tx (its statements in the transaction), or a
// pool (its statements in one implicit transaction of their own).
type Batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// StoreSession stores s as the device's open session, its owner recorded
// (UpsertDevice; orgID "": the device's row is left as it is), the open
// session it had superseded (CloseOpenSession), and, with first, its first
// message claimed and begun: the statements go as one batch, in that order,
// in one round trip, and on a pool in one transaction. It returns the new
// session's ID, the superseded one's (0: none) and first's notification
// rows (none when only claimed).
func StoreSession(ctx context.Context, db Batcher, orgID, userID string, s NewSession, first *FirstMessage) (id, superseded int64, begun []Notification, err error) {
	var b pgx.Batch
	if orgID != "" {
		b.Queue(upsertDeviceSQL, s.DeviceKind, s.DeviceID, orgID, userID)
	}
	b.Queue(closeOpenSessionSQL, s.DeviceKind, s.DeviceID, SessionSuperseded, 0).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&superseded); !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return nil
	})
	var nid *int64 // first's notification row
	if first == nil {
		b.Queue(createSessionSQL, createSessionArgs(s)...).QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
	} else {
		b.Queue(`WITH s AS (`+createSessionSQL+`), claim AS (
				INSERT INTO notification_claim (session_id, step, idempotency_key, job_id)
				SELECT id, 0, `+firstKeySQL+`, $15 FROM s
			), n AS (
				INSERT INTO notification (session_id, step, channel, recipient, idempotency_key, attempts)
				SELECT id, 0, $16, $17, `+firstKeySQL+`, 1 FROM s WHERE $16 <> ''
				RETURNING id
			)
			SELECT s.id, n.id FROM s LEFT JOIN n ON true`,
			append(createSessionArgs(s), first.JobID, first.Channel, first.Recipient)...).QueryRow(func(row pgx.Row) error {
			return row.Scan(&id, &nid)
		})
	}
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return 0, 0, nil, mapErr(err)
	}
	if nid != nil {
		begun = []Notification{{ID: *nid, SessionID: id, Channel: first.Channel, Recipient: first.Recipient,
			IdempotencyKey: MessageKey([]int64{id}, 0), State: NotificationSending, Attempts: 1}}
	}
	return id, superseded, begun, nil
}

// sessionColumns are a Session's columns (by its db tags), selected
// FROM sessionFrom.
const sessionColumns = `s.id, s.device_kind, s.device_id, d.org_id, d.user_id, s.podero_session_id,
	s.authentication_url, s.state, s.link_nonce, coalesce(s.email, '') AS email, s.locale,
	coalesce(s.success_url, '') AS success_url, coalesce(s.cancel_url, '') AS cancel_url, s.job_id,
	s.created_at, s.expires_at, s.opened_at, s.finished_at, s.cancelled_at, s.clicks, s.last_opened_at,
	s.verified_at, coalesce(s.reason, '') AS reason,
	s.reminders_stopped_at`

// sessionFrom is what sessionColumns are selected from: auth_session s with
// its device d (for the owner).
const sessionFrom = `
	FROM auth_session s JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id`

// GetSession returns the session with our id.
func GetSession(ctx context.Context, db DB, id int64) (Session, error) {
	return queryOne[Session](ctx, db, `SELECT `+sessionColumns+sessionFrom+`
		WHERE s.id = $1`, id)
}

// SessionByLinkHash returns the session whose link token hashes to hash.
func SessionByLinkHash(ctx context.Context, db DB, hash []byte) (Session, error) {
	return queryOne[Session](ctx, db, `SELECT `+sessionColumns+sessionFrom+`
		WHERE s.link_hash = $1`, hash)
}

// OpenSession returns the device's open session.
func OpenSession(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID string) (Session, error) {
	return queryOne[Session](ctx, db, `SELECT `+sessionColumns+sessionFrom+`
		WHERE s.device_kind = $1 AND s.device_id = $2 AND s.state = 'open'`, kind, deviceID)
}

// LatestSession returns the device's newest session: its open one when it
// has one (a newer session supersedes the open one), else the last to finish.
func LatestSession(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID string) (Session, error) {
	return queryOne[Session](ctx, db, `SELECT `+sessionColumns+sessionFrom+`
		WHERE s.device_kind = $1 AND s.device_id = $2
		ORDER BY s.created_at DESC, s.id DESC LIMIT 1`, kind, deviceID)
}

// recentCompletionFrom selects, from auth_session s, device ($1, $2)'s
// session completed (through its link or elsewhere) most recently since
// $3.
const recentCompletionFrom = `FROM auth_session s
	WHERE s.device_kind = $1 AND s.device_id = $2 AND s.state IN ('completed', 'completed_elsewhere') AND s.finished_at >= $3
	ORDER BY s.finished_at DESC LIMIT 1`

// RecentCompletion returns the device's session completed (through its link
// or, as the sync saw, elsewhere) most recently since since, and the job
// that made it; ErrNotFound when there is none. A repeat request for such a
// device is a duplicate: Podero takes minutes to show it authenticated.
func RecentCompletion(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID string, since time.Time) (sessionID, jobID int64, err error) {
	var job *int64
	err = db.QueryRow(ctx, `SELECT id, job_id `+recentCompletionFrom, kind, deviceID, since).Scan(&sessionID, &job)
	if job != nil {
		jobID = *job
	}
	return sessionID, jobID, mapErr(err)
}

// SessionForJob returns the ID of the session the reauth_device job jobID
// stored, ErrNotFound when it stored none (yet).
func SessionForJob(ctx context.Context, db DB, jobID int64) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `SELECT id FROM auth_session WHERE job_id = $1`, jobID).Scan(&id)
	return id, mapErr(err)
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

// FinishSession moves the session to state (completed or cancelled, the
// user's outcome: it counts as opened), when it is in one of the states
// from (which session.Finish decides), and reports whether it did.
func FinishSession(ctx context.Context, db DB, id int64, state string, from []string) (bool, error) {
	tag, err := db.Exec(ctx, `
		UPDATE auth_session SET state = $2, finished_at = now(), opened_at = coalesce(opened_at, now()),
			cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE cancelled_at END
		WHERE id = $1 AND state = ANY ($3::text[])`, id, state, from)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

// CloseOpenSession moves the device's open session, unless it is except
// (0: none), to state (superseded, completed, completed_elsewhere; which
// one is session's to decide) and returns it, or 0 when there was none.
func CloseOpenSession(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID, state string, except int64) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, closeOpenSessionSQL, kind, deviceID, state, except).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return id, mapErr(err)
}

// closeOpenSessionSQL is CloseOpenSession's statement.
const closeOpenSessionSQL = `
	UPDATE auth_session SET state = $3, finished_at = now()
	WHERE device_kind = $1 AND device_id = $2 AND state = 'open' AND id <> $4
	RETURNING id`

// MarkVerified records that Podero showed the device of the completed
// session id authenticated again, and reports whether it did: not when the
// session is no longer completed or was verified before.
func MarkVerified(ctx context.Context, db DB, id int64) (bool, error) {
	tag, err := db.Exec(ctx, `
		UPDATE auth_session SET verified_at = now()
		WHERE id = $1 AND state = 'completed' AND verified_at IS NULL`, id)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkUnverified moves the completed, unverified session id to unverified
// (its finished_at kept) and reports whether it did.
func MarkUnverified(ctx context.Context, db DB, id int64) (bool, error) {
	tag, err := db.Exec(ctx, `
		UPDATE auth_session SET state = 'unverified'
		WHERE id = $1 AND state = 'completed' AND verified_at IS NULL`, id)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

// StopReminders records that the user opted out of the open session's
// reminders, and reports whether this did (false: stopped before, or the
// session is not open, so it has none). It locks the row until db's
// transaction ends, so a reminder being recorded as sent either commits its
// successor first (for the caller to cancel) or sees the opt-out.
func StopReminders(ctx context.Context, db DB, id int64) (bool, error) {
	tag, err := db.Exec(ctx, `
		UPDATE auth_session SET reminders_stopped_at = now()
		WHERE id = $1 AND state = 'open' AND reminders_stopped_at IS NULL`, id)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

// SessionListItem is a session with its device's owner and its latest message.
type SessionListItem struct {
	Session
	MessageState  string     `json:"message_state,omitempty" db:"message_state"`
	MessageSentAt *time.Time `json:"message_sent_at,omitempty" db:"message_sent_at"`
}

// SessionListFilter selects sessions for ListSessions.
type SessionListFilter struct {
	State    string // "" for any
	BeforeID int64  // 0 for the newest; else only sessions with a smaller id
	Limit    int
}

// ListSessions returns sessions newest first.
func ListSessions(ctx context.Context, db DB, f SessionListFilter) ([]SessionListItem, error) {
	return queryAll[SessionListItem](ctx, db, `SELECT `+sessionColumns+`,
			coalesce(n.state, '') AS message_state, n.sent_at AS message_sent_at`+sessionFrom+`
		LEFT JOIN LATERAL (SELECT n.state, n.sent_at FROM notification n WHERE n.session_id = s.id
			ORDER BY n.id DESC LIMIT 1) n ON true
		WHERE ($1 = '' OR s.state = $1) AND ($2 = 0 OR s.id < $2)
		ORDER BY s.id DESC LIMIT $3`, f.State, f.BeforeID, f.Limit)
}

// FunnelCounts are the steps from a request to a completed login.
type FunnelCounts struct {
	// Requested counts reauth_device jobs created in the window (or day).
	Requested int64 `json:"requested" db:"requested"`
	// LinkCreated counts sessions created in the window (or day); the
	// counts after it are of those sessions.
	LinkCreated int64 `json:"link_created" db:"created"`
	// Sent: at least one message was sent.
	Sent int64 `json:"sent" db:"sent"`
	// Opened: the link was clicked.
	Opened int64 `json:"opened" db:"opened"`
	// Completed: the login was completed, through the link or elsewhere;
	// CompletedElsewhere counts those the user renewed without our link.
	Completed          int64 `json:"completed" db:"completed"`
	CompletedElsewhere int64 `json:"completed_elsewhere" db:"completed_elsewhere"`
	// Verified: completions Podero confirmed (a check after the callback
	// saw the device authenticated, or the sync saw it elsewhere).
	Verified int64 `json:"verified" db:"verified"`
}

// Add adds o's counts to c.
func (c *FunnelCounts) Add(o FunnelCounts) {
	c.Requested += o.Requested
	c.LinkCreated += o.LinkCreated
	c.Sent += o.Sent
	c.Opened += o.Opened
	c.Completed += o.Completed
	c.CompletedElsewhere += o.CompletedElsewhere
	c.Verified += o.Verified
}

// FunnelRow is the funnel of one org and device kind, over the whole
// window or, by day, over one UTC day of it (Day, nil for the window).
type FunnelRow struct {
	Day        *time.Time `json:"day,omitempty" db:"day"`
	OrgID      string     `json:"org_id" db:"org_id"`
	DeviceKind string     `json:"device_kind" db:"kind"`
	FunnelCounts
}

// funnelSQL is Funnel's query: $1 since, $2 by day.
const funnelSQL = `
WITH req AS (` + requestsSinceSQL + `), ses AS (
	SELECT CASE WHEN $2::boolean THEN date_trunc('day', s.created_at, 'UTC') ELSE $1::timestamptz END AS day,
		d.org_id::text AS org_id, s.device_kind AS kind, count(*) AS created,
		count(*) FILTER (WHERE EXISTS (SELECT 1 FROM notification n WHERE n.session_id = s.id AND n.state = 'sent')) AS sent,
		count(*) FILTER (WHERE s.opened_at IS NOT NULL) AS opened,
		count(*) FILTER (WHERE s.state IN ('completed', 'completed_elsewhere')) AS completed,
		count(*) FILTER (WHERE s.state = 'completed_elsewhere') AS completed_elsewhere,
		count(*) FILTER (WHERE s.state = 'completed_elsewhere' OR (s.state = 'completed' AND s.verified_at IS NOT NULL)) AS verified
	FROM auth_session s
	JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
	WHERE s.created_at >= $1::timestamptz
	GROUP BY 1, 2, 3
)
SELECT CASE WHEN $2::boolean THEN coalesce(req.day, ses.day) END AS day,
	coalesce(req.org_id, ses.org_id) AS org_id, coalesce(req.kind, ses.kind) AS kind,
	coalesce(req.n, 0) AS requested, coalesce(ses.created, 0) AS created, coalesce(ses.sent, 0) AS sent,
	coalesce(ses.opened, 0) AS opened, coalesce(ses.completed, 0) AS completed,
	coalesce(ses.completed_elsewhere, 0) AS completed_elsewhere, coalesce(ses.verified, 0) AS verified
FROM req FULL JOIN ses ON ses.day = req.day AND ses.org_id = req.org_id AND ses.kind = req.kind
ORDER BY 1, 2, 3`

// Funnel returns the funnel per org and device kind for the requests and
// sessions created at or after since, ordered by org and kind; byDay splits
// it by UTC day (ordered by day first). The one query behind every funnel
// operators see (internal/ops sums it by kind, by day or in total).
func Funnel(ctx context.Context, db DB, since time.Time, byDay bool) ([]FunnelRow, error) {
	return queryAll[FunnelRow](ctx, db, funnelSQL, since, byDay)
}
