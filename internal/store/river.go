package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/reauth/reauth"
)

// This file holds every read of River's tables (river_job, river_queue) in
// the service (but reauth.go's waitingBulkSQL, which the root package cannot
// import): whole queries, and the fragments (the ...SQL consts) that queries of
// other tables embed. River's tables are written only through River's API:
// jobs are cancelled with JobCancelTx, never by an UPDATE here.

// riverClient is an insert-only River client, for the calls that change
// River's rows (JobCancelTx) inside the caller's transaction; it holds no
// connections, so one serves every caller.
var riverClient = sync.OnceValues(func() (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(nil), &river.Config{})
})

// beginner is what can start a transaction: a pool or a connection.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// inTx runs fn in db when db is a transaction, else in a transaction begun
// on db (a pool or a connection) and committed when fn succeeds.
func inTx(ctx context.Context, db DB, fn func(pgx.Tx) error) error {
	if tx, ok := db.(pgx.Tx); ok {
		return fn(tx)
	}
	b, ok := db.(beginner)
	if !ok {
		return fmt.Errorf("store: %T can begin no transaction", db)
	}
	return pgx.BeginFunc(ctx, b, fn)
}

// reminderJobsSQL locks the session's messages that have not run yet (its
// scheduled reminders). A job being fetched right now is waited for and
// then left out, since it is running: it finds the session closed.
const reminderJobsSQL = `SELECT id FROM river_job
	WHERE kind = 'reauth_notify' AND state IN ('scheduled', 'available', 'retryable')
		AND args ->> 'session_id' = $1::bigint::text
	FOR UPDATE`

// CancelReminders cancels the session's messages that have not run yet (its
// scheduled reminders) with River's JobCancelTx, in db's transaction (or one
// of its own when db is a pool), and returns how many. The jobs are locked
// first, so none of them starts meanwhile and each is cancelled at once. A
// running one finds the session closed and sends nothing.
func CancelReminders(ctx context.Context, db DB, sessionID int64) (int64, error) {
	client, err := riverClient()
	if err != nil {
		return 0, fmt.Errorf("river client: %w", err)
	}
	var n int64
	err = inTx(ctx, db, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, reminderJobsSQL, sessionID)
		if err != nil {
			return mapErr(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return mapErr(err)
		}
		for _, id := range ids {
			if _, err := client.JobCancelTx(ctx, tx, id); err != nil {
				return fmt.Errorf("cancel reminder %d: %w", id, mapErr(err))
			}
			n++
		}
		return nil
	})
	return n, err
}

// OverlappingRequest returns the newest reauth_device job for the device
// (its ID spelled in lower case), other than except, that is unfinished or
// completed since since: a request that was pending at the same time as one
// created at since. ErrNotFound when there is none.
func OverlappingRequest(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID string, except int64, since time.Time) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `
		SELECT id FROM river_job
		WHERE kind = 'reauth_device' AND args ->> 'device_id' = $2 AND args ->> 'device_kind' = $1 AND id <> $3
			AND (state IN `+unfinishedSQL+`
				OR state = 'completed' AND finalized_at >= $4)
		ORDER BY id DESC LIMIT 1`, string(kind), deviceID, except, since).Scan(&id)
	return id, mapErr(err)
}

// Job is the part of a river_job row operators see next to a device.
type Job struct {
	ID          int64      `json:"id" db:"id"`
	State       string     `json:"state" db:"state"`
	Attempt     int        `json:"attempt" db:"attempt"`
	CreatedAt   time.Time  `json:"created_at" db:"created_at"`
	FinalizedAt *time.Time `json:"finalized_at,omitempty" db:"finalized_at"`
	LastError   string     `json:"last_error,omitempty" db:"last_error"`
}

// lastErrorSQL is the error of a river_job j's last failed attempt, "" for
// none.
const lastErrorSQL = `coalesce(j.errors[array_upper(j.errors, 1)] ->> 'error', '') AS last_error`

// requestJobs returns the device's newest reauth_device jobs (at most 50).
func requestJobs(ctx context.Context, db DB, kind reauth.DeviceKind, id string) ([]Job, error) {
	return queryAll[Job](ctx, db, `SELECT j.id, j.state, j.attempt, j.created_at, j.finalized_at, `+lastErrorSQL+`
		FROM river_job j
		WHERE j.kind = 'reauth_device' AND j.args ->> 'device_id' = $1 AND j.args ->> 'device_kind' = $2
		ORDER BY j.id DESC LIMIT 50`, id, string(kind))
}

