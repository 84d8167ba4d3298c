package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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

// DeviceJob is a river_job row as operators list it.
type DeviceJob struct {
	ID          int64           `json:"id" db:"id"`
	Kind        string          `json:"kind" db:"kind"`
	Queue       string          `json:"queue" db:"queue"`
	State       string          `json:"state" db:"state"`
	Attempt     int             `json:"attempt" db:"attempt"`
	MaxAttempts int             `json:"max_attempts" db:"max_attempts"`
	CreatedAt   time.Time       `json:"created_at" db:"created_at"`
	ScheduledAt time.Time       `json:"scheduled_at" db:"scheduled_at"`
	FinalizedAt *time.Time      `json:"finalized_at" db:"finalized_at"`
	LastError   string          `json:"last_error,omitempty" db:"last_error"`
	Args        json.RawMessage `json:"args" db:"args"`
}

// deviceJobColumns are a DeviceJob's columns (by its db tags) of river_job j.
const deviceJobColumns = `j.id, j.kind, j.queue, j.state::text AS state, j.attempt, j.max_attempts, j.created_at,
	j.scheduled_at, j.finalized_at, ` + lastErrorSQL + `, j.args`

// jobsByID returns the jobs ids, newest first.
func jobsByID(ctx context.Context, db DB, ids []int64) ([]DeviceJob, error) {
	return queryAll[DeviceJob](ctx, db, `SELECT `+deviceJobColumns+` FROM river_job j
		WHERE j.id = ANY ($1) ORDER BY j.id DESC`, ids)
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
	rows, err = db.Query(ctx, deviceJobIDsSQL(sessions), deviceID, kinds, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, mapErr(err)
}

// deviceJobIDsSQL finds a device's jobs ($1 its ID, $2 its kinds, $3 the
// limit) through indexes: its requests through river_job_reauth_device, the
// messages of the given sessions through River's GIN index on args. The
// session IDs are written into the query as constants, so that Postgres
// estimates each containment test from the column's statistics (a handful
// of rows) and uses the GIN index, instead of guessing 1% of river_job for a
// value from a join and reading every reauth_notify job.
func deviceJobIDsSQL(sessions []int64) string {
	var b strings.Builder
	b.WriteString(`SELECT id FROM river_job
		WHERE kind = 'reauth_device' AND args ->> 'device_id' = $1 AND args ->> 'device_kind' = ANY ($2)`)
	if len(sessions) > 0 {
		b.WriteString("\nUNION ALL\nSELECT id FROM river_job WHERE kind = 'reauth_notify' AND (")
		for i, id := range sessions {
			if i > 0 {
				b.WriteString(" OR ")
			}
			fmt.Fprintf(&b, `args @> '{"session_id": %d}'`, id)
		}
		b.WriteString(")")
	}
	b.WriteString("\nORDER BY id DESC LIMIT $3")
	return b.String()
}

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
// org (org_id, lower case, "" for none) and device kind (kind): the first
// step of the funnels (FunnelByOrg, OpsFunnelSince).
const requestsSinceSQL = `
	SELECT lower(coalesce(args ->> 'org_id', '')) AS org_id, coalesce(args ->> 'device_kind', '') AS kind,
		count(*) AS n
	FROM river_job
	WHERE kind = 'reauth_device' AND created_at >= $1
	GROUP BY 1, 2`

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
