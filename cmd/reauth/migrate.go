package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reauth/reauth/internal/config"
	"github.com/reauth/reauth/migrations"
)

func migrateCmd(ctx context.Context, args []string, cfg config.Config, log *slog.Logger, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if err := parseFlags(fs, args, stderr, "Applies River's and the app's migrations to DATABASE_URL. Safe to run from several processes at once."); err != nil {
		return ignoreHelp(err)
	}
	pool, err := migratePool(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	log.InfoContext(ctx, "schema is current", slog.Int("app_version", migrations.Latest()))
	return nil
}

// migratePool is openPool for migrate and demo: it applies River's and the
// app's migrations first.
func migratePool(ctx context.Context, cfg config.Config, log *slog.Logger) (*pgxpool.Pool, error) {
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := migrations.Apply(ctx, pool, log); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
