package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reauth/reauth"
)

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
	SELECT kind, sum(n)::bigint AS n FROM (` + requestsSinceSQL + `) r GROUP BY 1
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
