package testdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
)

// uniqueArgs is unique by args while unfinished, as reauth_device is.
type uniqueArgs struct {
	Device string `json:"device"`
}

func (uniqueArgs) Kind() string { return "testdb_unique" }
func (uniqueArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "podero", Priority: 2, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}}
}

func TestInsertJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)

	t.Run("InTheStateAsked", func(t *testing.T) {
		threeDays := time.Now().Add(-72 * time.Hour)
		inAnHour := time.Now().Add(time.Hour)
		done := testdb.InsertJob(t, pool, uniqueArgs{Device: "a"}, nil, testdb.Job{
			State: rivertype.JobStateCompleted, Attempt: 1, AttemptedAt: &threeDays, CreatedAt: &threeDays, FinalizedAt: &threeDays,
		})
		require.Equal(t, rivertype.JobStateCompleted, done.State)
		require.Equal(t, "podero", done.Queue, "the args' insert options apply")
		require.Equal(t, 2, done.Priority)
		require.Equal(t, river.MaxAttemptsDefault, done.MaxAttempts)
		require.WithinDuration(t, threeDays, done.CreatedAt, time.Millisecond)
		require.WithinDuration(t, threeDays, *done.FinalizedAt, time.Millisecond)

		failed := testdb.InsertJob(t, pool, uniqueArgs{Device: "b"}, &river.InsertOpts{Queue: "other"}, testdb.Job{
			State: rivertype.JobStateRetryable, Attempt: 1, ScheduledAt: &inAnHour, Priority: 4, Metadata: map[string]any{"note": "x"},
			Errors: []rivertype.AttemptError{{At: time.Now(), Attempt: 1, Error: "podero: 500"}},
		})
		got, err := rc.JobGet(ctx, failed.ID)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateRetryable, got.State)
		require.Equal(t, "other", got.Queue)
		require.Equal(t, 4, got.Priority)
		require.Nil(t, got.FinalizedAt)
		require.WithinDuration(t, inAnHour, got.ScheduledAt, time.Millisecond)
		require.Len(t, got.Errors, 1)
		require.Equal(t, "podero: 500", got.Errors[0].Error)
		require.JSONEq(t, `{"note": "x"}`, string(got.Metadata))

		gone := testdb.InsertJob(t, pool, uniqueArgs{Device: "c"}, nil, testdb.Job{State: rivertype.JobStateDiscarded, Attempt: 25})
		require.NotNil(t, gone.FinalizedAt, "finalized now by default")
	})

	t.Run("KeepsRiversUniqueRule", func(t *testing.T) {
		pending := testdb.InsertJob(t, pool, uniqueArgs{Device: "d"}, nil, testdb.Job{State: rivertype.JobStateRetryable, Attempt: 1})
		res, err := rc.Insert(ctx, uniqueArgs{Device: "d"}, nil)
		require.NoError(t, err)
		require.True(t, res.UniqueSkippedAsDuplicate)
		require.Equal(t, pending.ID, res.Job.ID)

		testdb.SetJobState(t, pool, pending.ID, rivertype.JobStateDiscarded, rivertype.AttemptError{At: time.Now(), Attempt: 1, Error: "boom"})
		got, err := rc.JobGet(ctx, pending.ID)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateDiscarded, got.State)
		require.NotNil(t, got.FinalizedAt)
		require.Equal(t, "boom", got.Errors[0].Error)
		res, err = rc.Insert(ctx, uniqueArgs{Device: "d"}, nil)
		require.NoError(t, err)
		require.False(t, res.UniqueSkippedAsDuplicate, "a finished job is no duplicate")

		done := testdb.SetJobState(t, pool, res.Job.ID, rivertype.JobStateCompleted)
		require.NotNil(t, done.FinalizedAt)
		testdb.SetJobState(t, pool, pending.ID, rivertype.JobStateAvailable)
		got, err = rc.JobGet(ctx, pending.ID)
		require.NoError(t, err)
		require.Nil(t, got.FinalizedAt)
	})

	t.Run("RescueRunning", func(t *testing.T) {
		running := testdb.InsertJob(t, pool, uniqueArgs{Device: "e"}, nil, testdb.Job{State: rivertype.JobStateRunning, Attempt: 1})
		require.Equal(t, 1, testdb.RescueRunning(t, pool, "process killed"))
		got, err := rc.JobGet(ctx, running.ID)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateAvailable, got.State)
		require.Equal(t, "process killed", got.Errors[0].Error)
		require.Equal(t, 1, got.Errors[0].Attempt)
		require.Zero(t, testdb.RescueRunning(t, pool, "again"))
	})
}
