package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds the queries of the notification_claim table: which
// message (idempotency key) carries each session's step. A grouped message
// (one per user and step, BATCH_WINDOW) covers several sessions; a session's
// step is in exactly one message.

// Claim is one session's step in a message.
type Claim struct {
	SessionID int64      `db:"session_id"`
	Step      int        `db:"step"`
	Key       string     `db:"idempotency_key"`
	JobID     int64      `db:"job_id"`
	DoneAt    *time.Time `db:"done_at"`
}

const claimColumns = `session_id, step, idempotency_key, job_id, done_at`

// MessageKey is the idempotency key of a message about step of sessions
// (ascending, at least one): "reauth-{session}-{step}" for one session, as
// before grouping, and "reauth-{first}-{step}-{count}" for a group. The key
// is unique: a session's step is claimed by one message only, and the key
// names the message's first session.
func MessageKey(sessions []int64, step int) string {
	if len(sessions) == 1 {
		return fmt.Sprintf("reauth-%d-%d", sessions[0], step)
	}
	return fmt.Sprintf("reauth-%d-%d-%d", sessions[0], step, len(sessions))
}

// firstKeySQL is MessageKey of the first message (step 0) of session
// s.id, in SQL, for StoreSession's statement.
const firstKeySQL = `'reauth-' || s.id || '-0'`

// ClaimSession claims a session's step for a message of its own, by job,
// unless a message already has it; it returns the claim that holds.
func ClaimSession(ctx context.Context, db DB, sessionID int64, step int, jobID int64) (Claim, error) {
	if _, err := db.Exec(ctx, `INSERT INTO notification_claim (session_id, step, idempotency_key, job_id)
		VALUES ($1, $2, $3, $4) ON CONFLICT (session_id, step) DO NOTHING`,
		sessionID, step, MessageKey([]int64{sessionID}, step), jobID); err != nil {
		return Claim{}, mapErr(err)
	}
	return queryOne[Claim](ctx, db, `SELECT `+claimColumns+` FROM notification_claim WHERE session_id = $1 AND step = $2`, sessionID, step)
}

// ClaimNewSession claims step of a session created in tx, which nothing
// can have claimed yet, for a message of its own, by job.
func ClaimNewSession(ctx context.Context, tx pgx.Tx, sessionID int64, step int, jobID int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO notification_claim (session_id, step, idempotency_key, job_id) VALUES ($1, $2, $3, $4)`,
		sessionID, step, MessageKey([]int64{sessionID}, step), jobID)
	return mapErr(err)
}

// BeginNewMessage is ClaimNewSession and BeginMessage in one statement,
// for the first attempt, on channel, of step's message about a session
// created in tx.
func BeginNewMessage(ctx context.Context, tx pgx.Tx, sessionID int64, step int, jobID int64, channel, recipient string) ([]Notification, error) {
	return queryAll[Notification](ctx, tx, `
		WITH claim AS (
			INSERT INTO notification_claim (session_id, step, idempotency_key, job_id) VALUES ($1, $2, $5, $6)
		)
		INSERT INTO notification AS n (session_id, step, channel, recipient, idempotency_key, attempts)
		VALUES ($1, $2, $3, $4, $5, 1)
		RETURNING `+notificationColumns,
		sessionID, step, channel, recipient, MessageKey([]int64{sessionID}, step), jobID)
}

// Finished is a message that went out (or was skipped): its notification
// rows (none when skipped), its key and step, and the sessions whose
// reminders may follow it.
type Finished struct {
	Rows     []int64
	Key      string
	Step     int
	Sessions []int64
}

// FinishMessage records, in tx, that message key at step went out (or was
// skipped), as FinishMessages does for one.
func FinishMessage(ctx context.Context, tx pgx.Tx, ids []int64, key string, step int, sessions []int64) ([]int64, error) {
	return FinishMessages(ctx, tx, []Finished{{Rows: ids, Key: key, Step: step, Sessions: sessions}})
}

// FinishMessages records, in tx, that the messages went out (or were
// skipped): their notification rows sent, their claims done (their
// sessions' next reminders may follow), and returns which of their sessions
// are open with their reminders not stopped, locking those against
// finishing and against StopReminders until tx ends (so a reminder is
// never scheduled after either cancelled the others), ascending. One
// statement for them all, planned for its arguments each time
// (pgx.QueryExecModeExec): a plan cached while the tables were small scans
// notification whole (seen in the benchmark: 3,651 blocks a call, 4.4 ms,
// after 20,000 requests on a new database).
func FinishMessages(ctx context.Context, tx pgx.Tx, msgs []Finished) ([]int64, error) {
	var rows, sessions []int64
	keys, steps := make([]string, len(msgs)), make([]int32, len(msgs))
	for i, m := range msgs {
		rows = append(rows, m.Rows...)
		sessions = append(sessions, m.Sessions...)
		keys[i], steps[i] = m.Key, int32(m.Step)
	}
	return queryValues[int64](ctx, tx, `
		WITH sent AS (
			UPDATE notification SET state = 'sent', last_error = NULL, sent_at = now() WHERE id = ANY($1)
		), done AS (
			-- A key names its step (MessageKey): matching the keys is
			-- exact, and an index condition the planner sizes right.
			UPDATE notification_claim SET done_at = now()
			WHERE idempotency_key = ANY($2) AND step = ANY($3) AND done_at IS NULL
		)
		SELECT id FROM auth_session
		WHERE id = ANY($4) AND state = 'open' AND reminders_stopped_at IS NULL
		ORDER BY id FOR SHARE`, pgx.QueryExecModeExec, rows, keys, steps, sessions)
}

// MessageSessions returns the sessions message key covers at step,
// ascending.
func MessageSessions(ctx context.Context, db DB, key string, step int) ([]int64, error) {
	return queryValues[int64](ctx, db, `SELECT session_id FROM notification_claim
		WHERE idempotency_key = $1 AND step = $2 ORDER BY session_id`, key, step)
}

// JobMessage returns the key of the message job claimed, or ErrNotFound
// when it claimed none yet.
func JobMessage(ctx context.Context, db DB, jobID int64) (string, error) {
	var key string
	err := db.QueryRow(ctx, `SELECT idempotency_key FROM notification_claim WHERE job_id = $1 LIMIT 1`, jobID).Scan(&key)
	return key, mapErr(err)
}

// LockUserMessages takes tx's lock on the grouped messages of one user: a
// job claiming the user's sessions and a new session deciding whether a
// pending job will carry it take it, so a session is never left out of a
// message that was about to claim it.
func LockUserMessages(ctx context.Context, tx pgx.Tx, orgID, userID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('reauth-user-messages:' || $1 || ':' || $2, 0))`, orgID, userID)
	return mapErr(err)
}

