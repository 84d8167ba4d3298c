package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
)

// canonical reports whether a request's device_id is spelled canonically
// (lower case), the form River's unique key for the device is made of.
func canonical(a reauth.DeviceArgs) bool { return a.DeviceID == strings.ToLower(a.DeviceID) }

// handOff works a reauth_device job whose device_id is not in lower case, as
// another language may insert it. River's unique key is the args' text, so
// such a job is not a duplicate of the device's canonical request, and
// working it would give the device a second session and message. It is
// never worked itself: when a canonical request for the device was pending
// while this one was (or still is), this one is its duplicate and completes
// doing nothing; otherwise it inserts its args in lower case as a new job,
// which River's uniqueness merges with any request for the device from now
// on, and completes in the same transaction, so the request is handed on
// exactly once.
func (w *DeviceWorker) handOff(ctx context.Context, job *river.Job[reauth.DeviceArgs]) error {
	a := job.Args.Normalized()
	log := jobLogger(ctx, w.cfg.Logger).With(slog.Int64("job_id", job.ID), slog.String("device_id", a.DeviceID))
	tx, err := w.cfg.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	twin, err := store.OverlappingRequest(ctx, tx, a.DeviceKind, a.DeviceID, job.ID, job.CreatedAt)
	switch {
	case err == nil:
		log.InfoContext(ctx, "device_id is not lower case, and the device's request job covers it: nothing to do (insert IDs in lower case)",
			slog.Int64("request_job", twin))
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("find the device's request: %w", err)
	}
	meta, _ := json.Marshal(map[string]int64{"normalized_from_job": job.ID})
	client := river.ClientFromContext[pgx.Tx](ctx)
	res, err := client.InsertTx(ctx, tx, a, &river.InsertOpts{Priority: job.Priority, MaxAttempts: job.MaxAttempts, Metadata: meta})
	if err != nil {
		return fmt.Errorf("insert the lower-case request: %w", err)
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("complete the job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit the hand-off: %w", err)
	}
	log.InfoContext(ctx, "device_id is not lower case: the request is handed to a job with lower-case IDs (insert IDs in lower case)",
		slog.Int64("request_job", res.Job.ID), slog.Bool("duplicate", res.UniqueSkippedAsDuplicate))
	return nil
}
