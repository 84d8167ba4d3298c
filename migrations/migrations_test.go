package migrations_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
	"github.com/reauth/reauth/migrations"
)

func TestApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// An empty database: start from the admin database, create a bare one.
	admin, err := pgx.Connect(ctx, testdb.AdminURL())
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS reauth_migrate_test WITH (FORCE)")
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE reauth_migrate_test")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS reauth_migrate_test WITH (FORCE)")
	})

	cfg, err := pgxpool.ParseConfig(testdb.AdminURL())
	require.NoError(t, err)
	cfg.ConnConfig.Database = "reauth_migrate_test"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	err = migrations.Check(ctx, pool)
	require.ErrorIs(t, err, migrations.ErrOutdated)
	require.EqualError(t, err, "the database schema is not migrated (missing river_job): run `reauth migrate`")

	// Two processes migrating at once: both succeed, everything applied once.
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- migrations.Apply(ctx, pool, log) }()
	}
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	require.NoError(t, migrations.Check(ctx, pool))

	var n, latest int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*), max(version) FROM reauth_migration").Scan(&n, &latest))
	require.Equal(t, migrations.Latest(), latest)
	require.Equal(t, latest, n)

	// Idempotent.
	require.NoError(t, migrations.Apply(ctx, pool, log))
}
