package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reauth/reauth"
)

// OpsQueue is one River queue as the ops page shows it: whether it is paused
// and how many of its jobs are in each unfinished or failed state.
type OpsQueue struct {
	Name      string     `json:"name"`
	PausedAt  *time.Time `json:"paused_at,omitempty"`
	Available int64      `json:"available"`
	Scheduled int64      `json:"scheduled"`
	Running   int64      `json:"running"`
	Retryable int64      `json:"retryable"`
	Discarded int64      `json:"discarded"`
	Cancelled int64      `json:"cancelled"`
}

// opsQueuesSQL lists every queue River knows (river_queue has a row once a
// client has worked it) or that has jobs. Completed jobs, the bulk of the
// table, are left out by the state filter, which the leading state column of
// River's fetching index serves.
const opsQueuesSQL = `
SELECT coalesce(q.name, c.queue), q.paused_at,
	coalesce(c.available, 0), coalesce(c.scheduled, 0), coalesce(c.running, 0),
	coalesce(c.retryable, 0), coalesce(c.discarded, 0), coalesce(c.cancelled, 0)
FROM river_queue q
FULL JOIN (
	SELECT queue,
		count(*) FILTER (WHERE state = 'available') AS available,
		count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
		count(*) FILTER (WHERE state = 'running') AS running,
		count(*) FILTER (WHERE state = 'retryable') AS retryable,
		count(*) FILTER (WHERE state = 'discarded') AS discarded,
		count(*) FILTER (WHERE state = 'cancelled') AS cancelled
	FROM river_job
	WHERE state IN ('available', 'scheduled', 'running', 'retryable', 'discarded', 'cancelled')
	GROUP BY queue
) c ON c.queue = q.name
ORDER BY 1`

// OpsQueues returns every queue with its job counts by state, by name.
func OpsQueues(ctx context.Context, db DB) ([]OpsQueue, error) {
	rows, err := db.Query(ctx, opsQueuesSQL)
	if err != nil {
		return nil, mapErr(err)
	}
	qs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OpsQueue, error) {
		var q OpsQueue
		return q, r.Scan(&q.Name, &q.PausedAt, &q.Available, &q.Scheduled, &q.Running, &q.Retryable, &q.Discarded, &q.Cancelled)
	})
	return qs, mapErr(err)
}

// OpsFunnel is the way from request to completed login for one device kind
// over a window. Requested counts reauth_device jobs created in the window;
// the other steps follow the sessions created in the window: how many had a
// message sent, had their link opened, and ended completed (Completed
// includes CompletedElsewhere, a login the user renewed without our link).
type OpsFunnel struct {
	DeviceKind         reauth.DeviceKind `json:"device_kind"`
	Requested          int64             `json:"requested"`
	SessionsCreated    int64             `json:"sessions_created"`
	Sent               int64             `json:"sent"`
	Opened             int64             `json:"opened"`
	Completed          int64             `json:"completed"`
	CompletedElsewhere int64             `json:"completed_elsewhere"`
}

const opsFunnelSQL = `
WITH requested AS (
	SELECT args ->> 'device_kind' AS kind, count(*) AS n
	FROM river_job
	WHERE kind = 'reauth_device' AND created_at >= $1
	GROUP BY 1
), sessions AS (
	SELECT s.device_kind AS kind,
		count(*) AS created,
		count(*) FILTER (WHERE EXISTS (SELECT 1 FROM notification n WHERE n.session_id = s.id AND n.state = 'sent')) AS sent,
		count(*) FILTER (WHERE s.opened_at IS NOT NULL) AS opened,
		count(*) FILTER (WHERE s.state IN ('completed', 'completed_elsewhere')) AS completed,
		count(*) FILTER (WHERE s.state = 'completed_elsewhere') AS completed_elsewhere
	FROM auth_session s
	WHERE s.created_at >= $1
	GROUP BY 1
)
SELECT k.kind, coalesce(r.n, 0), coalesce(s.created, 0), coalesce(s.sent, 0),
	coalesce(s.opened, 0), coalesce(s.completed, 0), coalesce(s.completed_elsewhere, 0)
FROM unnest($2::text[]) WITH ORDINALITY AS k(kind, ord)
LEFT JOIN requested r ON r.kind = k.kind
LEFT JOIN sessions s ON s.kind = k.kind
ORDER BY k.ord`

// OpsFunnelSince returns the funnel of every device kind, in the order of
// reauth.DeviceKinds, for requests and sessions created at or after since.
func OpsFunnelSince(ctx context.Context, db DB, since time.Time) ([]OpsFunnel, error) {
	kinds := make([]string, len(reauth.DeviceKinds))
	for i, k := range reauth.DeviceKinds {
		kinds[i] = string(k)
	}
	rows, err := db.Query(ctx, opsFunnelSQL, since, kinds)
	if err != nil {
		return nil, mapErr(err)
	}
	fs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OpsFunnel, error) {
		var f OpsFunnel
		return f, r.Scan(&f.DeviceKind, &f.Requested, &f.SessionsCreated, &f.Sent, &f.Opened, &f.Completed, &f.CompletedElsewhere)
	})
	return fs, mapErr(err)
}

// MapDriverError maps a driver error that reached the caller through another
// library (River's JobRetry refusing a duplicate of a unique job, say) to the
// package's sentinels, so callers test errors.Is(err, ErrConflict) and never
// inspect pgx errors.
func MapDriverError(err error) error { return mapErr(err) }