// DeviceJobIDs returns the IDs of the newest jobs (at most limit) of the
// device with Podero ID deviceID, whatever its kind: its reauth_device jobs
// and the reauth_notify jobs of its newest 1000 sessions.
func DeviceJobIDs(ctx context.Context, db DB, deviceID string, limit int) ([]int64, error) {
	kinds := make([]string, len(reauth.DeviceKinds))
	for i, k := range reauth.DeviceKinds {
		kinds[i] = string(k)
	}
	return deviceJobIDs(ctx, db, kinds, deviceID, limit)
}

// DeviceKindJobIDs is DeviceJobIDs for the device of one kind.
func DeviceKindJobIDs(ctx context.Context, db DB, kind reauth.DeviceKind, deviceID string, limit int) ([]int64, error) {
	return deviceJobIDs(ctx, db, []string{string(kind)}, deviceID, limit)
}

func deviceJobIDs(ctx context.Context, db DB, kinds []string, deviceID string, limit int) ([]int64, error) {
	rows, err := db.Query(ctx, `SELECT id FROM auth_session WHERE device_kind = ANY ($1) AND device_id = $2::uuid
		ORDER BY id DESC LIMIT 1000`, kinds, deviceID)
	if err != nil {
		return nil, mapErr(err)
	}
	sessions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, mapErr(err)
	}
	keys := make([]string, len(sessions))
	for i, id := range sessions {
		keys[i] = strconv.FormatInt(id, 10)
	}
	rows, err = db.Query(ctx, deviceJobIDsSQL, deviceID, kinds, limit, keys)
	if err != nil {
		return nil, mapErr(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, mapErr(err)
}

// deviceJobIDsSQL finds a device's jobs ($1 its ID, $2 its kinds, $3 the
// limit, $4 the session IDs as text) through indexes: its requests through
// river_job_reauth_device, the messages of its sessions through
// river_job_reauth_notify.
const deviceJobIDsSQL = `SELECT id FROM river_job
	WHERE kind = 'reauth_device' AND args ->> 'device_id' = $1 AND args ->> 'device_kind' = ANY ($2)
	UNION ALL
	SELECT id FROM river_job WHERE kind = 'reauth_notify' AND args ->> 'session_id' = ANY ($4)
	ORDER BY id DESC LIMIT $3`

// RequestsWaiting reports whether any reauthentication request is waiting
// or being worked (an unfinished job on the podero queue): the sync then
// gets only its share of the rate.
func RequestsWaiting(ctx context.Context, db DB) (bool, error) {
	var waiting bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM river_job
		WHERE state IN ('available', 'running', 'retryable', 'scheduled') AND queue = $1)`, reauth.QueuePodero).Scan(&waiting)
	return waiting, mapErr(err)
}

// unfinishedSQL is River's job states of a job not finished yet.
const unfinishedSQL = `('available', 'pending', 'retryable', 'running', 'scheduled')`

// requestsWaiting counts the reauthentication requests (reauth_device jobs)
// not finished yet.
func requestsWaiting(ctx context.Context, db DB) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reauth_device'
		AND state IN `+unfinishedSQL).Scan(&n)
	return n, mapErr(err)
}

// requestsSinceSQL counts the reauth_device jobs created at or after $1 by
// day (the UTC day when $2, else $1 for the whole window), org (org_id,
// lower case, "" for none) and device kind (kind): the first step of
// Funnel.
const requestsSinceSQL = `
	SELECT CASE WHEN $2::boolean THEN date_trunc('day', created_at, 'UTC') ELSE $1::timestamptz END AS day,
		lower(coalesce(args ->> 'org_id', '')) AS org_id, coalesce(args ->> 'device_kind', '') AS kind,
		count(*) AS n
	FROM river_job
	WHERE kind = 'reauth_device' AND created_at >= $1::timestamptz
	GROUP BY 1, 2, 3`

// requestFinishedWithinSQL selects the reauth_device jobs of device d that
// finished within $3 seconds (the sweep's cooldown), for SweepPageSQL.
const requestFinishedWithinSQL = `SELECT FROM river_job j
	                  WHERE j.kind = 'reauth_device' AND j.args ->> 'device_id' = d.id::text
	                    AND j.finalized_at > now() - make_interval(secs => $3::float8)`

