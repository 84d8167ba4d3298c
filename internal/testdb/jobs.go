package testdb

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivershared/uniquestates"
	"github.com/riverqueue/river/rivertype"
)

// Beginner is what the job factory writes through: a *pgxpool.Pool, a
// *pgx.Conn or a pgx.Tx (then a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Job is how a fixture job differs from one River has just inserted: its
// state and the history that state implies. Zero fields keep what River
// would insert, except as noted.
type Job struct {
	State       rivertype.JobState // "": available
	Attempt     int
	MaxAttempts int // 0: as River inserts it (the args' or the insert options', else river.MaxAttemptsDefault)
	Priority    int // 0: as River inserts it
	// AttemptedAt: nil is now for a state a job reaches by running
	// (running, retryable, completed, discarded), as River's test factory
	// has it, and none for the others.
	AttemptedAt *time.Time
	AttemptedBy []string
	CreatedAt   *time.Time // nil: now
	ScheduledAt *time.Time // nil: the insert options' ScheduledAt, else now
	// FinalizedAt: nil is now for a finalized state (completed, cancelled,
	// discarded) and none for the others, as River's constraint wants.
	FinalizedAt *time.Time
	Errors      []rivertype.AttemptError
	Metadata    map[string]any // nil: as River inserts it
}

// finalized reports whether River keeps a finalized_at for state.
func finalized(state rivertype.JobState) bool {
	return slices.Contains([]rivertype.JobState{rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded}, state)
}