// ClaimUserStep claims, by job, step of every session of the user's that is
// due: open, with no message for that step yet (none claimed, none begun
// before claims existed), and for a reminder (step >= 1) created at or
// before createdBy, whose previous step went out, in a message none of
// whose sessions stopped its reminders. It returns the sessions claimed,
// ascending, and their message's key; none: nothing is due. Hold
// LockUserMessages.
func ClaimUserStep(ctx context.Context, tx pgx.Tx, orgID, userID string, step int, jobID int64, createdBy time.Time) ([]int64, string, error) {
	ids, err := queryValues[int64](ctx, tx, `SELECT s.id`+sessionFrom+`
		WHERE d.org_id = $1 AND d.user_id = $2 AND s.state = 'open'
			AND NOT EXISTS (SELECT FROM notification_claim c WHERE c.session_id = s.id AND c.step = $3)
			AND NOT EXISTS (SELECT FROM notification n WHERE n.session_id = s.id AND n.step = $3)
			AND ($3 = 0 OR (s.reminders_stopped_at IS NULL AND s.created_at <= $4 AND EXISTS (
				SELECT FROM notification_claim p WHERE p.session_id = s.id AND p.step = $3 - 1 AND p.done_at IS NOT NULL
					AND NOT EXISTS (SELECT FROM notification_claim q JOIN auth_session qs ON qs.id = q.session_id
						WHERE q.idempotency_key = p.idempotency_key AND q.step = p.step AND qs.reminders_stopped_at IS NOT NULL))))
		ORDER BY s.id`, orgID, userID, step, createdBy)
	if err != nil || len(ids) == 0 {
		return nil, "", err
	}
	key := MessageKey(ids, step)
	if _, err := tx.Exec(ctx, `INSERT INTO notification_claim (session_id, step, idempotency_key, job_id)
		SELECT unnest($1::bigint[]), $2, $3, $4`, ids, step, key, jobID); err != nil {
		return nil, "", mapErr(err)
	}
	return ids, key, nil
}

// ReleaseClaims deletes the claims job holds at step, of a message not
// begun on any channel (the caller checked): its sessions are claimed
// again when it runs again. Hold LockUserMessages.
func ReleaseClaims(ctx context.Context, tx pgx.Tx, jobID int64, step int) error {
	_, err := tx.Exec(ctx, `DELETE FROM notification_claim c WHERE c.job_id = $1 AND c.step = $2
		AND NOT EXISTS (SELECT FROM notification n WHERE n.session_id = c.session_id AND n.step = c.step)`, jobID, step)
	return mapErr(err)
}
