// Package migrations holds the app's SQL schema, embedded, and applies it
// together with River's own migrations.
//
// Files are named NNN_name.sql and applied in order, each once, all in one
// transaction under an advisory lock: two processes migrating at once apply
// everything exactly once, and a failure leaves the schema as it was.
package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed *.sql
var files embed.FS

// ErrOutdated means the database schema is behind this binary.
var ErrOutdated = errors.New("database schema is not current: run `reauth migrate`")

// errNotMigrated is ErrOutdated for a database that was never migrated.
const errNotMigrated = outdated("the database schema is not migrated (missing river_job): run `reauth migrate`")

// outdated is an error that is ErrOutdated with its own message.
type outdated string

func (e outdated) Error() string        { return string(e) }
func (e outdated) Is(target error) bool { return target == ErrOutdated }

// lockKey is the advisory lock migrations hold ("reauth" in ASCII).
const lockKey = 0x72656175746800

type migration struct {
	version int
	name    string
	sql     string
}

func load() ([]migration, error) {
	entries, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range entries {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and _", name)
		}
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Latest is the newest app migration version this binary carries.
func Latest() int {
	ms, err := load()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Apply brings River's schema and the app's schema up to date. It holds a
// session advisory lock throughout, so concurrent runs apply each migration
// once; River's migrations run one transaction per version (some cannot share
// one), the app's all in one transaction.
func Apply(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	ms, err := load()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockKey)) //nolint:errcheck

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: log})
	if err != nil {
		return err
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	for _, v := range res.Versions {
		log.InfoContext(ctx, "applied river migration", slog.Int("version", v.Version), slog.String("name", v.Name))
	}

	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS reauth_migration (
			version    int PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM reauth_migration").Scan(&current); err != nil {
			return err
		}
		for _, m := range ms {
			if m.version <= current {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO reauth_migration (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return err
			}
			log.InfoContext(ctx, "applied migration", slog.String("name", m.name))
		}
		return nil
	})
}

// Check returns nil when both River's and the app's schema are current, and
// an error wrapping ErrOutdated that says what is behind otherwise.
func Check(ctx context.Context, pool *pgxpool.Pool) error {
	// A database never migrated gets a plain answer rather than River's
	// list of unapplied versions (or a query's "relation does not exist").
	var bare bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('river_job') IS NULL`).Scan(&bare); err != nil {
		return fmt.Errorf("check schema: %w", err)
	}
	if bare {
		return errNotMigrated
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	res, err := migrator.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("check river schema: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("%w (river: %s)", ErrOutdated, strings.Join(res.Messages, "; "))
	}
	var current int
	err = pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM reauth_migration`).Scan(&current)
	if err != nil {
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			return fmt.Errorf("%w (app schema missing)", ErrOutdated)
		}
		return fmt.Errorf("check app schema: %w", err)
	}
	if current < Latest() {
		return fmt.Errorf("%w (app schema at %d, binary needs %d)", ErrOutdated, current, Latest())
	}
	return nil
}

// Fingerprint identifies this binary's complete schema (River's migrations
// and the app's), so tests can cache a migrated template database per schema.
func Fingerprint() string {
	h := sha256.New()
	ms, _ := load()
	for _, m := range ms {
		fmt.Fprintf(h, "%s\n%s\n", m.name, m.sql)
	}
	if migrator, err := rivermigrate.New(riverpgxv5.New(nil), nil); err == nil {
		for _, m := range migrator.AllVersions() {
			fmt.Fprintf(h, "river %d %s\n", m.Version, m.SQLUp)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
