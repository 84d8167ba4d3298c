package metrics_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/testdb"
)

// The counter counts each round trip: a statement, BEGIN and COMMIT, each
// query of a batch.
func TestStatementCounter(t *testing.T) {
	ctx := context.Background()
	pc, err := pgxpool.ParseConfig(testdb.NewURL(t))
	require.NoError(t, err)
	var c metrics.StatementCounter
	pc.ConnConfig.Tracer = &c
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, pool.Ping(ctx))
	before := c.Count()
	_, err = pool.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	require.Equal(t, before+1, c.Count())
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT 1")
		return err
	}))
	require.Equal(t, before+4, c.Count(), "BEGIN, the statement, COMMIT")
	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	b.Queue("SELECT 2")
	require.NoError(t, pool.SendBatch(ctx, b).Close())
	require.Equal(t, before+6, c.Count())
}
