package main

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// standInForAutovacuum vacuums, every 2 s until stop is called, each table
// of the benchmark's database with more than 1,000 dead rows, when the
// server runs with autovacuum off (as this machine's CI Postgres does). A
// deployment's Postgres has autovacuum on (and a busy queue's river_job
// wants it eager). Without it, river_job's dead rows (every job is
// inserted, fetched and completed: three versions) slow every fetch: on
// this machine the pipeline fell to half its rate within 12,000 requests,
// and the benchmark would measure the machine's setting instead of the
// service. Plain VACUUM, no ANALYZE: analyzing river_job every 2 s made
// every connection plan River's statements again and cost more than it
// gave (347 against 479 requests a second over 20,000). It returns whether
// it stands in; its CPU counts in Postgres's, as autovacuum's would.
func (b *bench) standInForAutovacuum(ctx context.Context) (stop func(), on bool, err error) {
	var setting string
	if err := b.pool.QueryRow(ctx, "SHOW autovacuum").Scan(&setting); err != nil {
		return nil, false, err
	}
	if setting == "on" {
		return func() {}, false, nil
	}
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer conn.Close(context.WithoutCancel(ctx))
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
				continue
			}
			rows, err := conn.Query(ctx,
				`SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM pg_stat_user_tables WHERE n_dead_tup > 1000`)
			if err != nil {
				continue
			}
			tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				continue
			}
			for _, table := range tables {
				_, _ = conn.Exec(ctx, "VACUUM "+table)
			}
		}
	})
	return func() { cancel(); wg.Wait() }, true, nil
}
