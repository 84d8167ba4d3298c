package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
	"github.com/reauth/reauth/migrations"
)

// cliMessage runs the command line with only DATABASE_URL set and returns
// its exit code and what main would print on stderr (the command's own
// output on stderr, then the error).
func cliMessage(t *testing.T, url string, args ...string) (int, string) {
	t.Helper()
	code, msg, _ := cliRun(t, url, args...)
	return code, msg
}

// cliRun is cliMessage that also returns run's error.
func cliRun(t *testing.T, url string, args ...string) (int, string, error) {
	t.Helper()
	_, errOut, err := opsRun(t, url, args...)
	var printed bytes.Buffer
	code := exitCode(err, &printed)
	return code, errOut + printed.String(), err
}

func TestUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	url := testdb.EmptyURL(t)
	const (
		org  = "0a000000-0000-4000-8000-00000000000a"
		user = "0c000000-0000-4000-8000-00000000000c"
		dev  = "d1000000-0000-4000-8000-000000000001"
	)
	csvFile := filepath.Join(t.TempDir(), "devices.csv")
	require.NoError(t, os.WriteFile(csvFile, []byte("org_id,user_id,device_kind,device_id\n"+org+","+user+",inverter,"+dev+"\n"), 0o600))

	const want = "reauth: the database schema is not migrated (missing river_job): run `reauth migrate`\n"
	for _, args := range [][]string{
		{"jobs", "list"}, {"jobs", "show", "1"}, {"jobs", "retry", "1"}, {"jobs", "cancel", "1"},
		{"jobs", "retry", "--state", "discarded", "--yes"},
		{"devices", "show", "inverter", dev}, {"sessions", "list"},
		{"queues", "list"}, {"queues", "pause", "podero"}, {"queues", "resume", "podero"},
		{"stats"}, {"sync", "--now"}, {"sweep", "--now"},
		{"contacts", "show", org, user}, {"contacts", "set", org, user, "--email", "a@example.com"},
		{"enqueue", "-org", org, "-user", user, "-kind", "inverter", "-device", dev},
		{"enqueue", "-csv", csvFile},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, msg, err := cliRun(t, url, args...)
			require.ErrorIs(t, err, migrations.ErrOutdated)
			require.Equal(t, 1, code)
			require.Equal(t, want, msg)
		})
	}

	// Nothing was created on the way.
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var tables int
	require.NoError(t, conn.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`).Scan(&tables))
	require.Zero(t, tables)

	// After migrate the same command works.
	code, msg := cliMessage(t, url, "migrate")
	require.Equal(t, 0, code, msg)
	code, msg = cliMessage(t, url, "queues", "list")
	require.Equal(t, 0, code, msg)
}

func TestOutdatedDatabase(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), "DELETE FROM reauth_migration")
	require.NoError(t, err)

	code, msg := cliMessage(t, url, "jobs", "list")
	require.Equal(t, 1, code)
	require.Equal(t, fmt.Sprintf("reauth: database schema is not current: run `reauth migrate` (app schema at 0, binary needs %d)\n", migrations.Latest()), msg)
}

// Every printed error has exactly one "reauth: " prefix, also when it comes
// from the reauth package, whose errors begin with its name.
func TestErrorPrefix(t *testing.T) {
	t.Parallel()

	t.Run("enqueue on a broken database", func(t *testing.T) {
		t.Parallel()
		url := testdb.NewURL(t)
		conn, err := pgx.Connect(context.Background(), url)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), `
			CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'river_job is read-only here'; END $$;
			CREATE TRIGGER refuse_insert BEFORE INSERT ON river_job FOR EACH ROW EXECUTE FUNCTION refuse_insert();`)
		require.NoError(t, err)

		csvFile := filepath.Join(t.TempDir(), "devices.csv")
		require.NoError(t, os.WriteFile(csvFile, []byte("org_id,user_id,device_kind,device_id\n"+
			opsOrgA+","+opsUser+",inverter,"+opsDev1+"\n"), 0o600))
		for _, args := range [][]string{
			{"enqueue", "-org", opsOrgA, "-user", opsUser, "-kind", "inverter", "-device", opsDev1},
			{"enqueue", "-csv", csvFile},
		} {
			code, msg := cliMessage(t, url, args...)
			require.Equal(t, 1, code)
			require.Equal(t, "reauth: enqueue: ERROR: river_job is read-only here (SQLSTATE P0001)\n", msg, "%v", args)
		}
	})

	t.Run("exit codes and messages", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			err  error
			code int
			want string
		}{
			{nil, 0, ""},
			{errUsage, 2, ""},
			{fmt.Errorf("bad flag: %w", errUsage), 2, ""},
			{errRejectedRows, 1, ""},
			{errors.New("list jobs: boom"), 1, "reauth: list jobs: boom\n"},
			{fmt.Errorf("reauth: enqueue: %w", errors.New("boom")), 1, "reauth: enqueue: boom\n"},
		} {
			var b bytes.Buffer
			require.Equal(t, tc.code, exitCode(tc.err, &b), "%v", tc.err)
			require.Equal(t, tc.want, b.String(), "%v", tc.err)
		}
	})
}
