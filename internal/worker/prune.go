package worker

import (
	"context"
	"log/slog"

	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
)

// PruneScheduleDefault is when the service runs reauth_prune: daily, at a
// quiet hour (UTC). A schedule rather than an interval, so that restarts
// do not postpone it.
const PruneScheduleDefault = "25 4 * * *"

// PruneWorker works reauth_prune jobs: it removes the FCM tokens last
// registered more than store.FCMTokenMaxAge ago. Messages skip them
// already (store.Recipient); this keeps contacts from collecting them.
type PruneWorker struct {
	river.WorkerDefaults[reauth.PruneArgs]
	cfg Config
}

// Work prunes the stale tokens of every contact in one statement.
func (w *PruneWorker) Work(ctx context.Context, job *river.Job[reauth.PruneArgs]) error {
	n, err := store.PruneFCMTokens(ctx, w.cfg.Pool, w.cfg.now().Add(-store.FCMTokenMaxAge))
	if err != nil {
		return err
	}
	w.cfg.Logger.InfoContext(ctx, "stale FCM tokens pruned", slog.Int64("tokens", n))
	return nil
}
