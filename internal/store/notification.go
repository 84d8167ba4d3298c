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
}

// GetNotifyView reads the NotifyView of a session's step.
func GetNotifyView(ctx context.Context, db DB, sessionID int64, step int) (NotifyView, error) {
	var v NotifyView
	c := &v.Contact
	err := db.QueryRow(ctx, `SELECT `+sessionColumns+`,
			coalesce(c.email, ''), coalesce(c.locale, ''), coalesce(c.fcm_tokens, '{}'),
			coalesce(c.channels, '{}'), coalesce(c.opted_out, '{}'),
			EXISTS (SELECT FROM email_suppression WHERE address = lower(s.email)),
			ARRAY(SELECT n.channel || ':' || n.state FROM notification n WHERE n.session_id = s.id AND n.step = $2 ORDER BY n.id),
			coalesce(d.manufacturer, ''), coalesce(d.model, '')
		FROM auth_session s JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
		LEFT JOIN contact c ON c.org_id = d.org_id AND c.user_id = d.user_id
		WHERE s.id = $1`, sessionID, step).Scan(append(v.Session.dest(),
		&c.Email, &c.Locale, &c.FCMTokens, &c.Channels, &c.OptedOut, &v.Suppressed, &v.Tried,
		&v.Manufacturer, &v.Model)...)
	c.OrgID, c.UserID = v.OrgID, v.UserID
	return v, mapErr(err)
}
