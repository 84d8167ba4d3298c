package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds the queries of the notification table: one row per
// message of a session step, and what delivering a step reads.

// Notification states.
const (
	NotificationSending = "sending"
	NotificationSent    = "sent"
	NotificationFailed  = "failed"
)

// Notification is one message about one session step.
type Notification struct {
	ID             int64      `json:"-" db:"id"`
	SessionID      int64      `json:"session_id" db:"session_id"`
	Step           int        `json:"step" db:"step"`
	Channel        string     `json:"channel" db:"channel"`
	Recipient      string     `json:"recipient" db:"recipient"`
	IdempotencyKey string     `json:"idempotency_key" db:"idempotency_key"`
	State          string     `json:"state" db:"state"`
	Attempts       int        `json:"attempts" db:"attempts"`
	LastError      string     `json:"last_error,omitempty" db:"last_error"`
	CreatedAt      time.Time  `json:"created_at" db:"created_at"`
	SentAt         *time.Time `json:"sent_at" db:"sent_at"`
}

// notificationColumns are a Notification's columns (by its db tags) of
// notification n.
const notificationColumns = `n.id, n.session_id, n.step, n.channel, n.recipient, n.idempotency_key,
	n.state, n.attempts, coalesce(n.last_error, '') AS last_error, n.created_at, n.sent_at`

// BeginNotification records an attempt to send a message before it is sent:
// it inserts the row, or, when one exists for (session, step, channel),
// counts another attempt on it. The returned row tells whether the message
// was already sent.
func BeginNotification(ctx context.Context, db DB, sessionID int64, step int, channel, recipient, key string) (Notification, error) {
	return queryOne[Notification](ctx, db, `
		INSERT INTO notification AS n (session_id, step, channel, recipient, idempotency_key, attempts)
		VALUES ($1, $2, $3, $4, $5, 1)
		ON CONFLICT (session_id, step, channel) DO UPDATE
		SET attempts = n.attempts + CASE WHEN n.state = 'sent' THEN 0 ELSE 1 END
		RETURNING `+notificationColumns,
		sessionID, step, channel, recipient, key)
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

// ReopenFailedNotifications sets a step's failed notification rows on
// channels back to sending (their last error kept), so that delivery tries
// those channels again, and returns the channels reopened: an operator
// retried a step whose every channel had failed.
func ReopenFailedNotifications(ctx context.Context, db DB, sessionID int64, step int, channels []string) ([]string, error) {
	rows, err := db.Query(ctx, `UPDATE notification SET state = 'sending'
		WHERE session_id = $1 AND step = $2 AND state = 'failed' AND channel = ANY($3)
		RETURNING channel`, sessionID, step, channels)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, mapErr(err)
}

// NotifyView is what delivering one step needs, read in one query: the
// session, its user's contact (zero when none), whether the session's email
// was refused before, and what earlier attempts at the step did, per
// channel ("channel:state", oldest first).
type NotifyView struct {
	Session
	Contact    Contact
	Suppressed bool
	Tried      []string
	// The device's make and model as the last sync saw them; "" when
	// unknown. Messages name the device by them.
	Manufacturer, Model string
	// Country is the user's country as Podero's users list last gave it
	// (the sync keeps it); "" when unknown. Quiet hours derive a zone from
	// it when the contact names none.
	Country string
}

// GetNotifyView reads the NotifyView of a session's step.
func GetNotifyView(ctx context.Context, db DB, sessionID int64, step int) (NotifyView, error) {
	r, err := queryOne[notifyRow](ctx, db, `SELECT `+sessionColumns+`, `+recipientColumns+`,
			EXISTS (SELECT FROM email_suppression WHERE address = lower(s.email)) AS suppressed,
			ARRAY(SELECT n.channel || ':' || n.state FROM notification n WHERE n.session_id = s.id AND n.step = $2 ORDER BY n.id) AS tried,
			coalesce(d.manufacturer, '') AS manufacturer, coalesce(d.model, '') AS model,
			coalesce(u.country, '') AS country`+sessionFrom+`
		LEFT JOIN contact c ON c.org_id = d.org_id AND c.user_id = d.user_id
		LEFT JOIN sync_user u ON u.org_id = d.org_id AND u.user_id = d.user_id
		WHERE s.id = $1`, sessionID, step)
	return NotifyView{Session: r.Session, Contact: r.contact(r.OrgID, r.UserID), Suppressed: r.Suppressed,
		Tried: r.Tried, Manufacturer: r.Manufacturer, Model: r.Model, Country: r.Country}, err
}

// notifyRow is a row of GetNotifyView's query.
type notifyRow struct {
	Session
	recipientRow
	Tried        []string `db:"tried"`
	Manufacturer string   `db:"manufacturer"`
	Model        string   `db:"model"`
	Country      string   `db:"country"`
}

// BeginMessage is BeginNotification for one message about step of several
// sessions (a grouped message): it records the attempt on channel for each
// of sessions, all under key, in one statement, and returns the rows. The
// rows of one message are written and marked together, so their states
// agree.
func BeginMessage(ctx context.Context, db DB, sessions []int64, step int, channel, recipient, key string) ([]Notification, error) {
	return queryAll[Notification](ctx, db, `
		INSERT INTO notification AS n (session_id, step, channel, recipient, idempotency_key, attempts)
		SELECT unnest($1::bigint[]), $2, $3, $4, $5, 1
		ON CONFLICT (session_id, step, channel) DO UPDATE
		SET attempts = n.attempts + CASE WHEN n.state = 'sent' THEN 0 ELSE 1 END
		RETURNING `+notificationColumns,
		sessions, step, channel, recipient, key)
}

// FinishNotifications is FinishNotification for the rows ids of one
// message.
func FinishNotifications(ctx context.Context, db DB, ids []int64, state, errText string) error {
	_, err := db.Exec(ctx, `
		UPDATE notification
		SET state = $2, last_error = nullif($3, ''),
			sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END
		WHERE id = ANY($1)`, ids, state, errText)
	return mapErr(err)
}

// MessageBegun returns which of sessions have a notification row at step
// under key, ascending: once a message was begun on any channel, these are
// its content, whatever became of the sessions since, so a retry sends the
// same message.
func MessageBegun(ctx context.Context, db DB, sessions []int64, step int, key string) ([]int64, error) {
	return queryValues[int64](ctx, db, `SELECT DISTINCT session_id FROM notification
		WHERE session_id = ANY($1) AND step = $2 AND idempotency_key = $3 ORDER BY session_id`, sessions, step, key)
}
