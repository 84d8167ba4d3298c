package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// This file holds every read of River's tables (river_job, river_queue) in
// the service. River's tables are written only through River's API: jobs are
// cancelled with JobCancelTx, never by an UPDATE here.

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