// syncJobPendingSQL selects sync_user s's queued job when it is not
// finished yet, for PickDueSyncUsers.
const syncJobPendingSQL = `SELECT FROM river_job j WHERE j.id = s.queued_job AND j.state IN ` + unfinishedSQL

// OpsQueue is one River queue as the ops page shows it: whether it is paused
// and how many of its jobs are in each unfinished or failed state.
type OpsQueue struct {
	Name      string     `json:"name" db:"name"`
	PausedAt  *time.Time `json:"paused_at,omitempty" db:"paused_at"`
	Available int64      `json:"available" db:"available"`
	Scheduled int64      `json:"scheduled" db:"scheduled"`
	Running   int64      `json:"running" db:"running"`
	Retryable int64      `json:"retryable" db:"retryable"`
	Discarded int64      `json:"discarded" db:"discarded"`
	Cancelled int64      `json:"cancelled" db:"cancelled"`
}

// opsQueuesSQL lists every queue River knows (river_queue has a row once a
// client has worked it) or that has jobs. Completed jobs, the bulk of the
// table, are left out by the state filter, which the leading state column of
// River's fetching index serves.
const opsQueuesSQL = `
SELECT coalesce(q.name, c.queue) AS name, q.paused_at,
	coalesce(c.available, 0) AS available, coalesce(c.scheduled, 0) AS scheduled,
	coalesce(c.running, 0) AS running, coalesce(c.retryable, 0) AS retryable,
	coalesce(c.discarded, 0) AS discarded, coalesce(c.cancelled, 0) AS cancelled
FROM river_queue q
FULL JOIN (
	SELECT queue,
		count(*) FILTER (WHERE state = 'available') AS available,
		count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
		count(*) FILTER (WHERE state = 'running') AS running,
		count(*) FILTER (WHERE state = 'retryable') AS retryable,
		count(*) FILTER (WHERE state = 'discarded') AS discarded,
		count(*) FILTER (WHERE state = 'cancelled') AS cancelled
	FROM river_job
	WHERE state IN ('available', 'scheduled', 'running', 'retryable', 'discarded', 'cancelled')
	GROUP BY queue
) c ON c.queue = q.name
ORDER BY 1`

// OpsQueues returns every queue with its job counts by state, by name.
func OpsQueues(ctx context.Context, db DB) ([]OpsQueue, error) {
	return queryAll[OpsQueue](ctx, db, opsQueuesSQL)
}

// QueueDepth is how many of a queue's jobs are in one unfinished state.
type QueueDepth struct {
	Queue string `db:"queue"`
	State string `db:"state"`
	Jobs  int64  `db:"jobs"`
}

// QueueDepths counts the unfinished jobs by queue and state (for /metrics).
func QueueDepths(ctx context.Context, db DB) ([]QueueDepth, error) {
	return queryAll[QueueDepth](ctx, db, `SELECT queue, state::text AS state, count(*) AS jobs FROM river_job
		WHERE state IN ('available', 'scheduled', 'running', 'retryable', 'pending') GROUP BY 1, 2`)
}

// QueueWait is how long the oldest job waiting to run on a queue has
// waited.
type QueueWait struct {
	Queue   string  `db:"queue"`
	Seconds float64 `db:"seconds"` // 0: none waits
}

// waitingSinceSQL is when each queue's oldest job that could run now
// became due: an available job, or a retryable or scheduled one whose
// scheduled_at has passed (River's scheduler makes it available within
// seconds). A retry or a snooze moves scheduled_at, so the age counts from
// the last time the job became due.
const waitingSinceSQL = `SELECT queue, min(scheduled_at) AS since FROM river_job
	WHERE state IN ('available', 'retryable', 'scheduled') AND scheduled_at <= now()
	GROUP BY queue`