// InsertJob creates a job of args in the state j describes, through River's
// API only: River's client computes the row it would insert for args and
// insert (kind, encoded args, queue, priority, max attempts, tags, unique
// key and states) in a savepoint rolled back at once, and the job is then
// written with the driver's JobInsertFull, as River's own test factory does.
// So a fixture keeps River's unique rule, and follows River's schema on an
// upgrade.
func InsertJob(t testing.TB, db Beginner, args river.JobArgs, insert *river.InsertOpts, j Job) *rivertype.JobRow {
	t.Helper()
	ctx := context.Background()
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	if err != nil {
		t.Fatalf("testdb: river client: %v", err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit

	probe, err := tx.Begin(ctx)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	res, err := client.InsertTx(ctx, probe, args, insert)
	if err != nil {
		t.Fatalf("testdb: insert %s: %v", args.Kind(), err)
	}
	if err := probe.Rollback(ctx); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	row := res.Job

	p := &riverdriver.JobInsertFullParams{
		Attempt:      j.Attempt,
		AttemptedAt:  j.AttemptedAt,
		AttemptedBy:  j.AttemptedBy,
		CreatedAt:    j.CreatedAt,
		EncodedArgs:  row.EncodedArgs,
		FinalizedAt:  j.FinalizedAt,
		Kind:         row.Kind,
		MaxAttempts:  row.MaxAttempts,
		Metadata:     row.Metadata,
		Priority:     row.Priority,
		Queue:        row.Queue,
		ScheduledAt:  j.ScheduledAt,
		State:        j.State,
		Tags:         row.Tags,
		UniqueKey:    uniqueKeyText(row.UniqueKey),
		UniqueStates: uniquestates.UniqueStatesToBitmask(row.UniqueStates),
	}
	if p.State == "" {
		p.State = rivertype.JobStateAvailable
	}
	if j.MaxAttempts != 0 {
		p.MaxAttempts = j.MaxAttempts
	}
	if j.Priority != 0 {
		p.Priority = j.Priority
	}
	if p.ScheduledAt == nil && insert != nil && !insert.ScheduledAt.IsZero() {
		p.ScheduledAt = &insert.ScheduledAt
	}
	if p.AttemptedAt == nil && slices.Contains([]rivertype.JobState{rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateCompleted, rivertype.JobStateDiscarded}, p.State) {
		now := time.Now()
		p.AttemptedAt = &now
	}
	if p.FinalizedAt == nil && finalized(p.State) {
		now := time.Now()
		p.FinalizedAt = &now
	}
	if j.Metadata != nil {
		p.Metadata = mustJSON(t, j.Metadata)
	}
	for _, e := range j.Errors {
		p.Errors = append(p.Errors, mustJSON(t, e))
	}
	job, err := riverpgxv5.New(nil).UnwrapExecutor(tx).JobInsertFull(ctx, p)
	if err != nil {
		t.Fatalf("testdb: insert %s job: %v", args.Kind(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return job
}

// SetJobState moves job id to state, as a worker's outcome would leave it
// (finalized now for a finalized state, not finalized otherwise), through
// the driver's JobUpdateFull, which River's test worker uses too; errs, when
// given, replace the job's errors.
func SetJobState(t testing.TB, db Beginner, id int64, state rivertype.JobState, errs ...rivertype.AttemptError) *rivertype.JobRow {
	t.Helper()
	p := &riverdriver.JobUpdateFullParams{ID: id, StateDoUpdate: true, State: state, FinalizedAtDoUpdate: true}
	if finalized(state) {
		now := time.Now()
		p.FinalizedAt = &now
	}
	if len(errs) > 0 {
		p.ErrorsDoUpdate = true
		for _, e := range errs {
			p.Errors = append(p.Errors, mustJSON(t, e))
		}
	}
	var job *rivertype.JobRow
	inTx(t, db, func(ctx context.Context, exec riverdriver.ExecutorTx) {
		var err error
		if job, err = exec.JobUpdateFull(ctx, p); err != nil {
			t.Fatalf("testdb: set job %d %s: %v", id, state, err)
		}
	})
	return job
}

// RescueRunning does at once what River's rescuer does to a job still
// running after RescueStuckJobsAfter (its worker's process died): every
// running job is made available again now, with the error reason appended,
// through the driver's JobGetStuck and JobRescueMany. It returns how many.
func RescueRunning(t testing.TB, db Beginner, reason string) int {
	t.Helper()
	n := 0
	inTx(t, db, func(ctx context.Context, exec riverdriver.ExecutorTx) {
		n = rescueRunning(ctx, t, exec, reason)
	})
	return n
}

// rescueRunning is RescueRunning inside a transaction.
func rescueRunning(ctx context.Context, t testing.TB, exec riverdriver.ExecutorTx, reason string) int {
	// A horizon ahead of the clock: every running job counts as stuck.
	horizon := time.Now().Add(time.Hour)
	var stuck []*rivertype.JobRow
	for after := int64(0); ; {
		page, err := exec.JobGetStuck(ctx, &riverdriver.JobGetStuckParams{AfterID: after, Max: 1000, StuckHorizon: horizon})
		if err != nil {
			t.Fatalf("testdb: running jobs: %v", err)
		}
		stuck = append(stuck, page...)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	if len(stuck) == 0 {
		return 0
	}
	p := &riverdriver.JobRescueManyParams{StuckHorizon: horizon}
	now := time.Now()
	for _, job := range stuck {
		p.ID = append(p.ID, job.ID)
		p.Error = append(p.Error, mustJSON(t, rivertype.AttemptError{At: now, Attempt: job.Attempt, Error: reason}))
		p.FinalizedAt = append(p.FinalizedAt, nil)
		p.ScheduledAt = append(p.ScheduledAt, now)
		p.State = append(p.State, string(rivertype.JobStateAvailable))
	}
	if _, err := exec.JobRescueMany(ctx, p); err != nil {
		t.Fatalf("testdb: rescue: %v", err)
	}
	return len(stuck)
}

// inTx runs f in a transaction of db, through River's driver, and commits
// it; any failure fails t.
func inTx(t testing.TB, db Beginner, f func(ctx context.Context, exec riverdriver.ExecutorTx)) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	f(ctx, riverpgxv5.New(nil).UnwrapExecutor(tx))
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("testdb: %v", err)
	}
}

// uniqueKeyText is key as the driver's JobInsertFull takes it: it casts
// the key from text to bytea, so a binary key (River's is a SHA-256) goes
// in bytea's hex text form. TestInsertJob fails if that changes.
func uniqueKeyText(key []byte) []byte {
	if len(key) == 0 {
		return nil
	}
	return []byte(`\x` + hex.EncodeToString(key))
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return b
}
