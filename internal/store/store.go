// Package store holds every SQL statement of the service. Functions take a DB
// (a pool or a transaction), so callers choose the transaction boundaries and
// River can complete a job in the same transaction that stores its result.
// Driver errors are mapped here: nothing above this package inspects pgx
// errors.
//
// The files follow the tables: device.go, session.go (auth_session),
// notification.go, contact.go (contact, email_suppression), limiter.go
// (podero_limiter), sync.go (sync_user, sync_org); a query that joins goes
// with the table it mainly reads. river.go holds every read of River's
// tables; they are written only through River's API.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// MapDriverError maps a driver error that reached the caller through another
// library (River's JobRetry refusing a duplicate of a unique job, say) to the
// package's sentinels, so callers test errors.Is(err, ErrConflict) and never
// inspect pgx errors.
func MapDriverError(err error) error { return mapErr(err) }

// nullTime is nil for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// queryOne runs sql and scans its one row into a T by column name (each
// column to the field whose db tag names it); ErrNotFound when there is no
// row.
func queryOne[T any](ctx context.Context, db DB, sql string, args ...any) (T, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		var zero T
		return zero, mapErr(err)
	}
	v, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[T])
	return v, mapErr(err)
}

// queryAll runs sql and scans its rows into Ts by column name.
func queryAll[T any](ctx context.Context, db DB, sql string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowToStructByName[T])
	return vs, mapErr(err)
}

// queryValues runs sql and returns its rows' one column as Ts.
func queryValues[T any](ctx context.Context, db DB, sql string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[T])
	return vs, mapErr(err)
}