// OldestWaitingJobs returns how long each queue's oldest waiting job has
// waited (see waitingSinceSQL), for every queue named in queues, known to
// River (river_queue) or with a job waiting, by name; 0 when none waits.
func OldestWaitingJobs(ctx context.Context, db DB, queues []string) ([]QueueWait, error) {
	return queryAll[QueueWait](ctx, db, `WITH waiting AS (`+waitingSinceSQL+`),
		names AS (SELECT unnest($1::text[]) AS queue UNION SELECT name FROM river_queue UNION SELECT queue FROM waiting)
		SELECT n.queue, coalesce(extract(epoch FROM now() - w.since), 0)::float8 AS seconds
		FROM names n LEFT JOIN waiting w ON w.queue = n.queue
		ORDER BY 1`, queues)
}

// UndeliveredMessages counts the messages undelivered for longer than
// after: steps of open sessions, not sent on any channel, that fell due
// more than after ago and whose job still has to send them (waiting,
// running or retrying). A step's job is its reauth_notify job, due at its
// first scheduled_at (River moves scheduled_at on a retry; the first
// error's time stands for it then), or for a request's first message the
// reauth_device job that made the session, due when the session was made.
// A user's grouped message (BATCH_WINDOW) counts once while its job is
// overdue. A step that gave up (every channel failed, its job cancelled) is
// no longer counted: reauth_notifications_total{result="failed"} counts it.
func UndeliveredMessages(ctx context.Context, db DB, after time.Duration) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, `
		WITH due AS (
			SELECT (j.args ->> 'session_id')::bigint AS session_id, coalesce((j.args ->> 'step')::int, 0) AS step,
				least(j.scheduled_at, (j.errors[1] ->> 'at')::timestamptz) AS due_at
			FROM river_job j
			WHERE j.kind = 'reauth_notify' AND j.state IN ('available', 'retryable', 'running', 'scheduled')
				-- args a worker would cancel must not fail the casts
				AND j.args ->> 'session_id' ~ '^[0-9]{1,18}$' AND coalesce(j.args ->> 'step', '0') ~ '^[0-9]{1,9}$'
			UNION ALL
			SELECT s.id, 0, s.created_at
			FROM river_job j JOIN auth_session s ON s.job_id = j.id
			WHERE j.kind = 'reauth_device' AND j.state IN ('available', 'retryable', 'running', 'scheduled')
		)
		SELECT (SELECT count(*) FROM due
			JOIN auth_session s ON s.id = due.session_id
			WHERE s.state = 'open' AND due.due_at < now() - make_interval(secs => $1::float8)
				AND NOT EXISTS (SELECT FROM notification n
					WHERE n.session_id = due.session_id AND n.step = due.step AND n.state = 'sent'))
		+ (SELECT count(*) FROM river_job j
			WHERE j.kind = 'reauth_notify' AND j.state IN ('available', 'retryable', 'running', 'scheduled')
				AND j.args ? 'user_id' AND NOT j.args ? 'session_id'
				AND least(j.scheduled_at, (j.errors[1] ->> 'at')::timestamptz) < now() - make_interval(secs => $1::float8))`,
		after.Seconds()).Scan(&n)
	return n, mapErr(err)
}

// PendingUserMessage reports whether a grouped reauth_notify job for the
// user's step is waiting (scheduled, available or retryable) with its
// scheduled time within [from, to] and has claimed no session yet: it will
// claim every session of the user's due when it runs (see ClaimUserStep),
// so a new one joins it. A zero from is no lower bound. Hold
// LockUserMessages, which the job's claim takes too.
func PendingUserMessage(ctx context.Context, db DB, orgID, userID string, step int, from, to time.Time) (bool, error) {
	var found bool
	err := db.QueryRow(ctx, pendingUserMessageSQL, orgID, userID, step, nullTime(from), to).Scan(&found)
	return found, mapErr(err)
}

// pendingUserMessageSQL is PendingUserMessage's statement: it reads
// river_job through river_job_reauth_notify_user, which holds only the
// grouped jobs (those with a user_id: a session's own messages and
// reminders have none, migration 014).
const pendingUserMessageSQL = `SELECT EXISTS (SELECT FROM river_job j
	WHERE j.kind = 'reauth_notify' AND j.state IN ('scheduled', 'available', 'retryable')
		AND j.args ->> 'user_id' = $2 AND j.args ->> 'org_id' = $1 AND j.args ->> 'step' = ($3::int)::text
		AND j.scheduled_at <= $5 AND ($4::timestamptz IS NULL OR j.scheduled_at >= $4)
		AND NOT EXISTS (SELECT FROM notification_claim c WHERE c.job_id = j.id))`
